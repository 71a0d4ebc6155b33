/* The native library of the `ftlockdemo` test package (test_native_owner.py): one process-wide
 * pthread mutex that C callers share, as a vendored BLAS's or a C library's internal lock would be.
 * Loaded with ctypes from the package's .libs directory, so a wheel's RECORD lists it.
 *
 * sharedlock_hold(held_fd, release_fd): takes the mutex, writes one byte to held_fd, and keeps the
 * mutex until a byte arrives on release_fd. sharedlock_take(): locks and unlocks it (contended while a
 * holder keeps it). sharedlock_address(): where the mutex is, which a blocked waiter's futex call names
 * (the test waits for every waiter to sleep there before releasing: no sleeps as synchronisation). */
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

static pthread_mutex_t sharedlock_mutex = PTHREAD_MUTEX_INITIALIZER;

int sharedlock_hold(int held_fd, int release_fd)
{
    char byte = 'h';
    pthread_mutex_lock(&sharedlock_mutex);
    int ok = write(held_fd, &byte, 1) == 1 && read(release_fd, &byte, 1) == 1;
    pthread_mutex_unlock(&sharedlock_mutex);
    return ok ? 0 : -1;
}

int sharedlock_take(void)
{
    int rc = pthread_mutex_lock(&sharedlock_mutex);
    if (rc == 0)
        pthread_mutex_unlock(&sharedlock_mutex);
    return rc;
}

uintptr_t sharedlock_address(void) { return (uintptr_t)&sharedlock_mutex; }
