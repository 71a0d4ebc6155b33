/* The command line of every subcommand: option parsing, `ftprof COMMAND --help` and usage lines, from
 * the command table (main.c) and each command's option table (cmd.h), and the exit-code table that
 * `ftprof --help` prints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

/* The short options, one meaning each in every command that has the long one. */
static const struct {
    const char *short_name, *long_name;
} cmd_short_options[] = {
    {"-o", "--output"}, {"-j", "--json"}, {"-t", "--top"}, {"-a", "--all"},
    {"-i", "--interval"}, {"-d", "--duration"}, {"-T", "--timeout"},
};

static const char *cmd_short_of(const char *long_name)
{
    for (size_t i = 0; i < sizeof cmd_short_options / sizeof cmd_short_options[0]; i++)
        if (strcmp(cmd_short_options[i].long_name, long_name) == 0)
            return cmd_short_options[i].short_name;
    return NULL;
}

static const struct cmd_option *cmd_find_option(const struct cmd_option *opts, const char *arg, size_t len)
{
    for (; opts->name; opts++) {
        const char *short_name = cmd_short_of(opts->name);
        if ((strlen(opts->name) == len && strncmp(arg, opts->name, len) == 0) ||
            (short_name && strlen(short_name) == len && strncmp(arg, short_name, len) == 0))
            return opts;
    }
    return NULL;
}

static const struct cmd_spec *cmd_spec_of(const char *command)
{
    for (const struct cmd_spec *c = cmd_table; c->name; c++)
        if (strcmp(c->name, command) == 0)
            return c;
    return NULL;
}

const char *cmd_usage(const char *command)
{
    static char line[512];
    const struct cmd_spec *spec = cmd_spec_of(command);
    snprintf(line, sizeof line, "usage: ftprof %s %s", command, spec ? spec->synopsis : "");
    return line;
}

/* `ftprof COMMAND --help`: usage, what the command does, then one line per option. */
static void cmd_print_help(const char *command, const struct cmd_option *opts)
{
    const struct cmd_spec *spec = cmd_spec_of(command);
    printf("%s\n\n", cmd_usage(command));
    if (spec)
        printf("%s\n\n", spec->summary);
    printf("Options:\n");
    for (; opts->name; opts++) {
        const char *short_name = cmd_short_of(opts->name);
        char left[64];
        snprintf(left, sizeof left, "%s%s%s%s%s", short_name ? short_name : "", short_name ? ", " : "", opts->name,
                 opts->arg ? " " : "", opts->arg ? opts->arg : "");
        printf("  %-24s %s\n", left, opts->help ? opts->help : "");
    }
    printf("  %-24s %s\n", "-h, --help", "print this help and exit");
    printf("\nValues may follow the option (--top 5) or be joined to it (--top=5). Exit codes: ftprof --help.\n");
}

static int cmd_parse_into(int argc, char **argv, const char *command, const struct cmd_option *opts, char **files,
                          size_t *n_files, bool *help)
{
    const struct cmd_spec *spec = cmd_spec_of(command);
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || !a[1]) {
            files[(*n_files)++] = argv[i];
            if (spec && spec->options_end_at_operand)
                options_done = true;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cmd_print_help(command, opts);
            *help = true;
            return FTPROF_EXIT_OK;
        }
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        const struct cmd_option *o = cmd_find_option(opts, a, eq ? (size_t)(eq - a) : strlen(a));
        if (!o)
            return cmd_error(FTPROF_EXIT_USAGE, command, "unknown option '%s' (%s)", a, cmd_usage(command));
        if (!o->value) {
            if (eq)
                return cmd_error(FTPROF_EXIT_USAGE, command, "%s takes no value", o->name);
            *o->flag = true;
        } else if (eq) {
            *o->value = eq + 1;
        } else if (i + 1 < argc) {
            *o->value = argv[++i];
        } else {
            return cmd_error(FTPROF_EXIT_USAGE, command, "%s needs a value (%s)", o->name, cmd_usage(command));
        }
    }
    return FTPROF_EXIT_OK;
}

int cmd_parse_args(int argc, char **argv, const char *command, const struct cmd_option *opts, char ***operands,
                   size_t *n_operands, bool *help)
{
    *n_operands = 0;
    *help = false;
    *operands = calloc((size_t)argc + 1, sizeof(**operands));
    if (!*operands)
        return cmd_error(FTPROF_EXIT_NO_MEMORY, command, "out of memory");
    return cmd_parse_into(argc, argv, command, opts, *operands, n_operands, help);
}

const struct cmd_exit_meaning cmd_exit_meanings[] = {
    {FTPROF_EXIT_OK, "ok (also a partial report from a truncated recording, with a warning)"},
    {FTPROF_EXIT_USAGE, "usage error"},
    {FTPROF_EXIT_CANNOT_READ, "cannot open or read an input (missing, no permission, not a regular file)"},
    {FTPROF_EXIT_BAD_FORMAT, "not an ftprof recording, or corrupted beyond use"},
    {FTPROF_EXIT_TOO_NEW, "the recording needs a newer ftprof"},
    {FTPROF_EXIT_CANNOT_WRITE, "cannot write the output file (never overwritten)"},
    {FTPROF_EXIT_CANNOT_START, "something ftprof needs cannot be found or started (attach: the recorder)"},
    {FTPROF_EXIT_NO_RECORDING, "no such process, or it has no recording mapped (top, pause, resume PID)"},
    {FTPROF_EXIT_NOT_LIVE, "the recording is not live: its process ended, or it predates pause/resume"},
    {FTPROF_EXIT_ATTACH_NOT_PYTHON, "attach: not a CPython process, or a version before 3.14"},
    {FTPROF_EXIT_ATTACH_DISABLED, "attach: remote debugging is disabled in the process"},
    {FTPROF_EXIT_ATTACH_PERMISSION, "attach: no permission (another user's process, ptrace restrictions)"},
    {FTPROF_EXIT_ATTACH_GONE, "attach: no such process, or it exited during the attach"},
    {FTPROF_EXIT_ATTACH_TIMEOUT, "attach: no thread ran Python code within --timeout, or cancelled (Ctrl-C)"},
    {FTPROF_EXIT_ATTACH_FAILED, "attach: the recorder could not attach inside the process"},
    {FTPROF_EXIT_NO_MEMORY, "out of memory"},
    {FTPROF_EXIT_NOT_READY, "ready --strict: a loaded module does not declare free-threading support, or the GIL came back"},
    {FTPROF_EXIT_NO_PYTHON, "ready: the command wrote no recording (it ran no Python)"},
    {FTPROF_EXIT_RUN_FAILED, "run: ftprof itself failed (usage, no recorder); else run exits with CMD's status"},
    {FTPROF_EXIT_RUN_CANNOT_EXEC, "run: CMD was found but cannot be run"},
    {FTPROF_EXIT_RUN_NOT_FOUND, "run: CMD was not found"},
    {0, NULL},
};
