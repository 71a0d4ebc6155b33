/* Loading recordings: runs the stages of profile_model.h over each file, then turns the model into
 * the public profile (locks with resolved sites, sorted by wait). */
#include "profile_model.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dist.h"
#include "reader.h"
#include "symbolize.h"

static uint32_t prof_lock_file(struct prof_internal *in, uint32_t o) { return in->locks[o].file; }
static uint32_t prof_hgroup_file(struct prof_internal *in, uint32_t o) { return in->hgroups[o].file; }

/* Contention first, then waiting for work (as the text report's two sections), each by total wait. */
static int prof_lock_cmp(const void *a, const void *b)
{
    const struct prof_lock *x = a, *y = b;
    bool cx = prof_kind_is_contention(x->kind), cy = prof_kind_is_contention(y->kind);
    if (cx != cy)
        return cx ? -1 : 1;
    if (x->wait_ns != y->wait_ns)
        return x->wait_ns < y->wait_ns ? 1 : -1;
    if (x->contentions != y->contentions)
        return x->contentions < y->contentions ? 1 : -1;
    if (x->file != y->file)
        return x->file < y->file ? -1 : 1;
    return x->address < y->address ? -1 : x->address > y->address;
}

/* The sites of every lock and of every holder group, built by prof_build_sites: lists per lock (wl,
 * wn), per holder group (hl, hn) and each group's hold times (hh). */
struct prof_site_lists {
    struct prof_site **wl, **hl;
    size_t *wn, *hn;
    struct prof_site *hh;
};

static void prof_site_lists_free(struct prof_site_lists *sl)
{
    free(sl->wl);
    free(sl->wn);
    free(sl->hl);
    free(sl->hn);
    free(sl->hh);
}

/* The lock's type name: from its type definition, else what the kind says. */
static void prof_lock_type(struct prof_internal *in, const struct plock *l, struct prof_lock *o)
{
    struct profile *p = in->p;
    if (l->type_id) {
        uint64_t *t = pmap_get(&in->types_map, l->file, l->type_id);
        o->type = t ? (const char *)(uintptr_t)*t : prof_intern(in, PROF_UNKNOWN, strlen(PROF_UNKNOWN));
        if (!t)
            p->files[l->file].dangling_types += l->contentions;
    } else if (l->kind == PROF_KIND_LOCK || l->kind == PROF_KIND_RLOCK) {
        /* Waits recorded while another thread defined the type: the recorder knew it by its name. */
        const char *tn = l->kind == PROF_KIND_LOCK ? "_thread.lock" : "_thread.RLock";
        o->type = prof_intern(in, tn, strlen(tn));
    }
}

/* A holder group can serve two rows: a Condition's waiter locks come and go, and a later Lock at one of
 * their addresses shares its releases. Its sites then end more waits than this row had: give the row a
 * copy, its sites (by wait) taking counts and wait up to the row's own. */
static void prof_holders_within_row(struct prof_internal *in, struct prof_lock *o)
{
    uint64_t ended = 0, ended_wait = 0;
    for (size_t h = 0; h < o->n_holders; h++)
        ended += o->holders[h].count, ended_wait += o->holders[h].wait_ns;
    if (ended > o->contentions || ended_wait > o->wait_ns) {
        struct prof_site *own = malloc(o->n_holders * sizeof(*own));
        struct prof_site **slot = own ? PUSH(in, site_lists) : NULL;
        if (!slot) {
            free(own);
            o->holders = NULL, o->n_holders = 0; /* out of memory: no holders rather than wrong ones */
        } else {
            *slot = own;
            uint64_t left_n = o->contentions, left_w = o->wait_ns;
            for (size_t h = 0; h < o->n_holders; h++) {
                own[h] = o->holders[h];
                own[h].count = own[h].count < left_n ? own[h].count : left_n;
                own[h].wait_ns = own[h].wait_ns < left_w ? own[h].wait_ns : left_w;
                left_n -= own[h].count, left_w -= own[h].wait_ns;
            }
            o->holders = own;
        }
    }
}

/* The output row of lock `i`: its figures, sites, holders and names. */
static void prof_lock_row(struct prof_internal *in, size_t i, struct prof_lock *o, const struct prof_site_lists *sl)
{
    struct profile *p = in->p;
    struct plock *l = &in->locks[i];
    o->kind = l->kind;
    o->file = l->file;
    o->address = l->addr;
    prof_lock_type(in, l, o);
    prof_lock_native_owner(in, l, o);
    o->name = l->name = prof_lock_name_owned(in, l, o->type, o);
    o->contentions = l->contentions;
    o->wait_ns = l->wait;
    o->max_wait_ns = l->max;
    o->p50_wait_ns = phist_quantile(l->hist, 0.50);
    o->p99_wait_ns = phist_quantile(l->hist, 0.99);
    /* A bucket midpoint can lie outside the values seen: keep percentiles within them. */
    o->p50_wait_ns = o->p50_wait_ns < l->min ? l->min : o->p50_wait_ns > l->max ? l->max : o->p50_wait_ns;
    o->p99_wait_ns = o->p99_wait_ns < l->min ? l->min : o->p99_wait_ns > l->max ? l->max : o->p99_wait_ns;
    o->spin_ns = l->spin;
    o->handoffs = l->handoffs;
    o->parked = l->parked;
    o->threads = l->threads;
    o->waiters = sl->wl[i];
    o->n_waiters = sl->wn[i];
    uint64_t *g = pmap_get(&in->hgroups_map, l->addr, l->file);
    const struct prof_site *holds = NULL;
    if (l->hgroup) {
        o->holders = sl->hl[l->hgroup - 1];
        o->n_holders = sl->hn[l->hgroup - 1];
        holds = &sl->hh[l->hgroup - 1];
    } else if (g && l->addr && !l->merged) {
        o->holders = sl->hl[*g];
        o->n_holders = sl->hn[*g];
        holds = &sl->hh[*g];
    }
    if (holds && prof_kind_is_contention(o->kind)) { /* a notify or a thread's end holds nothing */
        o->holds = holds->holds;
        o->hold_p50_ns = holds->hold_p50_ns;
        o->hold_p99_ns = holds->hold_p99_ns;
        o->hold_max_ns = holds->hold_max_ns;
        o->holds_from_acquisition = holds->holds_from_acquisition;
    }
    prof_holders_within_row(in, o);
    /* Holder sites share out the wait they were found to end, never more than the lock's. */
    for (size_t h = 0; h < o->n_holders; h++)
        o->holder_known_ns += o->holders[h].wait_ns;
    if (o->holder_known_ns > o->wait_ns)
        o->holder_known_ns = o->wait_ns;
    if (o->n_waiters) {
        const struct prof_frame *f = prof_site_frame(o->waiters[0].stack, o->kind);
        if (f && !f->native)
            o->source = prof_source_text(in, f->file, f->line);
        o->owner = prof_lock_owner(in, o, &o->source);
    }
    if (prof_kind_is_contention(o->kind))
        p->contention_wait_ns += o->wait_ns;
}

static void prof_finish(struct prof_internal *in)
{
    struct profile *p = in->p;
    prof_attribute_spins(in);
    if (in->oom)
        return;
    in->dists = dist_cache_new(); /* NULL: no distributions named, nothing else lost */

    struct prof_site_lists sl = {0};
    sl.wl = calloc(in->n_locks ? in->n_locks : 1, sizeof(*sl.wl));
    sl.wn = calloc(in->n_locks ? in->n_locks : 1, sizeof(*sl.wn));
    p->locks = calloc(in->n_locks ? in->n_locks : 1, sizeof(*p->locks));
    if (!sl.wl || !sl.wn || !p->locks) {
        in->oom = true;
        goto out;
    }
    prof_merge_holder_groups(in);
    if (in->oom)
        goto out;
    sl.hl = calloc(in->n_hgroups ? in->n_hgroups : 1, sizeof(*sl.hl));
    sl.hn = calloc(in->n_hgroups ? in->n_hgroups : 1, sizeof(*sl.hn));
    sl.hh = calloc(in->n_hgroups ? in->n_hgroups : 1, sizeof(*sl.hh)); /* hold times per holder group */
    if (!sl.hl || !sl.hn || !sl.hh) {
        in->oom = true;
        goto out;
    }
    prof_build_sites(in, in->sites, in->n_sites, in->n_locks, prof_lock_file, sl.wl, sl.wn, NULL);
    prof_build_sites(in, in->hsites, in->n_hsites, in->n_hgroups, prof_hgroup_file, sl.hl, sl.hn, sl.hh);
    if (in->oom)
        goto out;
    for (size_t i = 0; i < in->n_locks; i++)
        prof_lock_row(in, i, &p->locks[p->n_locks++], &sl);
    qsort(p->locks, p->n_locks, sizeof(*p->locks), prof_lock_cmp);
out:
    prof_site_lists_free(&sl);
}

static void prof_file_info(struct prof_internal *in, struct prof_file *f, const struct rd_file *rd)
{
    const struct ftp_file_header *h = &rd->hdr;
    f->pid = h->pid;
    f->ppid = h->ppid;
    f->flags = h->flags;
    f->features = h->features;
    f->dropped_events = h->dropped_events;
    f->dropped_wait_known = h->version >= 8;
    f->dropped_wait_ns = h->version >= 8 ? h->dropped_wait_ns : 0;
    f->disk_full_events = h->version >= 2 ? h->disk_full_events : 0;
    f->process_cpu_ns = h->version >= 3 ? h->process_cpu_ns : 0;
    f->version = h->version;
    f->start_ns = h->start_ns;
    f->end_ns = h->end_ns;
    f->start_realtime_ns = h->start_realtime_ns;
    f->python_version = h->python_version;
    f->truncated = rd->truncated;
    char argv[FTP_ARGV_MAX];
    size_t len = h->argv_len < FTP_ARGV_MAX ? h->argv_len : FTP_ARGV_MAX;
    memcpy(argv, h->argv, len);
    while (len > 0 && argv[len - 1] == 0)
        len--;
    for (size_t i = 0; i < len; i++)
        if (argv[i] == 0)
            argv[i] = ' ';
    f->argv = prof_intern(in, argv, len);
    if (h->version >= 6) {
        uint32_t n = h->notes_len < FTP_NOTES_MAX ? h->notes_len : FTP_NOTES_MAX;
        f->notes_len = 0;
        for (uint32_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)h->notes[i];
            if (c == 0) { /* the unwritten rest of a note (its writer was still copying): it ends there */
                if (f->notes_len && f->notes[f->notes_len - 1] != '\n')
                    f->notes[f->notes_len++] = '\n';
                continue;
            }
            f->notes[f->notes_len++] = (char)((c < 0x20 && c != '\n') || c == 0x7f ? '?' : c);
        }
        f->notes_cut = h->notes_len > FTP_NOTES_MAX;
    }
}

bool prof_note_next(const struct prof_file *f, uint32_t *pos, struct prof_note *note)
{
    while (*pos < f->notes_len) {
        const char *line = f->notes + *pos;
        const char *nl = memchr(line, '\n', f->notes_len - *pos);
        size_t len = nl ? (size_t)(nl - line) : f->notes_len - *pos;
        *pos += (uint32_t)len + (nl ? 1 : 0);
        if (len == 0)
            continue;
        /* A status byte the recorder never writes (a damaged header) is kept as text, not shown. */
        bool known = line[0] == FTP_NOTE_SHOWN || line[0] == FTP_NOTE_UNSHOWN;
        note->shown_on_stderr = line[0] == FTP_NOTE_SHOWN;
        note->text = known ? line + 1 : line;
        note->len = known ? len - 1 : len;
        if (note->len)
            return true;
    }
    return false;
}

static _Thread_local FILE *prof_warn_stream;

void prof_warnings_to(FILE *to)
{
    prof_warn_stream = to;
}

static void prof_warn(bool quiet, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void prof_warn(bool quiet, const char *path, const char *fmt, ...)
{
    if (quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    FILE *to = prof_warn_stream ? prof_warn_stream : stderr;
    fprintf(to, "ftprof: %s: warning: ", path);
    vfprintf(to, fmt, ap);
    fputc('\n', to);
    va_end(ap);
}

/* Whether a file's closed acquisitions are aggregated in a thread of their own (profile_batch.c): only
 * when asked (FTPROF_ANALYZER_SPLIT=1), for a large file. Since the inline close stage is fed its
 * sites ahead (prof_site_hint), handing each closed acquisition to another core costs more than it
 * saves: on the two-core test machine the split `report` of 5 M events took 0.388 s and 0.421 s
 * against 0.351 s and 0.371 s inline, and of 1 M events 0.089 s against 0.078 s (medians of 11 to 21
 * alternating runs, idle machine). The output is the same either way. */
static bool prof_split_pays(const struct rd_file *rd)
{
    const char *force = getenv("FTPROF_ANALYZER_SPLIT");
    return rd->chunks >= PROF_THREADED_CHUNKS && force && strcmp(force, "1") == 0;
}

int prof_load(struct profile *p, char *const *paths, size_t n, bool quiet, size_t *failed, char *err,
              size_t errlen)
{
    return prof_load_with(p, paths, n, (struct prof_load_how){.quiet = quiet}, failed, err, errlen);
}

/* The warnings a file's facts call for, one line each. */
static void prof_file_warnings(bool quiet, const char *path, const struct prof_file *f)
{
    if (f->truncated)
        prof_warn(quiet, path, "file is truncated; the report covers only what it holds");
    if (f->damaged_chunks)
        prof_warn(quiet, path, "%u damaged chunk(s); their remaining records were skipped",
                  f->damaged_chunks);
    if (f->flags & FTP_FLAG_STOPPED)
        prof_warn(quiet, path, "the recorder stopped itself early (%s); the recording is partial",
                  f->notes_len ? "the recorder's notes in the report say why" : "it met a state it does not know");
    if (f->flags & FTP_FLAG_DISK_FULL)
        prof_warn(quiet, path, "the recording ends early because the disk was full; %llu later "
                  "wait%s not stored", (unsigned long long)f->disk_full_events,
                  f->disk_full_events == 1 ? " was" : "s were");
    if (f->dropped_events)
        prof_warn(quiet, path, "%llu event%s dropped because the recording buffer was full "
                  "(raise FTPROF_BUFFER)", (unsigned long long)f->dropped_events,
                  f->dropped_events == 1 ? " was" : "s were");
}

/* A finished (or detached) file's waits in flight end at its end. A killed one's end at its last sign
 * of life, as the list of threads blocked at the end says it: the later of its last event and its last
 * write-back (the file's modification time), which then ends its threads too. */
static void prof_file_inflight(struct prof_internal *in, const char *path, const struct rd_file *rd)
{
    struct ftp_inflight_slot *slots = NULL;
    size_t n = 0;
    int rc = rd_read_inflight(path, &rd->hdr, rd->file_size, &slots, &n);
    if (rc < 0) {
        in->oom |= rc == -ENOMEM; /* otherwise the file went away since: nothing in flight to add */
        return;
    }
    uint64_t end = rd->hdr.end_ns;
    struct stat st;
    if (!end && n) {
        struct pfiledefs *d = &in->defs[in->cur_file];
        if (stat(path, &st) == 0 && rd->hdr.start_realtime_ns) {
            uint64_t mt = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
            if (mt > rd->hdr.start_realtime_ns && rd->hdr.start_ns + (mt - rd->hdr.start_realtime_ns) > d->max_end_ns)
                d->max_end_ns = rd->hdr.start_ns + (mt - rd->hdr.start_realtime_ns);
        }
        end = d->max_end_ns;
    }
    prof_add_inflight(in, slots, n, end);
    free(slots);
}

/* File k's share of the profile's totals, once it was read: its span widens the profile's
 * [*min_start, *max_end], its live facts (windows, min-wait and ring counts) and drops add up. */
static void prof_file_add_up(struct prof_internal *in, size_t k, const struct ftp_file_header *hdr,
                             uint64_t *min_start, uint64_t *max_end)
{
    struct profile *p = in->p;
    struct prof_file *f = &p->files[k];
    uint64_t end = f->end_ns ? f->end_ns : in->defs[k].max_end_ns;
    if (f->start_ns && f->start_ns < *min_start) {
        *min_start = f->start_ns;
        p->start_realtime_ns = f->start_realtime_ns;
    }
    prof_file_live_facts(f, hdr, end);
    p->below_min_events += f->below_min_events;
    p->below_min_ns += f->below_min_ns;
    p->overwritten_events += f->overwritten_events;
    if (end > *max_end)
        *max_end = end;
    p->dropped_events += f->dropped_events;
    p->dropped_wait_ns += f->dropped_wait_ns;
    if (f->dropped_events && !f->dropped_wait_known)
        p->dropped_wait_unknown = true;
    p->disk_full_events += f->disk_full_events;
}

static void prof_dangling_warning(bool quiet, const struct prof_file *f)
{
    if (f->dangling_stacks || f->dangling_codes || f->dangling_types)
        prof_warn(quiet, f->path, "records refer to ids the recording never defined (%llu to stacks, %llu to "
                  "code objects, %llu to types): shown as [unknown], their kind may be wrong",
                  (unsigned long long)f->dangling_stacks, (unsigned long long)f->dangling_codes,
                  (unsigned long long)f->dangling_types);
}

int prof_load_with(struct profile *p, char *const *paths, size_t n, struct prof_load_how how, size_t *failed,
                   char *err, size_t errlen)
{
    bool quiet = how.quiet;
    memset(p, 0, sizeof(*p));
    struct prof_internal *in = calloc(1, sizeof(*in));
    p->files = calloc(n ? n : 1, sizeof(*p->files));
    if (in)
        in->defs = calloc(n ? n : 1, sizeof(*in->defs));
    if (!in || !p->files || !in->defs) {
        if (in)
            free(in->defs);
        free(in);
        free(p->files);
        p->files = NULL;
        snprintf(err, errlen, "%s", strerror(ENOMEM));
        *failed = 0;
        return -ENOMEM;
    }
    p->in = in;
    in->p = p;
    in->share = PROF_SHARE_ALL;
    uint64_t(*ids)[2] = calloc(n ? n : 1, sizeof(*ids)); /* device and inode of each file read */
    if (!ids) {
        snprintf(err, errlen, "%s", strerror(ENOMEM));
        *failed = 0;
        return -ENOMEM;
    }

    uint64_t min_start = UINT64_MAX, max_end = 0;
    for (size_t i = 0; i < n; i++) {
        struct rd_file rd;
        int rc = rd_open(&rd, paths[i], err, errlen);
        if (rc < 0) {
            *failed = i;
            free(ids);
            return rc;
        }
        /* The same file twice (named twice, a link, ftprof-*.ftp plus one of them): counting its waits
         * twice would double every lock in it. */
        size_t dup = 0;
        while (dup < p->n_files && !(ids[dup][0] == rd.dev && ids[dup][1] == rd.ino))
            dup++;
        if (dup < p->n_files) {
            prof_warn(quiet, paths[i], "the same file as %s; read once", p->files[dup].path);
            rd_close(&rd);
            continue;
        }
        size_t k = p->n_files++;
        ids[k][0] = rd.dev;
        ids[k][1] = rd.ino;
        in->cur_file = (uint32_t)k;
        in->last_acq = SIZE_MAX;
        p->files[k].path = prof_intern(in, paths[i], strlen(paths[i]));
        prof_file_info(in, &p->files[k], &rd);
        in->defs[k].python_runtime = rd.hdr.python_runtime;
        /* The joins share of pass 2 needs no definitions: on a large file it starts first, beside. */
        if (!how.one_thread)
            prof_joins_start(in, &rd);
        rc = rd_walk(&rd, prof_visit_defs, in);
        if (rc == 0 && !in->oom)
            rc = prof_batch_start(in, !how.one_thread && prof_split_pays(&rd));
        if (rc == 0 && !in->oom)
            rc = rd_walk_holding(&rd, prof_visit_events, prof_events_chunk_done, in);
        if (rc == 0 && !in->oom)
            prof_events_end_file(in);
        int joins_rc = prof_joins_finish(in);
        if (rc == 0)
            rc = joins_rc;
        if (rc == 0 && in->oom)
            rc = -ENOMEM;
        p->files[k].damaged_chunks = rd.damaged_chunks;
        rd_close(&rd);
        if (rc < 0) {
            prof_batch_finish(in);
            snprintf(err, errlen, "%s", rd_error_text(rc));
            *failed = i;
            free(ids);
            return rc;
        }
        if (!how.no_inflight) {
            prof_file_inflight(in, paths[i], &rd);
            prof_batch_finish(in); /* the in-flight waits were applied inline: flush their histogram adds */
        }

        prof_file_add_up(in, k, &rd.hdr, &min_start, &max_end);
        prof_file_warnings(quiet, paths[i], &p->files[k]);
    }
    free(ids);
    if (max_end > min_start && min_start != UINT64_MAX)
        p->duration_ns = max_end - min_start;

    prof_finish(in);
    if (!in->oom)
        prof_time(in);
    if (!in->oom)
        prof_extensions_finish(in);
    for (size_t k = 0; k < p->n_files && !in->oom; k++)
        prof_dangling_warning(quiet, &p->files[k]);
    if (in->oom) {
        snprintf(err, errlen, "%s", strerror(ENOMEM));
        *failed = 0;
        return -ENOMEM;
    }
    return 0;
}

void prof_free(struct profile *p)
{
    struct prof_internal *in = p->in;
    if (in) {
        for (size_t i = 0; i < in->n_codes; i++)
            free(in->codes[i].linetable);
        for (size_t i = 0; i < in->n_stacks; i++) {
            free(in->stacks[i].py);
            free(in->stacks[i].native);
        }
        for (size_t i = 0; i < in->n_locks; i++)
            free(in->locks[i].hist);
        for (size_t i = 0; i < in->n_hsites; i++)
            free(in->hsites[i].hold);
        for (size_t i = 0; i < in->n_rstacks; i++) {
            free((void *)in->rstacks[i]->frames);
            free(in->rstacks[i]);
        }
        for (size_t i = 0; i < in->n_site_lists; i++)
            free(in->site_lists[i]);
        for (size_t i = 0; i < in->n_sources; i++) {
            free(in->sources[i].data);
            free(in->sources[i].starts);
        }
        for (size_t i = 0; i < p->n_files && in->defs; i++) {
            for (size_t m = 0; m < in->defs[i].n_mods; m++)
                free(in->defs[i].mods[m].build_id);
            free(in->defs[i].mods);
            if (in->defs[i].sym)
                symbolizer_free(in->defs[i].sym);
        }
        for (size_t i = 0; i < in->n_namers; i++)
            if (in->namers[i].sym)
                symbolizer_free(in->namers[i].sym);
        dist_cache_free(in->dists);
        struct pmap *maps[] = {&in->codes_map, &in->stacks_map, &in->types_map, &in->threads_map, &in->acqs_map,
                               &in->locks_map, &in->sites_map, &in->tids_map, &in->spins_map, &in->hgroups_map,
                               &in->hsites_map, &in->lines, &in->interned_stacks,
                               &in->sources_map, &in->aliases, &in->fields_map};
        for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++)
            pmap_free(maps[i]);
        free(in->codes);
        free(in->stacks);
        free(in->acqs);
        free(in->locks);
        free(in->sites);
        free(in->spins);
        free(in->hgroups);
        free(in->hsites);
        free(in->defs);
        free(in->rstacks);
        free(in->site_lists);
        free(in->sources);
        free(in->pending);
        free(in->wait_cache);
        free(in->hsite_cache);
        pstr_free(&in->strs);
        free(in);
    }
    free(p->locks);
    free(p->gil_events);
    free(p->extensions);
    free(p->threads);
    free(p->files);
    memset(p, 0, sizeof(*p));
}
