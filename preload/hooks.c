/* The interposed libc functions: the only symbols libftprof.so exports (exports.map).
 *
 * Every hook has the same shape:
 *   1. make sure the libc original is resolved (another library's constructor may call us before ours);
 *   2. hook_enter(): NULL when not recording, or when the recorder itself is running on this thread
 *      (the recursion guard) — then do nothing but call the original;
 *   3. take the cheap uncontended path first (a try-lock) and return if it succeeds;
 *   4. otherwise, unless recording is paused (ftp_paused: one relaxed load of the header's control
 *      word, on this slow path only), before blocking: note the time, classify the lock, capture the
 *      stack, register as a waiter so the releaser can name itself, publish the wait in flight (a few
 *      stores into the thread's own slot); block in the original; after waking clear the slot, stamp
 *      the time and publish (a woken waiter may already own the lock: anything slow here lengthens its
 *      hold).
 */
#include <errno.h>
#include <string.h>

#include "control.h"
#include "event.h"
#include "got.h"
#include "inflight.h"
#include "intern.h"
#include "native.h"
#include "python.h"
#include "ring.h"
#include "stack.h"
#include "thread.h"

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

/* PyMutexes parked on, or seen held by a spinner, lately: a spin's candidates that some thread really
 * parked on are locks, where a register that merely points near the interpreter's locks (a type-cache
 * entry next to the type lock) rarely is. One relaxed store per note; a slot lost to a collision only
 * costs a tie-break. */
#define PARKED_SLOTS 256
static _Atomic uintptr_t parked_recently[PARKED_SLOTS];

static inline size_t parked_slot(uintptr_t addr) { return (size_t)((addr * 0x9E3779B97F4A7C15ull) >> 56); }

static void parked_note(uintptr_t addr)
{
    _Atomic uintptr_t *slot = &parked_recently[parked_slot(addr)];
    if (atomic_load_explicit(slot, memory_order_relaxed) != addr)
        atomic_store_explicit(slot, addr, memory_order_relaxed);
}

static bool parked_seen(uintptr_t addr)
{
    return atomic_load_explicit(&parked_recently[parked_slot(addr)], memory_order_relaxed) == addr;
}

/* A PyMutex park right after a full spin (40 yields) on the same lock is the same acquisition: the
 * wait starts at the first yield. "The same lock" is the spun-on address when the register scan found
 * it, else the same Python stack: a spin that took its lock and a park on another lock a moment later
 * (Condition.wait right after a re-acquire) must stay two waits. "Right after" is within
 * FTP_SPIN_GAP_NS of the last yield, or — however long the thread was preempted in between — a spin
 * that began after this acquisition did (`acq_begin`, from the waiter's own mutex_entry; 0 if not
 * known). Any other pending spin ended on its own and is published as such. */
static inline uint64_t take_spin(struct ftp_thread *t, uint64_t now, uintptr_t lock_addr, uint32_t stack,
                                 uint64_t acq_begin)
{
    bool right_after = now - t->spin_last_ns < FTP_SPIN_GAP_NS || (acq_begin && t->spin_start_ns >= acq_begin);
    if (t->spin_start_ns && right_after && ftp_spin_was_pymutex(t) &&
        (t->spin_addr ? t->spin_addr == lock_addr : t->spin_stack == stack)) {
        uint64_t start = t->spin_start_ns;
        t->spin_start_ns = 0;
        return start;
    }
    ftp_event_flush_spin(t, now, true);
    return now;
}

/* A releaser found a registered waiter: it records itself as the holder, once per waiter. */
static inline bool claim_holder(struct ftp_waiter *w, uintptr_t key, struct ftp_thread *t, struct ftp_waiter_copy *copy)
{
    if (!ftp_waiter_snapshot(w, key, copy) || copy->tid == t->tid || (copy->flags & FTP_WAITER_HOLDER_SEEN))
        return false;
    uint32_t old = ftp_waiter_flag(w, copy, FTP_WAITER_HOLDER_SEEN);
    return old != UINT32_MAX && !(old & FTP_WAITER_HOLDER_SEEN);
}

/* After the release: the releaser's stack, linked to the waiter it woke. */
static void record_holder(struct ftp_thread *t, const struct ftp_waiter_copy *copy)
{
    if (ftp_paused())
        return;
    int saved_errno = errno;
    uint64_t now;
    if (slow_path_begin(t, &now)) {
        ftp_event_holder(t, copy, now);
        ftp_busy_leave(t);
    }
    errno = saved_errno;
}

/* ---------------------------------------------------------------------------------------------------
 * Parking-lot semaphores. CPython parks a thread with a sem_t initialised to 0 inside a wait_entry on
 * the waiter's own stack, which holds the address waited on and the park argument (for a PyMutex, a
 * struct mutex_entry with its handed_off flag, further up the stack); where they are is part of the
 * interpreter's layout (layout.c). Without a known layout these semaphores are left alone: their waits
 * are then recorded as plain semaphore waits, without a lock address.
 * ------------------------------------------------------------------------------------------------- */
#define PARK_LAYOUT (&ftp_state.py.lay)
static inline uintptr_t park_lock_addr(const sem_t *sem)
{
    return *(const uintptr_t *)((const char *)sem - PARK_LAYOUT->park_addr_before_sem);
}
static inline const void *park_arg_of(const sem_t *sem)
{
    return *(const void *const *)((const char *)sem - PARK_LAYOUT->park_arg_before_sem);
}
static inline int park_handed_off(const void *park_arg)
{
    return *(const int *)((const char *)park_arg + PARK_LAYOUT->mutex_entry_handed_off);
}

/* Just before the real, blocking call (every kind of wait): published as in flight (`owner`: the
 * holder's thread ident where the lock says, else 0), its park time taken, and the thread no longer
 * busy, since a parked thread must not hold detach up. */
static inline void wait_block(struct ftp_thread *t, struct ftp_wait *w, uint64_t owner)
{
    ftp_inflight_begin(t, w, owner);
    w->park_ns = ftp_now();
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

static inline bool on_own_stack(const void *p)
{
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    return (uintptr_t)p > sp && (uintptr_t)p - sp < 65536;
}

static int park_index(struct ftp_thread *t, const sem_t *sem)
{
    for (int i = t->npark - 1; i >= 0; i--)
        if (t->park[i].sem == sem)
            return i;
    return -1;
}

static void park_forget(struct ftp_thread *t, int i)
{
    struct ftp_waiter *w = ftp_waiter_find((uintptr_t)t->park[i].sem);
    struct ftp_waiter_copy c;
    if (ftp_waiter_snapshot(w, (uintptr_t)t->park[i].sem, &c) && c.tid == t->tid)
        ftp_waiter_remove(w);
    t->park[i] = t->park[--t->npark];
}

EXPORT int sem_init(sem_t *sem, int pshared, unsigned value)
{
    REAL(sem_init);
    int rc = ftp_real.real_sem_init(sem, pshared, value);
    struct ftp_thread *t;
    if (rc != 0 || !(t = hook_enter()))
        return rc;
    uintptr_t caller = (uintptr_t)__builtin_return_address(0);
    if (pshared || !ftp_in_python_text(caller) || !ftp_busy_enter(t))
        return rc;
    if (value == 0 && PARK_LAYOUT->park_arg_before_sem && on_own_stack(sem)) {
        /* Registered now, not at the wait: in a 3.13 self-park the thread wakes itself (sem_post) before
         * it reaches sem_wait, and we must see that post to leave the non-wait unreported. */
        if (t->npark == FTP_PARK_SEMS)
            park_forget(t, 0);
        struct ftp_park_sem *p = &t->park[t->npark++];
        p->sem = sem;
        p->lock_addr = park_lock_addr(sem);
        p->event_id = ftp_event_next_id(t);
        ftp_waiter_add((uintptr_t)sem, p->event_id, p->lock_addr, t->tid);
    } else if (value == 1 && ftp_python_ready() && ftp_python_in_rlock_factory()) {
        ftp_rlock_add((uintptr_t)sem); /* 3.13's RLock is a PyThread_type_lock: remember which sems */
    }
    ftp_busy_leave(t);
    return rc;
}

EXPORT int sem_destroy(sem_t *sem)
{
    REAL(sem_destroy);
    struct ftp_thread *t = hook_enter();
    if (t && ftp_busy_enter(t)) {
        int i = park_index(t, sem);
        if (i >= 0)
            park_forget(t, i);
        else
            ftp_rlock_remove((uintptr_t)sem);
        ftp_busy_leave(t);
    }
    return ftp_real.real_sem_destroy(sem);
}

enum sem_mode { SEM_UNTIMED, SEM_TIMED, SEM_CLOCK };

static inline int call_sem_wait(sem_t *sem, enum sem_mode mode, clockid_t clock, const struct timespec *abstime)
{
    switch (mode) {
    case SEM_TIMED:
        return ftp_real.real_sem_timedwait(sem, abstime);
    case SEM_CLOCK:
        return ftp_real.real_sem_clockwait(sem, clock, abstime);
    default:
        return ftp_real.real_sem_wait(sem);
    }
}

static int park_wait(struct ftp_thread *t, int i, sem_t *sem, enum sem_mode mode, clockid_t clock,
                     const struct timespec *abstime)
{
    uint64_t now;
    if (!slow_path_begin(t, &now))
        return call_sem_wait(sem, mode, clock, abstime);
    struct ftp_park_sem park = t->park[i];
    const void *park_arg = park_arg_of(sem);
    uintptr_t lock_addr = park_lock_addr(sem);
    struct ftp_waiter_copy reg;
    bool self_woken = ftp_waiter_snapshot(ftp_waiter_find((uintptr_t)sem), (uintptr_t)sem, &reg) &&
                      reg.tid == t->tid && (reg.flags & FTP_WAITER_SELF_WOKEN);
    /* park_arg pointing just above the semaphore on this stack: a PyMutex's mutex_entry
     * {PyTime_t time_to_be_fair (about now + 1 ms); int handed_off}, or — for a hand-over wait such as
     * SimpleQueue.get — the slot the item will be put in. A NULL one: a PyEvent or the thread-state
     * park of stop-the-world. Anything else (a _PyRawMutex bucket lock, whose sem − 8 is a list link)
     * is internal bookkeeping and not reported. */
    bool arg_on_stack = (uintptr_t)park_arg > (uintptr_t)sem && (uintptr_t)park_arg - (uintptr_t)sem < 8192;
    bool mutex_park = false;
    uint64_t acq_begin = 0; /* when this PyMutex acquisition began: its time_to_be_fair less the delay */
    if (arg_on_stack) {
        int64_t fair_at = *(const int64_t *)park_arg;
        int handed = park_handed_off(park_arg);
        mutex_park = fair_at > (int64_t)now - 60000000000LL && fair_at < (int64_t)now + 60000000000LL &&
                     (handed == 0 || handed == 1);
        if (mutex_park && fair_at > (int64_t)PARK_LAYOUT->mutex_fair_ns)
            acq_begin = (uint64_t)fair_at - PARK_LAYOUT->mutex_fair_ns;
    }
    bool reportable = !self_woken && lock_addr && (arg_on_stack || park_arg == NULL);
    if (!reportable || ftp_paused()) {
        if (self_woken)
            t->spin_start_ns = 0; /* the self-park's spin was not a wait either */
        ftp_busy_leave(t);
        return call_sem_wait(sem, mode, clock, abstime);
    }
    struct ftp_lock_class cls;
    ftp_python_classify(t, lock_addr, mutex_park, &cls);
    if (mutex_park)
        parked_note(lock_addr);
    if (arg_on_stack && !mutex_park)
        cls.kind = FTP_KIND_CONDITION; /* waiting for an item to be handed over: waiting for work */
    struct ftp_wait w = {
        .kind = cls.kind,
        .region = cls.region,
        .region_offset = cls.region_offset,
        .type_id = cls.type_id,
        .event_id = park.event_id,
        .lock_addr = lock_addr,
        .flags = mode != SEM_UNTIMED ? FTP_WAIT_TIMED : 0,
    };
    /* A PyMutex woken without hand-off races again and may park again: same acquisition. The
     * stop-the-world requester re-waits in 1 ms slices: same pause. */
    bool mergeable_kind = mutex_park || cls.kind == FTP_KIND_STOP_THE_WORLD || cls.kind == FTP_KIND_GC_PAUSE;
    /* A re-park of the same PyMutex acquisition carries the same mutex_entry time, however long the
     * thread was preempted after its wake-up. */
    bool same_acq = acq_begin ? acq_begin == t->prev_acq_begin : now - t->prev_end_ns < FTP_CONTINUE_GAP_NS;
    if (mergeable_kind && t->prev_mergeable && t->prev_addr == lock_addr && same_acq) {
        w.acq_seq = t->prev_acq_seq;
        w.flags |= FTP_WAIT_CONTINUATION;
        w.stack_id = t->prev_stack;
        w.start_ns = now;
        /* Yields between two parks of one acquisition tied to this very lock are inside it: the lock's
         * address lingers in the registers while the thread detaches and re-attaches (whose own short
         * spins are what yielded), and publishing them would count the acquisition twice. */
        if (t->spin_start_ns && acq_begin && t->spin_start_ns >= acq_begin && t->spin_addr == lock_addr)
            t->spin_start_ns = 0;
        ftp_event_flush_spin(t, now, true);
    } else {
        w.acq_seq = ++t->acq_counter;
        w.stack_id = ftp_stack_capture(t);
        if (mutex_park) {
            w.start_ns = take_spin(t, now, lock_addr, w.stack_id, acq_begin);
        } else {
            w.start_ns = now;
            ftp_event_flush_spin(t, now, true);
        }
    }
    /* 3.14+ RLock: a _PyRecursiveMutex, whose owner's thread ident sits beside its PyMutex. */
    uint64_t owner = 0;
    if (cls.kind == FTP_KIND_RLOCK && PARK_LAYOUT->rlock_owner)
        owner = *(volatile const uint64_t *)(lock_addr + PARK_LAYOUT->rlock_owner);
    wait_block(t, &w, owner);
    int rc = call_sem_wait(sem, mode, clock, abstime);
    int saved_errno = errno;
    if (FTP_UNLIKELY(!wait_woke(t, &w, NULL)))
        return rc;

    bool handed_off = mutex_park && park_handed_off(park_arg) != 0;
    if (handed_off)
        w.flags |= FTP_WAIT_HANDED_OFF;
    if (rc != 0 && saved_errno == ETIMEDOUT)
        w.flags |= FTP_WAIT_TIMED_OUT;
    ftp_event_wait(t, &w);
    wait_remember(t, &w, mergeable_kind && !handed_off);
    t->prev_acq_begin = acq_begin;
    errno = saved_errno;
    ftp_busy_leave(t);
    return rc;
}

/* A heap semaphore (PyThread_type_lock: 3.13's RLock, extensions' locks): contended only if a
 * try-wait fails. Uncontended acquisitions cost one extra sem_trywait and produce nothing. */
static int heap_sem_wait(struct ftp_thread *t, sem_t *sem, enum sem_mode mode, clockid_t clock,
                         const struct timespec *abstime)
{
    int saved = errno;
    if (ftp_real.real_sem_trywait(sem) == 0)
        return 0;
    if (errno != EAGAIN || ftp_paused())
        return call_sem_wait(sem, mode, clock, abstime);
    errno = saved;
    uint64_t now;
    if (!slow_path_begin(t, &now))
        return call_sem_wait(sem, mode, clock, abstime);
    struct ftp_wait w = {
        .kind = ftp_rlock_contains((uintptr_t)sem) ? FTP_KIND_RLOCK : FTP_KIND_PYTHREAD_LOCK,
        .region = FTP_REGION_HEAP,
        .event_id = ftp_event_next_id(t),
        .acq_seq = ++t->acq_counter,
        .lock_addr = (uintptr_t)sem,
        .flags = mode != SEM_UNTIMED ? FTP_WAIT_TIMED : 0,
        .start_ns = now,
    };
    ftp_event_flush_spin(t, now, true);
    w.stack_id = ftp_stack_capture(t);
    struct ftp_waiter *reg = ftp_waiter_add((uintptr_t)sem, w.event_id, w.lock_addr, t->tid);
    wait_block(t, &w, 0); /* 3.13's RLock keeps its owner in the object, not beside the sem */
    int rc = call_sem_wait(sem, mode, clock, abstime);
    int saved_errno = errno;
    if (FTP_UNLIKELY(!wait_woke(t, &w, reg)))
        return rc;
    if (rc != 0 && saved_errno == ETIMEDOUT)
        w.flags |= FTP_WAIT_TIMED_OUT;
    ftp_event_wait(t, &w);
    t->prev_mergeable = false;
    errno = saved_errno;
    ftp_busy_leave(t);
    return rc;
}

static int sem_wait_any(sem_t *sem, enum sem_mode mode, clockid_t clock, const struct timespec *abstime)
{
    struct ftp_thread *t = hook_enter();
    if (!t)
        return call_sem_wait(sem, mode, clock, abstime);
    int i = park_index(t, sem);
    if (i >= 0)
        return park_wait(t, i, sem, mode, clock, abstime);
    /* Attached mid-park: a park semaphore initialised before the hooks were in (on this stack, never a
     * heap lock's) is not misread as a PyThread lock. */
    if (FTP_UNLIKELY(ftp_loaded_late) && on_own_stack(sem))
        return call_sem_wait(sem, mode, clock, abstime);
    return heap_sem_wait(t, sem, mode, clock, abstime);
}

EXPORT int sem_wait(sem_t *sem)
{
    REAL(sem_wait);
    return sem_wait_any(sem, SEM_UNTIMED, CLOCK_REALTIME, NULL);
}

EXPORT int sem_timedwait(sem_t *sem, const struct timespec *abstime)
{
    REAL(sem_timedwait);
    return sem_wait_any(sem, SEM_TIMED, CLOCK_REALTIME, abstime);
}

EXPORT int sem_clockwait(sem_t *sem, clockid_t clock, const struct timespec *abstime)
{
    REAL(sem_clockwait);
    return sem_wait_any(sem, SEM_CLOCK, clock, abstime);
}

EXPORT int sem_post(sem_t *sem)
{
    REAL(sem_post);
    struct ftp_thread *t;
    if (FTP_LIKELY(atomic_load_explicit(&ftp_state.parked, memory_order_relaxed) == 0) || !(t = hook_enter()))
        return ftp_real.real_sem_post(sem);
    struct ftp_waiter *w = ftp_waiter_find((uintptr_t)sem);
    struct ftp_waiter_copy copy;
    if (!ftp_waiter_snapshot(w, (uintptr_t)sem, &copy))
        return ftp_real.real_sem_post(sem);
    if (copy.tid == t->tid) {
        ftp_waiter_flag(w, &copy, FTP_WAITER_SELF_WOKEN); /* 3.13 self-park: waking ourselves, not a wait */
        return ftp_real.real_sem_post(sem);
    }
    bool holder = claim_holder(w, (uintptr_t)sem, t, &copy);
    /* Wake first, then look at our own stack: the waiter should not wait for our bookkeeping. */
    int rc = ftp_real.real_sem_post(sem);
    if (holder)
        record_holder(t, &copy);
    return rc;
}

/* ---------------------------------------------------------------------------------------------------
 * The interpreter's spin phase: 3.13's _PyMutex_LockTimed yields up to 40 times before parking, and
 * that time is part of the wait. Only yields called from the interpreter's own code count.
 * ------------------------------------------------------------------------------------------------- */

/* Picks the one lock among a sort of candidates: the only one, or the only one parked on lately. */
static int spin_pick(const uintptr_t *cand, int n)
{
    if (n == 1)
        return 0;
    int pick = -1;
    for (int i = 0; i < n; i++) {
        if (!parked_seen(cand[i]))
            continue;
        if (pick >= 0)
            return -1;
        pick = i;
    }
    return pick;
}

/* Which PyMutex is being spun on: the caller keeps it in a callee-saved register across the yield.
 * A candidate must point at a PyMutex byte (only LOCKED and HAS_PARKED bits) in an object we can
 * name (a critical section or a threading.Lock) or inside the runtime/interpreter state. Registers
 * can also hold stale values of the caller's callers, and other pointers into the interpreter state,
 * so a locked candidate is preferred; among candidates of that sort the spin is tied to the only
 * one, or to the only one some thread parked on lately; otherwise it stays a SPIN for the analyzer
 * to place by stack. Unlocked candidates count only when no candidate is locked: 3.13's spinner does
 * not re-read the lock byte, so its lock may have been released long before the spin ends. */
static void spin_lock_of(struct ftp_thread *t, const uintptr_t *regs, int nregs)
{
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    uintptr_t cand[2][6];            /* [1]: locked, [0]: unlocked */
    struct ftp_lock_class cls[2][6];
    int n[2] = {0, 0};
    for (int i = 0; i < nregs && i < 6; i++) {
        uintptr_t r = regs[i];
        if (r < 65536 || (r > sp - 65536 && r < sp + (1u << 20)))
            continue; /* small integers, our own stack (locals such as &entry) */
        bool repeat = false;
        for (int k = 0; k < n[0]; k++)
            repeat = repeat || cand[0][k] == r;
        for (int k = 0; k < n[1]; k++)
            repeat = repeat || cand[1][k] == r;
        uint8_t byte;
        if (repeat || !ftp_safe_read(&byte, r, 1) || (byte & ~3u))
            continue; /* a repeat, or not a PyMutex byte */
        struct ftp_lock_class c;
        ftp_python_classify(t, r, true, &c);
        if (c.kind == FTP_KIND_CRITICAL_SECTION || c.kind == FTP_KIND_LOCK || c.kind == FTP_KIND_RLOCK ||
            c.region == FTP_REGION_RUNTIME || c.region == FTP_REGION_INTERP) {
            int locked = byte & 1u;
            cand[locked][n[locked]] = r;
            cls[locked][n[locked]++] = c;
        }
    }
    /* A locked candidate is a lock as surely as one parked on: remember it for later spins' ties. */
    for (int k = 0; k < n[1]; k++)
        parked_note(cand[1][k]);
    int sort = n[1] ? 1 : 0;
    int pick = n[sort] ? spin_pick(cand[sort], n[sort]) : -1;
    if (pick < 0)
        return; /* nothing, or no way to choose: stays unattributed (or keeps what an earlier look found) */
    t->spin_addr = cand[sort][pick];
    t->spin_cls = cls[sort][pick];
    t->spin_locked = sort == 1;
}

FTP_HIDDEN int ftp_sched_yield(const uintptr_t *regs, uintptr_t caller);
int ftp_sched_yield(const uintptr_t *regs, uintptr_t caller)
{
    REAL(sched_yield);
    struct ftp_thread *t = hook_enter();
    if (!t || !ftp_in_python_text(caller) || ftp_paused() || !ftp_busy_enter(t))
        return ftp_real.real_sched_yield();
    uint64_t now = ftp_now();
    /* The type cache's seqlock yields from its own functions; a PyMutex spins in _PyMutex_LockTimed. A
     * run of one never continues a run of the other: pointers its registers hold are no PyMutex. */
    bool seqlock = ftp_in_seqlock_text(caller);
    if (!t->spin_start_ns || now - t->spin_last_ns >= FTP_SPIN_GAP_NS || seqlock != t->spin_seqlock) {
        ftp_event_flush_spin(t, now, true);
        if (ftp_python_ready())
            ftp_event_check_gil(t);
        t->spin_start_ns = now;
        t->spin_yields = 0;
        t->spin_stack = ftp_stack_capture(t);
        t->spin_addr = 0;
        memset(&t->spin_cls, 0, sizeof t->spin_cls);
        t->spin_cls.kind = FTP_KIND_SPIN;
        t->spin_locked = false;
        t->spin_seqlock = seqlock;
        /* The spin is published when it ends, maybe at the thread's exit, when its frames are gone:
         * a thread not yet known by its threading name announces itself now, while they are there. */
        if (!t->py_named) {
            ftp_thread_name_again(t);
            (void)ftp_ring_reserve(t, 0);
        }
        if (seqlock && regs)
            t->spin_cls.type_id = ftp_python_seqlock_type(t, regs, 6);
    }
    /* Until a locked candidate is seen, each yield of a PyMutex spin looks again: the registers stay the
     * same, the lock byte does not (3.13's spinner does not re-read it, so the lock may come and go
     * under a spin). Not past a PyMutex spin's length: a seqlock's spin can go on much longer, and
     * each look costs a handful of reads. */
    if (regs && !seqlock && !t->spin_locked && t->spin_yields < ftp_state.py.lay.spin_max)
        spin_lock_of(t, regs, 6);
    /* The yield itself is the program's: not busy in it (the rest only touches this thread's state). */
    ftp_busy_leave(t);
    int rc = ftp_real.real_sched_yield();
    t->spin_last_ns = ftp_now();
    t->spin_yields++;
    return rc;
}

#if !defined(__x86_64__)
/* Elsewhere the registers are not at hand: spins without a park stay unattributed here. */
EXPORT int sched_yield(void)
{
    return ftp_sched_yield(NULL, (uintptr_t)__builtin_return_address(0));
}
#endif

/* ---------------------------------------------------------------------------------------------------
 * pthread mutexes and rwlocks (native code: sqlite3, OpenSSL, ...; and the GIL's mutex).
 * ------------------------------------------------------------------------------------------------- */
/* Everything before the blocking call: false when a detach came in (block without recording). On true,
 * the waiter is registered (*reg) and the thread is marked as blocking. `caller`, the lock call's return
 * address, names the object that takes the lock (an extension, a vendored BLAS): its module record is
 * written first if it is new. */
static bool native_wait_begin(struct ftp_thread *t, struct ftp_wait *w, uintptr_t lock, uint8_t kind,
                              uintptr_t caller, struct ftp_waiter **reg)
{
    uint64_t now;
    if (!slow_path_begin(t, &now))
        return false;
    w->kind = kind;
    if (kind != FTP_KIND_GIL) {
        w->caller = caller;
        ftp_native_describe_caller(t, caller);
    }
    w->region = FTP_REGION_HEAP;
    w->event_id = ftp_event_next_id(t);
    w->acq_seq = ++t->acq_counter;
    w->lock_addr = lock;
    if (kind == FTP_KIND_GIL)
        w->region = ftp_python_region(lock, &w->region_offset);
    w->start_ns = now;
    ftp_event_flush_spin(t, now, true);
    w->stack_id = ftp_stack_capture(t);
    *reg = ftp_waiter_add(lock, w->event_id, w->lock_addr, t->tid);
    wait_block(t, w, 0);
    return true;
}

static void native_wait_end(struct ftp_thread *t, struct ftp_wait *w, struct ftp_waiter *reg, int rc)
{
    if (FTP_UNLIKELY(!wait_woke(t, w, reg)))
        return;
    if (rc == ETIMEDOUT)
        w->flags |= FTP_WAIT_TIMED_OUT;
    else if (rc != 0 && rc != EOWNERDEAD)
        w->flags |= FTP_WAIT_FAILED; /* e.g. EDEADLK: an error-checking mutex the caller already holds */
    ftp_event_wait(t, w);
    t->prev_mergeable = false;
    ftp_busy_leave(t);
}

EXPORT int pthread_mutex_lock(pthread_mutex_t *m)
{
    REAL(pthread_mutex_lock);
    struct ftp_thread *t = hook_enter();
    if (FTP_LIKELY(!t))
        return ftp_real.real_pthread_mutex_lock(m);
    int rc = ftp_real.real_pthread_mutex_trylock(m);
    if (rc != EBUSY)
        return rc; /* acquired (0, or EOWNERDEAD for robust mutexes), or an error lock would give too */
    if (ftp_paused())
        return ftp_real.real_pthread_mutex_lock(m);
    struct ftp_wait w = {0};
    struct ftp_waiter *reg;
    int saved_errno = errno;
    uint8_t kind = ftp_python_is_gil((uintptr_t)m) ? FTP_KIND_GIL : FTP_KIND_PTHREAD_MUTEX;
    if (!native_wait_begin(t, &w, (uintptr_t)m, kind, (uintptr_t)__builtin_return_address(0), &reg))
        return ftp_real.real_pthread_mutex_lock(m);
    rc = ftp_real.real_pthread_mutex_lock(m);
    native_wait_end(t, &w, reg, rc);
    errno = saved_errno;
    return rc;
}

static inline int release_with_holder(uintptr_t lock, int (*release)(void *), void *arg)
{
    struct ftp_thread *t;
    if (FTP_LIKELY(atomic_load_explicit(&ftp_state.parked, memory_order_relaxed) == 0) || !(t = hook_enter()))
        return release(arg);
    struct ftp_waiter *w = ftp_waiter_find(lock);
    struct ftp_waiter_copy copy;
    bool holder = w && claim_holder(w, lock, t, &copy);
    int rc = release(arg);
    if (holder)
        record_holder(t, &copy);
    return rc;
}

static int call_mutex_unlock(void *m) { return ftp_real.real_pthread_mutex_unlock(m); }
static int call_rwlock_unlock(void *l) { return ftp_real.real_pthread_rwlock_unlock(l); }

EXPORT int pthread_mutex_unlock(pthread_mutex_t *m)
{
    REAL(pthread_mutex_unlock);
    return release_with_holder((uintptr_t)m, call_mutex_unlock, m);
}

static int rwlock_acquire(pthread_rwlock_t *l, int (*lock)(pthread_rwlock_t *), int (*trylock)(pthread_rwlock_t *),
                          uintptr_t caller)
{
    struct ftp_thread *t = hook_enter();
    if (FTP_LIKELY(!t))
        return lock(l);
    int rc = trylock(l);
    if (rc != EBUSY || ftp_paused())
        return rc != EBUSY ? rc : lock(l);
    struct ftp_wait w = {0};
    struct ftp_waiter *reg;
    int saved_errno = errno;
    if (!native_wait_begin(t, &w, (uintptr_t)l, FTP_KIND_PTHREAD_RWLOCK, caller, &reg))
        return lock(l);
    rc = lock(l);
    native_wait_end(t, &w, reg, rc);
    errno = saved_errno;
    return rc;
}

EXPORT int pthread_rwlock_rdlock(pthread_rwlock_t *l)
{
    REAL(pthread_rwlock_rdlock);
    return rwlock_acquire(l, ftp_real.real_pthread_rwlock_rdlock, ftp_real.real_pthread_rwlock_tryrdlock,
                          (uintptr_t)__builtin_return_address(0));
}

EXPORT int pthread_rwlock_wrlock(pthread_rwlock_t *l)
{
    REAL(pthread_rwlock_wrlock);
    return rwlock_acquire(l, ftp_real.real_pthread_rwlock_wrlock, ftp_real.real_pthread_rwlock_trywrlock,
                          (uintptr_t)__builtin_return_address(0));
}

EXPORT int pthread_rwlock_unlock(pthread_rwlock_t *l)
{
    REAL(pthread_rwlock_unlock);
    return release_with_holder((uintptr_t)l, call_rwlock_unlock, l);
}

/* ---------------------------------------------------------------------------------------------------
 * Condition variables: take_gil waits on the GIL's condition in 5 ms slices (one acquisition, merged);
 * native code's condition waits are "waiting for work".
 * ------------------------------------------------------------------------------------------------- */
static int cond_wait_any(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *abstime)
{
    struct ftp_thread *t = hook_enter();
    uint64_t now;
    if (!t || ftp_paused() || !slow_path_begin(t, &now))
        return abstime ? ftp_real.real_pthread_cond_timedwait(c, m, abstime) : ftp_real.real_pthread_cond_wait(c, m);
    bool gil = ftp_python_is_gil((uintptr_t)c);
    struct ftp_wait w = {
        .kind = gil ? FTP_KIND_GIL : FTP_KIND_COND_WAIT,
        .region = FTP_REGION_HEAP,
        .event_id = ftp_event_next_id(t),
        .lock_addr = (uintptr_t)c,
        .flags = abstime ? FTP_WAIT_TIMED : 0,
    };
    if (gil)
        w.region = ftp_python_region((uintptr_t)c, &w.region_offset);
    w.start_ns = now;
    ftp_event_flush_spin(t, now, true);
    if (gil && t->prev_mergeable && t->prev_addr == (uintptr_t)c && now - t->prev_end_ns < FTP_CONTINUE_GAP_NS) {
        w.acq_seq = t->prev_acq_seq;
        w.flags |= FTP_WAIT_CONTINUATION;
        w.stack_id = t->prev_stack;
    } else {
        w.acq_seq = ++t->acq_counter;
    }
    if (!w.stack_id)
        w.stack_id = ftp_stack_capture(t);
    struct ftp_waiter *reg = ftp_waiter_add((uintptr_t)c, w.event_id, w.lock_addr, t->tid);
    wait_block(t, &w, 0);
    int rc = abstime ? ftp_real.real_pthread_cond_timedwait(c, m, abstime) : ftp_real.real_pthread_cond_wait(c, m);
    if (FTP_UNLIKELY(!wait_woke(t, &w, reg)))
        return rc;
    if (rc == ETIMEDOUT)
        w.flags |= FTP_WAIT_TIMED_OUT;
    ftp_event_wait(t, &w);
    wait_remember(t, &w, gil);
    ftp_busy_leave(t);
    return rc;
}

EXPORT int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    REAL(pthread_cond_wait);
    return cond_wait_any(c, m, NULL);
}

EXPORT int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *abstime)
{
    REAL(pthread_cond_timedwait);
    return cond_wait_any(c, m, abstime);
}

/* The signaller of a waited-on condition is its holder: for the GIL, drop_gil signalling the thread
 * that takes it next, so the holder stack says what the GIL holder was running when it let go. */
static int call_cond_signal(void *c) { return ftp_real.real_pthread_cond_signal(c); }
static int call_cond_broadcast(void *c) { return ftp_real.real_pthread_cond_broadcast(c); }

EXPORT int pthread_cond_signal(pthread_cond_t *c)
{
    REAL(pthread_cond_signal);
    return release_with_holder((uintptr_t)c, call_cond_signal, c);
}

EXPORT int pthread_cond_broadcast(pthread_cond_t *c)
{
    REAL(pthread_cond_broadcast);
    return release_with_holder((uintptr_t)c, call_cond_broadcast, c);
}
