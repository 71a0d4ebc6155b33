/* Internal interfaces of the recorder (libftprof.so). Nothing here is exported: the library exports
 * only the interposed libc functions (see exports.map).
 *
 * Hazards every function reachable from a hook must respect: it runs inside somebody else's process,
 * often while that process is about to block on a lock. It never allocates, never takes a lock, never
 * uses stdio, never calls into the interpreter, and treats anything unexpected as a reason to stop
 * recording (ftp_stop) rather than to crash. How the parts that come closest keep to it:
 *  - the thread state: pthread_getspecific on CPython's own key (python.c), not a CPython function;
 *  - native stacks: libunwind's dl_iterate_phdr is answered without the loader's lock (native.c);
 *  - thread exit: a pthread key below 32, whose values glibc keeps without allocating (thread.c);
 *  - releases while threads are parked: a fixed 4-slot waiter lookup (intern.c);
 *  - detach: busy marks instead of a sleep (thread.c, attach.c);
 *  - warnings: never to a descriptor that is not provably the program's stderr, never blocking (init.c).
 * What may still wait: a chunk's first use reserves its disk blocks (file.c), which a file system may
 * make slow; ring mode clears a recycled chunk (control.c). */
#ifndef FTPROF_RECORDER_H
#define FTPROF_RECORDER_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ftprof/format.h"
#define FTP_HIDDEN __attribute__((visibility("hidden")))
#include "layout.h"

#define FTP_LIKELY(x) __builtin_expect(!!(x), 1)
#define FTP_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* A yield more than this long after the previous one starts a new spin sequence; a park sooner than
 * this after the last yield continues the spin (3.13 parks within microseconds of its 40th yield). */
#define FTP_SPIN_GAP_NS 200000
/* A park on the same PyMutex this soon after a wake-up without hand-off retries the same acquisition. */
#define FTP_CONTINUE_GAP_NS 50000
#define FTP_PARK_SEMS 6 /* parking-lot semaphores alive at once on one thread (parks nest a little) */

/* What a waited-on address is (python.c fills it). */
struct ftp_lock_class {
    uint8_t kind;
    uint8_t region;
    uint32_t region_offset;
    uint32_t type_id;
};

/* ---- per-thread state (initial-exec TLS: no allocation, usable from the first instruction) ---- */
#define FTP_SPIN_CANDIDATES 4 /* a spin's registers that point at a lock: rarely more than two */
struct ftp_park_sem {
    sem_t *sem;
    uint64_t event_id;
    uint64_t lock_addr;
};

/* Where a code object's per-thread bytecode copy starts, for this thread's tlbc index (python.c). */
struct ftp_tlbc_slot {
    uintptr_t code;
    uintptr_t bytecode;
    int32_t index;
};
#define FTP_TLBC_SLOTS 8

struct ftp_thread {
    uint32_t generation; /* == ftp_state.generation, else stale (we are a forked child): reset */
    uint32_t tid;
    int guard;           /* > 0 while inside the recorder: hooks pass straight through */
    bool announced;      /* THREAD record written in the current chunk */
    bool py_named;       /* ... and it carried the threading.Thread name */
    uint8_t name_tries;  /* later attempts at the name (a thread may block before its first frame) */
    uintptr_t boot_thread; /* its threading.Thread, from its bootstrap wait (before it has a frame) */
    uintptr_t boot_thread_type; /* ... and that object's type then: checked before reading it at the end */
    bool key_set;        /* pthread key value set, so the destructor hands our chunk back */
    bool ended;          /* THREAD_END written: the thread is leaving (or the process is exiting) */
    bool exiting;        /* its key destructor ran: it claims no busy slot any more */
    _Atomic uint32_t *busy; /* its word in the busy table (thread.c); NULL: counted in the shared overflow */
    bool busy_marked;       /* marked busy now (marks are idempotent: the overflow count must not drift) */
    uint64_t start_ns;      /* the thread's first call into the recorder (THREAD_END) */
    uint64_t start_cpu_ns;  /* ... and its CPU clock then */
    /* ring */
    uint8_t *chunk;
    uint32_t chunk_index;
    uint32_t chunk_off;
    /* ids */
    uint32_t seq;
    uint64_t acq_counter;
    /* spin phase (sched_yield from the interpreter) */
    uint64_t spin_start_ns;
    uint64_t spin_last_ns;
    uint32_t spin_stack;
    uint32_t spin_yields;
    uintptr_t spin_addr;        /* the PyMutex spun on, when it could be found (0: unknown) */
    struct ftp_lock_class spin_cls;
    bool spin_locked;           /* spin_addr was seen locked: no need to look again */
    bool spin_seqlock;          /* the run's yields return into a seqlock function: the type cache's */
    bool spin_scanned;          /* the candidates below were found at this run's first look */
    uint8_t spin_ncand;
    uint8_t spin_cand_reg[FTP_SPIN_CANDIDATES];   /* which of the six callee-saved registers held each (see spin sites) */
    uintptr_t spin_caller;      /* the yield's call site in the interpreter */
    uintptr_t spin_rejected;    /* a known site's PyMutex that names no lock: not classified again */
    uintptr_t spin_cand[FTP_SPIN_CANDIDATES];
    struct ftp_lock_class spin_cand_cls[FTP_SPIN_CANDIDATES];
    /* parking-lot semaphores initialised on this thread's stack and not yet destroyed */
    struct ftp_park_sem park[FTP_PARK_SEMS];
    int npark;
    /* the previous wait, for merging repeated parks of one acquisition */
    uint64_t prev_addr;
    uint64_t prev_end_ns;
    uint64_t prev_acq_seq;
    uint64_t prev_acq_begin;   /* the previous PyMutex park's acquisition start (its mutex_entry) */
    uint32_t prev_stack;
    uint8_t prev_kind;
    bool prev_mergeable;
    struct ftp_tlbc_slot tlbc[FTP_TLBC_SLOTS];
    /* one-entry stack cache: same frames as last time → same id, no hashing of the table */
    uint64_t last_stack_hash;
    uint32_t last_stack_id;
    /* the thread's slot in the file's table of waits in flight (inflight.c); NULL until its first wait */
    struct ftp_inflight_slot *inflight;
    bool inflight_none;      /* the table was full when it looked: it publishes nothing */
    /* extension.c: the object whose init function was looked up last on this thread; ext_stage 2: it was
     * looked up as PyModExport_ (3.15), so a PyInit_ look-up next is the same import */
    uintptr_t ext_base;
    uint8_t ext_stage;
};

/* ---- process-wide state ---- */

struct ftp_python {
    bool present;          /* _PyRuntime with a readable debug-offsets cookie */
    bool ready;            /* the main interpreter exists; the fields below are valid */
    bool stacks;           /* we know this layout and can walk frames */
    bool layout_unknown;   /* its _Py_DebugOffsets are not a table we know (layout.c): no stacks */
    bool free_threaded;
    bool gil_forced;       /* free-threaded, but PYTHON_GIL=1 / -X gil=1 keeps the GIL */
    uint64_t version;      /* PY_VERSION_HEX */
    uintptr_t runtime;     /* &_PyRuntime */
    uintptr_t interp;      /* main interpreter */
    uintptr_t gil;         /* its _gil runtime state */
    volatile int *gil_enabled; /* free-threaded builds: INT_MAX once permanently enabled */
    uintptr_t code_type;   /* &PyCode_Type */
    uintptr_t type_type;   /* &PyType_Type */
    uintptr_t str_type;    /* &PyUnicode_Type */
    uintptr_t method_type; /* &PyMethod_Type */
    /* Where each thread's PyThreadState is kept (python.c): a thread-local at this offset from the thread
     * pointer (3.15), or a pthread key (3.13, 3.14; +1, 0 until found). */
    uint8_t tstate_via;
    intptr_t tstate_tls_offset;
    _Atomic int tstate_key;
    _Atomic int tstate_checked;    /* 1: the first state found was this thread's own; -1: it was not */
    uintptr_t text_start, text_end; /* the interpreter's executable code */
    /* _PySeqLock_BeginRead, _EndRead and _LockWrite, [start, end) each (0: not exported): a yield that
     * returns into one is a type-cache seqlock reader's or writer's, never a PyMutex spin. */
    uintptr_t seqlock_text[3][2];
    struct ftp_layout lay; /* zeroed when the version is unknown */
};

struct ftp_state {
    _Atomic int recording;     /* 1 while the file is mapped and healthy */
    _Atomic uint32_t generation;
    bool native;               /* FTPROF_NATIVE=1 */
    bool verbose;
    bool record_all;           /* FTPROF_ALL=1: record non-Python processes too */
    bool test_slow_types;      /* FTPROF_TEST_SLOW_TYPES=1: a type's definition takes 1 s (tests race it) */
    bool test_preempt;         /* attach flag for the tests: a hook pauses 40 ms before some writes */
    /* No descriptor is kept once the file is mapped: a program may close every descriptor it did not
     * open (os.closerange) and reuse the numbers for its own files. Whatever needs the file later (a
     * chunk reservation without MADV_POPULATE_WRITE, the trim at exit) opens it again by name and
     * checks that it is still the same file (file_dev, file_ino). */
    char path[1100];           /* the recording's name, as created */
    uint64_t file_dev, file_ino;
    bool populate;             /* chunks are reserved with madvise(MADV_POPULATE_WRITE) on the mapping */
    _Atomic int disk_full;     /* a chunk could not be reserved: no more chunks are claimed */
    uint32_t pid;
    uint8_t *map;
    size_t map_size;
    struct ftp_file_header *hdr;
    uint32_t chunk_size, chunk_count;
    _Atomic uint32_t claimed;      /* chunks handed out | FTP_CLAIMS_CLOSED once the file is finished */
    _Atomic uint64_t free_chunks;  /* Treiber stack of released chunks: (tag << 32) | (index + 1) */
    uint32_t *chunk_next;          /* free-list links, one per chunk */
    uint32_t *chunk_fill;          /* bytes used in a released chunk */
    _Atomic uint32_t next_id;      /* code, stack and type ids: one counter, never 0 */
    _Atomic int parked;            /* waiters registered in the waiter table: 0 → releases skip lookups */
    _Atomic uint64_t events;       /* WAIT records published (for FTPROF_VERBOSE) */
    pthread_key_t thread_key;
    struct ftp_python py;
    char output_pattern[1024];
    _Atomic int gil_reported;
    /* live control (control.c): the header's control word the hooks read, min-wait, ring mode */
    /* &hdr->control; NULL when no file. The pointer is atomic too: a stale hook may read it while an
     * attach sets it (relaxed: what it points at stays readable memory either way). */
    _Atomic uint32_t *_Atomic control;
    uint64_t min_wait_ns;          /* FTPROF_MIN_WAIT */
    bool ring;                     /* FTPROF_MODE=ring */
    bool start_paused;             /* FTPROF_START=paused */
    struct ftp_inflight_slot *inflight_slots; /* inside the mapping (inflight.c) */
    uint32_t inflight_count;
    _Atomic uint8_t *chunk_owned;  /* ring mode: 1 while a thread or the free list holds a chunk */
    _Atomic uint32_t *chunk_gen;   /* ring mode: bumped each time a chunk is overwritten */
    _Atomic uint32_t ring_next;    /* ring mode: the next chunk to consider overwriting */
};

FTP_HIDDEN extern struct ftp_state ftp_state;
FTP_HIDDEN extern __thread struct ftp_thread ftp_tls __attribute__((tls_model("initial-exec")));

/* ---- libc originals, resolved once (init.c) ---- */
struct ftp_real {
    int (*sem_init)(sem_t *, int, unsigned);
    int (*sem_destroy)(sem_t *);
    int (*sem_wait)(sem_t *);
    int (*sem_trywait)(sem_t *);
    int (*sem_timedwait)(sem_t *, const struct timespec *);
    int (*sem_clockwait)(sem_t *, clockid_t, const struct timespec *);
    int (*sem_post)(sem_t *);
    int (*sched_yield)(void);
    int (*pthread_mutex_lock)(pthread_mutex_t *);
    int (*pthread_mutex_trylock)(pthread_mutex_t *);
    int (*pthread_mutex_unlock)(pthread_mutex_t *);
    int (*pthread_rwlock_rdlock)(pthread_rwlock_t *);
    int (*pthread_rwlock_tryrdlock)(pthread_rwlock_t *);
    int (*pthread_rwlock_wrlock)(pthread_rwlock_t *);
    int (*pthread_rwlock_trywrlock)(pthread_rwlock_t *);
    int (*pthread_rwlock_unlock)(pthread_rwlock_t *);
    int (*pthread_cond_wait)(pthread_cond_t *, pthread_mutex_t *);
    int (*pthread_cond_timedwait)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
    int (*pthread_cond_signal)(pthread_cond_t *);
    int (*pthread_cond_broadcast)(pthread_cond_t *);
};
FTP_HIDDEN extern struct ftp_real ftp_real;
FTP_HIDDEN extern _Atomic int ftp_real_resolved; /* released once ftp_real is filled */
FTP_HIDDEN void ftp_resolve_real(void);

/* ---- time ---- */
static inline uint64_t ftp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- thread state (thread.c) ---- */
/* The calling thread's state, reset if it is stale after fork; NULL when not recording. */
FTP_HIDDEN struct ftp_thread *ftp_thread_begin(struct ftp_thread *t, uint32_t generation);
static inline struct ftp_thread *ftp_thread_enter(void)
{
    struct ftp_thread *t = &ftp_tls;
    uint32_t gen = atomic_load_explicit(&ftp_state.generation, memory_order_relaxed);
    if (FTP_UNLIKELY(t->generation != gen || t->tid == 0))
        return ftp_thread_begin(t, gen);
    return t;
}

/* Busy marks: how detach knows that no thread is still running recorder code of the session it ends.
 * A thread is busy while it runs recorder code (from ftp_busy_enter to ftp_busy_leave), except while it
 * blocks in the real lock call (ftp_busy_block .. ftp_busy_resume). Each mark is a store to the thread's
 * own word followed by a full fence; detach bumps the generation, fences, and waits until no word is
 * busy (ftp_busy_quiesce). So a thread either sees the new generation right after marking itself busy
 * (it is stale: it touches nothing and passes the call through), or detach sees its mark and waits for
 * it, however long it was preempted. Nothing of a session is written once its detach has returned. */
FTP_HIDDEN void ftp_busy_mark(struct ftp_thread *t, bool busy);
/* Outermost entry into recorder code on this thread: false (and nothing marked) when the thread is stale
 * or recording stopped; the caller then only passes the call through. */
static inline bool ftp_busy_enter(struct ftp_thread *t)
{
    if (t->guard++ == 0) {
        ftp_busy_mark(t, true);
        if (FTP_UNLIKELY(t->generation != atomic_load_explicit(&ftp_state.generation, memory_order_relaxed) ||
                         !atomic_load_explicit(&ftp_state.recording, memory_order_relaxed))) {
            ftp_busy_mark(t, false);
            t->guard--;
            return false;
        }
    }
    return true;
}
static inline void ftp_busy_leave(struct ftp_thread *t)
{
    if (--t->guard == 0)
        ftp_busy_mark(t, false);
}
/* Around the real, blocking call: a parked thread must not hold detach up. */
static inline void ftp_busy_block(struct ftp_thread *t) { ftp_busy_mark(t, false); }
/* After the real call returned: busy again; false when a detach came in between (the thread is stale:
 * what it saw belongs to no recording and is dropped, see ftp_thread_stale). */
static inline bool ftp_busy_resume(struct ftp_thread *t)
{
    ftp_busy_mark(t, true);
    return t->generation == atomic_load_explicit(&ftp_state.generation, memory_order_relaxed);
}
/* Detach: wait until no thread is busy in recorder code (after the generation moved on). */
FTP_HIDDEN void ftp_busy_quiesce(void);
/* Fork child: only the calling thread exists; every other thread's mark is gone with it. */
FTP_HIDDEN void ftp_busy_reset_after_fork(void);
FTP_HIDDEN void ftp_thread_setup_key(void);
/* Arm the thread-exit callback for this thread (once; a no-op when the key could not be made low). */
FTP_HIDDEN void ftp_thread_set_key(struct ftp_thread *t);
/* At exit, for the thread running exit(): its THREAD_END record and the process's CPU time into the
 * header (the TLS destructor, which writes other threads' records, does not run for it). */
FTP_HIDDEN void ftp_thread_exit_process(void);
static inline uint64_t ftp_thread_cpu_now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- ring (ring.c): per-thread chunks of the shared file mapping ---- */
/* Space for a record of `size` bytes (multiple of 8) in the thread's chunk, or NULL when the buffer is
 * full. Callers count lost WAIT records with ftp_ring_count_drop: the header's dropped_events and
 * dropped_wait_ns (their summed wait). */
FTP_HIDDEN void *ftp_ring_reserve(struct ftp_thread *t, uint32_t size);
/* Publish a reserved record: the size is stored last, with release ordering. */
FTP_HIDDEN void ftp_ring_commit(struct ftp_thread *t, void *rec, uint16_t type, uint16_t flags, uint32_t size);
FTP_HIDDEN void ftp_ring_count_drop(uint64_t wait_ns);
FTP_HIDDEN void ftp_ring_release_chunk(struct ftp_thread *t);
/* The free list's chunks, taken off it for good (a full disk: their unfilled pages are given back);
 * index + 1 of the first, linked through chunk_next; 0: none. */
FTP_HIDDEN uint32_t ftp_ring_detach_free_list(void);
/* No more chunks may be claimed; returns how many were. */
FTP_HIDDEN uint32_t ftp_ring_close(void);
#define FTP_CLAIMS_CLOSED 0x80000000u

/* ---- output file (file.c) ---- */
FTP_HIDDEN int ftp_file_open(bool forked_child);
FTP_HIDDEN void ftp_file_finish(void);
/* A process that records nothing (not Python) may still be the new image of one that did: mark that
 * recording as ended by exec, silently. */
FTP_HIDDEN void ftp_file_close_predecessor(void);
/* Reserve the blocks of [off, off + len) of the file before its pages are first stored to: 0 or an errno
 * value (ENOSPC and the like: the disk is full), or FTP_RESERVE_LOW_SPACE when taking them would leave
 * the file system less free space than the margin kept for the program (file.c). What a failed call
 * reserved is given back. Preserves errno. */
FTP_HIDDEN int ftp_file_reserve(size_t off, size_t len);
#define FTP_RESERVE_LOW_SPACE 0x10000 /* not an errno value */
/* The disk is full (an errno value or FTP_RESERVE_LOW_SPACE): flag the header, say so once (file name,
 * what was kept), give back the unfilled part of handed-back chunks. Hook-safe. */
FTP_HIDDEN void ftp_file_disk_full(int err);
FTP_HIDDEN void ftp_stop(const char *why);
/* "ftprof: a b c" on the program's stderr when that cannot harm it, and always into the recording's
 * notes (init.c). Hook-safe; preserves errno. */
FTP_HIDDEN void ftp_warn(const char *a, const char *b, const char *c);
/* A new recording's header gets the notes given before it existed (start-up warnings). */
FTP_HIDDEN void ftp_notes_copy_early(struct ftp_file_header *h);

/* ---- interning (intern.c): lock-free tables in anonymous memory ---- */
FTP_HIDDEN int ftp_tables_init(void);
FTP_HIDDEN void ftp_tables_reset(void);
/* 0 = not present; otherwise the id. `insert` claims a slot and returns 0 with *slot set. */
FTP_HIDDEN uint32_t ftp_intern_code_lookup(uintptr_t code, uintptr_t check, _Atomic uint64_t **slot);
FTP_HIDDEN uint32_t ftp_intern_stack_lookup(uint64_t hash, _Atomic uint64_t **slot);
FTP_HIDDEN uint32_t ftp_intern_type_lookup(uintptr_t type, _Atomic uint64_t **slot);
FTP_HIDDEN void ftp_intern_publish(_Atomic uint64_t *slot, uint32_t id, uint32_t extra);
FTP_HIDDEN uint32_t ftp_intern_extra(uintptr_t type); /* the `extra` word stored with a type */
FTP_HIDDEN uint32_t ftp_new_id(void);

/* Waiters that may be woken by someone else: releasers look themselves up here to become holders.
 * A slot is reused as soon as its waiter leaves, possibly while a releaser is reading it: every field
 * is atomic, and readers take a snapshot that is valid only if the slot's key and claim count did not
 * change while they copied it (ftp_waiter_snapshot). */
struct ftp_waiter {
    _Atomic uintptr_t key;     /* semaphore / mutex / rwlock address; 0 empty, 1 tombstone, 2 filling */
    _Atomic uint32_t claims;   /* bumped at every claim of the slot */
    _Atomic uint32_t tid;
    _Atomic uint64_t event_id;
    _Atomic uint64_t lock_addr;
    _Atomic uint32_t flags;    /* FTP_WAITER_SELF_WOKEN | FTP_WAITER_HOLDER_SEEN */
};
#define FTP_WAITER_SELF_WOKEN 1u  /* the waiter posted its own semaphore (3.13 self-park) */
#define FTP_WAITER_HOLDER_SEEN 2u /* a releaser already recorded itself as this waiter's holder */
struct ftp_waiter_copy {
    uint32_t claims, tid, flags;
    uint64_t event_id, lock_addr;
};
FTP_HIDDEN struct ftp_waiter *ftp_waiter_add(uintptr_t key, uint64_t event_id, uint64_t lock_addr, uint32_t tid);
FTP_HIDDEN struct ftp_waiter *ftp_waiter_find(uintptr_t key);
FTP_HIDDEN bool ftp_waiter_snapshot(struct ftp_waiter *w, uintptr_t key, struct ftp_waiter_copy *out);
/* Set a flag on the waiter of the snapshot; returns the flags before, or UINT32_MAX if the slot moved on. */
FTP_HIDDEN uint32_t ftp_waiter_flag(struct ftp_waiter *w, const struct ftp_waiter_copy *c, uint32_t flag);
FTP_HIDDEN void ftp_waiter_remove(struct ftp_waiter *w);
/* Semaphores created by threading.RLock (3.13: a PyThread_type_lock) */
FTP_HIDDEN void ftp_rlock_add(uintptr_t sem);
FTP_HIDDEN bool ftp_rlock_contains(uintptr_t sem);
FTP_HIDDEN void ftp_rlock_remove(uintptr_t sem);

/* Copy len bytes from an address we are not sure of: false instead of a fault (process_vm_readv). */
FTP_HIDDEN bool ftp_safe_read(void *dst, uintptr_t src, size_t len);
FTP_HIDDEN bool ftp_read_near(void *dst, uintptr_t src, size_t len, uintptr_t live);
FTP_HIDDEN void ftp_safe_read_each(void *dst, size_t each, const uintptr_t *src, int n, bool *readable);

/* ---- Python (python.c) ---- */
FTP_HIDDEN void ftp_python_detect(void);  /* at start and after dlopen: find _PyRuntime */
/* FTP_REGION_RUNTIME or _INTERP (with the offset inside it) for an address in the interpreter's own
 * state, else FTP_REGION_HEAP: what lets the analyzer name the field (interp->_gil.cond). */
FTP_HIDDEN uint8_t ftp_python_region(uintptr_t addr, uint32_t *offset);
FTP_HIDDEN bool ftp_python_ready(void);    /* cheap once ready; finishes set-up when the interpreter exists */
FTP_HIDDEN uintptr_t ftp_python_tstate(void);
/* Python facts into the file header: version, build, whether the GIL is on now. */
FTP_HIDDEN void ftp_python_describe(struct ftp_file_header *h);
/* Walk the calling thread's own frames into frames[], innermost first; returns the count. */
FTP_HIDDEN int ftp_python_frames(struct ftp_thread *t, struct ftp_py_frame *frames, int max);
/* A thread without a threading name yet: announce it again at its next record, when that can tell
 * more (a Python frame now, or its Thread object found at its bootstrap wait). Counted only then, so
 * bootstrap waits before the first frame do not use the tries up. */
FTP_HIDDEN bool ftp_python_has_frame(void);
static inline void ftp_thread_name_again(struct ftp_thread *t)
{
    if (FTP_LIKELY(t->py_named) || !t->announced || t->name_tries >= 16)
        return;
    if (t->boot_thread || ftp_python_has_frame()) {
        t->name_tries++;
        t->announced = false;
    }
}
/* Is the innermost Python frame threading.py's RLock factory? (RLock semaphores are born there.) */
FTP_HIDDEN bool ftp_python_in_rlock_factory(void);
/* The calling thread's threading.Thread name ("MainThread" for the main thread), or 0 if unknown. */
FTP_HIDDEN size_t ftp_python_thread_name(struct ftp_thread *t, char *out, size_t cap);
/* What lock `addr` is. A heap PyMutex is told by the object around it, the window [addr -
 * FTP_CLASSIFY_BEFORE, addr + 22): `window` when the caller read it already, else read in place when
 * `live` (the interpreter itself reads `addr` now: a park's or a known spin's lock), else through
 * ftp_safe_read. */
#define FTP_CLASSIFY_BEFORE 32
/* No user-space address lies at or above this (x86-64 and arm64, even with 5-level page tables). */
#define FTP_USER_ADDR_END (1ull << 56)
#define FTP_CLASSIFY_WINDOW 54
FTP_HIDDEN void ftp_python_classify(struct ftp_thread *t, uintptr_t addr, bool mutex_park, bool live,
                                    const uint8_t *window, struct ftp_lock_class *out);
FTP_HIDDEN bool ftp_python_is_gil(uintptr_t addr);
FTP_HIDDEN void ftp_python_check_gil(struct ftp_thread *t);
static inline bool ftp_in_python_text(uintptr_t pc)
{
    return pc >= ftp_state.py.text_start && pc < ftp_state.py.text_end;
}
static inline bool ftp_in_seqlock_text(uintptr_t pc)
{
    for (int i = 0; i < 3; i++)
        if (pc >= ftp_state.py.seqlock_text[i][0] && pc < ftp_state.py.seqlock_text[i][1])
            return true;
    return false;
}
/* The type a seqlock spin's lookup is about, from the spinner's registers (see python.c); 0: unknown. */
FTP_HIDDEN uint32_t ftp_python_seqlock_type(struct ftp_thread *t, const uintptr_t *regs, int nregs);

/* ---- stacks (stack.c) ---- */
/* Capture the calling thread's Python (and with FTPROF_NATIVE, native) stack; returns its id (0: none). */
FTP_HIDDEN uint32_t ftp_stack_capture(struct ftp_thread *t);

/* ---- native (native.c) ---- */
FTP_HIDDEN int ftp_native_backtrace(struct ftp_thread *t, uint64_t *pcs, int max);
FTP_HIDDEN void ftp_native_init(void);
/* MODULE records for objects loaded since the last call (walks the loader's link map, lock-free). */
FTP_HIDDEN void ftp_native_write_modules(struct ftp_thread *t);
/* Describes the objects loaded since the module map was last written (all of them the first time), so
 * that a native lock call's return address can be named whether or not FTPROF_NATIVE is on. */
FTP_HIDDEN void ftp_native_catch_up(struct ftp_thread *t);
/* The same for the object holding `caller` (a native lock call's return address): nothing to do, and
 * no system call, when this thread's last such caller was in the same object. */
FTP_HIDDEN void ftp_native_describe_caller(struct ftp_thread *t, uintptr_t caller);
/* The path of the most recently loaded Python extension module (for the GIL notice); length or 0. */
FTP_HIDDEN size_t ftp_native_last_extension(char *out, size_t cap);
FTP_HIDDEN void ftp_native_reset(void);
/* A NUL-terminated string at an address we are not sure of, through safe reads: its length (cut at cap-1). */
FTP_HIDDEN size_t ftp_native_read_cstr(uintptr_t addr, char *out, size_t cap);
/* The loaded object whose dlopen handle (its link-map entry) is `handle`: load bias and path. */
FTP_HIDDEN bool ftp_native_object_of(uintptr_t handle, uintptr_t *bias, char *path, size_t cap);
/* cb(t, bias, path) for every named object of the link map (lock-free walk). */
FTP_HIDDEN void ftp_native_each_object(struct ftp_thread *t, void (*cb)(struct ftp_thread *, uintptr_t, const char *));

/* ---- extension modules (extension.c; x86-64) ---- */
/* A new recording: list the extension modules already loaded. */
FTP_HIDDEN void ftp_extension_recording_started(struct ftp_thread *t);

/* ---- waits in flight (inflight.c): the thread's slot in the file's INFLIGHT table ---- */
struct ftp_wait;
/* Claims chunk 0 for the table and writes its record: at file creation, before recording starts. */
FTP_HIDDEN int ftp_inflight_init(void);
/* Publish the wait about to block (its stack already committed); a few plain stores into the thread's
 * own slot under its sequence word. `owner`: the holder's thread ident where the lock says, else 0. */
FTP_HIDDEN void ftp_inflight_begin(struct ftp_thread *t, const struct ftp_wait *w, uint64_t owner);
FTP_HIDDEN void ftp_inflight_end(struct ftp_thread *t);
/* The thread is leaving: its slot is free again. */
FTP_HIDDEN void ftp_inflight_release(struct ftp_thread *t);

/* ---- live control (control.c): pause, min-wait, ring mode ---- */
/* FTPROF_START, FTPROF_MIN_WAIT, FTPROF_MODE (with warnings naming the variable when `warn`). */
FTP_HIDDEN void ftp_control_settings(bool warn);
/* Into a new file's header: mode, min-wait, and the pause at start (FTPROF_START=paused). */
FTP_HIDDEN void ftp_control_file_opened(struct ftp_file_header *h);
/* One relaxed load of the header's control word: is recording paused? */
static inline bool ftp_paused(void)
{
    _Atomic uint32_t *c = atomic_load_explicit(&ftp_state.control, memory_order_relaxed);
    return c && (atomic_load_explicit(c, memory_order_relaxed) & FTP_CONTROL_PAUSED);
}
/* A wait shorter than FTPROF_MIN_WAIT: counted into the header, not written. True if it was. */
FTP_HIDDEN bool ftp_control_below_min(uint64_t wait_ns);
/* Ring mode: a full chunk to overwrite (its lost waits counted), or false when none can be. */
FTP_HIDDEN bool ftp_ring_recycle(uint32_t *index);
FTP_HIDDEN void ftp_ring_mark_owned(uint32_t index, bool owned);
/* Ring mode: is the definition written in chunk `index` at generation `gen` still there? */
FTP_HIDDEN bool ftp_ring_defined(uint64_t where);
/* (chunk index + 1) << 32 | generation of the calling thread's chunk (0: none), for the intern tables. */
FTP_HIDDEN uint64_t ftp_ring_where(void);

/* ---- events (event.c) ---- */
struct ftp_wait {
    uint8_t kind;
    uint8_t region;
    uint16_t flags;
    uint32_t region_offset;
    uint32_t type_id;
    uint32_t stack_id;
    uint64_t event_id;
    uint64_t acq_seq;
    uint64_t start_ns, park_ns, end_ns;
    uint64_t lock_addr;
    uint64_t caller; /* pthread mutex/rwlock waits: the lock call's return address (0: none) */
};
FTP_HIDDEN void ftp_event_wait(struct ftp_thread *t, const struct ftp_wait *w);
FTP_HIDDEN void ftp_event_holder(struct ftp_thread *t, const struct ftp_waiter_copy *copy, uint64_t now);
FTP_HIDDEN uint64_t ftp_event_next_id(struct ftp_thread *t);
/* A spin sequence that ended without parking: publish it as a SPIN wait (no address) once it is over
 * (no yield for FTP_SPIN_GAP_NS) or when `force`d because another kind of wait begins. */
FTP_HIDDEN void ftp_event_flush_spin(struct ftp_thread *t, uint64_t now, bool force);
FTP_HIDDEN void ftp_event_gil_enabled(struct ftp_thread *t);
/* Was the yield run in progress a PyMutex's spin? 3.13 and 3.14 yield exactly spin_max times before
 * parking or taking the lock, never re-reading it, so a shorter run is some other spinner's (a seqlock);
 * 3.15 re-reads the lock as it spins and may stop early, so there a run counts when its lock was found,
 * or when it parks right after on the same lock (`parking`). */
static inline bool ftp_spin_was_pymutex_run(const struct ftp_thread *t, bool parking)
{
    const struct ftp_layout *l = &ftp_state.py.lay;
    if (!l->spin_max || t->spin_seqlock)
        return false;
    if (t->spin_yields >= l->spin_max)
        return true;
    return l->spin_rereads && t->spin_yields > 0 && (parking || t->spin_addr);
}
#define ftp_spin_was_pymutex(t) ftp_spin_was_pymutex_run((t), true)

#endif
