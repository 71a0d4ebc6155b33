/* A recording read while it is written (or after its process ended): the profile so far, the waits in
 * flight right now (the INFLIGHT table), the locks with the most wait over the last interval, and what
 * the blocked threads say about each other (a deadlock cycle, or threads stuck without progress).
 * Used by `ftprof top` and, for the state a recording ended in, by `ftprof report`. */
#ifndef FTPROF_ANALYZER_LIVE_H
#define FTPROF_ANALYZER_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ftprof/format.h"
#include "profile.h"
#include "pyremote.h"

/* Field 22 of a process's stat file (its start time in clock ticks; stat_path relative to dirfd, which
 * may be AT_FDCWD), or 0 when it cannot be read: tells a process from a later one with the same pid. */
uint64_t live_proc_start_ticks_at(int dirfd, const char *stat_path);

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
const char *live_state_name(enum live_state s);

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

/* Loads `path` as it is now. 0 or an rd_open error (with a one-line reason in err). */
int live_load(struct live_frame *f, const char *path, uint64_t interval_ns, char *err, size_t errlen);
void live_free(struct live_frame *f);

/* The recording process `pid` has mapped (MAP_SHARED, an ftprof header): its path into `out`.
 * 0, -ESRCH (no such process), -ENOENT (no recording mapped), -EACCES. */
int live_find_recording(long pid, char *out, size_t cap);

/* The name the recording gives thread `tid`, or NULL. */
const char *live_thread_name(const struct profile *p, uint32_t tid);
/* Reads the recording's process now, where it is alive and we may (the permission attach needs): the
 * owner a lock names when that thread is not blocked, each long-blocked thread's holder's state and
 * Python stack, and which threads are free to make progress. Called by live_load. */
void live_holders_now(struct live_frame *f);
/* "HOLDER now: STATE, at FUNC (FILE:LINE)" for a blocked thread's holder, or false when there is none. */
bool live_holder_now_text(const struct live_blocked *b, char *buf, size_t cap);

/* `top`'s frame as text (width columns; color escapes when `color`) or as one JSON object. 0 or -1. */
int live_print_text(FILE *out, const struct live_frame *f, unsigned width, size_t top, bool color);
int live_print_json(FILE *out, const struct live_frame *f, size_t top);

/* What `report` says about the end of a recording: threads blocked when it ended, deadlocks. */
void live_print_ending(FILE *out, const struct live_frame *f);
/* What `report` says first about live recordings: the recorded windows when paused, the waits under
 * FTPROF_MIN_WAIT, the waits a ring buffer overwrote. */
void live_report_notes(FILE *out, const struct profile *p);
/* The same as JSON keys for `report --json`: {"blocked_at_end": [...], "deadlocks": [...]} (a JSON object;
 * NULL when out of memory), freed with live_json_free. */
struct json_t;
struct json_t *live_json_endings(char *const *paths, size_t n);
void live_json_free(struct json_t *j);
/* The same for each recording of `report` (a file that cannot be read says nothing here). */
void live_report_endings(FILE *out, char *const *paths, size_t n);
/* Whether a recording ends with a thread blocked (its in-flight table has a wait): a look at one
 * chunk. Blocked threads and deadlocks need the whole file read again; a recording without any is
 * spared that (report's cost stays one pass). */
bool live_has_waits_in_flight(const char *path);

#endif
