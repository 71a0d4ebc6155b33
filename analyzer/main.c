/* ftprof: reads recordings made by libftprof.so and tells which locks threads waited on. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "ftprof/format.h"

static const char ftprof_usage[] =
    "usage: ftprof COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  run [-o FILE] [--native] [--] CMD [ARGS...]\n"
    "        run CMD with the recorder preloaded; print the top lock hotspots and the\n"
    "        recording path(s) to stderr; exit with CMD's status (128+signal if killed)\n"
    "  attach PID [--duration S] [-o FILE] [--native] [--timeout S]\n"
    "        record a running CPython 3.14+ for S seconds (or until Ctrl-C) without a restart,\n"
    "        then detach and leave it as it was (PEP 768 remote execution)\n"
    "  report FILE... [--top N] [--threads] [--json]\n"
    "        where the threads' time went, then locks ranked by total wait, with their\n"
    "        waiter and holder sites and hold times (--threads: every thread, not the top 10)\n"
    "  flamegraph FILE... -o OUT.{html,svg,folded} [--weight wait|count] [--holders]\n"
    "        a flame graph of waiter (or holder) stacks under each lock\n"
    "  export FILE... --format pprof|trace -o OUT\n"
    "        a pprof profile (go tool pprof, speedscope, ...), or a timeline of every wait\n"
    "        as Chrome trace-event JSON (Perfetto, chrome://tracing, speedscope)\n"
    "  diff BASE.ftp NEW.ftp [--json] [--top N]\n"
    "        two runs side by side (a fix before and after, the GIL build and the\n"
    "        free-threaded one): time accounting, and each lock's waits, total, p99 and hold\n"
    "  top FILE|PID [--interval S] [--once [--json]] [--top N]\n"
    "        a live view: locks by wait over the last interval, threads blocked now,\n"
    "        deadlocks (PID: the recording that process has mapped)\n"
    "  pause FILE|PID, resume FILE|PID\n"
    "        stop and restart recording waits in a running recording\n"
    "\n"
    "Output files are never overwritten: an existing OUT is an error.\n"
    "\n"
    "Exit codes:\n"
    "  0  ok (also a partial report from a truncated recording, with a warning)\n"
    "  2  usage error\n"
    "  3  cannot open or read an input file (missing, no permission, a directory,\n"
    "     a FIFO, a device or a socket: only regular files are read)\n"
    "  4  not an ftprof recording, or corrupted beyond use\n"
    "  5  the recording needs a newer ftprof\n"
    "  6  cannot write the output file\n"
    "  7  the profiled command could not be started (run)\n"
    "  8  no such process, or it has no recording mapped (top, pause, resume PID)\n"
    "  9  the recording is not live: its process ended, or it predates pause/resume\n"
    "  10 attach: not a CPython process, or a version before 3.14\n"
    "  11 attach: remote debugging is disabled in the process\n"
    "  12 attach: no permission (another user's process, ptrace restrictions)\n"
    "  13 attach: no such process, or it exited during the attach\n"
    "  14 attach: no thread ran Python code within --timeout (all blocked), or Ctrl-C\n"
    "  15 attach: the recorder could not attach inside the process\n";

int main(int argc, char **argv)
{
    if (argc < 2)
        return fputs(ftprof_usage, stderr), FTPROF_EXIT_USAGE;
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0)
        return fputs(ftprof_usage, stdout), FTPROF_EXIT_OK;
    if (strcmp(cmd, "--version") == 0)
        return printf("ftprof %s (recording format %d)\n", FTPROF_VERSION_STRING, FTP_VERSION), FTPROF_EXIT_OK;
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "attach") == 0)
        return cmd_attach(argc - 1, argv + 1);
    if (strcmp(cmd, "report") == 0)
        return cmd_report(argc - 1, argv + 1);
    if (strcmp(cmd, "flamegraph") == 0)
        return cmd_flamegraph(argc - 1, argv + 1);
    if (strcmp(cmd, "export") == 0)
        return cmd_export(argc - 1, argv + 1);
    if (strcmp(cmd, "diff") == 0)
        return cmd_diff(argc - 1, argv + 1);
    if (strcmp(cmd, "top") == 0)
        return cmd_top(argc - 1, argv + 1);
    if (strcmp(cmd, "pause") == 0)
        return cmd_pause(argc - 1, argv + 1);
    if (strcmp(cmd, "resume") == 0)
        return cmd_resume(argc - 1, argv + 1);
    cmd_error(FTPROF_EXIT_USAGE, NULL, "unknown command '%s' (try ftprof --help)", cmd);
    return FTPROF_EXIT_USAGE;
}
