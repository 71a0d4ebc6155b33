/* Per-thread state (thread.c): the calling thread's ftp_tls made current, busy marks, the exit key. */
#ifndef FTPROF_THREAD_H
#define FTPROF_THREAD_H

#include "state.h"

/* The calling thread's state, reset if it is stale after fork; NULL when not recording. */
FTP_HIDDEN struct ftp_thread *ftp_thread_begin(struct ftp_thread *t, uint32_t generation);
static inline struct ftp_thread *ftp_thread_enter(void)
{
    struct ftp_thread *t = &ftp_tls;
    uint32_t gen = atomic_load_explicit(&ftp_state.generation, memory_order_relaxed);
    if (FTP_UNLIKELY(t->generation != gen || t->tid == 0))
        return ftp_thread_begin(t, gen);
    return t;
}

/* Busy marks: how detach knows that no thread is still running recorder code of the session it ends.
 * A thread is busy while it runs recorder code (from ftp_busy_enter to ftp_busy_leave), except while it
 * blocks in the real lock call (ftp_busy_block .. ftp_busy_resume). Each mark is a store to the thread's
 * own word followed by a full fence; detach bumps the generation, fences, and waits until no word is
 * busy (ftp_busy_quiesce). So a thread either sees the new generation right after marking itself busy
 * (it is stale: it touches nothing and passes the call through), or detach sees its mark and waits for
 * it, however long it was preempted. Nothing of a session is written once its detach has returned. */
FTP_HIDDEN void ftp_busy_mark(struct ftp_thread *t, bool busy);
/* Outermost entry into recorder code on this thread: false (and nothing marked) when the thread is stale
 * or recording stopped; the caller then only passes the call through. */
static inline bool ftp_busy_enter(struct ftp_thread *t)
{
    if (t->guard++ == 0) {
        ftp_busy_mark(t, true);
        if (FTP_UNLIKELY(t->generation != atomic_load_explicit(&ftp_state.generation, memory_order_relaxed) ||
                         !atomic_load_explicit(&ftp_state.recording, memory_order_relaxed))) {
            ftp_busy_mark(t, false);
            t->guard--;
            return false;
        }
    }
    return true;
}
static inline void ftp_busy_leave(struct ftp_thread *t)
{
    if (--t->guard == 0)
        ftp_busy_mark(t, false);
}
/* Around the real, blocking call: a parked thread must not hold detach up. */
static inline void ftp_busy_block(struct ftp_thread *t) { ftp_busy_mark(t, false); }
/* After the real call returned: busy again; false when a detach came in between (the thread is stale:
 * what it saw belongs to no recording and is dropped, see ftp_thread_stale). */
static inline bool ftp_busy_resume(struct ftp_thread *t)
{
    ftp_busy_mark(t, true);
    return t->generation == atomic_load_explicit(&ftp_state.generation, memory_order_relaxed);
}
/* The thread is leaving (its key destructor): it claims no busy slot any more; marks from now on go to
 * the shared counter. */
FTP_HIDDEN void ftp_busy_release(struct ftp_thread *t);
/* Detach: wait until no thread is busy in recorder code (after the generation moved on). */
FTP_HIDDEN void ftp_busy_quiesce(void);
/* Fork child: only the calling thread exists; every other thread's mark is gone with it. */
FTP_HIDDEN void ftp_busy_reset_after_fork(void);
/* Makes the thread-exit key with `at_exit` as its destructor (thread_end.c's, passed in by the
 * orchestrator: what a thread's end writes sits above this file). */
FTP_HIDDEN void ftp_thread_setup_key(void (*at_exit)(void *));
/* Arm the thread-exit callback for this thread (once; a no-op when the key could not be made low). */
FTP_HIDDEN void ftp_thread_set_key(struct ftp_thread *t);

#endif
