/* What the hook files (hooks.c: semaphores and sched_yield; hooks_pthread.c: pthread mutexes, rwlocks and
 * conditions) share: the shape every hook follows (see hooks.c) and the steps around a blocking call. */
#ifndef FTPROF_HOOKS_H
#define FTPROF_HOOKS_H

#include <errno.h>

#include "event.h"
#include "inflight.h"
#include "intern.h"
#include "thread.h"
#include "python.h"

/* The acquire load pairs with the release at the end of ftp_resolve_real: a thread that reaches a hook
 * through a GOT slot rewritten by ftprof attach (no synchronisation a compiler or TSan can see) still
 * sees the table as it was written. A plain load on x86-64. */
#define REAL(fn)                                                                                          \
    do {                                                                                                  \
        if (FTP_UNLIKELY(!atomic_load_explicit(&ftp_real_resolved, memory_order_acquire) || !ftp_real.real_##fn))   \
            ftp_resolve_real();                                                                           \
    } while (0)

#define EXPORT __attribute__((visibility("default")))

static inline struct ftp_thread *hook_enter(void)
{
    /* Acquire: what set the recording up (attach, file open) is seen by the hook that sees it on. */
    if (FTP_LIKELY(!atomic_load_explicit(&ftp_state.recording, memory_order_acquire)))
        return NULL;
    if (ftp_tls.guard)
        return NULL;
    return ftp_thread_enter();
}

/* Work every slow path does first: mark the thread busy (false: a detach came in since hook_enter, pass
 * the call through), finish Python set-up and notice the GIL coming back. */
static inline bool slow_path_begin(struct ftp_thread *t, uint64_t *now)
{
    if (!ftp_busy_enter(t))
        return false;
    *now = ftp_now();
    if (ftp_python_ready())
        ftp_event_check_gil(t);
    return true;
}

/* The interpreter's spin call sites met so far, and in *learnt how many of them know which register
 * holds their lock (FTPROF_VERBOSE's closing line). */
FTP_HIDDEN int ftp_hooks_spin_sites(int *learnt);
/* A releaser found a registered waiter: it records itself as the holder, once per waiter. */
static inline bool claim_holder(struct ftp_waiter *w, uintptr_t key, struct ftp_thread *t, struct ftp_waiter_copy *copy)
{
    if (!ftp_waiter_snapshot(w, key, copy) || copy->tid == t->tid || (copy->flags & FTP_WAITER_HOLDER_SEEN))
        return false;
    uint32_t old = ftp_waiter_flag(w, copy, FTP_WAITER_HOLDER_SEEN);
    return old != UINT32_MAX && !(old & FTP_WAITER_HOLDER_SEEN);
}

/* After the release: the releaser's stack, linked to the waiter it woke. */
FTP_HIDDEN void ftp_hooks_record_holder(struct ftp_thread *t, const struct ftp_waiter_copy *copy);

/* Just before the real, blocking call (every kind of wait): published as in flight (`owner`: the
 * holder's thread ident where the lock says, else 0), and the thread no longer busy, since a parked
 * thread must not hold detach up. `park_ns` is the hook's entry time: the recorder's own work before
 * blocking counts as the park, which saves a clock read a wait. */
static inline void wait_block(struct ftp_thread *t, struct ftp_wait *w, uint64_t owner, uint64_t park_ns)
{
    ftp_inflight_begin(t, w, owner);
    w->park_ns = park_ns;
    ftp_busy_block(t);
}

/* Right after the real call returned (every kind of wait): false when a detach came in meanwhile, and
 * the thread, stale, has left recorder code (what it saw is dropped; errno is untouched). Else its end
 * is taken, it is no longer in flight, and its waiter slot `reg` (NULL: none) is given up. A wait that
 * ended after a detach (ftprof attach) is never written: see ftp_thread_stale (state.h). */
static inline bool wait_woke(struct ftp_thread *t, struct ftp_wait *w, struct ftp_waiter *reg)
{
    if (FTP_UNLIKELY(!ftp_busy_resume(t))) {
        ftp_busy_leave(t);
        return false;
    }
    w->end_ns = ftp_now();
    ftp_inflight_end(t);
    if (reg)
        ftp_waiter_remove(reg);
    return true;
}

/* The wait just written, for merging the next park of the same acquisition into it. */
static inline void wait_remember(struct ftp_thread *t, const struct ftp_wait *w, bool mergeable)
{
    t->prev_addr = w->lock_addr;
    t->prev_end_ns = w->end_ns;
    t->prev_acq_seq = w->acq_seq;
    t->prev_stack = w->stack_id;
    t->prev_kind = w->kind;
    t->prev_mergeable = mergeable;
}

#endif
