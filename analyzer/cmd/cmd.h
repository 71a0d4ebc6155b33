/* The subcommands of the ftprof CLI (cmd_*.c, dispatched by main.c) and the helpers they share (cmd.c). */
#ifndef FTPROF_ANALYZER_CMD_H
#define FTPROF_ANALYZER_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "exitcodes.h"
#include "profile.h"

int cmd_run(int argc, char **argv);
int cmd_attach(int argc, char **argv);
/* The recorder libftprof.so (FTPROF_LIBRARY, or next to this executable): its absolute path. */
bool run_find_library(char *out, size_t len);
/* The one-line error when run_find_library found nothing: what is wrong with the file FTPROF_LIBRARY
 * names, or that none was found where ftprof looks. Returns `code`, the caller's exit code for it. */
int run_library_not_found(const char *subject, int code);
int cmd_report(int argc, char **argv);
int cmd_ready(int argc, char **argv);

/* One command run under the recorder (cmd_run.c), for `run` and `ready`. */
struct run_child {
    char *const *argv;       /* the command (argv[0] looked up in PATH) */
    const char *output;      /* FTPROF_OUTPUT pattern */
    bool native;             /* FTPROF_NATIVE=1 */
    const char *const *env;  /* more "NAME=VALUE" settings, NULL-terminated, or NULL */
    bool discard_output;     /* stdin, stdout and stderr from /dev/null */
    unsigned timeout_s;      /* 0: none; else the command is killed after this long */
    const char *subject;     /* for errors: "run", "ready" */
};
struct run_outcome {
    int status;              /* as waitpid gives it */
    int child_errno;
    bool timed_out;
    uint64_t wall_ns, cpu_ns; /* from fork to exit; the command's CPU time (all its processes waited for) */
    char **files;            /* the recordings it wrote */
    size_t n_files;
};
/* FTPROF_EXIT_OK, or an exit code after a one-line error (no recorder, cannot start). */
int run_recorded(const struct run_child *c, struct run_outcome *o);
void run_outcome_free(struct run_outcome *o);
/* The exit code a shell would give for a waitpid status. */
int run_exit_status(int status);
int cmd_flamegraph(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
/* A FILE argument, or a process id (digits naming no file) whose mapped recording is looked up in
 * /proc/PID/maps: the path into `path`. An exit code, after a one-line error. */
int cmd_live_target(const char *arg, char *path, size_t cap);

/* The exit code documented for a reader or model error (reader.h: 0, -errno or RD_ERR_*). */
int cmd_read_exit_code(int err);
/* "ftprof: SUBJECT: message" on stderr; returns `code` so callers can `return cmd_error(...)`. */
int cmd_error(int code, const char *subject, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Loads recordings, reporting a failure as one line; returns an exit code. */
int cmd_load(struct profile *p, char *const *paths, size_t n, bool quiet);
/* The same, loaded as `how` says. */
int cmd_load_with(struct profile *p, char *const *paths, size_t n, struct prof_load_how how);
/* Creates `path` exclusively (never overwriting, never following a symlink), mode 0666 less the umask.
 * NULL after reporting the error. */
FILE *cmd_create_output(const char *path);
/* Closes an output made by cmd_create_output; after a write error (`write_err` < 0 is the writer's
 * -errno) removes it and reports the error. Exit code. */
int cmd_finish_output(FILE *f, const char *path, int write_err);
/* Parses a positive count; false if `s` is not one. */
bool cmd_parse_count(const char *s, size_t *out);
/* Columns to fit text to on `fd`: the terminal's width, else $COLUMNS, else 160 (a pipe or a log). */
unsigned cmd_terminal_width(int fd);

/* One option of a subcommand: a flag sets *flag; an option with a value stores it in *value, given as
 * "--name VALUE" or "--name=VALUE". Its short form, where it has one, is the same in every command
 * (cmd_short_options in cmd.c: -o is --output wherever there is an --output). `help` is its line in
 * `ftprof COMMAND --help`. Written with CMD_FLAG / CMD_VALUE, ended by CMD_END. */
struct cmd_option {
    const char *name;     /* "--top" */
    const char **value;   /* NULL for a flag */
    bool *flag;
    const char *arg;      /* the value's name in help: "N", "FILE"; NULL for a flag */
    const char *help;
};
#define CMD_FLAG(name_, flag_, help_) {.name = (name_), .flag = (flag_), .help = (help_)}
#define CMD_VALUE(name_, value_, arg_, help_) {.name = (name_), .value = (value_), .arg = (arg_), .help = (help_)}
#define CMD_END {0}

/* One command of the table in main.c, from which `ftprof --help`, `ftprof COMMAND --help` and the
 * dispatch come. */
struct cmd_spec {
    const char *name;
    const char *synopsis;  /* after "ftprof NAME ": "FILE... [--top N] [--json]" */
    const char *summary;   /* what it does, in a sentence or two ('\n' between lines) */
    int (*run)(int argc, char **argv);
    bool options_end_at_operand; /* run: the first operand is the command, whose options are its own */
};
extern const struct cmd_spec cmd_table[]; /* ended by a NULL name */

/* "usage: ftprof NAME SYNOPSIS", from the table (for error lines). */
const char *cmd_usage(const char *command);

/* The arguments of a subcommand: the options of `opts` and the operands, which go to *operands (an
 * array of argc + 1 entries that the caller frees, NULL when out of memory); "--" ends the options (and
 * so does the first operand for a command whose table entry says so), "-h"/"--help" print the
 * command's help (its usage, summary and every option of `opts` with its line) and set *help. Returns
 * FTPROF_EXIT_OK, FTPROF_EXIT_USAGE or FTPROF_EXIT_NO_MEMORY after a one-line error. */
int cmd_parse_args(int argc, char **argv, const char *command, const struct cmd_option *opts, char ***operands,
                   size_t *n_operands, bool *help);

/* One exit code and what it means: the table `ftprof --help` prints (analyzer/EXIT_CODES.md says more). */
struct cmd_exit_meaning {
    int code;
    const char *meaning;
};
extern const struct cmd_exit_meaning cmd_exit_meanings[]; /* ended by a NULL meaning */

#endif
