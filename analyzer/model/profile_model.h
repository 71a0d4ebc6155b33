/* The loaded model every stage of the analyzer reads and fills (internal to profile*.c).
 *
 * prof_load (profile_load.c) runs the stages in order over one prof_internal:
 *   profile_defs.c    pass 1 over each recording: threads, code objects, stacks, types, modules, GIL events
 *   profile_events.c  pass 2, records stage: waits joined into acquisitions, wake-ups joined to the
 *                     waits they ended (holder sites, hold times); each closed acquisition handed on
 *   profile_batch.c   ... to the close stage, inline or through batches to a thread of its own
 *   profile_close.c   pass 2, close stage: aggregated per lock and per (lock, stack); after all files,
 *                     spins placed on their locks
 *   profile_stacks.c  stacks resolved into Python and native frames; sites merged by their text
 *   profile_names.c   lock labels, with DWARF field names for the interpreter's own mutexes
 *   profile_source.c  source lines of the files the frames name
 * profile_model.c holds the few primitives they share; after loading, profile_time.c accounts for the
 * threads' time, and profile_timeline.c streams the waits again for a timeline. Nothing here grows with the number of events. */
#ifndef FTPROF_ANALYZER_PROFILE_MODEL_H
#define FTPROF_ANALYZER_PROFILE_MODEL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ftprof/format.h"
#include "profile.h"
#include "profile_hist.h"
#include "profile_map.h"

#define PROF_UNKNOWN "[unknown]"
#define PROF_NO_FRAMES "[no stack]"
#define PROF_NO_STACK UINT32_MAX
#define PROF_PENDING_ACQUIRED 0x80000000u /* the holder's bound is its own acquisition (prof_pending.site) */
#define PROF_PENDING_SLOTS (1u << 16) /* holder/waiter join table: 2 MiB */
#define PROF_SOURCE_MAX (16u << 20)
#define PROF_LOCK_TIDS 8

/* Map key tags, so one map can hold several kinds of keys without collisions. */
enum { TAG_LOCK_TID = 1, TAG_SPIN_TID = 2 };

enum {
    CLS_CONDITION = 1, /* waiting inside Condition.wait for a notify */
    CLS_JOIN = 2,      /* inside Thread.join */
};

struct pcode {
    const char *qualname, *filename;
    int32_t firstlineno;
    uint8_t *linetable;
    uint32_t linetable_len;
};

struct pstack {
    uint32_t file;
    uint16_t py_count, native_count;
    struct ftp_py_frame *py;
    uint64_t *native;
    int cls; /* -1 until computed */
    int dangling; /* -1 until computed; 1: a frame names a code id the recording never defined */
    const struct prof_stack *resolved;
};

struct pmodule {
    uint64_t base, start, end;
    const char *path;
    uint8_t *build_id;
    size_t build_id_len;
};

/* Names the fields of one interpreter binary's state from its debug information. Recordings of the
 * same binary (worker processes, forked children: another load address each) share it, so memory
 * grows with the number of distinct interpreters, not of recordings. */
struct pnamer {
    const struct pmodule *module; /* the first recording's description of the binary */
    struct symbolizer *sym;       /* NULL: no usable debug information */
};
#define PROF_NAMERS 8

struct pfiledefs {
    struct pmodule *mods;
    size_t n_mods, cap_mods;
    struct symbolizer *sym;
    bool sym_built;
    uint64_t max_end_ns;
    uint64_t python_runtime; /* &_PyRuntime in the recorded process, 0 if unknown */
};

/* One thread's acquisition in progress (its last one once closed), and what holds need of it. */
struct pacq {
    uint32_t file, tid;
    bool open, handed_off;
    uint8_t raw_kind, region;
    uint32_t stack_id, type_id, region_offset;
    uint64_t acq_seq, start, park, end, addr;
    uint64_t caller;               /* a native lock call's return address (format 7), 0 if unknown */
    uint32_t thread;               /* 1 + index into profile.threads, 0 until looked up */
    uint32_t site_hint;            /* see prof_closed.site_hint */
    uint64_t rel_addr, rel_ns;     /* the thread's last release recorded as a holder */
    /* The acquisition's last park, held back until the thread's next record says whether it was the
     * last: a waiter woken only to lose the lock again parks once more in the same acquisition, and
     * only the wake-up that ended the wait counts it for a holder (so holders never outnumber waits). */
    bool park_held;
    uint64_t park_event_id, park_wait, park_start;
};

/* A raw kind of the analyzer's own: GIL waits while an import had the GIL on for a moment. */
#define PROF_RAW_GIL_TRANSIENT 0xf0

struct plock {
    uint32_t file;
    enum prof_kind kind;
    uint8_t raw_kind, region;
    uint32_t type_id, region_offset;
    uint64_t addr;
    uint64_t contentions, wait, min, max, spin, handoffs, parked;
    uint32_t threads;
    struct phist *hist;
    uint32_t recent_tids[PROF_LOCK_TIDS]; /* threads already counted, checked before the map */
    bool merged;     /* one row for many short-lived objects: condition waiter locks, joined threads */
    uint32_t hgroup; /* for merged locks: 1 + their holder group */
    const char *name; /* the report's name, once finished */
    /* pthread mutex/rwlock: the first lock call's return address seen, one in another object, and
     * the last other call site found in the first one's object; 0 when the records have none */
    uint64_t caller, other_caller, same_object_caller;
};

struct psite {
    uint32_t owner; /* lock or holder group index */
    uint32_t stack_id;
    uint64_t wait, count;
    union { /* 48 bytes a site: a waiter site's fields or a holder site's, never both */
        struct { /* holder sites */
            struct phist *hold; /* hold times, allocated at the first one */
            uint64_t hold_max;
            uint64_t hold_exact; /* holds timed from the releaser's own acquisition (the others: from the wait's start) */
        };
        struct { /* waiter sites: the raw fields of the acquisition that last resolved to this site, for
                  * the wait cache (its file is the lock's) */
            uint64_t key_addr;
            uint32_t key_type;
            uint8_t key_raw;
        };
    };
};

struct pspin {
    uint32_t file, stack_id;
    uint32_t lock; /* 1 + the lock it was placed on, once placed */
    uint64_t count, wait, spin, min, max;
    struct phist hist;
};

struct phgroup {
    uint32_t file;
    uint64_t addr;
    struct prof_site *sites;
    size_t n_sites;
};

struct psource {
    char *data;
    size_t len;
    size_t *starts;
    size_t n_lines;
};

#define PROF_LOCK_CACHE 1024
#define PROF_WAIT_CACHE 65536 /* entries of the wait cache: 256 KiB, allocated at the first wait */
#define PROF_HSITE_CACHE 16384 /* entries of prof_hsite_cache: 256 KiB, allocated at the first holder */

/* 32 bytes, two to a cache line: the table is the hottest memory of pass 2. */
struct prof_pending {
    uint64_t event_id;
    /* a wait: how long (value) and when it started (t1); a holder: the earliest its hold can have
     * begun (value: 0 when nothing is known) and the wake-up (t1) */
    uint64_t value, t1;
    uint32_t site;  /* a holder: the index of its site | PROF_PENDING_ACQUIRED */
    uint16_t file;  /* 1 + file index; 0: empty (files past 65534 join no holders) */
    bool holder;
    bool final;     /* a wait: the park that ended its acquisition (its holder counts a wait ended) */
    uint8_t age;
};

struct prof_lock_cache {
    uint64_t addr, k2;
    uint32_t index;
    bool valid;
};

/* A closed acquisition's lock row and (lock, stack) site are a function of its raw fields once the
 * file's definitions are read: the wait cache maps a hash of them to 1 + the index of the site they
 * last resolved to, and the site keeps those raw fields (psite.key_*) to check a hit against. A hit
 * skips the stack's class, the lock's key and two map probes, and touches only the site, which the
 * wait is added to anyway. */
/* A holder record's (file, lock address, stack) resolved to its holder site. */
struct prof_hsite_cache {
    uint64_t addr;
    uint32_t stack_id, file;
    uint32_t site;
    bool valid;
};

/* Pass 2 handles each wait and holder record PROF_AHEAD records after it met it, in place: in the
 * meantime the memory its handling will touch (the wait cache's slot and the site of the acquisition
 * it closes, the join table's slot) is fetched. The records still held when their chunk's walk ends
 * are handled then (prof_events_chunk_done), before the chunk's memory may go. */
#define PROF_AHEAD 4

/* Pass 2 runs in two stages that share no state: the records stage (profile_events.c: records into
 * acquisitions, wake-ups joined to waits, holder sites and hold times) hands each closed acquisition
 * to the close stage (profile_close.c: per-lock totals and histograms, (lock, stack) sites, spins,
 * threads' waits). On
 * a large file, with a core idle, the close stage runs in a thread of its own, fed by batches that keep
 * the order (profile_batch.c); else inline. The result is the same either way. */
enum { PROF_STAGE_RECORDS = 0, PROF_STAGE_CLOSE = 1 };

/* The records stage's work falls in two shares that touch disjoint parts of the model and need
 * nothing of each other: the waits (acquisitions opened, extended and closed: the close stage's
 * input) and the joins (wake-ups joined to the waits they ended: holder groups and sites, hold times,
 * the join table). Each follows the threads' acquisitions by itself. On a large file with a second
 * core, the joins share walks the file in a thread of its own (profile_joins.c) while the load's
 * thread reads the definitions and then does the waits share; else one walk does both. Each share
 * meets the same records in the same order either way, so the result is the same. */
enum { PROF_SHARE_WAITS = 1, PROF_SHARE_JOINS = 2, PROF_SHARE_ALL = 3 };

/* A closed acquisition, as the close stage needs it. */
struct prof_closed {
    uint64_t addr, start, park, end;
    uint64_t caller; /* a native lock call's return address, 0 if unknown */
    uint32_t file, tid, stack_id, type_id, region_offset;
    uint8_t raw_kind, region;
    bool handed_off;
    /* 1 + the site the wait cache named for the acquisition's fields when it began, 0 if none (or
     * with the close stage in a thread of its own): a guess the close checks like a wait cache hit,
     * so that the records stage can fetch the site ahead without waiting for the cache's slot. */
    uint32_t site_hint;
};

#define PROF_BATCH 4096 /* closed acquisitions a batch: 224 KiB */
#define PROF_THREADED_CHUNKS 16 /* a file of this many chunks or more: the close stage in a thread */
#define PROF_BATCHES 3  /* batches in flight between the stages */
struct prof_batch {
    struct prof_closed closed[PROF_BATCH];
    uint32_t n;
};
struct prof_pipe; /* profile_batch.c */
struct prof_joins; /* profile_joins.c */

/* A thread's acquisition by (file, tid), direct-mapped: records of a few threads interleave, and the
 * map's hash and probe cost more than the record's handling. */
#define PROF_ACQ_CACHE 64
struct prof_acq_cache {
    uint32_t file, tid;
    uint32_t index; /* 1 + index into acqs, 0: empty */
};

#define PROF_THREAD_CACHE 64
struct prof_thread_cache {
    uint32_t file, tid;
    uint32_t index; /* 1 + index into profile.threads, 0: empty */
};

struct prof_internal {
    struct pstr_pool strs;
    struct pmap codes_map, stacks_map, types_map, threads_map, acqs_map, locks_map, sites_map, tids_map, spins_map,
        hgroups_map, hsites_map, lines, interned_stacks, sources_map, aliases,
        fields_map; /* (file, region, offset) of interpreter-state waits -> 1 a lock, 2 no lock (DWARF) */
    struct pcode *codes;
    size_t n_codes, cap_codes;
    struct pstack *stacks;
    size_t n_stacks, cap_stacks;
    struct pacq *acqs;
    size_t n_acqs, cap_acqs;
    struct plock *locks;
    size_t n_locks, cap_locks;
    struct psite *sites;
    size_t n_sites, cap_sites;
    struct pspin *spins;
    size_t n_spins, cap_spins;
    struct phgroup *hgroups;
    size_t n_hgroups, cap_hgroups;
    struct psite *hsites;
    size_t n_hsites, cap_hsites;
    struct pfiledefs *defs;
    size_t cap_threads, cap_gil, cap_ext;
    struct prof_stack **rstacks; /* resolved stacks, owned here */
    size_t n_rstacks, cap_rstacks;
    struct prof_site **site_lists;
    size_t n_site_lists, cap_site_lists;
    struct psource *sources;
    size_t n_sources, cap_sources;
    char stdlib_dir[PATH_MAX]; /* where "<frozen ...>" sources live; "" until looked for */
    struct pnamer namers[PROF_NAMERS]; /* one per interpreter binary, shared by its recordings */
    size_t n_namers;
    bool stdlib_looked;
    struct prof_pending *pending;
    struct prof_lock_cache lock_cache[PROF_LOCK_CACHE];
    uint32_t *wait_cache;                 /* PROF_WAIT_CACHE entries, NULL until the first wait */
    struct prof_hsite_cache *hsite_cache; /* PROF_HSITE_CACHE entries, NULL until the first holder */
    const struct ftp_record *ahead[PROF_AHEAD]; /* records met and not handled yet, a ring */
    unsigned ahead_first, ahead_len;
    struct phist_ring hist_ring[2]; /* one for each stage of pass 2 */
    struct prof_pipe *pipe;             /* the batches between pass 2's stages, NULL when inline */
    unsigned share;                     /* PROF_SHARE_*: what this walk of pass 2 does */
    struct prof_joins *joins;           /* the joins share's thread, NULL when this walk does it */
    bool close_threaded;                /* the close stage runs in a thread of its own */
    struct prof_thread_cache thread_cache[PROF_THREAD_CACHE]; /* the close stage's */
    uint32_t cur_file;
    size_t last_acq; /* the acquisition touched last: consecutive records mostly share a thread */
    struct prof_acq_cache acq_cache[PROF_ACQ_CACHE]; /* the records stage's, after last_acq */
    bool oom;
    struct dist_cache *dists; /* the installed distributions read so far (dist.h), from prof_finish on */
    struct profile *p;
};

/* ---- primitives (inline: every stage calls them per record) ---- */

/* Grows *arr to hold one more element; returns the new element zeroed, or NULL (oom set). */
static inline void *prof_push(struct prof_internal *in, void **arr, size_t *n, size_t *cap, size_t elem)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        void *na = realloc(*arr, ncap * elem);
        if (!na) {
            in->oom = true;
            return NULL;
        }
        *arr = na;
        *cap = ncap;
    }
    void *e = (char *)*arr + (*n)++ * elem;
    memset(e, 0, elem);
    return e;
}
#define PUSH(in, field) ((__typeof__((in)->field))prof_push((in), (void **)&(in)->field, &(in)->n_##field, \
                                                           &(in)->cap_##field, sizeof(*(in)->field)))

static inline const char *prof_intern(struct prof_internal *in, const char *s, size_t len)
{
    const char *r = pstr_intern(&in->strs, s, len);
    if (!r)
        in->oom = true;
    return r;
}

static inline uint64_t *prof_put(struct prof_internal *in, struct pmap *m, uint64_t k1, uint64_t k2, bool *inserted)
{
    uint64_t *v = pmap_put(m, k1, k2, inserted);
    if (!v)
        in->oom = true;
    return v;
}

/* Where an acquisition's raw fields sit in the wait cache (PROF_WAIT_CACHE): both stages of pass 2 ask. */
static inline size_t prof_wait_slot_of(uint64_t addr, uint32_t stack_id, uint32_t type_id, uint32_t file, uint8_t raw)
{
    uint64_t h = (addr ^ ((uint64_t)stack_id << 32 | type_id)) * 0x9e3779b97f4a7c15ull;
    h ^= ((uint64_t)file << 8 | raw) * 0xbf58476d1ce4e5b9ull;
    return (h >> 32) % PROF_WAIT_CACHE;
}

static inline struct pcode *prof_code(struct prof_internal *in, uint32_t file, uint32_t code_id)
{
    uint64_t *v = pmap_get(&in->codes_map, file, code_id);
    return v ? &in->codes[*v] : NULL;
}

static inline struct pstack *prof_stack_def(struct prof_internal *in, uint32_t file, uint32_t stack_id)
{
    uint64_t *v = pmap_get(&in->stacks_map, file, stack_id);
    return v ? &in->stacks[*v] : NULL;
}

/* ---- the stages' entry points (each file's comment says what it does) ---- */

/* profile_model.c */
bool prof_ends_with(const char *s, const char *suffix);

/* profile_source.c */
/* The stripped text of file:line, interned; NULL if the file is not readable. */
const char *prof_source_text(struct prof_internal *in, const char *file, int line);
/* The first line of `file` that contains `needle`, stripped, or NULL. */
const char *prof_source_find(struct prof_internal *in, const char *file, const char *needle);
/* The standard library's directory (where the recording's threading.py lives), or NULL. */
const char *prof_stdlib_dir(struct prof_internal *in);
/* The name a user knows a lock or object by, from its top waiter's source line (profile_owner.c), or
 * NULL; *source becomes the line that says it when that is another frame's than the site's. */
const char *prof_lock_owner(struct prof_internal *in, const struct prof_lock *l, const char **source);

/* profile_defs.c */
int prof_code_line(struct prof_internal *in, uint32_t file, uint32_t code_id, uint32_t offset);
/* rd_walk visitors of pass 1 and pass 2; ctx is the prof_internal, in->cur_file the file. */
bool prof_visit_defs(void *ctx, uint32_t chunk, const struct ftp_record *rec);
/* profile_ext.c: after loading, the extension modules' import stacks, the re-enabling module and
 * distributions. */
void prof_extensions_finish(struct prof_internal *in);

/* profile_events.c */
void prof_join_park(struct prof_internal *in, struct pacq *a, bool final);
void prof_close_acq(struct prof_internal *in, struct pacq *a);
bool prof_visit_events(void *ctx, uint32_t chunk, const struct ftp_record *rec);
/* The end of a chunk's walk: handles the records prof_visit_events still holds from it. */
bool prof_events_chunk_done(void *ctx, uint32_t chunk);
/* After the walk of each file (every chunk's records handled by then): closes the file's acquisitions
 * still open, and does the histogram adds still deferred. */
void prof_events_end_file(struct prof_internal *in);

/* profile_close.c: the close stage, one closed acquisition into the aggregates; what it will touch,
 * fetched ahead (`far`: the wait cache's slot; else the site that slot names). */
void prof_close_apply(struct prof_internal *in, const struct prof_closed *a);
void prof_close_prefetch(struct prof_internal *in, const struct prof_closed *a, bool far);
/* The site (owner, stack_id) of the sites in *arr indexed by map, added if new; NULL when out of
 * memory. */
struct psite *prof_site_get(struct prof_internal *in, struct pmap *map, struct psite **arr, size_t *n, size_t *cap,
                            uint32_t owner, uint32_t stack_id);
/* After all files: spins onto locks, merged rows' holder groups gathered. */
void prof_attribute_spins(struct prof_internal *in);
void prof_merge_holder_groups(struct prof_internal *in);

/* profile_batch.c: the batches between pass 2's stages. prof_batch_start before a file's pass 2
 * (`threaded`: the close stage in a thread of its own, if one can be started; else inline, each
 * closed acquisition applied as it comes), push for each closed acquisition, finish once the records
 * stage is done (the close stage is then too). 0 or -ENOMEM. */
int prof_batch_start(struct prof_internal *in, bool threaded);
void prof_batch_push(struct prof_internal *in, const struct prof_closed *c);
void prof_batch_finish(struct prof_internal *in);

/* profile_joins.c: the joins share of a file's pass 2 in a thread of its own, started (if `rd` is
 * large and mapped, and a second core is there) before the file's definitions are read: the model's
 * join tables are lent to it, and in->share becomes PROF_SHARE_WAITS. prof_joins_finish waits for it
 * and takes the tables back (call it whenever prof_joins_start returned true, on errors too); it
 * returns the thread's walk's result (0, -errno or RD_ERR_*). */
struct rd_file;
bool prof_joins_start(struct prof_internal *in, const struct rd_file *rd);
int prof_joins_finish(struct prof_internal *in);

/* The thread (file, tid), created when first named; NULL when out of memory. */
struct prof_thread *prof_thread_get(struct prof_internal *in, uint32_t file, uint32_t tid);
/* Waits in flight when file in->cur_file ended, counted as waits that last until `end`. */
void prof_add_inflight(struct prof_internal *in, const struct ftp_inflight_slot *slots, size_t n, uint64_t end);
/* A thread's creation from the kernel's start time (to a tick) and the latest it can have been. */
uint64_t prof_thread_created(uint64_t created, uint32_t tick, uint64_t latest);

/* profile_time.c: after all files, each thread's lifetime and the run's split of thread time. */
void prof_time(struct prof_internal *in);

/* The lock an acquisition of the recorder's kind `raw` at `addr` through `stack_id` was counted on, as
 * pass 2 chose it (after all files: spins placed by their stack); NULL if none. */
const struct plock *prof_lock_of(struct prof_internal *in, uint32_t file, uint8_t raw, uint64_t addr, uint32_t type_id,
                                 uint32_t stack_id);

/* profile_stacks.c */
/* The psites of each owner (lock or holder group) as sorted prof_site lists, equal stack texts merged;
 * with `owner_holds` (holder sites: one per owner), the hold times of each site and of each owner. */
void prof_build_sites(struct prof_internal *in, const struct psite *ps, size_t n, size_t n_owners,
                      uint32_t (*file_of)(struct prof_internal *, uint32_t), struct prof_site **lists, size_t *lens,
                      struct prof_site *owner_holds);

/* The resolved frames of a stack id of `file` ([unknown] when undefined), for waits in flight (live.c). */
const struct prof_stack *prof_resolve(struct prof_internal *in, uint32_t file, uint32_t stack_id);
/* What a wait of the recorder's kind `raw_kind` through `stack_id` is (Condition.wait, Thread.join...). */
enum prof_kind prof_wait_kind(struct prof_internal *in, uint32_t file, uint8_t raw_kind, uint32_t stack_id);

/* profile_live.c: a file's recorded windows (pause/resume), min-wait and ring-mode counts from its
 * header; `end_ns` is where the recording ends (its end, or its last event when killed). */
void prof_file_live_facts(struct prof_file *f, const struct ftp_file_header *h, uint64_t end_ns);

/* profile_names.c */
/* The recorded object whose code holds `pc`, or NULL. */
const struct pmodule *prof_module_of_pc(const struct pfiledefs *d, uint64_t pc);
/* The object that took a native lock (from its callers and the recording's module map) and its
 * distribution, into o->native_*; then the name, which says them. */
void prof_lock_native_owner(struct prof_internal *in, const struct plock *l, struct prof_lock *o);
const char *prof_lock_name(struct prof_internal *in, const struct plock *l, const char *type);
/* A wait that never parked, named by the recorder's register scan as a PyMutex in the runtime or
 * interpreter state, on a field the interpreter's debug information says is no lock: a spin whose lock
 * is not known (it goes to the lock its stack parks on, or stays unattributed). */
bool prof_spin_on_non_lock(struct prof_internal *in, uint32_t file, uint8_t raw_kind, uint64_t park_ns, uint8_t region,
                           uint32_t region_offset);
const char *prof_lock_name_owned(struct prof_internal *in, const struct plock *l, const char *type,
                                 const struct prof_lock *o);

#endif
