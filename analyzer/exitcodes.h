/* The exit codes of ftprof, documented in `ftprof --help` and analyzer/EXIT_CODES.md. */
#ifndef FTPROF_ANALYZER_EXITCODES_H
#define FTPROF_ANALYZER_EXITCODES_H

enum ftprof_exit {
    FTPROF_EXIT_OK = 0,
    FTPROF_EXIT_USAGE = 2,
    FTPROF_EXIT_CANNOT_READ = 3,
    FTPROF_EXIT_BAD_FORMAT = 4,
    FTPROF_EXIT_TOO_NEW = 5,
    FTPROF_EXIT_CANNOT_WRITE = 6,
    FTPROF_EXIT_CANNOT_START = 7,
    FTPROF_EXIT_NO_RECORDING = 8, /* top/pause/resume PID: no such process, or no recording mapped */
    FTPROF_EXIT_NOT_LIVE = 9,     /* pause/resume: the recording's process ended, or it predates them */
    /* attach PID */
    FTPROF_EXIT_ATTACH_NOT_PYTHON = 10, /* not a CPython process, or a version before 3.14 */
    FTPROF_EXIT_ATTACH_DISABLED = 11,   /* remote debugging disabled in the target */
    FTPROF_EXIT_ATTACH_PERMISSION = 12, /* another user's process, or ptrace restrictions */
    FTPROF_EXIT_ATTACH_GONE = 13,       /* no such process, or it exited during the attach */
    FTPROF_EXIT_ATTACH_TIMEOUT = 14,    /* no thread ran Python code within --timeout */
    FTPROF_EXIT_ATTACH_FAILED = 15,     /* the recorder could not attach inside the target */
};

#endif
