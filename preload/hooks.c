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
#include "hooks.h"
#include "intern.h"
#include "python.h"
#include "ring.h"
#include "stack.h"

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

/* Which register holds a PyMutex spin's lock, per yield call site in the interpreter (one in
 * _PyMutex_LockTimed, one in each copy of it inlined elsewhere: PyMutex_Lock, and on 3.15 the
 * recursive mutex's lock, which RLock spins in). The compiler fixes, per call site,
 * which callee-saved register keeps the `PyMutex *` across the yield. It is learnt from two kinds of
 * evidence, each saying "register r held this acquisition's lock":
 *   - a spin that ends in a park of the same acquisition (the park names the lock), worth
 *     SPIN_SITE_PARK_WEIGHT;
 *   - a spin whose scan found exactly one register pointing at a PyMutex in something that names a lock,
 *     and saw that mutex locked, worth 1: this is what the scan itself would have named. Sites that
 *     seldom park learn from these (the critical sections of dict lookups).
 * The register is trusted once the evidence adds up to SPIN_SITE_CONFIRM with none disagreeing. From
 * then on a spin's lock is that register: its object is read once through process_vm_readv when the
 * thread first meets it at that site (spin_lock_at), then in place, as the spinner reads it on every
 * turn — no look at the other five registers, where the scan costs a system call per look.
 * A site with disagreeing evidence (the lock not kept in a register there) keeps the scan for good.
 * Relaxed atomics: two threads learning at once only count one confirmation fewer. */
#define SPIN_SITES 8
#define SPIN_SITE_CONFIRM 16
#define SPIN_SITE_PARK_WEIGHT 4
#define SPIN_SITE_NEVER (-1)
#define SPIN_REG_TWICE 0xff
static struct {
    _Atomic uintptr_t caller;
    _Atomic int32_t state; /* 0: nothing yet; register + 1 in the low byte, confirmations above; NEVER */
} spin_sites[SPIN_SITES];

static int spin_site_find(uintptr_t caller, bool claim)
{
    for (int i = 0; i < SPIN_SITES; i++) {
        uintptr_t c = atomic_load_explicit(&spin_sites[i].caller, memory_order_acquire);
        if (c == caller)
            return i;
        if (!c) {
            uintptr_t expected = 0;
            if (!claim)
                return -1;
            if (atomic_compare_exchange_strong(&spin_sites[i].caller, &expected, caller) || expected == caller)
                return i;
        }
    }
    return -1;
}

int ftp_hooks_spin_sites(int *learnt)
{
    int seen = 0;
    *learnt = 0;
    for (int i = 0; i < SPIN_SITES; i++) {
        if (!atomic_load_explicit(&spin_sites[i].caller, memory_order_acquire))
            continue;
        seen++;
        int32_t st = atomic_load_explicit(&spin_sites[i].state, memory_order_relaxed);
        if (st > 0 && (st >> 8) >= SPIN_SITE_CONFIRM)
            ++*learnt;
    }
    return seen;
}

/* The register that holds this call site's lock, or -1 while not known. */
static inline int spin_site_register(uintptr_t caller)
{
    int i = spin_site_find(caller, false);
    int32_t st = i < 0 ? 0 : atomic_load_explicit(&spin_sites[i].state, memory_order_relaxed);
    return st > 0 && (st >> 8) >= SPIN_SITE_CONFIRM ? (st & 0xff) - 1 : -1;
}

/* Evidence, worth `weight`, that this thread's spin site keeps its lock in register `reg` (a register,
 * and only one: SPIN_REG_TWICE tells nothing). */
static void spin_site_confirm(struct ftp_thread *t, int reg, int weight)
{
    int i = reg >= 0 && reg < 6 && t->spin_caller ? spin_site_find(t->spin_caller, true) : -1;
    if (i < 0)
        return;
    int32_t st = atomic_load_explicit(&spin_sites[i].state, memory_order_relaxed);
    if (st == SPIN_SITE_NEVER || (st > 0 && (st >> 8) >= SPIN_SITE_CONFIRM))
        return;
    bool disagrees = st > 0 && (st & 0xff) != reg + 1;
    int32_t next = disagrees ? SPIN_SITE_NEVER : ((((st > 0 ? st >> 8 : 0) + weight) << 8) | (reg + 1));
    atomic_store_explicit(&spin_sites[i].state, next, memory_order_relaxed);
}

/* This thread's spin ended in a park on `lock`, the same acquisition: which register held it? Only the
 * spin's candidates are looked at (the lock is one of them whenever the scan could name it); a park on
 * a lock that is none of them tells nothing. */
static void spin_site_learn(struct ftp_thread *t, uintptr_t lock)
{
    for (int k = 0; k < t->spin_ncand; k++)
        if (t->spin_cand[k] == lock) {
            spin_site_confirm(t, t->spin_cand_reg[k], SPIN_SITE_PARK_WEIGHT);
            return;
        }
}

/* A PyMutex park right after a full spin (40 yields) on the same lock is the same acquisition: the
 * wait starts at the first yield. "The same lock" is the spun-on address when the register scan found
 * it, else the same Python stack: a spin that took its lock and a park on another lock a moment later
 * (Condition.wait right after a re-acquire) must stay two waits. "Right after" is within
 * FTP_SPIN_GAP_NS of the last yield, or — however long the thread was preempted in between — a spin
 * that began after this acquisition did (`acq_begin`, from the waiter's own mutex_entry; 0 if not
 * known). Any other pending spin ended on its own and is published as such. */
static inline bool spin_right_before(const struct ftp_thread *t, uint64_t now, uint64_t acq_begin)
{
    return t->spin_start_ns && ftp_spin_was_pymutex(t) &&
           (ftp_spin_since_last(t, now) < FTP_SPIN_GAP_NS || (acq_begin && t->spin_start_ns >= acq_begin));
}

/* The park's stack: the spin's, when that spin is this acquisition's own (its first yield came after
 * the acquisition began: a run of yields at one call site can also span an earlier acquisition, from
 * another line, whose stack it captured) and was found on this very lock; else captured. Not with native
 * stacks (the park's own native frames differ from the yield's), nor in ring mode, where the spin's stack
 * definition may have been overwritten since (ftp_stack_capture knows). */
static inline uint32_t park_stack(struct ftp_thread *t, uintptr_t lock_addr, uint64_t acq_begin)
{
    if (t->spin_stack && t->spin_start_ns && acq_begin && t->spin_start_ns >= acq_begin &&
        t->spin_addr == lock_addr && ftp_spin_was_pymutex(t) && !ftp_state.ring && !ftp_state.native)
        return t->spin_stack;
    return ftp_stack_capture(t);
}

static inline uint64_t take_spin(struct ftp_thread *t, uint64_t now, uintptr_t lock_addr, uint32_t stack,
                                 uint64_t acq_begin)
{
    if (spin_right_before(t, now, acq_begin) && (t->spin_addr ? t->spin_addr == lock_addr : t->spin_stack == stack)) {
        if (t->spin_caller && !t->spin_seqlock && t->spin_reg < 0)
            spin_site_learn(t, lock_addr);
        uint64_t start = t->spin_start_ns;
        t->spin_start_ns = 0;
        return start;
    }
    ftp_event_flush_spin(t, now, true);
    return now;
}

void ftp_hooks_record_holder(struct ftp_thread *t, const struct ftp_waiter_copy *copy)
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
    ftp_python_classify(t, lock_addr, mutex_park, true, NULL, &cls);
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
        w.stack_id = mutex_park ? park_stack(t, lock_addr, acq_begin) : ftp_stack_capture(t);
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
    wait_block(t, &w, owner, now);
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
    wait_block(t, &w, 0, now); /* 3.13's RLock keeps its owner in the object, not beside the sem */
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
    if (FTP_LIKELY(!ftp_parked_on((uintptr_t)sem)) || !(t = hook_enter()))
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
        ftp_hooks_record_holder(t, &copy);
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
static inline bool spin_class_names_lock(const struct ftp_lock_class *c)
{
    return c->kind == FTP_KIND_CRITICAL_SECTION || c->kind == FTP_KIND_LOCK || c->kind == FTP_KIND_RLOCK ||
           c->region == FTP_REGION_RUNTIME || c->region == FTP_REGION_INTERP;
}

/* Whether `addr` is a PyMutex byte (only LOCKED and HAS_PARKED bits) in something that names a lock, read
 * from `around`, its window (ftp_safe_read), or in place when NULL (the interpreter's static state): the
 * byte in *byte, the class in *c. */
static bool spin_names_lock_at(struct ftp_thread *t, uintptr_t addr, const uint8_t *around, uint8_t *byte,
                               struct ftp_lock_class *c)
{
    *byte = around ? around[FTP_CLASSIFY_BEFORE] : *(const volatile uint8_t *)addr;
    if (*byte & ~3u)
        return false;
    ftp_python_classify(t, addr, true, false, around, c);
    return spin_class_names_lock(c);
}

/* The spin's candidates, found at its first look: registers that point at a PyMutex byte in something
 * that names a lock. Later looks of the same spin see the same registers, so they only read these
 * candidates' bytes again (a byte with other bits set never becomes a PyMutex's). */
static void spin_candidates(struct ftp_thread *t, const uintptr_t *regs, int nregs, uint8_t *cand_bytes)
{
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    uintptr_t look[6];
    uint8_t look_reg[6]; /* the register it came from; SPIN_REG_TWICE when two held it */
    int nlook = 0;
    t->spin_scanned = true;
    t->spin_ncand = 0;
    if (!ftp_python_ready())
        return; /* no region is known yet: nothing would be named a lock (and nothing is read) */
    for (int i = 0; i < nregs && i < 6; i++) {
        uintptr_t r = regs[i];
        if (r < 65536 || r >= FTP_USER_ADDR_END || (r > sp - 65536 && r < sp + (1u << 20)))
            continue; /* small integers, no user address, our own stack (locals such as &entry) */
        bool repeat = false;
        for (int k = 0; k < nlook; k++)
            if (look[k] == r) {
                repeat = true;
                look_reg[k] = SPIN_REG_TWICE;
            }
        if (!repeat) {
            look_reg[nlook] = (uint8_t)i;
            look[nlook++] = r;
        }
    }
    /* Each register's byte with the object around it, all in one system call while they read; the
     * runtime and interpreter state are the interpreter's own static data, read in place. */
    uint8_t window[6][FTP_CLASSIFY_WINDOW];
    uintptr_t from[6] = {0};
    bool readable[6], heap[6];
    int nheap = 0, slot[6];
    for (int i = 0; i < nlook; i++) {
        uint32_t offset;
        heap[i] = ftp_python_region(look[i], &offset) == FTP_REGION_HEAP;
        slot[i] = heap[i] ? nheap : -1;
        if (heap[i])
            from[nheap++] = look[i] - FTP_CLASSIFY_BEFORE;
    }
    ftp_safe_read_each(window, sizeof window[0], from, nheap, readable);
    for (int i = 0; i < nlook; i++) {
        if (heap[i] && !readable[slot[i]])
            continue; /* not mapped, or its object is not: no lock to name there */
        uint8_t byte;
        struct ftp_lock_class c;
        if (spin_names_lock_at(t, look[i], heap[i] ? window[slot[i]] : NULL, &byte, &c) &&
            t->spin_ncand < FTP_SPIN_CANDIDATES) {
            cand_bytes[t->spin_ncand] = byte;
            t->spin_cand_reg[t->spin_ncand] = look_reg[i];
            t->spin_cand[t->spin_ncand] = look[i];
            t->spin_cand_cls[t->spin_ncand++] = c;
        }
    }
}

/* A later look: the candidates' lock bytes again (in place for the interpreter's static state). */
static void spin_candidate_bytes(struct ftp_thread *t, uint8_t *bytes, bool *readable)
{
    uintptr_t from[6] = {0};
    uint8_t got[6];
    bool ok[6];
    int n = 0, slot[6];
    for (int i = 0; i < t->spin_ncand; i++) {
        bool heap = t->spin_cand_cls[i].region == FTP_REGION_HEAP;
        slot[i] = heap ? n : -1;
        if (heap)
            from[n++] = t->spin_cand[i];
        else
            bytes[i] = *(const volatile uint8_t *)t->spin_cand[i];
    }
    ftp_safe_read_each(got, 1, from, n, ok);
    for (int i = 0; i < t->spin_ncand; i++) {
        readable[i] = slot[i] < 0 || ok[slot[i]];
        if (slot[i] >= 0)
            bytes[i] = got[slot[i]];
    }
}

static void spin_lock_of(struct ftp_thread *t, const uintptr_t *regs, int nregs)
{
    uint8_t bytes[6];
    bool readable[6] = {true, true, true, true, true, true};
    if (!t->spin_scanned)
        spin_candidates(t, regs, nregs, bytes);
    else
        spin_candidate_bytes(t, bytes, readable);
    uintptr_t cand[2][6];            /* [1]: locked, [0]: unlocked */
    struct ftp_lock_class cls[2][6];
    int n[2] = {0, 0};
    for (int i = 0; i < t->spin_ncand; i++) {
        if (!readable[i] || (bytes[i] & ~3u))
            continue;
        int locked = bytes[i] & 1u;
        cand[locked][n[locked]] = t->spin_cand[i];
        cls[locked][n[locked]++] = t->spin_cand_cls[i];
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
    /* Seen locked, and no other register could have been the lock: evidence for the site (once a spin:
     * a locked candidate ends the looks). */
    if (t->spin_locked && t->spin_ncand == 1)
        spin_site_confirm(t, t->spin_cand_reg[0], 1);
}

/* A known call site's spin: `m` is the PyMutex itself (see spin sites), tied to the spin when it names a
 * lock the scan would also have accepted. The site is learnt, not proven: the first time a thread meets
 * an address there, its object is read through ftp_safe_read (an address that is not mapped is no lock,
 * and costs nothing but the read); once accepted, it is read in place, as the spinner itself does on
 * every turn: for the rest of the spin, and by the thread's next spins at the same site from the same
 * stack on the same address (a service's hot lock, spun on request after request), which take the
 * class found then. The interpreter's own static state is always mapped and is read in place. */
static struct ftp_spin_known *spin_known_find(struct ftp_thread *t, uintptr_t m)
{
    for (int i = 0; i < FTP_SPIN_KNOWN; i++) {
        struct ftp_spin_known *k = &t->spin_known[i];
        if (k->addr == m && k->caller == t->spin_caller && k->stack == t->spin_stack && t->spin_stack)
            return k;
    }
    return NULL;
}

static void spin_lock_at(struct ftp_thread *t, uintptr_t m)
{
    if (m < 65536 || m >= FTP_USER_ADDR_END || m == t->spin_rejected)
        return;
    uint8_t byte;
    struct ftp_spin_known *known;
    if (m == t->spin_addr) {
        byte = *(const volatile uint8_t *)m;
    } else if ((known = spin_known_find(t, m))) {
        byte = *(const volatile uint8_t *)m;
        if (byte & ~3u) {
            known->addr = 0; /* no PyMutex there any more: checked afresh next time */
            t->spin_rejected = m;
            return;
        }
        t->spin_addr = m;
        t->spin_cls = known->cls;
    } else {
        uint32_t offset;
        uint8_t around[FTP_CLASSIFY_WINDOW];
        bool heap = ftp_python_region(m, &offset) == FTP_REGION_HEAP;
        struct ftp_lock_class c;
        if ((heap && !ftp_safe_read(around, m - FTP_CLASSIFY_BEFORE, sizeof around)) ||
            !spin_names_lock_at(t, m, heap ? around : NULL, &byte, &c)) {
            t->spin_rejected = m; /* not mapped, or no lock there */
            return;
        }
        t->spin_addr = m;
        t->spin_cls = c;
        known = &t->spin_known[t->spin_known_next++ % FTP_SPIN_KNOWN];
        *known = (struct ftp_spin_known){m, t->spin_caller, t->spin_stack, c};
    }
    t->spin_locked = byte & 1u;
    if (t->spin_locked)
        parked_note(m);
}

/* The thread's measure of the time-stamp counter's rate, from the counter and the clock read together
 * at its spins' starts (`ticks` 0: not read close enough together to count): the first pair anchors it,
 * and each pair at least 10 ms later gives the rate over all the time since, so that a spin's ticks
 * convert to its length within a few millionths. Every 1 ms or more, the rate known then is checked
 * against the clock over the time since the last check (ftp_state.ticks_worst_ppm). A counter that
 * went back (another CPU's, on a machine the kernel misjudged) starts over, timing by the clock
 * meanwhile. */
static void spin_ticks_calibrate(struct ftp_thread *t, uint64_t ticks, uint64_t now)
{
    if (!ticks)
        return;
    if (!t->ticks_anchor || ticks <= t->ticks_anchor || now <= t->ticks_anchor_ns || ticks <= t->ticks_check) {
        t->ticks_anchor = t->ticks_check = ticks;
        t->ticks_anchor_ns = t->ticks_check_ns = now;
        t->ns_per_tick = 0;
        return;
    }
    if (now - t->ticks_check_ns >= 1000000) {
        if (t->ns_per_tick > 0) {
            double by_clock = (double)(now - t->ticks_check_ns);
            double off = (double)(ticks - t->ticks_check) * t->ns_per_tick - by_clock;
            uint32_t ppm = (uint32_t)((off < 0 ? -off : off) / by_clock * 1e6 + 0.5);
            atomic_fetch_add_explicit(&ftp_state.ticks_checks, 1, memory_order_relaxed);
            uint32_t worst = atomic_load_explicit(&ftp_state.ticks_worst_ppm, memory_order_relaxed);
            while (ppm > worst && !atomic_compare_exchange_weak_explicit(&ftp_state.ticks_worst_ppm, &worst, ppm,
                                                                         memory_order_relaxed, memory_order_relaxed))
                ;
        }
        t->ticks_check = ticks;
        t->ticks_check_ns = now;
    }
    if (now - t->ticks_anchor_ns < 10000000)
        return;
    double rate = (double)(now - t->ticks_anchor_ns) / (double)(ticks - t->ticks_anchor);
    t->ns_per_tick = rate > 0.01 && rate < 100 ? rate : 0; /* 10 MHz to 100 GHz, else not a clock to trust */
    t->gap_ticks = t->ns_per_tick > 0 ? (uint64_t)((double)FTP_SPIN_GAP_NS / t->ns_per_tick) : 0;
}

/* The yield itself, which is the program's, and its end: by the counter when the spin is timed by it. */
static inline int spin_yield_and_time(struct ftp_thread *t)
{
    int rc = ftp_real.real_sched_yield();
    if (t->spin_by_ticks)
        t->spin_last_ticks = ftp_ticks();
    else
        t->spin_last_ns = ftp_now();
    t->spin_yields++;
    return rc;
}

/* Does this yield continue the thread's spin in progress (the same call site, within the gap of its last
 * yield)? */
static inline bool spin_continues(const struct ftp_thread *t, uintptr_t caller)
{
    if (!t->spin_start_ns || caller != t->spin_caller)
        return false;
    if (t->spin_last_ticks) {
        uint64_t ticks = ftp_ticks();
        return ticks >= t->spin_last_ticks && ticks - t->spin_last_ticks < t->gap_ticks;
    }
    return ftp_now() - t->spin_last_ns < FTP_SPIN_GAP_NS;
}

static int spin_yield(struct ftp_thread *t, const uintptr_t *regs, uintptr_t caller, bool new_spin);

/* A spinning thread yields tens of times a spin, and most yields switch to another thread, which leaves
 * the caches cold for the next one: so a yield that continues a spin with nothing left to look at (its
 * lock seen locked, or its looks used up) takes the quiet path. It touches the thread's first cache line
 * and nothing shared: no busy mark (nothing of the session is written), no pause check (a spin is kept
 * when recording was on at its start, as a park is), no text ranges (the call site is the spin's own,
 * checked at its start). Everything else goes to spin_yield. */
FTP_HIDDEN int ftp_sched_yield(const uintptr_t *regs, uintptr_t caller);
int ftp_sched_yield(const uintptr_t *regs, uintptr_t caller)
{
    REAL(sched_yield);
    struct ftp_thread *t = hook_enter();
    if (!t)
        return ftp_real.real_sched_yield();
    if (!t->spin_quiet)
        return spin_yield(t, regs, caller, false);
    if (!spin_continues(t, caller))
        return spin_yield(t, regs, caller, true);
    t->quiet_yields++;
    return spin_yield_and_time(t);
}

/* `new_spin`: the quiet path already found that this yield does not continue the spin in progress. */
__attribute__((noinline)) static int spin_yield(struct ftp_thread *t, const uintptr_t *regs, uintptr_t caller,
                                                bool new_spin)
{
    if (!ftp_in_python_text(caller) || ftp_paused() || !ftp_busy_enter(t))
        return ftp_real.real_sched_yield();
    /* The type cache's seqlock yields from its own functions; a PyMutex spins in _PyMutex_LockTimed. A
     * run of one never continues a run of the other: pointers its registers hold are no PyMutex. Nor
     * does a run continue at another call site: its lock may be in another register (spin_reg). */
    bool seqlock = ftp_in_seqlock_text(caller);
    if (new_spin || seqlock != t->spin_seqlock || !spin_continues(t, caller)) {
        /* The spin's start by the clock, and by the counter when both were read within a moment: its
         * yields are then timed by the counter from there (ftp_spin_last_ns). */
        uint64_t before = ftp_ticks();
        uint64_t now = ftp_now();
        uint64_t after = ftp_ticks();
        uint64_t ticks = after - before < FTP_TICKS_PAIR_MAX ? before + (after - before) / 2 : 0;
        ftp_event_flush_spin(t, now, true);
        if (ftp_python_ready())
            ftp_event_check_gil(t);
        t->spin_starts++;
        t->spin_start_ns = now;
        t->spin_last_ns = now;
        t->spin_start_ticks = ticks;
        t->spin_last_ticks = 0;
        spin_ticks_calibrate(t, ticks, now);
        t->spin_by_ticks = ticks && t->ns_per_tick > 0;
        t->spin_yields = 0;
        t->spin_stack = ftp_stack_capture(t);
        t->spin_addr = 0;
        memset(&t->spin_cls, 0, sizeof t->spin_cls);
        t->spin_cls.kind = FTP_KIND_SPIN;
        t->spin_locked = false;
        t->spin_seqlock = seqlock;
        t->spin_caller = caller;
        t->spin_rejected = 0;
        t->spin_scanned = false;
        t->spin_ncand = 0;
        t->spin_reg = (int8_t)spin_site_register(caller); /* once a spin: what its site has learnt so far */
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
     * under a spin), and among several candidates the locked one is the lock. Not past a PyMutex
     * spin's length: a seqlock's spin can go on much longer, and each look costs a handful of reads.
     * At a site that has learnt its register there is one candidate, the same pointer all spin long:
     * its first look settles the spin (the lock, or none), whether the byte was locked then or not.
     * 3.13's spins last all 40 yields even when the lock is let go at the first, so looking on would
     * put most of their yields through the whole hook for nothing. */
    if (regs && !seqlock && !t->spin_locked && t->spin_yields < ftp_state.py.lay.spin_max) {
        if (t->spin_reg >= 0)
            spin_lock_at(t, regs[t->spin_reg]);
        else
            spin_lock_of(t, regs, 6);
    }
    t->spin_quiet = !regs || seqlock || t->spin_locked || t->spin_reg >= 0 ||
                    t->spin_yields + 1 >= ftp_state.py.lay.spin_max;
    t->full_yields++;
    /* The yield itself is the program's: not busy in it (the rest only touches this thread's state). */
    ftp_busy_leave(t);
    return spin_yield_and_time(t);
}

#if !defined(__x86_64__)
/* Elsewhere the registers are not at hand: spins without a park stay unattributed here. */
EXPORT int sched_yield(void)
{
    return ftp_sched_yield(NULL, (uintptr_t)__builtin_return_address(0));
}
#endif
