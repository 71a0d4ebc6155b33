/* The interposed pthread functions: mutexes and rwlocks (native code: sqlite3, OpenSSL, ...; and the
 * GIL's mutex) and condition variables (the GIL's, on builds that wait on one). They follow the shape
 * every hook has (hooks.c). */
#include <errno.h>
#include <string.h>

#include "control.h"
#include "hooks.h"
#include "native.h"
#include "stack.h"

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
    wait_block(t, w, 0, now);
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
    if (FTP_LIKELY(!ftp_parked_on(lock)) || !(t = hook_enter()))
        return release(arg);
    struct ftp_waiter *w = ftp_waiter_find(lock);
    struct ftp_waiter_copy copy;
    bool holder = w && claim_holder(w, lock, t, &copy);
    int rc = release(arg);
    if (holder)
        ftp_hooks_record_holder(t, &copy);
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
    wait_block(t, &w, 0, now);
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
