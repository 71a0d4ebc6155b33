/* The exit codes of ftprof, one meaning each: `ftprof --help` prints them (cmd_exit_meanings in
 * cmd_args.c), analyzer/EXIT_CODES.md says more. */
#ifndef FTPROF_ANALYZER_EXITCODES_H
#define FTPROF_ANALYZER_EXITCODES_H

enum ftprof_exit {
    FTPROF_EXIT_OK = 0,
    FTPROF_EXIT_USAGE = 2,
    FTPROF_EXIT_CANNOT_READ = 3,
    FTPROF_EXIT_BAD_FORMAT = 4,
    FTPROF_EXIT_TOO_NEW = 5,
    FTPROF_EXIT_CANNOT_WRITE = 6,
    FTPROF_EXIT_CANNOT_START = 7, /* something ftprof needs cannot be found or started: attach's recorder,
                                     ready --env's interpreter, the executable behind pip's ftprof */
    FTPROF_EXIT_NO_RECORDING = 8, /* top/pause/resume PID: no such process, or no recording mapped */
    FTPROF_EXIT_NOT_LIVE = 9,     /* pause/resume: the recording's process ended, or it predates them */
    /* attach PID */
    FTPROF_EXIT_ATTACH_NOT_PYTHON = 10, /* not a CPython process, or a version before 3.14 */
    FTPROF_EXIT_ATTACH_DISABLED = 11,   /* remote debugging disabled in the target */
    FTPROF_EXIT_ATTACH_PERMISSION = 12, /* another user's process, or ptrace restrictions */
    FTPROF_EXIT_ATTACH_GONE = 13,       /* no such process, or it exited during the attach */
    FTPROF_EXIT_ATTACH_TIMEOUT = 14,    /* no thread ran Python code within --timeout */
    FTPROF_EXIT_ATTACH_FAILED = 15,     /* the recorder could not attach inside the target */
    FTPROF_EXIT_NO_MEMORY = 16,         /* out of memory, in any command but run */
    /* ready */
    FTPROF_EXIT_NOT_READY = 17,  /* --strict: a loaded module does not declare free-threading support, or the
                                    GIL was re-enabled */
    FTPROF_EXIT_NO_PYTHON = 18,  /* the command wrote no recording (it ran no Python the recorder could read) */
    /* ftprof run exits with its command's status; its own failures use the codes env(1) and the shells
     * use, which a command does not use for itself, instead of 2-16. */
    FTPROF_EXIT_RUN_FAILED = 125,     /* run: a usage error, no recorder, out of memory, no fork */
    FTPROF_EXIT_RUN_CANNOT_EXEC = 126, /* run: the command was found but cannot be run */
    FTPROF_EXIT_RUN_NOT_FOUND = 127,   /* run: the command was not found */
};

#endif
