/* Publishing WAIT / HOLDER / GIL records (event.c). */
#ifndef FTPROF_EVENT_H
#define FTPROF_EVENT_H

#include "state.h"

FTP_HIDDEN void ftp_event_wait(struct ftp_thread *t, const struct ftp_wait *w);
FTP_HIDDEN void ftp_event_holder(struct ftp_thread *t, const struct ftp_waiter_copy *copy, uint64_t now);
FTP_HIDDEN uint64_t ftp_event_next_id(struct ftp_thread *t);
/* A spin sequence that ended without parking: publish it as a SPIN wait (no address) once it is over
 * (no yield for FTP_SPIN_GAP_NS) or when `force`d because another kind of wait begins. */
FTP_HIDDEN void ftp_event_flush_spin(struct ftp_thread *t, uint64_t now, bool force);
FTP_HIDDEN void ftp_event_gil_enabled(struct ftp_thread *t);
/* The GIL came back for good (free-threaded builds): say so once (ftp_event_gil_enabled). */
FTP_HIDDEN void ftp_event_check_gil(struct ftp_thread *t);
/* Was the yield run in progress a PyMutex's spin? 3.13 and 3.14 yield exactly spin_max times before
 * parking or taking the lock, never re-reading it, so a shorter run is some other spinner's (a seqlock);
 * 3.15 re-reads the lock as it spins and may stop early, so there a run counts when its lock was found,
 * or when it parks right after on the same lock (`parking`). */
static inline bool ftp_spin_was_pymutex_run(const struct ftp_thread *t, bool parking)
{
    const struct ftp_layout *l = &ftp_state.py.lay;
    if (!l->spin_max || t->spin_seqlock)
        return false;
    if (t->spin_yields >= l->spin_max)
        return true;
    return l->spin_rereads && t->spin_yields > 0 && (parking || t->spin_addr);
}
#define ftp_spin_was_pymutex(t) ftp_spin_was_pymutex_run((t), true)

#endif
