/* ftprof: reads recordings made by libftprof.so and tells which locks threads waited on. The command
 * table below is the one place a command is declared: dispatch, `ftprof --help` and the usage line of
 * `ftprof COMMAND --help` come from it (each command's options from its own table, cmd.h). */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "ftprof/format.h"

const struct cmd_spec cmd_table[] = {
    {"run", "[-o FILE] [--native] [--] CMD [ARGS...]",
     "Run CMD with the recorder preloaded; print the top lock hotspots, the time split and the\n"
     "recording path(s) to stderr; exit with CMD's status (128+signal if killed).",
     cmd_run, true},
    {"attach", "PID [-d S] [-o FILE] [--native] [--timeout S]",
     "Record a running CPython 3.14+ for S seconds (or until Ctrl-C) without a restart, then\n"
     "detach and leave it as it was (PEP 768 remote execution).",
     cmd_attach, false},
    {"report", "FILE... [-t N | -a] [--threads] [--depth N] [-j]",
     "Where the threads' time went, then the locks ranked by contention, with their waiter and\n"
     "holder sites and hold times.",
     cmd_report, false},
    {"flamegraph", "FILE... -o OUT.{html,svg,folded} [--weight wait|count] [--holders] [-a]",
     "A flame graph of waiter (or holder) stacks under each lock.",
     cmd_flamegraph, false},
    {"export", "FILE... --format pprof|trace -o OUT",
     "A pprof profile (go tool pprof, speedscope, ...), or a timeline of every wait as Chrome\n"
     "trace-event JSON (Perfetto, chrome://tracing, speedscope).",
     cmd_export, false},
    {"diff", "BASE.ftp NEW.ftp [-j] [-t N]",
     "Two runs side by side (a fix before and after, the GIL build and the free-threaded one):\n"
     "time accounting, and each lock's waits, total, p99 and hold.",
     cmd_diff, false},
    {"top", "FILE|PID [-i S] [--once [-j]] [-t N] [--attach [-o FILE]]",
     "A live view: locks by wait over the last interval, threads blocked now, deadlocks\n"
     "(PID: the recording that process has mapped).",
     cmd_top, false},
    {"ready", "[--gil-python PATH] [-j] [--strict] [-o DIR] [--] CMD [ARGS...] | --env PYTHON",
     "Is CMD ready for free-threading? Runs it under the recorder: every extension module it loaded, by\n"
     "distribution, whether each declares free-threading support, which re-enabled the GIL; with\n"
     "--gil-python, the same command on that GIL build too, compared; one verdict. --env PYTHON: the\n"
     "compiled modules installed for PYTHON and what each declares, each imported alone.",
     cmd_ready, true},
    {"pause", "FILE|PID", "Stop recording waits in a running recording.", cmd_pause, false},
    {"resume", "FILE|PID", "Start recording waits again in a paused recording.", cmd_resume, false},
    {NULL, NULL, NULL, NULL, false},
};

static void main_print_help(FILE *out)
{
    fputs("usage: ftprof COMMAND [ARGS]    (ftprof COMMAND --help: its options; ftprof --version)\n\nCommands:\n",
          out);
    for (const struct cmd_spec *c = cmd_table; c->name; c++) {
        fprintf(out, "  %s %s\n        ", c->name, c->synopsis);
        for (const char *s = c->summary; *s; s++)
            fputs(*s == '\n' ? "\n        " : (char[]){*s, 0}, out);
        fputc('\n', out);
    }
    fputs("\nOutput files are never overwritten: an existing OUT is an error.\n\nExit codes (ftprof run exits with"
          " CMD's status, or 128+signal; its own\nfailures are 125-127, which commands keep for the shell):\n", out);
    for (const struct cmd_exit_meaning *e = cmd_exit_meanings; e->meaning; e++)
        fprintf(out, "  %-3d %s\n", e->code, e->meaning);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return main_print_help(stderr), FTPROF_EXIT_USAGE;
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0)
        return main_print_help(stdout), FTPROF_EXIT_OK;
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0)
        return printf("ftprof %s (recording format %d)\n", FTPROF_VERSION_STRING, FTP_VERSION), FTPROF_EXIT_OK;
    for (const struct cmd_spec *c = cmd_table; c->name; c++)
        if (strcmp(name, c->name) == 0)
            return c->run(argc - 1, argv + 1);
    return cmd_error(FTPROF_EXIT_USAGE, NULL, "unknown command '%s' (try ftprof --help)", name);
}
