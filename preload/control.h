/* Live control (control.c): pause, FTPROF_START, FTPROF_MIN_WAIT, the mode setting. */
#ifndef FTPROF_CONTROL_H
#define FTPROF_CONTROL_H

#include "state.h"

/* FTPROF_START, FTPROF_MIN_WAIT, FTPROF_MODE (with warnings naming the variable when `warn`). */
FTP_HIDDEN void ftp_control_settings(bool warn);
/* Into a new file's header: mode, min-wait, and the pause at start (FTPROF_START=paused). */
FTP_HIDDEN void ftp_control_file_opened(struct ftp_file_header *h);
/* One relaxed load of the header's control word: is recording paused? */
static inline bool ftp_paused(void)
{
    _Atomic uint32_t *c = atomic_load_explicit(&ftp_state.control, memory_order_relaxed);
    return c && (atomic_load_explicit(c, memory_order_relaxed) & FTP_CONTROL_PAUSED);
}
/* A wait shorter than FTPROF_MIN_WAIT: counted into the header, not written. True if it was. */
FTP_HIDDEN bool ftp_control_below_min(uint64_t wait_ns);

#endif
