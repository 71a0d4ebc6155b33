/* Publishing events. Runs after a waiter woke (it may already own the lock it waited for): only fill
 * and commit a record here, nothing slow. */
#include <limits.h>
#include <string.h>

#include "control.h"
#include "event.h"
#include "native.h"
#include "python.h"
#include "ring.h"
#include "stack.h"

uint64_t ftp_event_next_id(struct ftp_thread *t)
{
    return (uint64_t)t->tid << 32 | ++t->seq;
}

void ftp_event_wait(struct ftp_thread *t, const struct ftp_wait *w)
{
    /* FTPROF_MIN_WAIT: counted (number and time) in the header, not written. */
    if (FTP_UNLIKELY(ftp_state.min_wait_ns) && ftp_control_below_min(w->end_ns > w->start_ns ? w->end_ns - w->start_ns : 0))
        return;
    /* Announced before its first Python frame (a new thread waiting for the GIL, say)? Try the name
     * again a few times: the THREAD record is repeated, and the analyzer keeps the named one. */
    ftp_thread_name_again(t);
    if (FTP_UNLIKELY(ftp_state.test_preempt) && (t->seq & 63) == 0) {
        /* Tests only: as if preempted between deciding to write and writing, across a detach. */
        struct timespec preempted = {0, 40 * 1000 * 1000};
        nanosleep(&preempted, NULL);
    }
    struct ftp_rec_wait *r = ftp_ring_reserve(t, sizeof *r);
    if (!r) {
        /* Its time as the analyzer would have counted it: a later park of an acquisition extends the
         * wait from the previous park's end (this thread's prev_end_ns is still that one's here). */
        uint64_t from = w->start_ns;
        if ((w->flags & FTP_WAIT_CONTINUATION) && t->prev_end_ns && t->prev_end_ns < from)
            from = t->prev_end_ns;
        ftp_ring_count_drop(w->end_ns > from ? w->end_ns - from : 0);
        return;
    }
    r->tid = t->tid;
    r->kind = w->kind;
    r->region = w->region;
    r->reserved0 = 0;
    r->event_id = w->event_id;
    r->acq_seq = w->acq_seq;
    r->start_ns = w->start_ns;
    r->park_ns = w->park_ns;
    r->end_ns = w->end_ns;
    r->lock_addr = w->lock_addr;
    r->stack_id = w->stack_id;
    r->type_id = w->type_id;
    r->region_offset = w->region_offset;
    r->reserved1 = 0;
    r->caller = w->caller;
    ftp_ring_commit(t, r, FTP_REC_WAIT, w->flags, sizeof *r);
    atomic_fetch_add_explicit(&ftp_state.events, 1, memory_order_relaxed);
}

void ftp_event_holder(struct ftp_thread *t, const struct ftp_waiter_copy *copy, uint64_t now)
{
    uint32_t stack = ftp_stack_capture(t);
    struct ftp_rec_holder *r = ftp_ring_reserve(t, sizeof *r);
    if (!r)
        return;
    r->tid = t->tid;
    r->stack_id = stack;
    r->waiter_event_id = copy->event_id;
    r->time_ns = now;
    r->lock_addr = copy->lock_addr;
    ftp_ring_commit(t, r, FTP_REC_HOLDER, 0, sizeof *r);
}

void ftp_event_flush_spin(struct ftp_thread *t, uint64_t now, bool force)
{
    /* The thread's yields counted so far, only for FTPROF_VERBOSE: otherwise no shared line is written. */
    if (ftp_state.verbose && (t->quiet_yields || t->full_yields)) {
        atomic_fetch_add_explicit(&ftp_state.quiet_yields, t->quiet_yields, memory_order_relaxed);
        atomic_fetch_add_explicit(&ftp_state.full_yields, t->full_yields, memory_order_relaxed);
        atomic_fetch_add_explicit(&ftp_state.spin_starts, t->spin_starts, memory_order_relaxed);
        t->quiet_yields = t->full_yields = t->spin_starts = 0;
    }
    if (!t->spin_start_ns || (!force && ftp_spin_since_last(t, now) < FTP_SPIN_GAP_NS))
        return;
    if (!t->spin_seqlock && !ftp_spin_was_pymutex_run(t, false)) {
        t->spin_start_ns = 0; /* not a PyMutex spin */
        return;
    }
    /* Published with its lock when the spin's register scan found one (park_ns 0: it never parked);
     * a seqlock's yields as such, with the type looked up (spin_cls.type_id) when it was read. */
    struct ftp_wait w = {
        .kind = t->spin_seqlock ? FTP_KIND_SEQLOCK : t->spin_addr ? t->spin_cls.kind : FTP_KIND_SPIN,
        .region = t->spin_addr ? t->spin_cls.region : FTP_REGION_UNKNOWN,
        .region_offset = t->spin_addr ? t->spin_cls.region_offset : 0,
        .type_id = t->spin_addr || t->spin_seqlock ? t->spin_cls.type_id : 0,
        .lock_addr = t->spin_addr,
        .stack_id = t->spin_stack,
        .event_id = ftp_event_next_id(t),
        .acq_seq = ++t->acq_counter,
        .start_ns = t->spin_start_ns,
        .end_ns = ftp_spin_last_ns(t),
    };
    t->spin_start_ns = 0;
    t->prev_mergeable = false;
    ftp_event_wait(t, &w);
}

void ftp_event_gil_enabled(struct ftp_thread *t)
{
    char path[1024];
    size_t len = ftp_native_last_extension(path, sizeof path);
    uint32_t size = ftp_record_padded((uint32_t)(sizeof(struct ftp_rec_gil_enabled) + len));
    struct ftp_rec_gil_enabled *r = ftp_ring_reserve(t, size);
    if (!r)
        return;
    r->time_ns = ftp_now();
    r->path_len = (uint32_t)len;
    r->tid = t->tid;
    memcpy(r + 1, path, len);
    memset((uint8_t *)(r + 1) + len, 0, size - sizeof *r - len);
    ftp_ring_commit(t, r, FTP_REC_GIL_ENABLED, 0, size);
}

/* The GIL came back for good (free-threaded builds): say so once, naming the extension loaded last. */
void ftp_event_check_gil(struct ftp_thread *t)
{
    volatile int *enabled = __atomic_load_n(&ftp_state.py.gil_enabled, __ATOMIC_RELAXED);
    if (!enabled || atomic_load_explicit(&ftp_state.gil_reported, memory_order_relaxed))
        return;
    if (*enabled != INT_MAX) /* transient enables (module init of unknown safety) go back to 0 */
        return;
    if (atomic_exchange(&ftp_state.gil_reported, 1))
        return;
    ftp_event_gil_enabled(t);
}
