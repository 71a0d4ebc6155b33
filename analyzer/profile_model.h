/* The loaded model every stage of the analyzer reads and fills (internal to profile*.c).
 *
 * prof_load (profile_load.c) runs the stages in order over one prof_internal:
 *   profile_defs.c    pass 1 over each recording: threads, code objects, stacks, types, modules, GIL events
 *   profile_events.c  pass 2: waits joined into acquisitions, aggregated per lock and per (lock, stack);
 *                     wake-ups joined to the waits they ended; then spins placed on their locks
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
    uint32_t thread;               /* 1 + index into profile.threads, 0 until looked up */
    uint64_t rel_addr, rel_ns;     /* the thread's last release recorded as a holder */
    /* The acquisition's last park, held back until the thread's next record says whether it was the
     * last: a waiter woken only to lose the lock again parks once more in the same acquisition, and
     * only the wake-up that ended the wait counts it for a holder (so holders never outnumber waits). */
    bool park_held;
    uint64_t park_event_id, park_wait, park_start;
};

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
};

struct psite {
    uint32_t owner; /* lock or holder group index */
    uint32_t stack_id;
    uint64_t wait, count;
    struct phist *hold; /* holder sites: hold times, allocated at the first one */
    uint64_t hold_max;
    uint64_t hold_exact; /* holds timed from the releaser's own acquisition (the others: from the wait's start) */
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
#define PROF_SITE_CACHE 65536

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

struct prof_internal {
    struct pstr_pool strs;
    struct pmap codes_map, stacks_map, types_map, threads_map, acqs_map, locks_map, sites_map, tids_map, spins_map,
        hgroups_map, hsites_map, lines, interned_stacks, sources_map, aliases;
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
    size_t cap_threads, cap_gil;
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
    uint32_t site_cache[PROF_SITE_CACHE]; /* 1 + index into sites */
    uint32_t cur_file;
    size_t last_acq; /* the acquisition touched last: consecutive records mostly share a thread */
    bool oom;
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

/* profile_defs.c */
int prof_code_line(struct prof_internal *in, uint32_t file, uint32_t code_id, uint32_t offset);
/* rd_walk visitors of pass 1 and pass 2; ctx is the prof_internal, in->cur_file the file. */
bool prof_visit_defs(void *ctx, uint32_t chunk, const struct ftp_record *rec);

/* profile_events.c */
void prof_join_park(struct prof_internal *in, struct pacq *a, bool final);
void prof_close_acq(struct prof_internal *in, struct pacq *a);
bool prof_visit_events(void *ctx, uint32_t chunk, const struct ftp_record *rec);
/* After all files: spins onto locks, merged rows' holder groups gathered. */
void prof_attribute_spins(struct prof_internal *in);
void prof_merge_holder_groups(struct prof_internal *in);

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
const char *prof_lock_name(struct prof_internal *in, const struct plock *l, const char *type);

#endif
