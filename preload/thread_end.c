/* A thread's end. Time accounting: a thread is seen from its first call into the recorder, when its start
 * time and CPU clock are noted (thread.c), and it ends in the key destructor, which writes both with its
 * end, its CPU clock then and the kernel's creation time and run delay for it (THREAD_END). A thread
 * that never calls a hooked function is not seen at all: its CPU time is in the header's process CPU
 * time, not in any thread's. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "event.h"
#include "inflight.h"
#include "ring.h"
#include "thread.h"
#include "thread_end.h"

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

void ftp_thread_end_at_exit(void *value)
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
    ftp_busy_release(t);
}

void ftp_thread_end_process(void)
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
