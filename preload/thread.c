/* Per-thread state: found through initial-exec TLS (no allocation, no lock), reset when stale after a
 * fork, busy marks for detach, and the pthread key whose destructor (thread_end.c) hands it back when
 * the thread exits. A thread is seen from its first call into the recorder, when its start time and CPU
 * clock are noted. */
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "thread.h"

/* ---- busy marks (recorder.h): one word per thread, each on its own cache line ----
 * A fixed table in the library's own zero-filled memory, never freed: a word outlives its thread, so
 * detach may read any of them at any time. Threads beyond the table (more than BUSY_SLOTS alive at
 * once) share one counter instead. */
#define BUSY_SLOTS 4096
#define BUSY_PROBE 64
#define BUSY_OWNED 1u
#define BUSY_ACTIVE 2u
struct busy_slot {
    _Atomic uint32_t word;
    char pad[64 - sizeof(uint32_t)];
};
static struct busy_slot busy_slots[BUSY_SLOTS] __attribute__((aligned(64)));
static _Atomic uint32_t busy_overflow;  /* busy threads that have no slot */
static _Atomic uint32_t busy_high;      /* slots ever claimed lie below this */

static void busy_claim(struct ftp_thread *t)
{
    if (t->busy || t->exiting)
        return;
    uint32_t i = (uint32_t)(t->tid * 2654435761u) % BUSY_SLOTS;
    for (int n = 0; n < BUSY_PROBE; n++, i = (i + 1) % BUSY_SLOTS) {
        uint32_t free_word = 0;
        if (atomic_compare_exchange_strong(&busy_slots[i].word, &free_word, BUSY_OWNED)) {
            uint32_t high = atomic_load(&busy_high);
            while (high < i + 1 && !atomic_compare_exchange_weak(&busy_high, &high, i + 1))
                ;
            t->busy = &busy_slots[i].word;
            return;
        }
    }
}

void ftp_busy_release(struct ftp_thread *t)
{
    t->exiting = true;
    if (t->busy) {
        /* Marks from now on (the thread's last destructors) go to the shared counter. */
        _Atomic uint32_t *w = t->busy;
        bool active = atomic_load_explicit(w, memory_order_relaxed) & BUSY_ACTIVE;
        if (active)
            atomic_fetch_add(&busy_overflow, 1);
        t->busy = NULL;
        atomic_store_explicit(w, 0, memory_order_release);
    }
}

void ftp_busy_mark(struct ftp_thread *t, bool busy)
{
    if (t->busy_marked == busy)
        return;
    t->busy_marked = busy;
    if (FTP_LIKELY(t->busy != NULL))
        atomic_store_explicit(t->busy, busy ? BUSY_OWNED | BUSY_ACTIVE : BUSY_OWNED, memory_order_release);
    else if (busy)
        atomic_fetch_add_explicit(&busy_overflow, 1, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&busy_overflow, 1, memory_order_release);
    if (busy)
        atomic_thread_fence(memory_order_seq_cst); /* the mark before the generation is read again */
}

void ftp_busy_quiesce(void)
{
    atomic_thread_fence(memory_order_seq_cst); /* the generation's bump before the marks are read */
    struct timespec pause = {0, 100 * 1000};
    for (;;) {
        bool busy = atomic_load(&busy_overflow) != 0;
        uint32_t high = atomic_load(&busy_high);
        for (uint32_t i = 0; i < high && !busy; i++)
            busy = atomic_load_explicit(&busy_slots[i].word, memory_order_acquire) & BUSY_ACTIVE;
        if (!busy)
            return;
        nanosleep(&pause, NULL);
    }
}

void ftp_busy_reset_after_fork(void)
{
    struct ftp_thread *t = &ftp_tls;
    uint32_t high = atomic_load(&busy_high);
    for (uint32_t i = 0; i < high; i++)
        if (&busy_slots[i].word != t->busy)
            atomic_store(&busy_slots[i].word, 0);
    /* This thread may be inside recorder code (a hook's fork): its own mark stays as it is. */
    atomic_store(&busy_overflow, !t->busy && t->busy_marked ? 1u : 0u);
}

/* pthread_setspecific on a key below PTHREAD_KEY_2NDLEVEL_SIZE (32) stores into the thread's own
 * descriptor; above it glibc may calloc a second-level block on the thread's first store, which a hook
 * must not do (it may run inside a signal handler that interrupted malloc). The key is made in the
 * constructor, before the program makes its own, so it is low; when it is not (or cannot be made at
 * all) threads get no exit callback: their THREAD_END is missing, as after kill -9, and their chunks are
 * not handed back to later threads. */
#define KEY_INLINE_SLOTS 32
static bool key_usable;

void ftp_thread_setup_key(void (*at_exit)(void *))
{
    if (key_usable)
        return;
    if (pthread_key_create(&ftp_state.thread_key, at_exit) != 0)
        return;
    if ((unsigned)ftp_state.thread_key >= KEY_INLINE_SLOTS) {
        pthread_key_delete(ftp_state.thread_key);
        return;
    }
    key_usable = true;
}

/* Non-NULL value: the key's destructor runs at thread exit (THREAD_END, the chunk and slots handed back). */
void ftp_thread_set_key(struct ftp_thread *t)
{
    if (t->key_set || !key_usable)
        return;
    pthread_setspecific(ftp_state.thread_key, (void *)1);
    t->key_set = true;
}

struct ftp_thread *ftp_thread_begin(struct ftp_thread *t, uint32_t gen)
{
    /* First call on this thread, or a new session (attach, or a forked child's own file). */
    /* The recursion guard and the busy slot belong to the thread, not to the session. */
    int guard = t->guard;
    _Atomic uint32_t *busy = t->busy;
    bool exiting = t->exiting, key_set = t->key_set && t->tid != 0, busy_marked = t->busy_marked;
    memset(t, 0, sizeof *t);
    t->guard = guard;
    t->busy_marked = busy_marked;
    t->busy = busy;
    t->exiting = exiting;
    t->key_set = key_set;
    t->generation = gen;
    t->tid = (uint32_t)syscall(SYS_gettid);
    t->start_ns = ftp_now();
    t->start_cpu_ns = ftp_thread_cpu_now();
    busy_claim(t);
    /* The key's destructor runs at thread exit and writes THREAD_END, even for a thread that never
     * needed a chunk until then. */
    ftp_thread_set_key(t);
    return t;
}
