/* Per-thread state: found through initial-exec TLS (no allocation, no lock), reset when stale after a
 * fork, and handed back through a pthread key destructor when the thread exits.
 *
 * Time accounting: a thread is seen from its first call into the recorder, when its start time and CPU
 * clock are noted, and it ends in the key destructor, which writes both with its end, its CPU clock then
 * and the kernel's creation time and run delay for it (THREAD_END). A thread that never calls a hooked function is not seen at
 * all: its CPU time is in the header's process CPU time, not in any thread's. */
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "recorder.h"

__thread struct ftp_thread ftp_tls __attribute__((tls_model("initial-exec")));

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

static void busy_release(struct ftp_thread *t)
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

/* Reads /proc/self/task/TID/<name> into buf (NUL-terminated): bytes read, or 0. Plain system calls
 * into a caller's buffer: no allocation, no stdio, no lock (it runs in a key destructor or at exit). */
static size_t thread_read_proc(uint32_t tid, const char *name, char *buf, size_t cap)
{
    char path[64] = "/proc/self/task/", digits[12];
    size_t len = strlen(path), n = 0;
    do
        digits[n++] = (char)('0' + tid % 10);
    while ((tid /= 10) && n < sizeof digits);
    while (n)
        path[len++] = digits[--n];
    path[len++] = '/';
    for (const char *c = name; *c && len < sizeof path - 1; c++)
        path[len++] = *c;
    path[len] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return 0;
    ssize_t got = read(fd, buf, cap - 1);
    close(fd);
    if (got <= 0)
        return 0;
    buf[got] = 0;
    return (size_t)got;
}

/* The n-th space-separated number of `s` (0-based), or false. */
static bool thread_field(const char *s, int n, uint64_t *out)
{
    for (; n > 0 && *s; s++)
        if (*s == ' ' && s[1] != ' ')
            n--;
    if (*s < '0' || *s > '9')
        return false;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++)
        v = v * 10 + (uint64_t)(*s - '0');
    *out = v;
    return true;
}

/* What the kernel says of the thread as it ends: when it was created (its stat's starttime, in clock
 * ticks of CLOCK_BOOTTIME, moved to CLOCK_MONOTONIC) and how long it waited runnable for a CPU (schedstat).
 * Read here, once per thread and never in a hook on the lock path: its creation is what the lifetime
 * starts from (the recorder interposes nothing at pthread_create, which would put a frame of ours under
 * every thread and miss threads made before an attach), and the run delay is whole only at its end. */
static void thread_kernel_facts(struct ftp_rec_thread_end *r)
{
    char buf[1024];
    r->created_ns = 0;
    r->created_tick_ns = 0;
    r->flags = 0;
    r->run_delay_ns = 0;
    long hz = sysconf(_SC_CLK_TCK);
    uint64_t ticks;
    struct timespec boot, mono;
    const char *after_comm = NULL;
    if (hz > 0 && thread_read_proc(r->tid, "stat", buf, sizeof buf))
        after_comm = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    /* After ") ": state is field 3 of the line, starttime field 22, so 19 fields further. */
    if (after_comm && after_comm[1] == ' ' && thread_field(after_comm + 2, 19, &ticks) &&
        clock_gettime(CLOCK_BOOTTIME, &boot) == 0 && clock_gettime(CLOCK_MONOTONIC, &mono) == 0) {
        uint64_t tick = 1000000000u / (uint64_t)hz;
        uint64_t boot_ns = (uint64_t)boot.tv_sec * 1000000000u + (uint64_t)boot.tv_nsec;
        uint64_t mono_ns = (uint64_t)mono.tv_sec * 1000000000u + (uint64_t)mono.tv_nsec;
        uint64_t created_boot = ticks * tick, suspended = boot_ns > mono_ns ? boot_ns - mono_ns : 0;
        if (created_boot > suspended) {
            r->created_ns = created_boot - suspended;
            r->created_tick_ns = (uint32_t)tick;
        }
    }
    uint64_t delay;
    if (thread_read_proc(r->tid, "schedstat", buf, sizeof buf) && thread_field(buf, 1, &delay)) {
        r->run_delay_ns = delay;
        r->flags |= FTP_THREAD_END_RUN_DELAY;
    }
}

/* One record per thread, with the two clock reads it needs (the CPU clock is a system call: read at
 * the thread's start and end only, never per event) and the kernel's facts about it. */
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
    thread_kernel_facts(r);
    ftp_ring_commit(t, r, FTP_REC_THREAD_END, 0, sizeof *r);
}

static void thread_exit(void *value)
{
    (void)value;
    struct ftp_thread *t = &ftp_tls;
    t->key_set = false;
    if (t->generation == atomic_load(&ftp_state.generation) && ftp_busy_enter(t)) {
        ftp_event_flush_spin(t, ftp_now(), true);
        /* Still without its threading name (all its waits came before `threading` had a frame)? Its
         * Thread object, seen at its bootstrap wait, is read once more: THREAD_END's reservation
         * announces the thread again. */
        if (!t->py_named && t->boot_thread && t->announced)
            t->announced = false;
        thread_write_end(t);
        ftp_inflight_release(t);
        ftp_ring_release_chunk(t);
        ftp_busy_leave(t);
    }
    busy_release(t);
}

/* pthread_setspecific on a key below PTHREAD_KEY_2NDLEVEL_SIZE (32) stores into the thread's own
 * descriptor; above it glibc may calloc a second-level block on the thread's first store, which a hook
 * must not do (it may run inside a signal handler that interrupted malloc). The key is made in the
 * constructor, before the program makes its own, so it is low; when it is not (or cannot be made at
 * all) threads get no exit callback: their THREAD_END is missing, as after kill -9, and their chunks are
 * not handed back to later threads. */
#define KEY_INLINE_SLOTS 32
static bool key_usable;

void ftp_thread_setup_key(void)
{
    if (key_usable)
        return;
    if (pthread_key_create(&ftp_state.thread_key, thread_exit) != 0)
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
