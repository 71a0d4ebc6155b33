/* The native library of the `ftlockdemo` test package (test_native_owner.py): one process-wide
 * pthread mutex and one rwlock that C callers share, as a vendored BLAS's or a C library's internal
 * locks would be.
 * Loaded with ctypes from the package's .libs directory, so a wheel's RECORD lists it.
 *
 * sharedlock_hold(held_fd, release_fd): takes the mutex, writes one byte to held_fd, and keeps the
 * mutex until a byte arrives on release_fd. sharedlock_take(): locks and unlocks it (contended while a
 * holder keeps it). sharedlock_address(): where the mutex is, which a blocked waiter's futex call names
 * (the test waits for every waiter to sleep there before releasing: no sleeps as synchronisation).
 * sharedlock_hold_write / sharedlock_read / sharedlock_rwlock_address: the same with the rwlock, held
 * for writing while readers wait. */
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

static pthread_mutex_t sharedlock_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t sharedlock_rwlock = PTHREAD_RWLOCK_INITIALIZER;

/* Keeps a lock taken by `lock` until a byte arrives on release_fd, after writing one to held_fd. */
static int sharedlock_keep(int held_fd, int release_fd, void (*unlock)(void))
{
    char byte = 'h';
    int ok = write(held_fd, &byte, 1) == 1 && read(release_fd, &byte, 1) == 1;
    unlock();
    return ok ? 0 : -1;
}

static void sharedlock_mutex_unlock(void) { pthread_mutex_unlock(&sharedlock_mutex); }
static void sharedlock_rwlock_unlock(void) { pthread_rwlock_unlock(&sharedlock_rwlock); }

int sharedlock_hold(int held_fd, int release_fd)
{
    pthread_mutex_lock(&sharedlock_mutex);
    return sharedlock_keep(held_fd, release_fd, sharedlock_mutex_unlock);
}

int sharedlock_hold_write(int held_fd, int release_fd)
{
    pthread_rwlock_wrlock(&sharedlock_rwlock);
    return sharedlock_keep(held_fd, release_fd, sharedlock_rwlock_unlock);
}

int sharedlock_read(void)
{
    int rc = pthread_rwlock_rdlock(&sharedlock_rwlock);
    if (rc == 0)
        pthread_rwlock_unlock(&sharedlock_rwlock);
    return rc;
}

int sharedlock_take(void)
{
    int rc = pthread_mutex_lock(&sharedlock_mutex);
    if (rc == 0)
        pthread_mutex_unlock(&sharedlock_mutex);
    return rc;
}

uintptr_t sharedlock_address(void) { return (uintptr_t)&sharedlock_mutex; }
uintptr_t sharedlock_rwlock_address(void) { return (uintptr_t)&sharedlock_rwlock; }
