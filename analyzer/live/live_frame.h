/* What a live frame holds: the recording as it is now, the threads blocked in it, the lock rows and
 * what the blocked threads say about each other. live.c fills it (live_load), live_holder.c adds what
 * the process itself shows now, live_print.c prints it. */
#ifndef FTPROF_ANALYZER_LIVE_FRAME_H
#define FTPROF_ANALYZER_LIVE_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ftprof/format.h"
#include "profile.h"
#include "pyremote.h"

/* A wait longer than this stands out in `top`, and threads blocked this long without progress are
 * reported as stuck. */
#define LIVE_LONG_WAIT_NS 3000000000ull
#define LIVE_STUCK_NS 1000000000ull
/* A thread blocked this long gets its holder's state now, read from the process (live_holders_now). */
#define LIVE_HOLDER_NOW_NS 100000000ull
#define LIVE_NOW_FRAMES 8

/* A holder as its process shows it now: what the kernel has it do, and its Python stack. */
struct live_now {
    /* "running", "sleeping", "futex", "in read()", "blocked" (on a lock, in the recording) or "gil"
     * (waiting for the GIL, on a GIL build: it runs next) */
    char state[40];
    const char *blocked_on;      /* "blocked": the lock it waits on itself */
    int n_frames;                /* <= 0: no Python frame readable */
    struct pyremote_frame frames[LIVE_NOW_FRAMES];
};

enum live_state {
    LIVE_RUNNING,  /* the process that writes it is alive */
    LIVE_FINISHED, /* it exited through exit() */
    LIVE_EXEC,     /* it replaced its image (execve) */
    LIVE_KILLED,   /* it is gone without finishing the file (kill -9, a crash) */
};

struct live_blocked {
    uint32_t tid;
    const char *thread;          /* its name, or NULL */
    uint64_t start_ns, blocked_ns;
    uint64_t lock_addr;
    enum prof_kind kind;
    const char *lock;            /* e.g. "RLock @…0850" */
    const struct prof_frame *frame; /* the waiter's line: prof_site_frame of its stack */
    const char *source;          /* that line's text, or NULL */
    /* The holder: the lock's owner where the lock says (a 3.14+ RLock), else the last thread the
     * recording shows acquiring it after a wait and not releasing it since; tid 0: unknown. */
    uint32_t holder_tid;
    const char *holder;
    const char *holder_how;      /* "owner" or "last acquirer" */
    int holder_blocked;          /* index in live_frame.blocked of the holder if it is blocked too, else -1 */
    uint64_t thread_ident, owner;
    struct live_now *holder_now; /* the holder now (blocked >= LIVE_HOLDER_NOW_NS, process readable), or NULL */
    char holder_comm[24];        /* the holder's name from the kernel, for one the recording never named */
};

struct live_lock {
    uint64_t addr;
    enum prof_kind kind;
    const char *name;
    const char *source;
    const struct prof_frame *frame; /* main waiter line */
    uint64_t wait_ns;            /* since the start, waits in flight included */
    uint64_t interval_ns;        /* wait within the last interval, waits in flight included */
    uint64_t contentions;
    uint32_t blocked_now;
};

/* A deadlock cycle, or threads stuck behind locks whose holders the recorder cannot see. */
struct live_finding {
    bool cycle;
    char *text;                  /* one line, no newline */
    size_t n_lines;
    char **lines;                /* the waiters' lines, "  left waits at deadlock.py:14  with second:" */
};

struct live_frame {
    const char *path;
    struct profile p;
    struct ftp_file_header hdr;
    enum live_state state;
    uint64_t now_ns;             /* the recording's clock now (or at its end) */
    uint64_t elapsed_ns;         /* since the recording started */
    uint64_t interval_ns;
    uint64_t last_event_ns;
    bool paused;
    struct live_blocked *blocked;
    size_t n_blocked;
    struct live_lock *locks;     /* contention kinds, by interval wait then total */
    size_t n_locks;
    struct live_finding *findings;
    size_t n_findings;
    /* The process read now (live recordings): whether it could be, why not, and how many of its Python
     * threads are neither blocked in the recording nor in a futex wait (running, sleeping, in I/O). */
    bool now_read;
    const char *now_unreadable;
    size_t n_free_threads;
    /* Python threads the process shows in a futex wait that the recording has no wait for: blocked since
     * before the recorder came in (an attach), or in a wait it does not record. */
    struct live_unrecorded {
        uint32_t tid;
        char name[24];
        struct pyremote_frame frame; /* its innermost Python frame now (line 0: none) */
    } *unrecorded;
    size_t n_unrecorded;
};

/* The name the recording gives thread `tid` (of its one file), or NULL. */
static inline const char *live_thread_name(const struct profile *p, uint32_t tid)
{
    for (size_t i = 0; i < p->n_threads; i++)
        if (p->threads[i].tid == tid && p->threads[i].file == 0)
            return p->threads[i].name;
    return NULL;
}

#endif
