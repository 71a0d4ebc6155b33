/* A library the GOT test dlopen()s after attaching: its calls to pthread_mutex_lock must be rewritten
 * through the dlsym rescan (got.c). */
#include <pthread.h>

int got_late_lock(pthread_mutex_t *m)
{
    int rc = pthread_mutex_lock(m);
    if (rc == 0)
        rc = pthread_mutex_unlock(m);
    return rc;
}
