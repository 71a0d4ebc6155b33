/* ftprof recording format — the only contract between the recorder (preload/) and the analyzer.
 *
 * A recording is one file made of a fixed header page followed by equal-sized chunks:
 *
 *   +----------------------+  offset 0
 *   | ftp_file_header      |  FTP_HEADER_SIZE bytes (one page); some fields are updated live
 *   +----------------------+  offset header.header_size
 *   | chunk 0              |  header.chunk_size bytes
 *   | chunk 1              |
 *   | ...                  |  only the first header.chunks_used chunks hold data
 *   +----------------------+
 *
 * The recorder maps the file MAP_SHARED, so the kernel writes it back even after kill -9. Each
 * application thread appends records to a chunk it owns; nobody else writes into that chunk while it
 * owns it. A chunk left by an exiting thread may be adopted by a later thread, which first writes an
 * FTP_REC_THREAD record, so the records of a chunk after a THREAD record belong to that thread.
 *
 * Every record starts with struct ftp_record: a 32-bit size (header included, a multiple of 8), a
 * 16-bit type and 16 bits of flags. The writer fills the body first and stores the size last with
 * release ordering, so a size of 0 means "nothing published here yet": a reader stops a chunk there.
 * A reader also stops a chunk at a size that is not a multiple of 8, is smaller than the header or runs
 * past the chunk's end, and skips records of types it does not know (forward compatibility).
 *
 * All integers are little-endian, fixed width; all timestamps are CLOCK_MONOTONIC nanoseconds.
 * Strings are UTF-8, not NUL-terminated, with explicit lengths, padded with zeros to 8 bytes.
 *
 * Versioning: a reader refuses a file whose min_reader_version is above its own FTP_VERSION (the file
 * needs a newer reader) and reads any older version it still knows. A writer bumps FTP_VERSION for every
 * change, and min_reader_version only for changes old readers cannot skip over. Version 0 does not
 * exist: a header that says 0 (or a min_reader_version of 0, or above its version) is damaged.
 */
#ifndef FTPROF_FORMAT_H
#define FTPROF_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define FTP_MAGIC "FTPROF\x01\n" /* 8 bytes: name, a byte no text has, a newline catching text-mode damage */
#define FTP_MAGIC_LEN 8
#define FTP_VERSION 8            /* 2: process identity, disk-full and exec facts in the header;
                                    3: THREAD_END records and the process's CPU time at exit;
                                    4: waits in flight (INFLIGHT), pause/resume, min-wait, ring mode;
                                    5: attached recordings (FTP_FLAG_ATTACHED, FTP_CONTROL_DETACH);
                                    6: the recorder's notes in the header (notes_len, notes[]);
                                    7: WAIT records of 88 bytes: the native lock call's caller, and
                                       MODULE records for native lock callers without FTPROF_NATIVE;
                                       EXTENSION records (old readers skip them);
                                    8: dropped waits' summed time, THREAD_END's creation time and run
                                       delay (longer record: old readers read its first 48 bytes) */
#define FTP_MIN_READER_VERSION 1 /* version 1 files read as version 2 ones with those fields zero; version 2
                                    ones as version 3 ones without thread ends (old readers skip them) */
#define FTP_HEADER_SIZE 4096
#define FTP_ARGV_MAX 2048
#define FTP_RECORD_ALIGN 8

/* Feature bits (header.features). */
#define FTP_FEATURE_NATIVE_STACKS (1u << 0) /* FTPROF_NATIVE=1: stacks carry native frames */

/* header.control: read by the hooks, flipped by `ftprof pause/resume` through a shared mapping. */
#define FTP_CONTROL_PAUSED (1u << 0) /* waits are not recorded (nor published in flight) */
#define FTP_CONTROL_DETACH (1u << 1) /* `ftprof attach`: the CLI asks the attached recorder to detach */

/* header.mode */
#define FTP_MODE_NORMAL 0 /* chunks are used once: a full buffer drops later events */
#define FTP_MODE_RING 1   /* FTPROF_MODE=ring: the oldest full chunks are overwritten */

/* header.windows[]: the times recording was paused (FTP_WINDOW_PAUSE set) or resumed, in the order
 * they were written; 0 = not written yet. Recording is on from start_ns until the first pause. */
#define FTP_WINDOWS_MAX 64
#define FTP_WINDOW_PAUSE (1ull << 63)

/* Header flags (header.flags), set by the recorder as it goes. */
#define FTP_FLAG_PYTHON (1u << 0)          /* the process ran a CPython interpreter we could read */
#define FTP_FLAG_FREE_THREADED (1u << 1)   /* built with --disable-gil */
#define FTP_FLAG_GIL_AT_START (1u << 2)    /* the GIL was enabled when recording started */
#define FTP_FLAG_FINISHED (1u << 3)        /* the process exited through exit(); absent after kill -9 */
#define FTP_FLAG_FORKED_CHILD (1u << 4)    /* this file belongs to a forked child */
#define FTP_FLAG_STOPPED (1u << 5)         /* the recorder stopped itself (unexpected state) */
#define FTP_FLAG_DISK_FULL (1u << 6)       /* a chunk's blocks could not be reserved (ENOSPC, quota): the
                                              recording ends early; later waits are in disk_full_events */
#define FTP_FLAG_ENDED_BY_EXEC (1u << 7)   /* the process replaced its image (execve); set by the new image,
                                              which writes a recording of its own */
#define FTP_FLAG_ATTACHED (1u << 8)        /* `ftprof attach`: the recorder was loaded into a running process;
                                              the recording covers the window from start_ns (attach) to
                                              end_ns (detach, or the process's exit), not the whole run */
#define FTP_FLAG_LAYOUT_UNKNOWN (1u << 9)  /* the interpreter's _Py_DebugOffsets table (python_version says
                                              which one) is not one the recorder knows: waits without
                                              Python stacks or object names */

/* header.notes[]: every warning the recorder gave (a bad FTPROF_* setting, a full disk, a stop), so that
 * none is lost when the program's stderr is not the one it started with or could block (the recorder
 * then says nothing there). Each note is one line: a status byte, the text (UTF-8, no "ftprof: "
 * prefix), '\n'. A writer claims its bytes with one atomic add on notes_len and then copies them; a
 * note that does not fit whole is cut at the end of the area. Bytes still 0 are a note being written:
 * readers skip them. Warnings given before the file existed (start-up) come first, in order. */
#define FTP_NOTES_MAX 1280
#define FTP_NOTE_SHOWN '+'   /* also written to the program's stderr */
#define FTP_NOTE_UNSHOWN '-' /* not written there: fd 2 was no longer the program's start-up stream, or
                                writing could have blocked or failed */

/*  ftp_file_header (4096 bytes)
 *   0 magic[8]            8 version u16 | min_reader_version u16 | header_size u32
 *  16 features u32       20 flags u32 (atomic)        24 chunk_size u32  28 chunk_count u32
 *  32 chunks_used u32 (atomic: chunks handed out)     36 pid u32  40 ppid u32  44 reserved u32
 *  48 start_ns u64       56 start_realtime_ns u64     64 end_ns u64 (0 until exit)
 *  72 dropped_events u64 (atomic)                    80 python_version u64 (PY_VERSION_HEX, 0 if none)
 *  88 argc u32  92 argv_len u32                      96 argv[2048] (NUL-separated, truncated)
 *  2144 proc_start_ticks u64 (field 22 of /proc/self/stat)   2152 pid_ns u64 (inode of /proc/self/ns/pid)
 *  2160 boot_id[16] (/proc/sys/kernel/random/boot_id)
 *       With pid, these say which process wrote the file; an exec keeps all four, so a new image knows
 *       its own pre-exec recording (0 in version 1 files: never matched).
 *  2176 disk_full_events u64 (atomic): waits lost because the disk was full (not in dropped_events)
 *  2184 process_cpu_ns u64: CLOCK_PROCESS_CPUTIME_ID at exit, all threads that ever ran (0: not
 *       finished, or a file older than version 3)
 *  2192 control u32 (atomic: FTP_CONTROL_*)  2196 inflight_chunk u32 (1 + index of the chunk holding the
 *       FTP_REC_INFLIGHT record; 0: none)
 *  2200 min_wait_ns u64 (FTPROF_MIN_WAIT: shorter waits are counted below, not written)
 *  2208 below_min_events u64 (atomic)   2216 below_min_ns u64 (atomic: their summed wait)
 *  2224 mode u32 (FTP_MODE_*)           2228 n_windows u32 (atomic: entries of windows[] claimed)
 *  2232 overwritten_events u64 (atomic: WAIT records lost to ring-mode chunk reuse)
 *  2240 overwritten_until_ns u64 (atomic max: the latest end of an overwritten wait)
 *  2248 chunks_recycled u64 (atomic)
 *  2256 windows[64] u64 (FTP_WINDOW_PAUSE | time_ns, see above; version 4)
 *  2768 notes_len u32 (atomic: bytes of notes[] claimed; above FTP_NOTES_MAX when some did not fit)
 *  2772 reserved u32
 *  2776 notes[FTP_NOTES_MAX]: what the recorder warned about (version 6), see FTP_NOTE_* below
 *  4056 dropped_wait_ns u64 (atomic, version 8): the summed wait of the waits counted in dropped_events
 *       (every dropped record is a WAIT), so a report can bound what it did not see
 *  4064 ... zero ...
 *  4088 python_runtime u64: where _PyRuntime was in the recorded process (0: no Python, or a file
 *       written before this field existed). With the MODULE record of the object that holds it, the
 *       analyzer can name the field a FTP_REGION_RUNTIME / INTERP / TSTATE address is in.
 */
struct ftp_file_header {
    char magic[FTP_MAGIC_LEN];
    uint16_t version;
    uint16_t min_reader_version;
    uint32_t header_size;
    uint32_t features;
    uint32_t flags;
    uint32_t chunk_size;
    uint32_t chunk_count;
    uint32_t chunks_used;
    uint32_t pid;
    uint32_t ppid;
    uint32_t reserved0;
    uint64_t start_ns;
    uint64_t start_realtime_ns;
    uint64_t end_ns;
    uint64_t dropped_events;
    uint64_t python_version;
    uint32_t argc;
    uint32_t argv_len;
    char argv[FTP_ARGV_MAX];
    uint64_t proc_start_ticks;
    uint64_t pid_ns;
    uint8_t boot_id[16];
    uint64_t disk_full_events;
    uint64_t process_cpu_ns;
    uint32_t control;
    uint32_t inflight_chunk;
    uint64_t min_wait_ns;
    uint64_t below_min_events;
    uint64_t below_min_ns;
    uint32_t mode;
    uint32_t n_windows;
    uint64_t overwritten_events;
    uint64_t overwritten_until_ns;
    uint64_t chunks_recycled;
    uint64_t windows[FTP_WINDOWS_MAX];
    uint32_t notes_len;
    uint32_t reserved1;
    char notes[FTP_NOTES_MAX];
    uint64_t dropped_wait_ns;
    uint8_t padding[FTP_HEADER_SIZE - 2776 - FTP_NOTES_MAX - 8 - 8];
    uint64_t python_runtime;
};
_Static_assert(sizeof(struct ftp_file_header) == FTP_HEADER_SIZE, "header is one page");
_Static_assert(offsetof(struct ftp_file_header, chunks_used) == 32, "layout");
_Static_assert(offsetof(struct ftp_file_header, dropped_events) == 72, "layout");
_Static_assert(offsetof(struct ftp_file_header, argv) == 96, "layout");
_Static_assert(offsetof(struct ftp_file_header, proc_start_ticks) == 2144, "layout");
_Static_assert(offsetof(struct ftp_file_header, disk_full_events) == 2176, "layout");
_Static_assert(offsetof(struct ftp_file_header, process_cpu_ns) == 2184, "layout");
_Static_assert(offsetof(struct ftp_file_header, control) == 2192, "layout");
_Static_assert(offsetof(struct ftp_file_header, min_wait_ns) == 2200, "layout");
_Static_assert(offsetof(struct ftp_file_header, mode) == 2224, "layout");
_Static_assert(offsetof(struct ftp_file_header, overwritten_events) == 2232, "layout");
_Static_assert(offsetof(struct ftp_file_header, windows) == 2256, "layout");
_Static_assert(offsetof(struct ftp_file_header, notes_len) == 2768, "layout");
_Static_assert(offsetof(struct ftp_file_header, notes) == 2776, "layout");
_Static_assert(offsetof(struct ftp_file_header, dropped_wait_ns) == 4056, "layout");
_Static_assert(offsetof(struct ftp_file_header, python_runtime) == FTP_HEADER_SIZE - 8, "layout");

enum ftp_record_type {
    FTP_REC_THREAD = 1,      /* following records of this chunk belong to this thread */
    FTP_REC_CODE = 2,        /* a Python code object: names and line table, given an id */
    FTP_REC_STACK = 3,       /* an interned stack: Python and native frames, given an id */
    FTP_REC_TYPE = 4,        /* an interned Python type name, given an id */
    FTP_REC_WAIT = 5,        /* one blocking wait (a park, a spin, a mutex wait...) */
    FTP_REC_HOLDER = 6,      /* the releaser who woke a waiter: its stack, linked by event id */
    FTP_REC_MODULE = 7,      /* a loaded ELF object: address range and build id, for symbolizing and
                                naming the object a native lock call came from (WAIT.caller) */
    FTP_REC_GIL_ENABLED = 8, /* the GIL came back: when, and the extension loaded just before */
    FTP_REC_THREAD_END = 9,  /* a thread's lifetime and CPU time, written as it ends (version 3) */
    FTP_REC_INFLIGHT = 10,   /* the table of waits in progress, one slot per thread (version 4) */
    FTP_REC_EXTENSION = 11,  /* an extension module's import, or what its init declared (version 7) */
};

/*  ftp_record (8 bytes), the start of every record
 *   0 size u32 (whole record, multiple of 8; stored last)   4 type u16   6 flags u16
 */
struct ftp_record {
    uint32_t size;
    uint16_t type;
    uint16_t flags;
};
_Static_assert(sizeof(struct ftp_record) == 8, "record header");

/*  FTP_REC_THREAD (40 bytes + Python thread name)
 *   0 header   8 tid u32   12 py_name_len u32   16 first_seen_ns u64   24 name[16] (OS thread name)
 *  40 py_name_len bytes: the threading.Thread name when the recorder could read it, padding
 *  (Version 1 files written before this field existed have py_name_len 0.)
 */
struct ftp_rec_thread {
    struct ftp_record h;
    uint32_t tid;
    uint32_t py_name_len;
    uint64_t first_seen_ns;
    char name[16];
};
_Static_assert(sizeof(struct ftp_rec_thread) == 40, "thread record");

/*  FTP_REC_CODE (32 bytes + strings)
 *   0 header   8 code_id u32   12 firstlineno i32
 *  16 filename_len u16  18 qualname_len u16  20 linetable_len u32  24 reserved u64
 *  32 filename bytes, qualname bytes, linetable bytes (CPython 3.13 co_linetable), zero padding
 *  Frames give a byte offset into the code's bytecode; with the line table the analyzer turns it into
 *  a line number, so the recorder never decodes line tables on its hot path.
 */
struct ftp_rec_code {
    struct ftp_record h;
    uint32_t code_id;
    int32_t firstlineno;
    uint16_t filename_len;
    uint16_t qualname_len;
    uint32_t linetable_len;
    uint64_t reserved;
};
_Static_assert(sizeof(struct ftp_rec_code) == 32, "code record");
#define FTP_CODE_FLAG_LINETABLE_TRUNCATED 1u

/*  One Python frame inside a STACK record (8 bytes)
 *   0 code_id u32 (0: a frame whose code could not be read)
 *   4 instr_offset u31 (bytes from the first instruction) | entry u1 (top bit)
 *  `entry` marks the outermost Python frame of one C-level call of the eval loop, so the analyzer can
 *  swap each run of _PyEval_EvalFrameDefault native frames for the Python frames it was running.
 */
struct ftp_py_frame {
    uint32_t code_id;
    uint32_t instr_offset;
};
#define FTP_PY_FRAME_ENTRY 0x80000000u
_Static_assert(sizeof(struct ftp_py_frame) == 8, "python frame");

/*  FTP_REC_STACK (24 bytes + frames), innermost frame first in both lists
 *   0 header   8 stack_id u32   12 py_count u16   14 native_count u16   16 hash u64
 *  24 py_count × ftp_py_frame, then native_count × u64 return addresses
 */
struct ftp_rec_stack {
    struct ftp_record h;
    uint32_t stack_id;
    uint16_t py_count;
    uint16_t native_count;
    uint64_t hash;
};
_Static_assert(sizeof(struct ftp_rec_stack) == 24, "stack record");
#define FTP_MAX_PY_FRAMES 128
#define FTP_MAX_NATIVE_FRAMES 64

/*  FTP_REC_TYPE (24 bytes + name)
 *   0 header   8 type_id u32   12 name_len u32   16 type_addr u64   24 name bytes, padding
 */
struct ftp_rec_type {
    struct ftp_record h;
    uint32_t type_id;
    uint32_t name_len;
    uint64_t type_addr;
};
_Static_assert(sizeof(struct ftp_rec_type) == 24, "type record");

/* What the recorder knows about the thing waited on (ftp_rec_wait.kind). The analyzer may refine
 * LOCK/RLOCK waits made inside threading.Condition.wait into CONDITION, EVENT waits from Thread.join
 * into THREAD_JOIN, and attribute SPIN waits (no address) to the lock their stack parks on. */
enum ftp_kind {
    FTP_KIND_OTHER = 0,            /* a wait we could not name */
    FTP_KIND_LOCK = 1,             /* threading.Lock (_thread.lock's PyMutex) */
    FTP_KIND_RLOCK = 2,            /* threading.RLock */
    FTP_KIND_CRITICAL_SECTION = 3, /* a per-object PyMutex (ob_mutex): type_id names the type */
    FTP_KIND_PYMUTEX = 4,          /* another PyMutex; region/offset say where it lives */
    FTP_KIND_STOP_THE_WORLD = 5,   /* parked on its own thread state, or requesting a stop */
    FTP_KIND_GIL = 6,              /* take_gil's condition wait, or the GIL's pthread mutex */
    FTP_KIND_CONDITION = 7,        /* waiting for work: Condition/Event/Semaphore/Barrier/queue */
    FTP_KIND_THREAD_JOIN = 8,      /* Thread.join */
    FTP_KIND_PTHREAD_MUTEX = 9,    /* a contended pthread_mutex_lock in native code */
    FTP_KIND_PTHREAD_RWLOCK = 10,  /* a contended pthread_rwlock_{rd,wr}lock */
    FTP_KIND_EVENT = 11,           /* a PyEvent or other parking-lot wait without a mutex */
    FTP_KIND_PYTHREAD_LOCK = 12,   /* a PyThread_type_lock semaphore that is not an RLock */
    FTP_KIND_SPIN = 13,            /* a PyMutex spin that acquired without parking: no address */
    FTP_KIND_COND_WAIT = 14,       /* a pthread_cond_wait outside the interpreter */
    FTP_KIND_GC_PAUSE = 15,        /* a stop-the-world pause while the garbage collector runs (readers
                                      that predate it show it as `other`) */
    FTP_KIND_SEQLOCK = 16,         /* yields of the type cache's seqlock (_PySeqLock_*): no address,
                                      type_id the type looked up when it could be read (readers that
                                      predate it show it as `other`) */
    FTP_KIND_COUNT
};

/* Where a FTP_KIND_PYMUTEX / STOP_THE_WORLD address lives (ftp_rec_wait.region). */
enum ftp_region {
    FTP_REGION_UNKNOWN = 0,
    FTP_REGION_HEAP = 1,      /* some object or allocation */
    FTP_REGION_RUNTIME = 2,   /* inside _PyRuntime: offset from its start */
    FTP_REGION_INTERP = 3,    /* inside the main interpreter state */
    FTP_REGION_TSTATE = 4,    /* inside the waiting thread's own PyThreadState */
};

/* ftp_rec_wait.h.flags */
#define FTP_WAIT_HANDED_OFF (1u << 0)   /* the lock was handed to the waiter by the releaser */
#define FTP_WAIT_TIMED_OUT (1u << 1)    /* the wait ended by timeout */
#define FTP_WAIT_CONTINUES (1u << 2)    /* another wait record of the same acquisition follows */
#define FTP_WAIT_CONTINUATION (1u << 3) /* continues the acquisition of the previous record (acq_seq) */
#define FTP_WAIT_TIMED (1u << 4)        /* the caller asked for a timed wait */
#define FTP_WAIT_FAILED (1u << 5)       /* the lock call failed at once (EDEADLK...): no wait, no acquisition;
                                           written so the cost of that path is the recorder's usual one */

/*  FTP_REC_WAIT (88 bytes; 80 before version 7)
 *   0 header (flags: FTP_WAIT_*)
 *   8 tid u32    12 kind u8 | region u8 | reserved u16
 *  16 event_id u64 (tid << 32 | per-thread sequence; HOLDER records point here)
 *  24 acq_seq u64 (same value for all parks of one acquisition)
 *  32 start_ns u64 (first spin, or the park)   40 park_ns u64 (0: never parked)   48 end_ns u64
 *  56 lock_addr u64 (0: SPIN, SEQLOCK)              64 stack_id u32    68 type_id u32 (0: none)
 *  72 region_offset u32 (offset inside region)  76 reserved u32
 *  80 caller u64 (version 7): for PTHREAD_MUTEX / PTHREAD_RWLOCK waits, the return address of the
 *     pthread_*lock call, so the analyzer can name the object that took the lock from the MODULE
 *     records (written for it also without FTPROF_NATIVE); 0 for other kinds or when not known.
 *  Readers take the first 80 bytes of any WAIT record at least that long (older readers thus read
 *  version 7 files), and the caller only from records of 88 bytes or more.
 */
struct ftp_rec_wait {
    struct ftp_record h;
    uint32_t tid;
    uint8_t kind;
    uint8_t region;
    uint16_t reserved0;
    uint64_t event_id;
    uint64_t acq_seq;
    uint64_t start_ns;
    uint64_t park_ns;
    uint64_t end_ns;
    uint64_t lock_addr;
    uint32_t stack_id;
    uint32_t type_id;
    uint32_t region_offset;
    uint32_t reserved1;
    uint64_t caller;
};
_Static_assert(sizeof(struct ftp_rec_wait) == 88, "wait record");
#define FTP_REC_WAIT_V6_SIZE 80 /* WAIT records before version 7: no caller */

/*  FTP_REC_HOLDER (40 bytes)
 *   0 header   8 tid u32 (the releaser)   12 stack_id u32   16 waiter_event_id u64
 *  24 time_ns u64 (the wake-up)   32 lock_addr u64
 */
struct ftp_rec_holder {
    struct ftp_record h;
    uint32_t tid;
    uint32_t stack_id;
    uint64_t waiter_event_id;
    uint64_t time_ns;
    uint64_t lock_addr;
};
_Static_assert(sizeof(struct ftp_rec_holder) == 40, "holder record");

/*  FTP_REC_MODULE (40 bytes + build id + path)
 *   0 header   8 base u64 (load bias)   16 start u64   24 end u64 (executable mapping range)
 *  32 build_id_len u16   34 path_len u16   36 reserved u32   40 build id bytes, path bytes, padding
 */
struct ftp_rec_module {
    struct ftp_record h;
    uint64_t base;
    uint64_t start;
    uint64_t end;
    uint16_t build_id_len;
    uint16_t path_len;
    uint32_t reserved;
};
_Static_assert(sizeof(struct ftp_rec_module) == 40, "module record");

/*  FTP_REC_GIL_ENABLED (24 bytes + path)
 *   0 header   8 time_ns u64 (load of the extension that re-enabled it)   16 path_len u32   20 tid u32
 *  24 path of that extension module (its file name gives the module), padding
 */
struct ftp_rec_gil_enabled {
    struct ftp_record h;
    uint64_t time_ns;
    uint32_t path_len;
    uint32_t tid;
};
_Static_assert(sizeof(struct ftp_rec_gil_enabled) == 24, "gil record");

/*  FTP_REC_THREAD_END (72 bytes; 48 before version 8), written once per thread as it ends: from its TLS
 *  destructor, or for the thread that calls exit() at exit. Threads alive at exit (daemons) and every
 *  thread of a killed process have none: the analyzer ends them at the file's end (the last event's
 *  time if killed).
 *   0 header   8 tid u32   12 reserved u32
 *  16 start_ns u64 (the thread's first call into the recorder)   24 start_cpu_ns u64 (its CPU clock then)
 *  32 end_ns u64   40 cpu_ns u64 (CLOCK_THREAD_CPUTIME_ID at end_ns: the thread's whole CPU time)
 *  -- version 8 --
 *  48 created_ns u64: when the kernel created the thread (starttime of /proc/self/task/TID/stat, moved
 *     to CLOCK_MONOTONIC), rounded down to a clock tick; 0: not known
 *  56 created_tick_ns u32 (that tick: the creation lies in [created_ns, created_ns + tick))
 *  60 flags u32 (FTP_THREAD_END_*)
 *  64 run_delay_ns u64: time it spent runnable but waiting for a CPU (the kernel's schedstat run delay,
 *     second field of /proc/self/task/TID/schedstat), valid with FTP_THREAD_END_RUN_DELAY
 *  A thread ran at least start_cpu_ns before start_ns, so it was created no later than
 *  start_ns - start_cpu_ns; the analyzer takes the creation from both bounds (version 8), or that one.
 */
#define FTP_THREAD_END_RUN_DELAY (1u << 0) /* run_delay_ns was read (the kernel has schedstats) */
struct ftp_rec_thread_end {
    struct ftp_record h;
    uint32_t tid;
    uint32_t reserved;
    uint64_t start_ns;
    uint64_t start_cpu_ns;
    uint64_t end_ns;
    uint64_t cpu_ns;
    uint64_t created_ns;
    uint32_t created_tick_ns;
    uint32_t flags;
    uint64_t run_delay_ns;
};
#define FTP_THREAD_END_V3_SIZE 48 /* the record before version 8: the fields up to cpu_ns */
_Static_assert(sizeof(struct ftp_rec_thread_end) == 72, "thread end record");

/*  FTP_REC_INFLIGHT (64 bytes + slots): spans the whole chunk header.inflight_chunk - 1, written when the
 *  file is created and never moved (ring mode does not reuse that chunk). Old readers skip it.
 *   0 header   8 slot_count u32   12 slot_size u32 (64)   16 reserved[48]   64 slot_count × slots
 *
 *  ftp_inflight_slot (64 bytes, one cache line), owned by one thread from its first wait to its exit:
 *   0 seq u32 (odd while its owner writes it)   4 tid u32 (0: free; claimed with a CAS)
 *   8 start_ns u64 (0: not waiting now)        16 lock_addr u64
 *  24 kind u8 | region u8 | flags u16 (FTP_WAIT_TIMED)   28 region_offset u32
 *  32 type_id u32   36 stack_id u32 (its STACK record is committed before the slot is published)
 *  40 event_id u64 (the WAIT record written when the wait ends has the same)
 *  48 owner u64 (the holder's thread ident where the lock says: a 3.14+ RLock; 0: unknown)
 *  56 thread_ident u64 (this thread's pthread_self(), which owners are given in)
 *  A reader copies a slot, then reads seq again: an odd seq or one that changed means a torn copy.
 */
struct ftp_rec_inflight {
    struct ftp_record h;
    uint32_t slot_count;
    uint32_t slot_size;
    uint8_t reserved[48];
};
_Static_assert(sizeof(struct ftp_rec_inflight) == 64, "inflight record");

struct ftp_inflight_slot {
    uint32_t seq;
    uint32_t tid;
    uint64_t start_ns;
    uint64_t lock_addr;
    uint8_t kind;
    uint8_t region;
    uint16_t flags;
    uint32_t region_offset;
    uint32_t type_id;
    uint32_t stack_id;
    uint64_t event_id;
    uint64_t owner;
    uint64_t thread_ident;
};
_Static_assert(sizeof(struct ftp_inflight_slot) == 64, "inflight slot");

/*  FTP_REC_EXTENSION (40 bytes + name + path): one Python extension module. Two kinds, by h.flags:
 *  FTP_EXT_LOADED, written as the import looks up the module's PyInit_<name> (or 3.15's PyModExport_<name>)
 *  in the freshly loaded object, before any of the module's code ran: the importing thread, its stack,
 *  the time, the object's path, and the short name from the symbol. FTP_EXT_DECLARED, written from the
 *  module's own calls into the interpreter's module API during its init (PyModuleDef_Init and
 *  PyModule_FromDefAndSpec2 for multi-phase init, PyModule_Create2 and PyUnstable_Module_SetGIL for
 *  single-phase init): what the module definition says about the GIL, and its full name (m_name).
 *  A module may have several DECLARED records (single-phase: created, then declared): the last one's gil
 *  counts; init is FTP_EXT_INIT_UNKNOWN in one that does not tell (PyUnstable_Module_SetGIL's).
 *  Records of one module share `base`, the load bias of its object.
 *   0 header (flags: FTP_EXT_*)   8 tid u32   12 stack_id u32 (LOADED; 0: none)   16 time_ns u64
 *  24 base u64   32 gil u8 (FTP_EXT_GIL_*)   33 init u8 (FTP_EXT_INIT_*)   34 name_len u16
 *  36 path_len u16   38 reserved u16   40 name bytes, path bytes, padding
 */
struct ftp_rec_extension {
    struct ftp_record h;
    uint32_t tid;
    uint32_t stack_id;
    uint64_t time_ns;
    uint64_t base;
    uint8_t gil;
    uint8_t init;
    uint16_t name_len;
    uint16_t path_len;
    uint16_t reserved;
};
_Static_assert(sizeof(struct ftp_rec_extension) == 40, "extension record");
#define FTP_EXT_LOADED (1u << 0)       /* the import (see above) */
#define FTP_EXT_DECLARED (1u << 1)     /* what its init declared: gil, init, name */
#define FTP_EXT_BEFORE_START (1u << 2) /* LOADED: already loaded when this recording started (attach, fork
                                          child): time is the start, no stack; gil/init from an earlier
                                          recording of the same process when it saw the import, else
                                          from the object's initialised multi-phase definitions */
#define FTP_EXT_GIL_WAS_ON (1u << 3)   /* LOADED: the GIL was already enabled for good at this import */
enum ftp_ext_gil {
    FTP_EXT_GIL_UNKNOWN = 0,  /* not seen, or not readable on this build */
    FTP_EXT_GIL_NOT_USED = 1, /* Py_mod_gil = Py_MOD_GIL_NOT_USED, or PyUnstable_Module_SetGIL(NOT_USED) */
    FTP_EXT_GIL_USED = 2,     /* declared nothing (free-threaded build) or Py_MOD_GIL_USED */
};
enum ftp_ext_init {
    FTP_EXT_INIT_UNKNOWN = 0,
    FTP_EXT_INIT_MULTI = 1,  /* PyModuleDef_Init / PyModule_FromDefAndSpec2: the def's m_slots were read */
    FTP_EXT_INIT_SINGLE = 2, /* PyModule_Create2 */
    FTP_EXT_INIT_EXPORT = 3, /* 3.15's PyModExport_<name>: slots the recorder cannot see without a call */
};

static inline uint32_t ftp_record_padded(uint32_t n) { return (n + FTP_RECORD_ALIGN - 1) & ~(uint32_t)(FTP_RECORD_ALIGN - 1); }

#endif /* FTPROF_FORMAT_H */
