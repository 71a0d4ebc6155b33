/* Per-thread state: found through initial-exec TLS (no allocation, no lock), reset when stale after a
 * fork, and handed back through a pthread key destructor when the thread exits. */
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "recorder.h"

__thread struct ftp_thread ftp_tls __attribute__((tls_model("initial-exec")));

static void thread_exit(void *value)
{
    (void)value;
    struct ftp_thread *t = &ftp_tls;
    t->key_set = false;
    if (t->generation != atomic_load(&ftp_state.generation))
        return;
    t->guard++;
    if (atomic_load(&ftp_state.recording)) {
        ftp_event_flush_spin(t, ftp_now(), true);
        ftp_ring_release_chunk(t);
    }
    t->guard--;
}

void ftp_thread_setup_key(void)
{
    pthread_key_create(&ftp_state.thread_key, thread_exit);
}

struct ftp_thread *ftp_thread_enter(void)
{
    struct ftp_thread *t = &ftp_tls;
    uint32_t gen = atomic_load_explicit(&ftp_state.generation, memory_order_relaxed);
    if (FTP_UNLIKELY(t->generation != gen || t->tid == 0)) {
        /* First call on this thread, or we are a forked child holding the parent's view. */
        int guard = t->guard;
        memset(t, 0, sizeof *t);
        t->guard = guard;
        t->generation = gen;
        t->tid = (uint32_t)syscall(SYS_gettid);
    }
    return t;
}
