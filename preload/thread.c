/* Per-thread state: found through initial-exec TLS (no allocation, no lock), reset when stale after a
 * fork, and handed back through a pthread key destructor when the thread exits.
 *
 * Time accounting: a thread is seen from its first call into the recorder (no hook is interposed on
 * pthread_create; the first hook a thread calls, contended or not, is the earliest cheap point), when
 * its start time and CPU clock are noted, and it ends in the key destructor, which writes both with its
 * end and its CPU clock then (THREAD_END). A thread that never calls a hooked function is not seen at
 * all: its CPU time is in the header's process CPU time, not in any thread's. */
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "recorder.h"

__thread struct ftp_thread ftp_tls __attribute__((tls_model("initial-exec")));

/* One record per thread, with the two clock reads it needs (the CPU clock is a system call: read at
 * the thread's start and end only, never per event). */
static void thread_write_end(struct ftp_thread *t)
{
    if (t->ended)
        return;
    t->ended = true;
    uint64_t end = ftp_now(), cpu = ftp_thread_cpu_now();
    struct ftp_rec_thread_end *r = ftp_ring_reserve(t, sizeof *r);
    if (!r)
        return;
    r->tid = t->tid;
    r->reserved = 0;
    r->start_ns = t->start_ns;
    r->start_cpu_ns = t->start_cpu_ns;
    r->end_ns = end;
    r->cpu_ns = cpu;
    ftp_ring_commit(t, r, FTP_REC_THREAD_END, 0, sizeof *r);
}

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
        thread_write_end(t);
        ftp_inflight_release(t);
        ftp_ring_release_chunk(t);
    }
    t->guard--;
}

void ftp_thread_setup_key(void)
{
    pthread_key_create(&ftp_state.thread_key, thread_exit);
}

void ftp_thread_exit_process(void)
{
    if (!ftp_state.hdr || !atomic_load(&ftp_state.recording))
        return;
    struct ftp_thread *t = ftp_thread_enter();
    ftp_event_flush_spin(t, ftp_now(), true);
    thread_write_end(t);
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0)
        ftp_state.hdr->process_cpu_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
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
        t->start_ns = ftp_now();
        t->start_cpu_ns = ftp_thread_cpu_now();
        /* Non-NULL value: the key's destructor runs at thread exit and writes THREAD_END, even for a
         * thread that never needed a chunk until then. */
        pthread_setspecific(ftp_state.thread_key, (void *)1);
        t->key_set = true;
    }
    return t;
}
