/* The profile model: recordings are streamed once for definitions (code objects, stacks, types,
 * threads, modules) and once for events, which are aggregated as they pass into per-lock totals,
 * fixed-size wait histograms and per-(lock, stack) sums. Nothing here grows with the number of events.
 * After loading, every lock carries resolved waiter and holder sites, merged by their text. */
#ifndef FTPROF_ANALYZER_PROFILE_H
#define FTPROF_ANALYZER_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ftprof/format.h"

enum prof_kind {
    PROF_KIND_LOCK,
    PROF_KIND_RLOCK,
    PROF_KIND_CRITICAL_SECTION,
    PROF_KIND_PYMUTEX,
    PROF_KIND_STOP_THE_WORLD,
    PROF_KIND_GIL,
    PROF_KIND_CONDITION,
    PROF_KIND_THREAD_JOIN,
    PROF_KIND_PTHREAD_MUTEX,
    PROF_KIND_PTHREAD_RWLOCK,
    PROF_KIND_OTHER,
    PROF_KIND_COUNT
};

const char *prof_kind_name(enum prof_kind k);
/* Condition and join waits are waiting for work, not for a lock held by someone else. */
bool prof_kind_is_contention(enum prof_kind k);

/* Strings are interned: equal text means equal pointers for the lifetime of the profile. */
struct prof_frame {
    const char *function;
    const char *file; /* NULL when unknown */
    int line;         /* 0 when unknown */
    bool native;
};

struct prof_stack {
    const struct prof_frame *frames; /* innermost first */
    size_t depth;
};

struct prof_site {
    const struct prof_stack *stack;
    uint64_t wait_ns;
    uint64_t count;
    /* Holder sites only: how long this stack's thread had held the lock when it released it to a waiter
     * (`holds` of the wake-ups whose waiter was found; see prof_lock). */
    uint64_t holds, hold_p50_ns, hold_p99_ns, hold_max_ns;
    uint64_t holds_from_acquisition; /* of `holds`, timed from the holder's own acquisition */
};

struct prof_lock {
    enum prof_kind kind;
    uint32_t file;          /* index into profile.files */
    uint64_t address;
    const char *type;       /* Python type name, NULL when the recorder did not know one */
    const char *name;       /* e.g. "Lock @…4a20", "dict @…91c0", "PyMutex _PyRuntime+0x1a8" */
    const char *source;     /* stripped source text of the main acquire line, or NULL */
    const char *owner;      /* what the program calls it: "RENDER_LOCK", "CACHE", "queue.Queue.mutex"; or NULL */
    /* pthread_mutex / pthread_rwlock: the loaded object whose code called pthread_*lock (its path,
     * normalized), and the installed distribution whose RECORD lists that file; NULL when unknown
     * (recordings before format 7, an object not in the module map, a file no RECORD lists).
     * native_other_object: a second object seen taking the same lock, or NULL. */
    const char *native_object, *native_other_object;
    const char *native_distribution, *native_version, *native_wheel_tag;
    uint64_t contentions;
    uint64_t wait_ns, max_wait_ns, p50_wait_ns, p99_wait_ns, spin_ns;
    uint64_t handoffs;
    uint64_t parked;        /* acquisitions that parked at least once (a releaser woke them) */
    uint32_t threads;       /* distinct waiting threads */
    /* How long the thread a waiter waited for held the lock: from when it got the lock after its own
     * wait, while the waiter waited (else from the waiter's start, the earliest point the records show
     * the lock held), to the release that woke the waiter. `holds` wake-ups were measured. */
    uint64_t holds, hold_p50_ns, hold_p99_ns, hold_max_ns;
    uint64_t holds_from_acquisition; /* of `holds`, timed from the holder's own acquisition; the others
                                        from the waiter's start, the part of the hold it saw */
    /* The part of wait_ns whose holder is known (a woken wait joined with its releaser's record); the
     * rest is unknown: spins that took the lock without parking, wake-ups the recorder missed. */
    uint64_t holder_known_ns;
    struct prof_site *waiters;
    size_t n_waiters;
    struct prof_site *holders;
    size_t n_holders;
};

struct prof_gil_event {
    const char *module;
    const char *path;
    uint64_t time_ns;
    uint32_t file;
    uint64_t gil_wait_after_ns; /* total `gil` wait of acquisitions that started after time_ns */
};

/* One extension module the program imported (EXTENSION records, format 7), with what its module
 * definition declares about the GIL and where its file came from (profile_ext.c, dist.c). */
enum prof_ext_gil { PROF_EXT_GIL_UNKNOWN, PROF_EXT_GIL_NOT_USED, PROF_EXT_GIL_USED };
struct prof_extension {
    const char *module;       /* import name: from its distribution's RECORD, else the def's m_name when it
                                 ends in the init function's name, else that name */
    const char *def_name;     /* the module definition's m_name, or NULL */
    const char *path;
    enum prof_ext_gil gil;
    const char *init;         /* "multi-phase", "single-phase", "export" (3.15 PyModExport), or NULL */
    bool reenabled_gil;       /* its import is what turned the GIL back on */
    bool before_start;        /* already loaded when the recording started (attach, fork child) */
    bool gil_was_on;          /* the GIL was already enabled for good when it was imported */
    bool free_threaded;       /* the recording's interpreter is a free-threaded build */
    uint32_t file, tid;
    uint64_t base;            /* load bias: joins its records */
    uint64_t imported_ns;     /* from the recording's start */
    uint32_t stack_id;
    const struct prof_stack *import_stack; /* innermost first; NULL when none */
    const struct prof_frame *import_line;  /* the first frame outside the import machinery, or NULL */
    const char *distribution, *version, *wheel_tag; /* NULL: not from an installed distribution / no WHEEL */
    const char *origin;       /* "wheel", "no wheel" (installed without a WHEEL file: built from source),
                                 "stdlib", "not installed" (no distribution's RECORD lists it) */
};
const char *prof_ext_gil_name(enum prof_ext_gil g);

/* One thread of one recording. Its lifetime runs from its creation (format 8: the kernel's start time,
 * see prof_thread_created; before: its first call into the recorder, less the CPU time it had used by
 * then) to its end (THREAD_END), or from its first record to the file's end for a thread alive at exit
 * or in a killed process (`ended` false; then `cpu_ns` is unknown and 0). A lifetime never starts
 * before its recording did (an attached recording starts threads alive then at the attach). */
struct prof_thread {
    uint32_t tid;
    uint32_t pid;
    uint32_t file;
    const char *name;
    bool ended;              /* a THREAD_END record gave its end and CPU time */
    uint64_t first_seen_ns;  /* earliest THREAD record */
    uint64_t start_ns, end_ns, lifetime_ns, cpu_ns;
    bool run_delay_known;         /* the recorder read the kernel's run delay at its end (format 8) */
    uint64_t run_delay_ns;        /* time runnable but waiting for a CPU (run queue) */
    uint64_t contention_ns;       /* its waits of contention kinds */
    uint64_t waiting_for_work_ns; /* its condition and join waits */
};

/* Where the threads' time went, over all recordings (profile_time.c). Thread time is the sum of the
 * threads' lifetimes; CPU time and waits are parts of it (a spinning wait is both: the parts may add up
 * to more than the whole, and `other_ns` is what is left of it, never below 0). */
struct prof_time {
    uint64_t wall_ns;             /* = duration_ns */
    uint64_t thread_ns;
    uint64_t cpu_ns;              /* the processes' CPU time at exit when known, else the threads' */
    uint64_t threads_cpu_ns;      /* the CPU time of threads that ended (THREAD_END) */
    uint64_t contention_ns, waiting_for_work_ns, other_ns;
    uint64_t run_delay_ns;        /* runnable, waiting for a CPU: the kernel's run delay of the threads
                                     that have it (they may overlap waits that ended in the run queue) */
    uint32_t run_delay_threads;   /* threads whose run delay is known (0: no line for it) */
    bool cpu_known;               /* every thread's CPU time is known, or the process's whole CPU clock
                                     is: cpu_ns and cores busy stand; else the CPU figures are partial */
    uint32_t threads_not_ended;   /* alive at exit, or in a killed process: CPU unknown, end estimated */
    uint32_t files_killed;        /* recordings with no end (kill -9, os._exit; not exec): their threads end
                                     at the last event */
    bool known;                   /* some recording is of format 3 or later, which notes thread ends */
    bool windowed;                /* some recording covers pause/resume windows only: lifetimes and wall
                                     time count the recorded windows; a thread's CPU clock, read at its
                                     end, is prorated to the recorded part of its life */
};

/* What the time split lets the report conclude (prof_verdict_of). */
enum prof_verdict {
    PROF_VERDICT_NONE,      /* no time accounting (format < 3, or no thread time) */
    PROF_VERDICT_LOCKS,     /* contention is 20% of thread time or more: locks limit the program */
    PROF_VERDICT_SOME,      /* 5% to 20% */
    PROF_VERDICT_NOT_LOCKS, /* under 5% */
    PROF_VERDICT_WITHHELD,  /* dropped waits leave the share spanning two of the above */
};

#define PROF_WINDOWS_MAX 33 /* FTP_WINDOWS_MAX boundaries make at most 33 recorded windows */

struct prof_file {
    const char *path;
    uint32_t pid, ppid;
    uint32_t flags, features;
    uint64_t dropped_events;
    uint64_t dropped_wait_ns;  /* their summed wait (format 8; `dropped_wait_known`) */
    bool dropped_wait_known;
    uint64_t start_ns, end_ns, start_realtime_ns;
    uint64_t python_version;
    const char *argv; /* space-joined command line */
    bool truncated;
    uint32_t damaged_chunks;
    uint64_t disk_full_events; /* waits lost because the disk was full (FTP_FLAG_DISK_FULL) */
    uint64_t process_cpu_ns;   /* the process's CPU time at exit; 0 if not recorded */
    uint16_t version;          /* the recording format's (3 and later note thread ends) */
    /* Waits and wake-ups whose record names a stack or type id the recording never defined, and those
     * whose stack has a frame with an undefined code id: shown as [unknown], and their kind could not
     * be refined (a Condition.wait may count as a lock). */
    uint64_t dangling_stacks, dangling_codes, dangling_types;
    /* Live recordings (format 4, profile_live.c). The spans recording was on: one window from start to
     * end without pauses; `windowed` when `ftprof pause` or FTPROF_START=paused cut some time out, and
     * then only `recorded_ns` of the run was recorded (time accounting should count only that). */
    struct prof_window { uint64_t start_ns, end_ns; } windows[PROF_WINDOWS_MAX];
    uint32_t n_windows;
    bool windowed;
    uint64_t recorded_ns;
    /* FTPROF_MIN_WAIT: waits shorter than min_wait_ns counted (number, summed wait), not itemised */
    uint64_t min_wait_ns, below_min_events, below_min_ns;
    /* FTPROF_MODE=ring: waits overwritten to keep the file bounded, and the latest end among them */
    bool ring;
    uint64_t overwritten_events, overwritten_until_ns;
    /* The recorder's notes (format 6, header.notes): lines of a status byte and a warning's text, as
     * read, a run of NUL bytes (the rest of a note still being written) ending its line and control
     * characters shown as '?';
     * `notes_cut` when some did not fit in the header. Read them with prof_note_next. */
    char notes[FTP_NOTES_MAX];
    uint32_t notes_len;
    bool notes_cut;
};

/* One of a recording's notes: what the recorder warned about, and whether the program's stderr got it
 * too (the recorder writes there only when it is the program's start-up stream and cannot block). */
struct prof_note {
    const char *text; /* not NUL-terminated */
    size_t len;
    bool shown_on_stderr;
};
/* The note at *pos, moving *pos past it; false after the last. Start with *pos = 0. */
bool prof_note_next(const struct prof_file *f, uint32_t *pos, struct prof_note *note);

struct prof_internal;

struct profile {
    struct prof_lock *locks; /* sorted by wait_ns, largest first */
    size_t n_locks;
    struct prof_gil_event *gil_events;
    size_t n_gil_events;
    struct prof_extension *extensions; /* in import order */
    size_t n_extensions;
    struct prof_thread *threads;
    size_t n_threads;
    struct prof_file *files;
    size_t n_files;
    uint64_t dropped_events;     /* waits not stored because the buffer was full */
    uint64_t dropped_wait_ns;    /* ... their summed wait, where the files say it */
    bool dropped_wait_unknown;   /* some file with dropped waits predates that sum (format < 8) */
    uint64_t disk_full_events;   /* summed over the files, like dropped_events */
    uint64_t duration_ns;        /* from the earliest start to the latest end over all files */
    uint64_t start_realtime_ns;  /* wall clock of the earliest file's start */
    uint64_t contention_wait_ns; /* total wait of contention kinds: the base of lock shares */
    uint64_t events;             /* WAIT records read */
    uint64_t below_min_events, below_min_ns, overwritten_events; /* summed over the files */
    uint64_t inflight_waits;     /* waits still in progress at a file's end, counted up to it */
    struct prof_time time;
    struct prof_internal *in;
};

struct profile;
/* The verdict, and the contention share's bounds as fractions of thread time (equal without dropped
 * waits). */
enum prof_verdict prof_verdict_of(const struct profile *p, double *low, double *high);
const char *prof_verdict_name(enum prof_verdict v);

/* Loads and merges recordings. Returns 0 or an rd_open/rd_walk error for the first file that failed,
 * with `failed` set to its index in `paths` and `err` to a one-line reason. A file named twice (the same
 * device and inode) is read once. Warnings (truncated files, dropped events, damaged chunks, a full
 * disk, undefined ids, a file named twice) go to stderr as "ftprof: FILE: warning: ..." lines unless
 * `quiet`. */
int prof_load(struct profile *p, char *const *paths, size_t n, bool quiet, size_t *failed, char *err,
              size_t errlen);
/* Where the calling thread's prof_load writes its warnings: `to`, or stderr when NULL (a load in a
 * thread of its own keeps them to print them in order). */
void prof_warnings_to(FILE *to);
/* How prof_load_with loads. prof_load: warnings printed, waits in flight counted, and the close stage in
 * a thread of its own for a large file when a core is idle. */
struct prof_load_how {
    bool quiet;       /* no warnings */
    bool no_inflight; /* leave the waits still in progress at a file's end out (the live view adds them
                       * itself, up to now); otherwise they count up to the file's end */
    bool one_thread;  /* never a second thread: the caller runs loads side by side itself (diff) */
};
int prof_load_with(struct profile *p, char *const *paths, size_t n, struct prof_load_how how, size_t *failed,
                   char *err, size_t errlen);
void prof_free(struct profile *p);

/* The timeline: every wait and wake-up of the loaded recordings in the order each file holds them
 * (per thread, in time), named as the report names them (profile_timeline.c). Streams: nothing is kept
 * per event. */
struct prof_tl_wait {
    uint32_t file, tid;
    enum prof_kind kind;
    const char *lock;                /* the report's lock name ("Lock @…4a20", "stop-the-world") */
    uint64_t start_ns, end_ns;       /* from the first spin to the wake-up */
    uint64_t spin_ns;                /* of it, spinning before the first park */
    bool parked;
    const struct prof_stack *stack;  /* the waiter's */
};
struct prof_tl_wake {
    uint32_t file, tid;              /* the releaser */
    uint32_t waiter_tid;
    uint64_t time_ns;
    uint64_t id;                     /* the woken wait's event id: unique in its file */
    const struct prof_stack *stack;  /* the releaser's */
};
struct prof_timeline_ops {
    int (*wait)(void *ctx, const struct prof_tl_wait *w); /* 0, or an error that stops the walk */
    int (*wake)(void *ctx, const struct prof_tl_wake *w);
};
/* Reads the profile's recordings again, in profile.files order. 0, the first callback error, or an
 * rd_open/rd_walk error (with `err`). */
int prof_timeline(struct profile *p, const struct prof_timeline_ops *ops, void *ctx, char *err, size_t errlen);

/* The frame that says where a site is: the innermost Python frame, or for condition and join waits
 * the innermost one outside threading.py and queue.py (the caller's `q.get()` rather than the
 * library's `waiter.acquire()`); the innermost frame when there is no Python frame. */
const struct prof_frame *prof_site_frame(const struct prof_stack *st, enum prof_kind kind);

/* A file name as the report prints it: its last component, with its package's directory when that
 * alone says nothing ("logging/__init__.py", "pkg/__main__.py"). Points into `path`. */
static inline const char *prof_short_file(const char *path)
{
    if (!path)
        return NULL;
    const char *end = path + strlen(path), *base = end, *parent;
    while (base > path && base[-1] != '/')
        base--;
    if (strcmp(base, "__init__.py") != 0 && strcmp(base, "__main__.py") != 0 && strcmp(base, "__init__.pyc") != 0)
        return base;
    for (parent = base > path ? base - 1 : base; parent > path && parent[-1] != '/'; parent--)
        ;
    return parent;
}

/* A one-line source text of file:line, whitespace stripped, or NULL if the file is not readable. The
 * string lives as long as the profile. */
const char *prof_source_line(struct profile *p, const char *file, int line);

#endif
