/* Waits in flight (inflight.c): the thread's slot in the file's INFLIGHT table. */
#ifndef FTPROF_INFLIGHT_H
#define FTPROF_INFLIGHT_H

#include "state.h"

/* Claims chunk 0 for the table and writes its record: at file creation, before recording starts. */
FTP_HIDDEN int ftp_inflight_init(void);
/* Publish the wait about to block (its stack already committed); a few plain stores into the thread's
 * own slot under its sequence word. `owner`: the holder's thread ident where the lock says, else 0. */
FTP_HIDDEN void ftp_inflight_begin(struct ftp_thread *t, const struct ftp_wait *w, uint64_t owner);
FTP_HIDDEN void ftp_inflight_end(struct ftp_thread *t);
/* The thread is leaving: its slot is free again. */
FTP_HIDDEN void ftp_inflight_release(struct ftp_thread *t);

#endif
