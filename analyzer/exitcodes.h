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
};

#endif
