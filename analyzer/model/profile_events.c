/* Pass 2's records stage: waits become acquisitions, closed when their thread's next acquisition
 * begins and handed to the close stage (profile_batch.c, profile_close.c); wake-ups are joined to the
 * waits they ended, giving holder sites and hold times. */
#include "profile_model.h"

#include <stdlib.h>
#include <string.h>

void prof_close_acq(struct prof_internal *in, struct pacq *a)
{
    a->open = false;
    prof_batch_push(in, &(struct prof_closed){.addr = a->addr, .start = a->start, .park = a->park, .end = a->end,
                                              .file = a->file, .tid = a->tid, .stack_id = a->stack_id,
                                              .type_id = a->type_id, .region_offset = a->region_offset,
                                              .raw_kind = a->raw_kind, .region = a->region,
                                              .handed_off = a->handed_off, .caller = a->caller,
                                              .site_hint = a->site_hint});
}

static struct prof_acq_cache *prof_acq_cache_slot(struct prof_internal *in, uint32_t tid)
{
    return &in->acq_cache[(tid * 2654435761u ^ in->cur_file) % PROF_ACQ_CACHE];
}

/* The current file's acquisition of `tid` if it is the last one touched or cached; NULL otherwise
 * (it may still be in acqs_map). */
static struct pacq *prof_acq_known(struct prof_internal *in, uint32_t tid)
{
    if (in->last_acq < in->n_acqs) {
        struct pacq *a = &in->acqs[in->last_acq];
        if (a->tid == tid && a->file == in->cur_file)
            return a;
    }
    const struct prof_acq_cache *c = prof_acq_cache_slot(in, tid);
    if (c->index && c->tid == tid && c->file == in->cur_file) {
        in->last_acq = c->index - 1;
        return &in->acqs[c->index - 1];
    }
    return NULL;
}

static struct pacq *prof_acq_for(struct prof_internal *in, uint32_t tid)
{
    struct pacq *known = prof_acq_known(in, tid);
    if (known)
        return known;
    bool ins;
    uint64_t *slot = prof_put(in, &in->acqs_map, in->cur_file, tid, &ins);
    if (!slot)
        return NULL;
    if (ins) {
        struct pacq *a = PUSH(in, acqs);
        if (!a) {
            pmap_del(&in->acqs_map, in->cur_file, tid);
            return NULL;
        }
        a->file = in->cur_file;
        a->tid = tid;
        *slot = in->n_acqs - 1;
    }
    in->last_acq = *slot;
    *prof_acq_cache_slot(in, tid) = (struct prof_acq_cache){.file = in->cur_file, .tid = tid,
                                                            .index = (uint32_t)*slot + 1};
    return &in->acqs[*slot];
}

/* Holders and waiters are joined through the waiter's event id; whichever comes first waits in a
 * fixed two-way table, where a newcomer may push out an older entry: memory and time per record stay
 * constant, at the price of an occasional holder whose woken wait is not known. */
/* The first of the two slots event_id may sit in (see prof_pending_find). */
static size_t prof_pending_slot(const struct prof_internal *in, uint64_t event_id)
{
    uint32_t base = ((uint32_t)(event_id >> 32) ^ (in->cur_file << 20)) * 0x9e3779b1u;
    return (base + 2 * (uint32_t)event_id) & (PROF_PENDING_SLOTS - 2);
}

static struct prof_pending *prof_pending_find(struct prof_internal *in, uint64_t event_id, bool *found)
{
    if (!in->pending) {
        in->pending = pmap_zeroed(PROF_PENDING_SLOTS, sizeof(*in->pending));
        if (!in->pending) {
            in->oom = true;
            *found = false;
            return NULL;
        }
    }
    /* A thread's event ids count up (tid << 32 | sequence), and a wait meets its wake-up soon after: so
     * each thread's ids walk through the table in order from a place of their own, and the join touches
     * memory the previous one warmed instead of a random line of a 2 MiB table. */
    struct prof_pending *a = &in->pending[prof_pending_slot(in, event_id)], *b = a + 1;
    if (in->cur_file >= UINT16_MAX) {
        *found = false;
        return NULL;
    }
    uint16_t file = (uint16_t)(in->cur_file + 1);
    if (a->file == file && a->event_id == event_id)
        return *found = true, a;
    if (b->file == file && b->event_id == event_id)
        return *found = true, b;
    *found = false;
    /* Replace an empty slot, else the entry that was not replaced last time. */
    struct prof_pending *victim = !a->file ? a : !b->file ? b : (a->age ? a : b);
    a->age ^= 1;
    b->age = !a->age;
    return victim;
}

/* One hold, once a wake-up and the wait it ended (which started at `wait_start`) are joined. It ends at
 * the wake-up. It starts when the releaser got the lock after its own wait (`bound`) if that happened
 * while this waiter already waited; otherwise at the start of the wait, the earliest point the records
 * show the lock held: a releaser that took it before may have let it go and taken it again without
 * contention, which nothing records. Its previous release to a waiter (also `bound`) bounds it too.
 * So an acquisition the recorder did not see gives the shortest hold the records allow. (A thread that
 * took the lock without waiting just after another holder let it go, while this waiter waited on, is
 * charged from the start of the wait: the one case where a hold can come out longer than it was.) */
static void prof_hold_add(struct prof_internal *in, struct psite *s, uint64_t wake, uint64_t bound, bool acquired,
                          uint64_t wait_start)
{
    uint64_t from = bound > wait_start ? bound : wait_start;
    if (!from || from > wake)
        return;
    if (!s->hold && !(s->hold = calloc(1, sizeof(*s->hold)))) {
        in->oom = true;
        return;
    }
    uint64_t hold = wake - from;
    s->hold_exact += acquired && from == bound;
    phist_ring_add(&in->hist_ring[PROF_STAGE_RECORDS], s->hold, hold);
    if (hold > s->hold_max)
        s->hold_max = hold;
}

/* Joins the acquisition's held-back park with the release that woke it: the holder's site gets the
 * park's wait and the hold, and — if this park ended the acquisition (`final`) — one wait ended. */
void prof_join_park(struct prof_internal *in, struct pacq *a, bool final)
{
    if (!a->park_held)
        return;
    a->park_held = false;
    bool found;
    struct prof_pending *pe = prof_pending_find(in, a->park_event_id, &found);
    if (found && pe->holder) {
        struct psite *s = &in->hsites[pe->site & ~PROF_PENDING_ACQUIRED];
        s->wait += a->park_wait;
        s->count += final;
        prof_hold_add(in, s, pe->t1, pe->value, (pe->site & PROF_PENDING_ACQUIRED) != 0, a->park_start);
        pe->file = 0;
    } else if (pe && !found) {
        *pe = (struct prof_pending){.event_id = a->park_event_id, .value = a->park_wait, .t1 = a->park_start,
                                    .file = (uint16_t)(in->cur_file + 1), .final = final, .age = pe->age};
    }
}

/* See prof_closed.site_hint: the wait cache's slot for the acquisition's fields was fetched when its
 * record was met (prof_event_prefetch). With the close stage in a thread of its own, the cache is
 * that thread's: no hint. */
static uint32_t prof_site_hint(const struct prof_internal *in, const struct pacq *a)
{
    if (in->close_threaded || !in->wait_cache || a->raw_kind == FTP_KIND_SPIN)
        return 0;
    return in->wait_cache[prof_wait_slot_of(a->addr, a->stack_id, a->type_id, a->file, a->raw_kind)];
}

/* A wait record's share of pass 2. The waits share (PROF_SHARE_WAITS) opens, extends and closes its
 * thread's acquisition; the joins share (PROF_SHARE_JOINS) joins the acquisition's held-back park to
 * its wake-up and keeps what the thread's holder records ask of it (its lock and when it got it). Both
 * follow the acquisition the same way, so that each, run alone over the same records, does exactly
 * what it does when they run together. */
static void prof_event_wait(struct prof_internal *in, const struct ftp_record *rec)
{
    if (rec->size < FTP_REC_WAIT_V6_SIZE)
        return;
    const struct ftp_rec_wait *w = (const void *)rec;
    bool waits = in->share & PROF_SHARE_WAITS, joins = in->share & PROF_SHARE_JOINS;
    if (waits) {
        in->p->events++;
        struct pfiledefs *d = &in->defs[in->cur_file];
        if (w->end_ns > d->max_end_ns)
            d->max_end_ns = w->end_ns;
    }
    if (rec->flags & FTP_WAIT_FAILED)
        return; /* a lock call that failed at once (EDEADLK): nobody waited, nothing was acquired */

    struct pacq *a = prof_acq_for(in, w->tid);
    if (!a)
        return;
    uint64_t caller = rec->size >= sizeof(struct ftp_rec_wait) ? w->caller : 0;
    /* A record of the same acquisition: its earlier park's wake-up did not end the wait. */
    bool same = a->open && a->acq_seq == w->acq_seq;
    if (joins)
        prof_join_park(in, a, !same);
    if (same) {
        if (!a->park && w->park_ns)
            a->park = w->park_ns;
        a->end = w->end_ns;
        a->handed_off = (rec->flags & FTP_WAIT_HANDED_OFF) != 0;
        if (!a->caller)
            a->caller = caller;
        if (a->raw_kind == FTP_KIND_SPIN && w->kind != FTP_KIND_SPIN) {
            /* A spin that went on to park: the parked record names the lock. */
            a->raw_kind = w->kind;
            a->addr = w->lock_addr;
            a->type_id = w->type_id;
            a->stack_id = w->stack_id;
            a->region = w->region;
            a->region_offset = w->region_offset;
            if (waits)
                a->site_hint = prof_site_hint(in, a);
        }
    } else {
        if (a->open && waits)
            prof_close_acq(in, a);
        a->open = true;
        a->acq_seq = w->acq_seq;
        a->start = w->start_ns;
        a->park = w->park_ns;
        a->end = w->end_ns;
        a->addr = w->lock_addr;
        a->raw_kind = w->kind;
        a->region = w->region;
        a->region_offset = w->region_offset;
        a->type_id = w->type_id;
        a->stack_id = w->stack_id;
        a->caller = caller;
        a->handed_off = (rec->flags & FTP_WAIT_HANDED_OFF) != 0;
        if (waits)
            a->site_hint = prof_site_hint(in, a);
    }

    if (w->park_ns && joins) {
        a->park_held = true;
        a->park_event_id = w->event_id;
        a->park_wait = w->end_ns > w->start_ns ? w->end_ns - w->start_ns : 0;
        a->park_start = w->start_ns;
    }
}

/* The holder site of a release of the lock at `addr` through `stack_id` in the current file: its
 * holder group (one per lock address) and the group's site of that stack; NULL when out of memory. */
static struct psite *prof_hsite_resolve(struct prof_internal *in, uint64_t addr, uint32_t stack_id)
{
    bool ins;
    uint64_t *slot = prof_put(in, &in->hgroups_map, addr, in->cur_file, &ins);
    if (!slot)
        return NULL;
    if (ins) {
        struct phgroup *g = PUSH(in, hgroups);
        if (!g) {
            pmap_del(&in->hgroups_map, addr, in->cur_file);
            return NULL;
        }
        g->file = in->cur_file;
        g->addr = addr;
        *slot = in->n_hgroups - 1;
    }
    return prof_site_get(in, &in->hsites_map, &in->hsites, &in->n_hsites, &in->cap_hsites, (uint32_t)*slot, stack_id);
}

static size_t prof_hsite_slot(const struct prof_internal *in, uint64_t addr, uint32_t stack_id)
{
    uint64_t h = (addr ^ ((uint64_t)stack_id << 32 | in->cur_file)) * 0x9e3779b97f4a7c15ull;
    return (h >> 32) % PROF_HSITE_CACHE;
}

/* prof_hsite_resolve, remembered by (file, address, stack) in a direct-mapped cache. */
static struct psite *prof_hsite_lookup(struct prof_internal *in, uint64_t addr, uint32_t stack_id)
{
    if (!in->hsite_cache)
        in->hsite_cache = pmap_zeroed(PROF_HSITE_CACHE, sizeof(*in->hsite_cache)); /* without it: resolved each time */
    if (!in->hsite_cache)
        return prof_hsite_resolve(in, addr, stack_id);
    struct prof_hsite_cache *c = &in->hsite_cache[prof_hsite_slot(in, addr, stack_id)];
    if (c->valid && c->addr == addr && c->stack_id == stack_id && c->file == in->cur_file)
        return &in->hsites[c->site];
    struct psite *s = prof_hsite_resolve(in, addr, stack_id);
    if (s)
        *c = (struct prof_hsite_cache){.addr = addr, .stack_id = stack_id, .file = in->cur_file,
                                       .site = (uint32_t)(s - in->hsites), .valid = true};
    return s;
}

/* The waits still in progress when the file ended (threads blocked until exit: a hung program), as
 * acquisitions that end there, so that the locks, the threads and the time split count them up to the
 * end as the "blocked when the recording ended" list shows them. A spin in flight has no lock to name. */
void prof_add_inflight(struct prof_internal *in, const struct ftp_inflight_slot *slots, size_t n, uint64_t end)
{
    for (size_t i = 0; i < n; i++) {
        const struct ftp_inflight_slot *s = &slots[i];
        if (s->kind == FTP_KIND_SPIN || s->kind >= FTP_KIND_COUNT || !s->start_ns)
            continue;
        struct pacq *a = prof_acq_for(in, s->tid);
        if (!a)
            return;
        if (a->open)
            prof_close_acq(in, a);
        *a = (struct pacq){.file = a->file, .tid = a->tid, .thread = a->thread, .open = true,
                           .acq_seq = UINT64_MAX, .start = s->start_ns, .park = s->start_ns,
                           .end = end > s->start_ns ? end : s->start_ns, /* begun after the last sign of life */
                           .addr = s->lock_addr, .raw_kind = s->kind, .region = s->region,
                           .region_offset = s->region_offset, .type_id = s->type_id, .stack_id = s->stack_id};
        prof_close_acq(in, a);
        in->p->inflight_waits++;
    }
}

static void prof_event_holder(struct prof_internal *in, const struct ftp_record *rec)
{
    if (rec->size < sizeof(struct ftp_rec_holder))
        return;
    const struct ftp_rec_holder *h = (const void *)rec;
    struct psite *s = prof_hsite_lookup(in, h->lock_addr, h->stack_id);
    if (!s)
        return;
    /* Where the releaser's hold can have begun, from its own records: its last acquisition, if that was
     * of this lock, or its last release of it to a waiter, whichever came later. */
    uint64_t bound = 0;
    bool acquired = false; /* bound is the releaser's own acquisition, not its previous release */
    struct pacq *a = prof_acq_for(in, h->tid);
    if (a) {
        if (a->addr == h->lock_addr && a->end && a->end <= h->time_ns)
            bound = a->end, acquired = true;
        if (a->rel_addr == h->lock_addr && a->rel_ns <= h->time_ns && a->rel_ns > bound)
            bound = a->rel_ns, acquired = false;
        a->rel_addr = h->lock_addr;
        a->rel_ns = h->time_ns;
    }
    bool found;
    struct prof_pending *pe = prof_pending_find(in, h->waiter_event_id, &found);
    if (found && !pe->holder) {
        s->wait += pe->value;
        s->count += pe->final;
        prof_hold_add(in, s, h->time_ns, bound, acquired, pe->t1);
        pe->file = 0;
    } else if (pe && !found) {
        *pe = (struct prof_pending){.event_id = h->waiter_event_id, .value = bound, .t1 = h->time_ns,
                                    .site = (uint32_t)(s - in->hsites) | (acquired ? PROF_PENDING_ACQUIRED : 0),
                                    .file = (uint16_t)(in->cur_file + 1),
                                    .holder = true, .age = pe->age};
    }
}

static void prof_event(struct prof_internal *in, const struct ftp_record *rec)
{
    if (rec->type == FTP_REC_WAIT)
        prof_event_wait(in, rec);
    else if (in->share & PROF_SHARE_JOINS)
        prof_event_holder(in, rec);
}

/* Fetches what handling `rec` will touch that is likely far: for a holder, its slots of the join table
 * and of the holder site cache; for a wait, the join table's slot of its thread's held-back park and,
 * when the close stage runs inline (in a thread of its own, it fetches for itself), the wait cache
 * slot of the acquisition it may open (read for its site hint when the record is handled) and, if it
 * closes its thread's acquisition, the site that one's hint names. Reads only (the acquisition cache
 * aside): the model is not changed. */
static void prof_event_prefetch(struct prof_internal *in, const struct ftp_record *rec)
{
    bool joins = in->share & PROF_SHARE_JOINS;
    if (rec->type == FTP_REC_HOLDER && rec->size >= sizeof(struct ftp_rec_holder)) {
        const struct ftp_rec_holder *h = (const void *)rec;
        if (in->pending)
            __builtin_prefetch(&in->pending[prof_pending_slot(in, h->waiter_event_id)]);
        if (in->hsite_cache)
            __builtin_prefetch(&in->hsite_cache[prof_hsite_slot(in, h->lock_addr, h->stack_id)]);
        return;
    }
    if (rec->size < sizeof(struct ftp_rec_wait))
        return;
    const struct ftp_rec_wait *w = (const void *)rec;
    bool close_inline = (in->share & PROF_SHARE_WAITS) && !in->close_threaded && in->wait_cache;
    if (close_inline)
        __builtin_prefetch(&in->wait_cache[prof_wait_slot_of(w->lock_addr, w->stack_id, w->type_id, in->cur_file,
                                                             w->kind)]);
    const struct pacq *a = prof_acq_known(in, w->tid);
    if (!a) {
        uint64_t *v = pmap_get(&in->acqs_map, in->cur_file, w->tid);
        a = v ? &in->acqs[*v] : NULL;
    }
    if (!a)
        return;
    if (joins && a->park_held && in->pending) /* its join (prof_join_park) */
        __builtin_prefetch(&in->pending[prof_pending_slot(in, a->park_event_id)]);
    if (close_inline && a->open && a->acq_seq != w->acq_seq && a->site_hint && a->site_hint <= in->n_sites)
        __builtin_prefetch(&in->sites[a->site_hint - 1]);
}

bool prof_visit_events(void *ctx, uint32_t chunk, const struct ftp_record *rec)
{
    (void)chunk;
    struct prof_internal *in = ctx;
    if (rec->type != FTP_REC_WAIT && (rec->type != FTP_REC_HOLDER || !(in->share & PROF_SHARE_JOINS)))
        return true;
    prof_event_prefetch(in, rec);
    /* The records themselves: a page or so ahead, where the hardware's own fetching stops. */
    __builtin_prefetch((const char *)rec + 2048);
    if (in->ahead_len == PROF_AHEAD) {
        prof_event(in, in->ahead[in->ahead_first]);
        in->ahead[in->ahead_first] = rec;
        in->ahead_first = (in->ahead_first + 1) % PROF_AHEAD;
    } else {
        in->ahead[(in->ahead_first + in->ahead_len++) % PROF_AHEAD] = rec;
    }
    return !in->oom;
}

bool prof_events_chunk_done(void *ctx, uint32_t chunk)
{
    (void)chunk;
    struct prof_internal *in = ctx;
    for (; in->ahead_len && !in->oom; in->ahead_len--) {
        prof_event(in, in->ahead[in->ahead_first]);
        in->ahead_first = (in->ahead_first + 1) % PROF_AHEAD;
    }
    in->ahead_len = 0;
    in->ahead_first = 0;
    return !in->oom;
}

void prof_events_end_file(struct prof_internal *in)
{
    /* Every chunk's walk ended with its records handled (prof_events_chunk_done). */
    in->ahead_len = 0;
    in->ahead_first = 0;
    for (size_t a = 0; a < in->n_acqs; a++) {
        if (in->acqs[a].file == in->cur_file && (in->share & PROF_SHARE_JOINS))
            prof_join_park(in, &in->acqs[a], true); /* the thread's last park ended its last wait */
        if (in->acqs[a].open && in->acqs[a].file == in->cur_file && (in->share & PROF_SHARE_WAITS))
            prof_close_acq(in, &in->acqs[a]);
    }
    if (in->share & PROF_SHARE_JOINS)
        phist_ring_flush(&in->hist_ring[PROF_STAGE_RECORDS]);
    if (in->share & PROF_SHARE_WAITS)
        prof_batch_finish(in); /* the close stage's last batch, and its histogram adds */
}
