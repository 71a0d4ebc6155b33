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
 *  - releases while threads are parked on the same bucket of keys: a fixed 4-slot waiter lookup (intern.c);
 *  - detach: busy marks instead of a sleep (thread.c, attach.c);
 *  - warnings: never to a descriptor that is not provably the program's stderr, never blocking (state.c).
 * What may still wait: a chunk's first use reserves its disk blocks (file.c), which a file system may
 * make slow; ring mode clears a recycled chunk (ring.c). */
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
/* A (counter, clock) pair counts only when the counter read on both sides of the clock is this close:
 * under 2 µs at 2 GHz (the clock itself takes some 50 ticks); a thread preempted in between is not. */
#define FTP_TICKS_PAIR_MAX 4096
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
#define FTP_PARKED_BUCKETS 32 /* one cache line of waiter counts (ftp_state.parked) */
#define FTP_STACK_SEEN 16     /* stacks a thread remembers by hash (a power of two) */
#define FTP_SPIN_KNOWN 4      /* locks a thread spins on in turn (a request: a dict's, then a Lock) */
struct ftp_park_sem {
    sem_t *sem;
    uint64_t event_id;
    uint64_t lock_addr;
};

struct ftp_thread {
    /* The first cache line holds all that a yield continuing a spin reads and writes (ftp_sched_yield's
     * quiet path): a spinning thread's yields mostly switch to another thread, which leaves these lines
     * cold for the next one. */
    uint32_t generation; /* == ftp_state.generation, else stale (we are a forked child): reset */
    uint32_t tid;
    int guard;           /* > 0 while inside the recorder: hooks pass straight through */
    uint32_t spin_yields;
    /* spin phase (sched_yield from the interpreter) */
    uint64_t spin_start_ns;
    uint64_t spin_last_ns;      /* when the spin's last yield returned; see ftp_spin_last_ns */
    /* The time-stamp counter after the spin's last yield (0: that yield was timed by the clock,
     * spin_last_ns), and the spin's gap limit in ticks at the thread's measured rate. */
    uint64_t spin_last_ticks;
    uint64_t gap_ticks;         /* FTP_SPIN_GAP_NS in ticks at that rate */
    uintptr_t spin_caller;      /* the yield's call site in the interpreter */
    bool spin_quiet;            /* nothing left to look at in this spin: its yields take the quiet path */
    bool spin_by_ticks;         /* the spin's yields are timed by the counter (its rate was known at start) */
    uint32_t quiet_yields;      /* yields on the quiet path not yet added to ftp_state.quiet_yields */
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
    /* The time-stamp counter at the spin's start (0: not read close enough to the clock), and the
     * thread's own measure of the counter's rate (0 until known). */
    uint64_t spin_start_ticks;
    uint64_t ticks_anchor, ticks_anchor_ns; /* the first (counter, clock) pair read together */
    uint64_t ticks_check, ticks_check_ns;   /* a later pair: the rate is checked over 1 ms or more from it */
    double ns_per_tick;
    uint32_t spin_stack;
    uint32_t full_yields;       /* yields through the whole hook, not yet added to ftp_state.full_yields */
    uint32_t spin_starts;       /* spins begun, not yet added to ftp_state.spin_starts (FTPROF_VERBOSE) */
    uintptr_t spin_addr;        /* the PyMutex spun on, when it could be found (0: unknown) */
    struct ftp_lock_class spin_cls;
    bool spin_locked;           /* spin_addr was seen locked: no need to look again */
    bool spin_seqlock;          /* the run's yields return into a seqlock function: the type cache's */
    bool spin_scanned;          /* the candidates below were found at this run's first look */
    uint8_t spin_ncand;
    int8_t spin_reg;            /* the register its call site keeps the lock in, -1 while not known */
    uint8_t spin_cand_reg[FTP_SPIN_CANDIDATES];   /* which of the six callee-saved registers held each (see spin sites) */
    uintptr_t spin_rejected;    /* a known site's PyMutex that names no lock: not classified again */
    /* the last locks spins at known sites were checked and named on, kept across spins: a later spin at
     * the same site, from the same stack, on the same address, reads it in place (spin_lock_at) */
    struct ftp_spin_known {
        uintptr_t addr, caller;
        uint32_t stack;
        struct ftp_lock_class cls;
    } spin_known[FTP_SPIN_KNOWN];
    uint8_t spin_known_next;
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
    /* The stacks this thread met lately, by hash (not in ring mode, where a definition may be overwritten):
     * a thread's waits come from a handful of places, and the thread's own line is warmer than the
     * shared table's slot (stack.c). */
    struct ftp_stack_seen {
        uint64_t hash;
        uint32_t id;
    } stack_seen[FTP_STACK_SEEN];
    /* the thread's slot in the file's table of waits in flight (inflight.c); NULL until its first wait */
    struct ftp_inflight_slot *inflight;
    bool inflight_none;      /* the table was full when it looked: it publishes nothing */
    /* extension.c: the object whose init function was looked up last on this thread; ext_stage 2: it was
     * looked up as PyModExport_ (3.15), so a PyInit_ look-up next is the same import */
    uintptr_t ext_base;
    uint8_t ext_stage;
};
_Static_assert(offsetof(struct ftp_thread, quiet_yields) + sizeof(uint32_t) <= 64,
               "the quiet path's fields fill the first cache line");

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
    /* Spins are timed between yields by the time-stamp counter (ftp_ticks): x86-64, where the kernel
     * keeps CLOCK_MONOTONIC on that counter itself (so it runs at one rate, the same on every CPU);
     * FTPROF_TEST_CLOCK_ONLY=1 turns it off (tests compare the two). */
    bool spin_ticks;
    /* The counter's rate checked against the clock (each thread, over 1 ms or more between two of its
     * spins' starts): how often, and the worst disagreement, in millionths. For FTPROF_VERBOSE. */
    _Atomic uint64_t ticks_checks;
    _Atomic uint32_t ticks_worst_ppm;
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
    /* Waiters registered in the waiter table, counted by their key's bucket (ftp_parked_on, intern.h): a
     * release whose bucket counts none skips the lookup, which an RLock's release, posting its
     * semaphore on every release, would otherwise make whenever any thread is parked anywhere. A bucket
     * never counts more than the table's 4,096 slots. */
    _Atomic uint16_t parked[FTP_PARKED_BUCKETS] __attribute__((aligned(64)));
    _Atomic uint64_t events;       /* WAIT records published (for FTPROF_VERBOSE) */
    /* The interpreter's yields the spin hook counted, on its quiet path and through the whole hook (for
     * FTPROF_VERBOSE; each thread adds its own when a spin of its ends) */
    _Atomic uint64_t quiet_yields, full_yields, spin_starts;
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


/* The libc originals (state.c resolves them once): named real_<fn>, so that no name here is also one of
 * the hooks' (hooks.c), which interpose the very same symbols. */
struct ftp_real {
    int (*real_sem_init)(sem_t *, int, unsigned);
    int (*real_sem_destroy)(sem_t *);
    int (*real_sem_wait)(sem_t *);
    int (*real_sem_trywait)(sem_t *);
    int (*real_sem_timedwait)(sem_t *, const struct timespec *);
    int (*real_sem_clockwait)(sem_t *, clockid_t, const struct timespec *);
    int (*real_sem_post)(sem_t *);
    int (*real_sched_yield)(void);
    int (*real_pthread_mutex_lock)(pthread_mutex_t *);
    int (*real_pthread_mutex_trylock)(pthread_mutex_t *);
    int (*real_pthread_mutex_unlock)(pthread_mutex_t *);
    int (*real_pthread_rwlock_rdlock)(pthread_rwlock_t *);
    int (*real_pthread_rwlock_tryrdlock)(pthread_rwlock_t *);
    int (*real_pthread_rwlock_wrlock)(pthread_rwlock_t *);
    int (*real_pthread_rwlock_trywrlock)(pthread_rwlock_t *);
    int (*real_pthread_rwlock_unlock)(pthread_rwlock_t *);
    int (*real_pthread_cond_wait)(pthread_cond_t *, pthread_mutex_t *);
    int (*real_pthread_cond_timedwait)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
    int (*real_pthread_cond_signal)(pthread_cond_t *);
    int (*real_pthread_cond_broadcast)(pthread_cond_t *);
};

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

/* One wait, as the hooks measured it (event.c writes it, inflight.c publishes it while it lasts). */
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

/* The claim word's top bit: the file is finished, no chunk may be claimed (ring.c). */
#define FTP_CLAIMS_CLOSED 0x80000000u

#endif
