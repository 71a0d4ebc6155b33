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
int cmd_flamegraph(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
/* A FILE argument, or a process id (digits naming no file) whose mapped recording is looked up in
 * /proc/PID/maps: the path into `path`. An exit code, after a one-line error. */
int cmd_live_target(const char *arg, char *path, size_t cap);

/* "ftprof: SUBJECT: message" on stderr; returns `code` so callers can `return cmd_error(...)`. */
int cmd_error(int code, const char *subject, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Loads recordings, reporting a failure as one line; returns an exit code. */
int cmd_load(struct profile *p, char *const *paths, size_t n, bool quiet);
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

/* One option of a subcommand: a flag sets *flag; an option with a value stores it in *value, given
 * as "--name VALUE" or "--name=VALUE". */
struct cmd_option {
    const char *name;    /* "--top" */
    const char *alias;   /* "-o", or NULL */
    const char **value;  /* NULL for a flag */
    bool *flag;
};
/* The arguments of a subcommand: the options of `opts` (a NULL name ends the table) and the FILE
 * arguments, which go to `files` (room for argc entries); "--" ends the options, "-h"/"--help"
 * print `usage` and set *help. Returns FTPROF_EXIT_OK, or FTPROF_EXIT_USAGE after a one-line error. */
int cmd_parse_args(int argc, char **argv, const char *command, const char *usage, const struct cmd_option *opts,
                   char **files, size_t *n_files, bool *help);

#endif
