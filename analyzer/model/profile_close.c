/* Pass 2's close stage: each closed acquisition (profile_events.c hands them over, through
 * profile_batch.c) is aggregated into its lock row's totals and histogram, its (lock, stack) site,
 * its thread's waits, or, for a spin, the spin's own row. After all files, spins (which name no lock)
 * are placed on the locks their stacks park on, and the holders of merged rows are gathered. */
#include "profile_model.h"

#include <stdlib.h>
#include <string.h>

static bool prof_is_threading(const char *file)
{
    return prof_ends_with(file, "/threading.py") || (file && strcmp(file, "threading.py") == 0);
}

static int prof_stack_class(struct prof_internal *in, uint32_t file, uint32_t stack_id)
{
    struct pstack *s = prof_stack_def(in, file, stack_id);
    if (!s)
        return 0;
    if (s->cls >= 0)
        return s->cls;
    int cls = 0;
    for (uint16_t i = 0; i < s->py_count; i++) {
        struct pcode *c = prof_code(in, file, s->py[i].code_id);
        if (!c || !prof_is_threading(c->filename))
            continue;
        const char *q = c->qualname;
        if (strcmp(q, "Thread.join") == 0 || prof_ends_with(q, "_wait_for_tstate_lock") ||
            strcmp(q, "_shutdown") == 0)
            cls |= CLS_JOIN;
        if (i == 0 && (strcmp(q, "Condition.wait") == 0 || strcmp(q, "Condition.wait_for") == 0)) {
            int line = prof_code_line(in, file, s->py[0].code_id, s->py[0].instr_offset & ~FTP_PY_FRAME_ENTRY);
            const char *text = prof_source_text(in, c->filename, line);
            /* Without the source, Condition.wait itself is the best evidence of waiting for a notify. */
            if (!text || strstr(text, "waiter.acquire"))
                cls |= CLS_CONDITION;
        }
    }
    s->cls = cls;
    return cls;
}

static enum prof_kind prof_refine(uint8_t raw, int cls)
{
    switch (raw) {
    case FTP_KIND_EVENT: return (cls & CLS_JOIN) ? PROF_KIND_THREAD_JOIN : PROF_KIND_OTHER;
    case FTP_KIND_LOCK: return (cls & CLS_CONDITION) ? PROF_KIND_CONDITION : PROF_KIND_LOCK;
    case FTP_KIND_RLOCK: return (cls & CLS_CONDITION) ? PROF_KIND_CONDITION : PROF_KIND_RLOCK;
    case FTP_KIND_PYTHREAD_LOCK: return (cls & CLS_CONDITION) ? PROF_KIND_CONDITION : PROF_KIND_OTHER;
    case FTP_KIND_PYMUTEX: return (cls & CLS_CONDITION) ? PROF_KIND_CONDITION : PROF_KIND_PYMUTEX;
    case FTP_KIND_COND_WAIT: return PROF_KIND_CONDITION;
    case FTP_KIND_CRITICAL_SECTION: return PROF_KIND_CRITICAL_SECTION;
    case FTP_KIND_STOP_THE_WORLD: return PROF_KIND_STOP_THE_WORLD;
    case FTP_KIND_GC_PAUSE: return PROF_KIND_STOP_THE_WORLD;
    case FTP_KIND_GIL:
    case PROF_RAW_GIL_TRANSIENT: return PROF_KIND_GIL;
    case FTP_KIND_CONDITION: return PROF_KIND_CONDITION;
    case FTP_KIND_THREAD_JOIN: return PROF_KIND_THREAD_JOIN;
    case FTP_KIND_PTHREAD_MUTEX: return PROF_KIND_PTHREAD_MUTEX;
    case FTP_KIND_PTHREAD_RWLOCK: return PROF_KIND_PTHREAD_RWLOCK;
    default: return PROF_KIND_OTHER;
    }
}

static bool prof_lock_knows_tid(struct plock *l, uint32_t tid)
{
    for (unsigned i = 0; i < PROF_LOCK_TIDS; i++)
        if (l->recent_tids[i] == tid + 1)
            return true;
    l->recent_tids[tid % PROF_LOCK_TIDS] = tid + 1;
    return false;
}

static bool prof_merged_kind(enum prof_kind kind, uint8_t raw)
{
    /* Every thread parks on its own thread state during a pause: one row for all the pauses. */
    if (kind == PROF_KIND_STOP_THE_WORLD)
        return true;
    if (kind == PROF_KIND_THREAD_JOIN)
        return raw == FTP_KIND_EVENT;
    return kind == PROF_KIND_CONDITION && (raw == FTP_KIND_LOCK || raw == FTP_KIND_RLOCK ||
                                           raw == FTP_KIND_PYTHREAD_LOCK || raw == FTP_KIND_PYMUTEX);
}

/* The second key of a lock in locks_map (the first is its address). */
static uint64_t prof_lock_key(uint32_t file, enum prof_kind kind, uint32_t type_id, uint8_t raw)
{
    /* Waits of kind `other` come from different recorder kinds that must not merge. */
    uint8_t variant = (kind == PROF_KIND_OTHER || raw == FTP_KIND_SPIN || raw == PROF_RAW_GIL_TRANSIENT) ? raw : 0;
    if (prof_merged_kind(kind, raw))
        variant = raw == FTP_KIND_GC_PAUSE ? 0xfe : 0xff; /* collections' pauses apart from the others */
    /* A Lock's or RLock's kind already names its type; a wait recorded while another thread was still
     * defining that type has no type id, and must not make the lock a second row. */
    if (kind == PROF_KIND_LOCK || kind == PROF_KIND_RLOCK)
        type_id = 0;
    return ((uint64_t)file << 48) | ((uint64_t)kind << 40) | ((uint64_t)variant << 32) | type_id;
}

static struct plock *prof_lock_get(struct prof_internal *in, uint32_t file, uint64_t addr, enum prof_kind kind,
                                   uint32_t type_id, uint8_t raw, uint8_t region, uint32_t region_offset,
                                   uint32_t *index)
{
    uint64_t k2 = prof_lock_key(file, kind, type_id, raw);
    /* Most acquisitions hit a lock seen moments ago: a direct-mapped cache saves the map probe. */
    struct prof_lock_cache *c = &in->lock_cache[(addr ^ (addr >> 12) ^ k2 ^ (k2 >> 29)) % PROF_LOCK_CACHE];
    if (c->valid && c->addr == addr && c->k2 == k2) {
        *index = c->index;
        if (!in->locks[c->index].type_id)
            in->locks[c->index].type_id = type_id; /* as below: cached or not, the first type id known */
        return &in->locks[c->index];
    }
    bool ins;
    uint64_t *slot = prof_put(in, &in->locks_map, addr, k2, &ins);
    if (!slot)
        return NULL;
    if (ins) {
        struct plock *l = PUSH(in, locks);
        if (!l) {
            pmap_del(&in->locks_map, addr, k2);
            return NULL;
        }
        l->hist = calloc(1, sizeof(*l->hist));
        if (!l->hist) {
            in->oom = true;
            in->n_locks--;
            pmap_del(&in->locks_map, addr, k2);
            return NULL;
        }
        l->file = file;
        l->addr = addr;
        l->kind = kind;
        l->type_id = type_id;
        l->raw_kind = raw;
        l->region = region;
        l->region_offset = region_offset;
        *slot = in->n_locks - 1;
    }
    if (!in->locks[*slot].type_id)
        in->locks[*slot].type_id = type_id; /* the first wait may have come before the type's definition */
    *index = (uint32_t)*slot;
    *c = (struct prof_lock_cache){.addr = addr, .k2 = k2, .index = (uint32_t)*slot, .valid = true};
    return &in->locks[*slot];
}

struct psite *prof_site_get(struct prof_internal *in, struct pmap *map, struct psite **arr, size_t *n, size_t *cap,
                            uint32_t owner, uint32_t stack_id)
{
    bool ins;
    uint64_t *slot = prof_put(in, map, owner, stack_id, &ins);
    if (!slot)
        return NULL;
    if (ins) {
        struct psite *s = prof_push(in, (void **)arr, n, cap, sizeof(**arr));
        if (!s) {
            pmap_del(map, owner, stack_id);
            return NULL;
        }
        s->owner = owner;
        s->stack_id = stack_id;
        *slot = *n - 1;
    }
    return &(*arr)[*slot];
}

/* The thread of a closed acquisition, remembered by (file, tid) in a small direct-mapped cache. */
static struct prof_thread *prof_close_thread(struct prof_internal *in, const struct prof_closed *a)
{
    struct prof_thread_cache *c = &in->thread_cache[(a->tid * 2654435761u ^ a->file) % PROF_THREAD_CACHE];
    if (c->index && c->file == a->file && c->tid == a->tid)
        return &in->p->threads[c->index - 1];
    struct prof_thread *th = prof_thread_get(in, a->file, a->tid);
    if (th)
        *c = (struct prof_thread_cache){.file = a->file, .tid = a->tid, .index = (uint32_t)(th - in->p->threads) + 1};
    return th;
}

static void prof_thread_add_wait(struct prof_thread *th, enum prof_kind kind, uint64_t wait)
{
    if (!th)
        return;
    if (prof_kind_is_contention(kind))
        th->contention_ns += wait;
    else
        th->waiting_for_work_ns += wait;
}

/* On a free-threaded build started without the GIL, the GIL is on only while an extension module is
 * imported (_PyEval_EnableGILTransient) until an import that does not declare support turns it on for
 * good (a GIL_ENABLED record): a wait for it before that is a wait for an import. */
static bool prof_gil_is_transient(struct prof_internal *in, const struct prof_closed *a)
{
    const struct profile *p = in->p;
    uint32_t flags = a->file < p->n_files ? p->files[a->file].flags : 0;
    if (!(flags & FTP_FLAG_FREE_THREADED) || (flags & FTP_FLAG_GIL_AT_START))
        return false;
    for (size_t i = 0; i < p->n_gil_events; i++)
        if (p->gil_events[i].file == a->file && p->gil_events[i].time_ns <= a->start)
            return false;
    return true;
}

/* A native lock's callers: the first, and the first one in another object (looked up only for a call
 * site not seen last, so a lock taken from a few sites of one library costs a compare). */
static void prof_lock_note_caller(struct prof_internal *in, struct plock *l, uint64_t caller)
{
    if (!caller || caller == l->caller || caller == l->same_object_caller || l->other_caller)
        return;
    if (!l->caller) {
        l->caller = caller;
        return;
    }
    const struct pfiledefs *d = &in->defs[l->file];
    if (prof_module_of_pc(d, caller) == prof_module_of_pc(d, l->caller))
        l->same_object_caller = caller;
    else
        l->other_caller = caller;
}

/* A spin names no lock: which one it belongs to is known only once all parks were seen, so it waits,
 * aggregated by stack, for prof_attribute_spins. */
static void prof_close_spin(struct prof_internal *in, const struct prof_closed *a, uint64_t wait, uint64_t spin)
{
    bool ins;
    uint64_t *slot = prof_put(in, &in->spins_map, a->file, a->stack_id, &ins);
    if (!slot)
        return;
    if (ins) {
        struct pspin *sp = PUSH(in, spins);
        if (!sp) {
            pmap_del(&in->spins_map, a->file, a->stack_id);
            return;
        }
        sp->file = a->file;
        sp->stack_id = a->stack_id;
        *slot = in->n_spins - 1;
    }
    struct pspin *sp = &in->spins[*slot];
    sp->count++;
    sp->wait += wait;
    sp->spin += spin;
    if (wait > sp->max)
        sp->max = wait;
    if (sp->count == 1 || wait < sp->min)
        sp->min = wait;
    phist_add(&sp->hist, wait); /* not deferred: spins may move when the array grows */
    /* The thread's share of the spin's wait waits in the value until the spin's lock is known. */
    uint64_t *per_tid = prof_put(in, &in->tids_map, ((uint64_t)TAG_SPIN_TID << 32) | *slot, a->tid, NULL);
    if (per_tid)
        *per_tid += wait;
}

/* The lock row (index *li) and the (lock, stack) site an acquisition counts on, through the stack's
 * class and the lock and site maps; NULL when out of memory (*site may be NULL alone). */
static struct plock *prof_acq_resolve(struct prof_internal *in, const struct prof_closed *a, uint32_t *li,
                                      struct psite **site)
{
    enum prof_kind kind = prof_refine(a->raw_kind, prof_stack_class(in, a->file, a->stack_id));
    /* Condition.wait parks on a fresh waiter lock each time and every thread has its own join lock:
     * grouping those by address would give one row per wait, so they share one row per file and
     * remember the addresses to find their holders (notify, thread exit) later. */
    bool merge = prof_merged_kind(kind, a->raw_kind);
    struct plock *l = prof_lock_get(in, a->file, merge ? 0 : a->addr, kind, merge ? 0 : a->type_id, a->raw_kind,
                                    merge ? 0 : a->region, merge ? 0 : a->region_offset, li);
    if (!l)
        return NULL;
    if (merge)
        l->merged = true;
    *site = prof_site_get(in, &in->sites_map, &in->sites, &in->n_sites, &in->cap_sites, *li, a->stack_id);
    return &in->locks[*li];
}

static size_t prof_wait_slot(const struct prof_closed *a)
{
    return prof_wait_slot_of(a->addr, a->stack_id, a->type_id, a->file, a->raw_kind);
}

/* Whether `s` is the site an acquisition with a's raw fields resolved to last (see PROF_WAIT_CACHE). */
static bool prof_site_keyed(const struct prof_internal *in, const struct psite *s, const struct prof_closed *a)
{
    return s->key_addr == a->addr && s->stack_id == a->stack_id && s->key_type == a->type_id &&
           s->key_raw == a->raw_kind && in->locks[s->owner].file == a->file;
}

/* prof_acq_resolve, remembered by the acquisition's raw fields (see PROF_WAIT_CACHE): most
 * acquisitions repeat a recent (lock, stack). */
static struct plock *prof_acq_lookup(struct prof_internal *in, const struct prof_closed *a, uint32_t *li,
                                     struct psite **site)
{
    if (!in->wait_cache)
        in->wait_cache = pmap_zeroed(PROF_WAIT_CACHE, sizeof(*in->wait_cache)); /* without it: every time resolved */
    if (!in->wait_cache)
        return prof_acq_resolve(in, a, li, site);
    /* The hint, then the slot, name a site only once an acquisition resolved to it and set its key. */
    if (a->site_hint && a->site_hint <= in->n_sites && prof_site_keyed(in, &in->sites[a->site_hint - 1], a)) {
        *li = in->sites[a->site_hint - 1].owner;
        *site = &in->sites[a->site_hint - 1];
        return &in->locks[*li];
    }
    uint32_t *c = &in->wait_cache[prof_wait_slot(a)];
    if (*c && prof_site_keyed(in, &in->sites[*c - 1], a)) {
        /* The first resolve gave the lock its type id if it had none: nothing to update here. */
        *li = in->sites[*c - 1].owner;
        *site = &in->sites[*c - 1];
        return &in->locks[*li];
    }
    struct plock *l = prof_acq_resolve(in, a, li, site);
    if (l && *site) {
        struct psite *s = *site;
        s->key_addr = a->addr;
        s->key_type = a->type_id;
        s->key_raw = a->raw_kind;
        *c = (uint32_t)(s - in->sites) + 1;
    }
    return l;
}

/* Fetches what prof_close_apply will touch for `a`: at `far`, the wait cache slot; nearer, the site
 * the slot names (fetched by the far call some closes before). Reads only. */
void prof_close_prefetch(struct prof_internal *in, const struct prof_closed *a, bool far)
{
    if (!in->wait_cache || a->raw_kind == FTP_KIND_SPIN)
        return;
    uint32_t *c = &in->wait_cache[prof_wait_slot(a)];
    if (far)
        __builtin_prefetch(c);
    else if (*c)
        __builtin_prefetch(&in->sites[*c - 1]);
}

/* What the raw fields cannot say alone, settled before the lookups keyed by them: a spin the
 * recorder's register scan put on a field that is no lock has no known lock (prof_spin_on_non_lock),
 * and the GIL of a free-threaded build that nothing turned on for good was on for an import: those
 * waits are one row of their own, not the GIL's. */
static void prof_close_settle(struct prof_internal *in, struct prof_closed *a)
{
    if (prof_spin_on_non_lock(in, a->file, a->raw_kind, a->park, a->region, a->region_offset)) {
        a->raw_kind = FTP_KIND_SPIN;
        a->addr = 0;
        a->type_id = 0;
        a->region = FTP_REGION_UNKNOWN;
        a->region_offset = 0;
    } else if (a->raw_kind == FTP_KIND_GIL && prof_gil_is_transient(in, a)) {
        a->raw_kind = PROF_RAW_GIL_TRANSIENT;
        a->addr = 0;
        a->region = 0;
        a->region_offset = 0;
    }
}

/* Whether prof_close_settle may change `a`: its two cases, by the raw fields alone (cheap tests). */
static bool prof_close_may_settle(const struct prof_closed *a)
{
    return a->raw_kind == FTP_KIND_GIL ||
           (!a->park && a->raw_kind == FTP_KIND_PYMUTEX &&
            (a->region == FTP_REGION_RUNTIME || a->region == FTP_REGION_INTERP));
}

void prof_close_apply(struct prof_internal *in, const struct prof_closed *closed)
{
    /* Copied only when it may change: the acquisition was just written field by field, and reading it
     * back whole (wider loads over narrower stores) stalls on every one. */
    struct prof_closed settled;
    const struct prof_closed *a = closed;
    if (prof_close_may_settle(closed)) {
        settled = *closed;
        prof_close_settle(in, &settled);
        a = &settled;
    }
    uint64_t wait = a->end > a->start ? a->end - a->start : 0;
    uint64_t spin = a->park ? (a->park > a->start ? a->park - a->start : 0) : wait;
    if (spin > wait)
        spin = wait;
    if (a->raw_kind == FTP_KIND_SPIN) {
        prof_close_spin(in, a, wait, spin);
        return;
    }

    uint32_t li;
    struct psite *s = NULL;
    struct plock *l = prof_acq_lookup(in, a, &li, &s);
    if (!l)
        return;
    enum prof_kind kind = l->kind;
    if (l->merged) {
        uint64_t *alias = prof_put(in, &in->aliases, a->file, a->addr, NULL);
        if (alias)
            *alias = (uint64_t)li + 1;
    }
    prof_lock_note_caller(in, l, a->caller);
    l->contentions++;
    l->wait += wait;
    l->spin += spin;
    if (wait > l->max)
        l->max = wait;
    if (l->contentions == 1 || wait < l->min)
        l->min = wait;
    l->handoffs += a->handed_off;
    l->parked += a->park != 0;
    phist_ring_add(&in->hist_ring[PROF_STAGE_CLOSE], l->hist, wait);
    prof_thread_add_wait(prof_close_thread(in, a), kind, wait);
    if (!prof_lock_knows_tid(l, a->tid)) {
        bool ins = false;
        if (prof_put(in, &in->tids_map, ((uint64_t)TAG_LOCK_TID << 32) | li, a->tid, &ins) && ins)
            l->threads++;
    }
    if (s) {
        s->wait += wait;
        s->count++;
    }
    if (kind == PROF_KIND_GIL) {
        struct profile *p = in->p;
        for (size_t i = 0; i < p->n_gil_events; i++)
            if (p->gil_events[i].file == a->file && a->start > p->gil_events[i].time_ns)
                p->gil_events[i].gil_wait_after_ns += wait;
    }
}

/* code_id << 32 | instruction offset of a stack's innermost Python frame, 0 if it has none. */
static uint64_t prof_innermost_py(struct prof_internal *in, uint32_t file, uint32_t stack_id)
{
    struct pstack *s = prof_stack_def(in, file, stack_id);
    if (!s || s->py_count == 0 || s->py[0].code_id == 0)
        return 0;
    return ((uint64_t)s->py[0].code_id << 32) | (s->py[0].instr_offset & ~FTP_PY_FRAME_ENTRY);
}

/* Kinds the recorder gives to a wait on a PyMutex (threading.Lock, 3.14's RLock, critical sections,
 * the interpreter's own mutexes): what a spin can have been waiting for. */
static bool prof_raw_kind_is_pymutex(uint8_t raw)
{
    return raw == FTP_KIND_LOCK || raw == FTP_KIND_RLOCK || raw == FTP_KIND_CRITICAL_SECTION || raw == FTP_KIND_PYMUTEX;
}

void prof_attribute_spins(struct prof_internal *in)
{
    if (in->n_spins == 0)
        return;
    /* For each (file, stack) the lock it parked on most often; failing that, the lock most often
     * parked on from the same innermost Python instruction under any caller. */
    struct pmap best = {0}, best_frame = {0};
    for (size_t i = 0; i < in->n_sites && !in->oom; i++) {
        const struct psite *s = &in->sites[i];
        const struct plock *l = &in->locks[s->owner];
        /* A spin is a PyMutex's: only a lock that parks on a PyMutex can be its lock, and only through a
         * stack it was seen with (without one, the waits of every kind that have no stack would share
         * it: a GIL wait or a thread's start-up). A stack counts through its Python frames: with
         * FTPROF_NATIVE=1 every stack has native ones, and a spin's lock must not depend on that. */
        if (s->stack_id == 0 || !prof_raw_kind_is_pymutex(l->raw_kind) || !prof_innermost_py(in, l->file, s->stack_id))
            continue;
        bool ins;
        uint64_t *v = prof_put(in, &best, l->file, s->stack_id, &ins);
        if (v && (ins || in->sites[*v].count < s->count))
            *v = i;
        uint64_t key = prof_innermost_py(in, l->file, s->stack_id);
        if (key && (v = prof_put(in, &best_frame, ((uint64_t)l->file << 32) | (key >> 32), (uint32_t)key, &ins)) &&
            (ins || in->sites[*v].count < s->count))
            *v = i;
    }
    uint32_t *lock_of = calloc(in->n_spins, sizeof(*lock_of));
    if (!lock_of) {
        in->oom = true;
        pmap_free(&best);
        return;
    }
    for (size_t i = 0; i < in->n_spins && !in->oom; i++) {
        struct pspin *sp = &in->spins[i];
        bool has_py = sp->stack_id && prof_innermost_py(in, sp->file, sp->stack_id);
        uint64_t *v = has_py ? pmap_get(&best, sp->file, sp->stack_id) : NULL;
        uint64_t key = v || !has_py ? 0 : prof_innermost_py(in, sp->file, sp->stack_id);
        if (key)
            v = pmap_get(&best_frame, ((uint64_t)sp->file << 32) | (key >> 32), (uint32_t)key);
        uint32_t li;
        struct plock *l;
        if (v) {
            li = in->sites[*v].owner;
            l = &in->locks[li];
        } else {
            /* A spin in Condition.wait that never parked still waited for a notify, not for a lock. */
            int cls = prof_stack_class(in, sp->file, sp->stack_id);
            l = prof_lock_get(in, sp->file, 0, (cls & CLS_CONDITION) ? PROF_KIND_CONDITION : PROF_KIND_OTHER, 0,
                              FTP_KIND_SPIN, 0, 0, &li);
            if (!l)
                break;
        }
        lock_of[i] = li;
        sp = &in->spins[i];
        sp->lock = li + 1;
        if (l->contentions == 0 || sp->min < l->min)
            l->min = sp->min;
        l->contentions += sp->count;
        l->wait += sp->wait;
        l->spin += sp->spin;
        if (sp->max > l->max)
            l->max = sp->max;
        phist_merge(l->hist, &sp->hist);
        struct psite *s = prof_site_get(in, &in->sites_map, &in->sites, &in->n_sites, &in->cap_sites, li,
                                        sp->stack_id);
        if (s) {
            s->wait += sp->wait;
            s->count += sp->count;
        }
    }
    /* Waiting threads of spins join those of their lock; collected first because inserting into the
     * map being swept could move its slots. */
    size_t n_pairs = 0;
    uint64_t(*pairs)[4] = malloc((in->tids_map.len ? in->tids_map.len : 1) * sizeof(*pairs));
    if (!pairs)
        in->oom = true;
    for (size_t j = 0; pairs && j < in->tids_map.cap; j++) {
        const struct pmap_slot *t = &in->tids_map.slots[j];
        if (t->used && (t->k1 >> 32) == TAG_SPIN_TID) {
            pairs[n_pairs][0] = lock_of[(uint32_t)t->k1];
            pairs[n_pairs][1] = t->k2;
            pairs[n_pairs][2] = t->val; /* the thread's wait in this spin slot */
            pairs[n_pairs++][3] = in->spins[(uint32_t)t->k1].file;
        }
    }
    for (size_t i = 0; i < n_pairs && !in->oom; i++) {
        bool ins = false;
        struct plock *l = &in->locks[pairs[i][0]];
        if (prof_put(in, &in->tids_map, ((uint64_t)TAG_LOCK_TID << 32) | pairs[i][0], pairs[i][1], &ins) && ins)
            l->threads++;
        struct prof_thread *th = prof_thread_get(in, (uint32_t)pairs[i][3], (uint32_t)pairs[i][1]);
        prof_thread_add_wait(th, l->kind, pairs[i][2]);
    }
    free(pairs);
    free(lock_of);
    pmap_free(&best);
    pmap_free(&best_frame);
}

/* Holder records name the address the waiter parked on; the holders of a merged row are those of
 * all its addresses, gathered into one new group. */
void prof_merge_holder_groups(struct prof_internal *in)
{
    if (in->aliases.len == 0)
        return;
    size_t n = in->n_hgroups;
    uint32_t *target = calloc(n ? n : 1, sizeof(*target));
    if (!target) {
        in->oom = true;
        return;
    }
    for (size_t g = 0; g < n && !in->oom; g++) {
        uint64_t *alias = pmap_get(&in->aliases, in->hgroups[g].file, in->hgroups[g].addr);
        if (!alias)
            continue;
        struct plock *l = &in->locks[*alias - 1];
        if (!l->hgroup) {
            struct phgroup *ng = PUSH(in, hgroups);
            if (!ng)
                break;
            ng->file = l->file;
            ng->addr = 0;
            l = &in->locks[*alias - 1];
            l->hgroup = (uint32_t)in->n_hgroups;
        }
        target[g] = l->hgroup;
    }
    for (size_t i = 0; i < in->n_hsites; i++)
        if (in->hsites[i].owner < n && target[in->hsites[i].owner])
            in->hsites[i].owner = target[in->hsites[i].owner] - 1;
    free(target);
}

enum prof_kind prof_wait_kind(struct prof_internal *in, uint32_t file, uint8_t raw_kind, uint32_t stack_id)
{
    return prof_refine(raw_kind, prof_stack_class(in, file, stack_id));
}

const struct plock *prof_lock_of(struct prof_internal *in, uint32_t file, uint8_t raw, uint64_t addr, uint32_t type_id,
                                 uint32_t stack_id)
{
    if (raw == FTP_KIND_SPIN) {
        uint64_t *v = pmap_get(&in->spins_map, file, stack_id);
        return v && in->spins[*v].lock ? &in->locks[in->spins[*v].lock - 1] : NULL;
    }
    enum prof_kind kind = prof_refine(raw, prof_stack_class(in, file, stack_id));
    bool merge = prof_merged_kind(kind, raw);
    uint64_t *v = pmap_get(&in->locks_map, merge ? 0 : addr, prof_lock_key(file, kind, merge ? 0 : type_id, raw));
    return v ? &in->locks[*v] : NULL;
}
