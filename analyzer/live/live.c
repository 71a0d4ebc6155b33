/* Reading a recording while it grows: the profile so far (prof_load tolerates records not yet
 * published, size 0, and chunks claimed since the header was read), the INFLIGHT table read under its
 * seqlock through a read-only shared mapping, one more pass over the events for what the profile does
 * not keep (wait within the last interval, each lock's last acquirer, the latest progress on it), and
 * the conclusions: who holds what, deadlock cycles, threads stuck without progress. */
#include "live.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "profile_model.h"
#include "reader.h"
#include "report.h"

const char *live_state_name(enum live_state s)
{
    switch (s) {
    case LIVE_RUNNING: return "running";
    case LIVE_FINISHED: return "finished";
    case LIVE_EXEC: return "ended_by_exec";
    default: return "killed";
    }
}

static uint64_t live_mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t live_proc_start_ticks_at(int dirfd, const char *stat_path)
{
    char buf[1024];
    int fd = openat(dirfd, stat_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    for (int field = 2; p && field < 22; field++)
        p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* Field 22 of /proc/PID/stat (start time in ticks), 0 if the process does not exist. */
static uint64_t live_proc_start_ticks(uint32_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%u/stat", pid);
    return live_proc_start_ticks_at(AT_FDCWD, path);
}

/* ---- the extra pass: per lock address, the last interval's wait, its last acquirer, its progress ---- */

struct live_addr {
    uint64_t interval_ns;
    uint64_t last_end_ns;     /* the latest end of a wait on it: the last time anyone got it after waiting */
    uint32_t acquirer;        /* that waiter's tid */
    bool released;            /* the acquirer released it to a waiter since (a HOLDER record) */
};

struct live_scan {
    struct pmap map;          /* addr -> 1 + index into v */
    struct live_addr *v;
    size_t n, cap;
    uint64_t from, to;        /* the interval */
    uint64_t last_event_ns;
    bool oom;
};

static struct live_addr *live_addr_get(struct live_scan *s, uint64_t addr, bool create)
{
    if (!create) {
        uint64_t *v = pmap_get(&s->map, addr, 0);
        return v ? &s->v[*v - 1] : NULL;
    }
    bool ins;
    uint64_t *v = pmap_put(&s->map, addr, 0, &ins);
    if (!v) {
        s->oom = true;
        return NULL;
    }
    if (ins) {
        if (s->n == s->cap) {
            size_t ncap = s->cap ? s->cap * 2 : 64;
            struct live_addr *nv = realloc(s->v, ncap * sizeof(*nv));
            if (!nv) {
                pmap_del(&s->map, addr, 0);
                s->oom = true;
                return NULL;
            }
            s->v = nv;
            s->cap = ncap;
        }
        memset(&s->v[s->n], 0, sizeof(s->v[0]));
        *v = ++s->n;
    }
    return &s->v[*v - 1];
}

static uint64_t live_overlap(uint64_t a, uint64_t b, uint64_t from, uint64_t to)
{
    uint64_t lo = a > from ? a : from, hi = b < to ? b : to;
    return hi > lo ? hi - lo : 0;
}

static bool live_scan_visit(void *ctx, uint32_t chunk, const struct ftp_record *rec)
{
    (void)chunk;
    struct live_scan *s = ctx;
    if (rec->type == FTP_REC_WAIT && rec->size >= FTP_REC_WAIT_V6_SIZE) {
        const struct ftp_rec_wait *w = (const void *)rec;
        if (w->end_ns > s->last_event_ns)
            s->last_event_ns = w->end_ns;
        if (!w->lock_addr || (rec->flags & FTP_WAIT_FAILED))
            return true;
        struct live_addr *a = live_addr_get(s, w->lock_addr, true);
        if (!a)
            return false;
        a->interval_ns += live_overlap(w->start_ns, w->end_ns, s->from, s->to);
        if (w->end_ns >= a->last_end_ns && !(rec->flags & FTP_WAIT_TIMED_OUT)) {
            a->last_end_ns = w->end_ns;
            a->acquirer = w->tid;
            a->released = false;
        }
    } else if (rec->type == FTP_REC_HOLDER && rec->size >= sizeof(struct ftp_rec_holder)) {
        const struct ftp_rec_holder *h = (const void *)rec;
        if (h->time_ns > s->last_event_ns)
            s->last_event_ns = h->time_ns;
        struct live_addr *a = live_addr_get(s, h->lock_addr, false);
        if (a && a->acquirer == h->tid && h->time_ns >= a->last_end_ns)
            a->released = true;
    } else if (rec->type == FTP_REC_THREAD_END && rec->size >= FTP_THREAD_END_V3_SIZE) {
        const struct ftp_rec_thread_end *e = (const void *)rec;
        if (e->end_ns > s->last_event_ns)
            s->last_event_ns = e->end_ns;
    }
    return !s->oom;
}

/* ---- the waits in flight ---- */

bool live_has_waits_in_flight(const char *path)
{
    struct rd_file rd;
    char err[256];
    if (rd_open(&rd, path, err, sizeof(err)) < 0)
        return false;
    struct ftp_file_header h = rd.hdr;
    uint64_t size = rd.file_size;
    rd_close(&rd);
    struct ftp_inflight_slot *slots = NULL;
    size_t n = 0;
    if (rd_read_inflight(path, &h, size, &slots, &n) < 0)
        return true; /* cannot tell: let the full look decide */
    free(slots);
    return n > 0;
}

/* ---- conclusions ---- */

static const char *live_lock_label(struct prof_internal *in, const struct ftp_inflight_slot *s, enum prof_kind kind)
{
    struct plock l = {.file = 0, .kind = kind, .raw_kind = s->kind, .region = s->region, .type_id = s->type_id,
                      .region_offset = s->region_offset, .addr = s->lock_addr};
    const char *type = NULL;
    if (s->type_id) {
        uint64_t *t = pmap_get(&in->types_map, 0, s->type_id);
        type = t ? (const char *)(uintptr_t)*t : NULL;
    }
    /* Condition.wait and Thread.join park on a fresh lock each time: the row is the kind. */
    if (kind == PROF_KIND_CONDITION || kind == PROF_KIND_THREAD_JOIN)
        l.merged = true;
    return prof_lock_name(in, &l, type);
}

static char *live_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#include <stdarg.h>
static char *live_strdup_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

static const char *live_who(const struct live_blocked *b, char *buf, size_t cap)
{
    if (b->thread)
        return b->thread;
    snprintf(buf, cap, "thread %u", b->tid);
    return buf;
}

static char *live_where(const struct live_blocked *b)
{
    const char *file = b->frame && b->frame->file ? b->frame->file : NULL;
    const char *base = prof_short_file(file);
    char who[32];
    if (base)
        return live_strdup_printf("  %s waits at %s:%d  %s", live_who(b, who, sizeof(who)), base, b->frame->line,
                                  b->source ? b->source : "");
    return live_strdup_printf("  %s waits in %s", live_who(b, who, sizeof(who)),
                              b->frame && b->frame->function ? b->frame->function : "[unknown]");
}

static void live_add_finding(struct live_frame *f, bool cycle, char *text, const size_t *members, size_t n)
{
    if (!text)
        return;
    struct live_finding *nf = realloc(f->findings, (f->n_findings + 1) * sizeof(*nf));
    if (!nf) {
        free(text);
        return;
    }
    f->findings = nf;
    struct live_finding *x = &f->findings[f->n_findings++];
    x->cycle = cycle;
    x->text = text;
    x->lines = calloc(n ? n : 1, sizeof(*x->lines));
    x->n_lines = 0;
    for (size_t i = 0; x->lines && i < n; i++)
        if ((x->lines[x->n_lines] = live_where(&f->blocked[members[i]])))
            x->n_lines++;
}

static void live_format_s(char *buf, size_t cap, uint64_t ns)
{
    if (ns >= 10000000000ull)
        snprintf(buf, cap, "%.0f s", (double)ns / 1e9);
    else
        snprintf(buf, cap, "%.1f s", (double)ns / 1e9);
}

static void live_reverse(size_t *v, size_t n)
{
    for (size_t i = 0; i < n / 2; i++) {
        size_t t = v[i];
        v[i] = v[n - 1 - i];
        v[n - 1 - i] = t;
    }
}

/* v[by..n) then v[0..by), in place: a cycle of any length (a damaged table can make a long one). */
static void live_rotate(size_t *v, size_t n, size_t by)
{
    live_reverse(v, by);
    live_reverse(v + by, n - by);
    live_reverse(v, n);
}

/* A memory stream for a finding's text (live_add_finding takes it once closed); NULL when out of memory. */
static FILE *live_text_open(char **text, size_t *cap)
{
    *text = NULL;
    *cap = 0;
    FILE *m = open_memstream(text, cap);
    if (!m) {
        free(*text);
        *text = NULL;
    }
    return m;
}

/* The finding for the cycle path[0..len): told from the thread that has waited longest, so the same
 * cycle reads the same way. */
static void live_cycle_finding(struct live_frame *f, size_t *path, size_t len)
{
    size_t first = 0;
    for (size_t j = 0; j < len; j++)
        if (f->blocked[path[j]].start_ns < f->blocked[path[first]].start_ns)
            first = j;
    live_rotate(path, len, first);
    char *text;
    size_t cap;
    FILE *m = live_text_open(&text, &cap);
    if (!m)
        return;
    fputs("deadlock: ", m);
    for (size_t j = 0; j < len; j++) {
        const struct live_blocked *b = &f->blocked[path[j]];
        const struct live_blocked *h = &f->blocked[b->holder_blocked];
        char w1[32], w2[32];
        fprintf(m, "%s%s waits for %s, held by %s", j == 0 ? "" : ", which", j == 0 ? live_who(b, w1, sizeof(w1)) : "",
                b->lock ? b->lock : "a lock", live_who(h, w2, sizeof(w2)));
    }
    uint64_t least = UINT64_MAX;
    for (size_t j = 0; j < len; j++)
        if (f->blocked[path[j]].blocked_ns < least)
            least = f->blocked[path[j]].blocked_ns;
    char d[32];
    live_format_s(d, sizeof(d), least);
    fprintf(m, " (for %s)", d);
    fclose(m);
    live_add_finding(f, true, text, path, len);
}

/* Blocked threads each point at the holder of their lock where it is known: a walk along those links
 * that comes back to where it started is a cycle, a deadlock the recording shows. seen[i] becomes 2
 * for every thread walked. */
static void live_find_cycles(struct live_frame *f, char *seen, size_t *path)
{
    size_t n = f->n_blocked;
    for (size_t start = 0; start < n; start++) {
        if (seen[start])
            continue;
        size_t len = 0, i = start;
        /* mark 1: on the current walk; 2: done */
        while (i < n && !seen[i] && f->blocked[i].holder_blocked >= 0) {
            seen[i] = 1;
            path[len++] = i;
            i = (size_t)f->blocked[i].holder_blocked;
        }
        if (i < n && seen[i] == 1) {
            /* the cycle is path[k..len) where path[k] == i */
            size_t k = 0;
            while (path[k] != i)
                k++;
            live_cycle_finding(f, path + k, len - k);
        }
        for (size_t j = 0; j < len; j++)
            seen[path[j]] = 2;
    }
}

/* The finding for the stuck threads path[0..m), blocked `least` at least. */
static void live_stuck_finding(struct live_frame *f, size_t *path, size_t m, uint64_t least)
{
    char *text;
    size_t cap;
    FILE *s = live_text_open(&text, &cap);
    if (!s)
        return;
    for (size_t j = 0; j < m; j++) {
        char w[32];
        fprintf(s, "%s%s", j == 0 ? "" : j + 1 == m ? " and " : ", ", live_who(&f->blocked[path[j]], w, sizeof(w)));
    }
    char d[32];
    live_format_s(d, sizeof(d), least);
    if (f->now_read && f->n_free_threads)
        /* Someone runs, sleeps or waits elsewhere: it may well hold these locks and let go. */
        fprintf(s, ": %s blocked for %s, no progress; their locks' holders are unknown, and %zu other "
                "thread%s %s running or sleeping now (not all blocked)",
                m == 2 ? "both" : "all", d, f->n_free_threads, f->n_free_threads == 1 ? "" : "s",
                f->n_free_threads == 1 ? "is" : "are");
    else
        fprintf(s, ": %s blocked for %s, no progress (their locks' holders are unknown: a threading.Lock "
                "has no owner; %s)", m == 2 ? "both" : "all", d,
                f->now_read ? "every other thread is blocked too: possibly a deadlock"
                            : "possibly a deadlock");
    fclose(s);
    live_add_finding(f, false, text, path, m);
}

/* Threads blocked on contention locks whose holders are unknown, for a while, with no wait on those
 * locks ending since they blocked: stuck, said as such without guessing at a cycle. */
static void live_find_stuck(struct live_frame *f, const struct live_scan *scan, const char *seen, size_t *path)
{
    size_t n = f->n_blocked, m = 0;
    uint64_t least = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        const struct live_blocked *b = &f->blocked[i];
        if (seen[i] == 2 && b->holder_blocked >= 0)
            continue; /* part of a cycle or waiting behind one: already said */
        if (!prof_kind_is_contention(b->kind) || b->kind == PROF_KIND_GIL || b->holder_tid || b->blocked_ns < LIVE_STUCK_NS)
            continue;
        const struct live_addr *a = b->lock_addr ? live_addr_get((struct live_scan *)scan, b->lock_addr, false) : NULL;
        if (a && a->last_end_ns > b->start_ns)
            continue; /* someone got that lock after this thread started waiting: progress */
        path[m++] = i;
        if (b->blocked_ns < least)
            least = b->blocked_ns;
    }
    /* Behind one lock they are a queue; a deadlock needs two locks at least. */
    bool two_locks = false;
    for (size_t j = 1; j < m; j++)
        two_locks = two_locks || f->blocked[path[j]].lock_addr != f->blocked[path[0]].lock_addr;
    /* By name, so that the same threads read the same way. */
    for (size_t x = 1; x < m; x++)
        for (size_t y = x; y > 0; y--) {
            const char *p1 = f->blocked[path[y - 1]].thread, *p2 = f->blocked[path[y]].thread;
            if (strcmp(p1 ? p1 : "", p2 ? p2 : "") <= 0)
                break;
            size_t tmp = path[y - 1];
            path[y - 1] = path[y];
            path[y] = tmp;
        }
    if (m >= 2 && two_locks)
        live_stuck_finding(f, path, m, least);
}

/* What the blocked threads say about each other: deadlock cycles, then threads stuck. */
static void live_conclude(struct live_frame *f, const struct live_scan *scan)
{
    size_t n = f->n_blocked;
    if (n == 0)
        return;
    char *seen = calloc(n, 1);
    size_t *path = calloc(n, sizeof(*path));
    if (seen && path) {
        live_find_cycles(f, seen, path);
        live_find_stuck(f, scan, seen, path);
    }
    free(seen);
    free(path);
}

static int live_lock_cmp(const void *a, const void *b)
{
    const struct live_lock *x = a, *y = b;
    if (x->interval_ns != y->interval_ns)
        return x->interval_ns < y->interval_ns ? 1 : -1;
    if (x->wait_ns != y->wait_ns)
        return x->wait_ns < y->wait_ns ? 1 : -1;
    return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static struct live_lock *live_lock_row(struct live_frame *f, uint64_t addr, enum prof_kind kind, size_t *cap)
{
    for (size_t i = 0; i < f->n_locks; i++)
        if (f->locks[i].addr == addr && f->locks[i].kind == kind)
            return &f->locks[i];
    if (f->n_locks == *cap) {
        size_t ncap = *cap ? *cap * 2 : 32;
        struct live_lock *nl = realloc(f->locks, ncap * sizeof(*nl));
        if (!nl)
            return NULL;
        f->locks = nl;
        *cap = ncap;
    }
    struct live_lock *l = &f->locks[f->n_locks++];
    memset(l, 0, sizeof(*l));
    l->addr = addr;
    l->kind = kind;
    return l;
}

/* The state of the process that writes the recording, from the header and /proc. */
static enum live_state live_state_of(const struct ftp_file_header *h)
{
    bool same = h->pid && h->proc_start_ticks && live_proc_start_ticks(h->pid) == h->proc_start_ticks;
    if (h->flags & FTP_FLAG_ENDED_BY_EXEC)
        return LIVE_EXEC;
    if (h->flags & FTP_FLAG_FINISHED)
        return LIVE_FINISHED;
    return same ? LIVE_RUNNING : LIVE_KILLED;
}

/* The recording's "now": the clock now while its process runs, else its end; for one killed, its last
 * sign of life (the last event, or the file's last write back, `st` when it could be read). The scan's
 * interval ends there. */
static void live_settle_now(struct live_frame *f, struct live_scan *scan, uint64_t now, const struct stat *st)
{
    const struct ftp_file_header *h = &f->hdr;
    uint64_t interval_ns = f->interval_ns;
    f->last_event_ns = scan->last_event_ns;
    if (f->state == LIVE_RUNNING) {
        f->now_ns = now;
    } else if (h->end_ns) {
        f->now_ns = h->end_ns;
    } else {
        f->now_ns = scan->last_event_ns;
        if (st && h->start_realtime_ns) {
            uint64_t mt = (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
            if (mt > h->start_realtime_ns && h->start_ns + (mt - h->start_realtime_ns) > f->now_ns)
                f->now_ns = h->start_ns + (mt - h->start_realtime_ns);
        }
        scan->to = f->now_ns;
        scan->from = f->now_ns > interval_ns ? f->now_ns - interval_ns : 0;
    }
    f->elapsed_ns = f->now_ns > h->start_ns ? f->now_ns - h->start_ns : 0;
    f->paused = h->version >= 4 && (h->control & FTP_CONTROL_PAUSED);
}

/* One blocked thread per wait in flight: who, since when, on which lock, at which line. */
static void live_blocked_from_slots(struct live_frame *f, const struct ftp_inflight_slot *slots, size_t n_slots)
{
    struct prof_internal *in = f->p.in;
    for (size_t i = 0; i < n_slots; i++) {
        const struct ftp_inflight_slot *s = &slots[i];
        struct live_blocked *b = &f->blocked[f->n_blocked++];
        b->tid = s->tid;
        b->thread = live_thread_name(&f->p, s->tid);
        b->start_ns = s->start_ns;
        b->blocked_ns = f->now_ns > s->start_ns ? f->now_ns - s->start_ns : 0;
        b->lock_addr = s->lock_addr;
        b->kind = prof_wait_kind(in, 0, s->kind, s->stack_id);
        b->lock = live_lock_label(in, s, b->kind);
        const struct prof_stack *st2 = prof_resolve(in, 0, s->stack_id);
        b->frame = st2 ? prof_site_frame(st2, b->kind) : NULL;
        if (b->frame && !b->frame->native && b->frame->file)
            b->source = prof_source_text(in, b->frame->file, b->frame->line);
        b->thread_ident = s->thread_ident;
        b->owner = s->owner;
        b->holder_blocked = -1;
    }
}

/* Holders: the owner the lock names (its thread ident is some slot's), else the last acquirer. */
static void live_find_holders(struct live_frame *f, struct live_scan *scan, const struct ftp_inflight_slot *slots,
                              size_t n_slots)
{
    for (size_t i = 0; i < f->n_blocked; i++) {
        struct live_blocked *b = &f->blocked[i];
        if (b->owner) {
            for (size_t j = 0; j < n_slots; j++)
                if (slots[j].thread_ident == b->owner && slots[j].tid != b->tid) {
                    b->holder_tid = slots[j].tid;
                    b->holder_how = "owner";
                }
        }
        if (!b->holder_tid && b->lock_addr && prof_kind_is_contention(b->kind) && b->kind != PROF_KIND_GIL) {
            const struct live_addr *a = live_addr_get(scan, b->lock_addr, false);
            if (a && a->acquirer && !a->released && a->acquirer != b->tid && a->last_end_ns <= b->start_ns) {
                b->holder_tid = a->acquirer;
                b->holder_how = "last acquirer";
            }
        }
        if (b->holder_tid) {
            b->holder = live_thread_name(&f->p, b->holder_tid);
            for (size_t j = 0; j < f->n_blocked; j++)
                if (f->blocked[j].tid == b->holder_tid)
                    b->holder_blocked = (int)j;
        }
    }
}

/* Lock rows: the profile's contention locks, plus the wait in flight on each; by interval wait. */
static void live_lock_rows(struct live_frame *f, struct live_scan *scan)
{
    size_t cap = 0;
    for (size_t i = 0; i < f->p.n_locks; i++) {
        const struct prof_lock *pl = &f->p.locks[i];
        if (!prof_kind_is_contention(pl->kind))
            continue;
        struct live_lock *l = live_lock_row(f, pl->address, pl->kind, &cap);
        if (!l)
            break;
        l->name = pl->name;
        l->source = pl->source;
        l->frame = pl->n_waiters ? prof_site_frame(pl->waiters[0].stack, pl->kind) : NULL;
        l->wait_ns += pl->wait_ns;
        l->contentions += pl->contentions;
        const struct live_addr *a = pl->address ? live_addr_get(scan, pl->address, false) : NULL;
        if (a)
            l->interval_ns = a->interval_ns;
    }
    for (size_t i = 0; i < f->n_blocked; i++) {
        const struct live_blocked *b = &f->blocked[i];
        if (!prof_kind_is_contention(b->kind))
            continue;
        struct live_lock *l = live_lock_row(f, b->lock_addr, b->kind, &cap);
        if (!l)
            break;
        if (!l->name) {
            l->name = b->lock;
            l->source = b->source;
            l->frame = b->frame;
        }
        l->wait_ns += b->blocked_ns;
        l->interval_ns += live_overlap(b->start_ns, f->now_ns, scan->from, scan->to);
        l->blocked_now++;
    }
    if (f->n_locks)
        qsort(f->locks, f->n_locks, sizeof(*f->locks), live_lock_cmp);
}

/* A holder that was in no wait when the table of waits in flight was read, and that the kernel shows in
 * a futex wait a moment later, may have begun a recorded wait in between: the table is read again, and
 * such a holder is shown blocked on that wait's lock (or waiting for the GIL), not as "waiting (futex),
 * not on a lock the recording shows". One read of the table, and only when some holder is in a futex. */
static void live_recheck_futex_holders(struct live_frame *f, const char *path, uint64_t file_size)
{
    bool any = false;
    for (size_t i = 0; i < f->n_blocked && !any; i++)
        any = f->blocked[i].holder_now && !strcmp(f->blocked[i].holder_now->state, "futex");
    struct ftp_inflight_slot *slots = NULL;
    size_t n_slots = 0;
    if (!any || rd_read_inflight(path, &f->hdr, file_size, &slots, &n_slots) < 0)
        return;
    for (size_t i = 0; i < f->n_blocked; i++) {
        struct live_now *now = f->blocked[i].holder_now;
        if (!now || strcmp(now->state, "futex") != 0)
            continue;
        for (size_t j = 0; j < n_slots; j++) {
            if (slots[j].tid != f->blocked[i].holder_tid)
                continue;
            enum prof_kind kind = prof_wait_kind(f->p.in, 0, slots[j].kind, slots[j].stack_id);
            snprintf(now->state, sizeof(now->state), "%s", kind == PROF_KIND_GIL ? "gil" : "blocked");
            now->blocked_on = live_lock_label(f->p.in, &slots[j], kind);
        }
    }
    free(slots);
}

/* The waits in flight, then the profile (last, so that every stack a slot names was committed before
 * it is read), then the blocked threads, their holders and the lock rows. 0 or an error with err. */
static int live_load_frame(struct live_frame *f, const char *path, uint64_t file_size, struct live_scan *scan,
                           char *err, size_t errlen)
{
    struct ftp_inflight_slot *slots = NULL;
    size_t n_slots = 0;
    int rc = rd_read_inflight(path, &f->hdr, file_size, &slots, &n_slots);
    if (rc < 0) {
        snprintf(err, errlen, "cannot map its table of waits in flight: %s", strerror(-rc));
        return rc;
    }
    char *paths[1] = {(char *)path};
    size_t failed;
    rc = prof_load_with(&f->p, paths, 1, (struct prof_load_how){.quiet = true, .no_inflight = true}, &failed, err,
                        errlen);
    if (rc < 0) {
        free(slots);
        return rc;
    }
    f->blocked = calloc(n_slots ? n_slots : 1, sizeof(*f->blocked));
    if (!f->blocked) {
        free(slots);
        snprintf(err, errlen, "%s", strerror(ENOMEM));
        return -ENOMEM;
    }
    live_blocked_from_slots(f, slots, n_slots);
    live_find_holders(f, scan, slots, n_slots);
    free(slots);
    live_lock_rows(f, scan);
    live_holders_now(f);
    live_recheck_futex_holders(f, path, file_size);
    live_conclude(f, scan);
    return 0;
}

int live_load(struct live_frame *f, const char *path, uint64_t interval_ns, char *err, size_t errlen)
{
    memset(f, 0, sizeof(*f));
    f->path = path;
    f->interval_ns = interval_ns;
    struct rd_file rd;
    int rc = rd_open(&rd, path, err, errlen);
    if (rc < 0)
        return rc;
    f->hdr = rd.hdr;
    uint64_t file_size = rd.file_size;
    struct stat st;
    bool have_st = fstat(rd.fd, &st) == 0;

    /* The state first, so that "now" is the moment the waits in flight are read against. */
    const struct ftp_file_header *h = &f->hdr;
    f->state = live_state_of(h);
    uint64_t now = live_mono_now();

    struct live_scan scan = {.to = now, .from = now > interval_ns ? now - interval_ns : 0};
    if (f->state != LIVE_RUNNING && h->end_ns)
        scan.to = h->end_ns, scan.from = h->end_ns > interval_ns ? h->end_ns - interval_ns : 0;
    rc = rd_walk(&rd, live_scan_visit, &scan);
    rd_close(&rd);
    if (rc == 0 && scan.oom)
        rc = -ENOMEM;
    if (rc < 0)
        snprintf(err, errlen, "%s", rd_error_text(rc));
    else {
        live_settle_now(f, &scan, now, have_st ? &st : NULL);
        rc = live_load_frame(f, path, file_size, &scan, err, errlen);
    }
    pmap_free(&scan.map);
    free(scan.v);
    return rc;
}

void live_free(struct live_frame *f)
{
    for (size_t i = 0; i < f->n_findings; i++) {
        free(f->findings[i].text);
        for (size_t j = 0; j < f->findings[i].n_lines; j++)
            free(f->findings[i].lines[j]);
        free(f->findings[i].lines);
    }
    free(f->findings);
    for (size_t i = 0; i < f->n_blocked; i++)
        free(f->blocked[i].holder_now);
    free(f->unrecorded);
    free(f->blocked);
    free(f->locks);
    if (f->p.in || f->p.files)
        prof_free(&f->p);
    memset(f, 0, sizeof(*f));
}

/* ---- finding a process's recording ---- */

/* An ftprof header in the regular file at `path`, which is device `dev`, inode `ino`? */
static bool live_is_recording(const char *path, uint64_t dev, uint64_t ino)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return false;
    char magic[FTP_MAGIC_LEN];
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_ino == ino &&
              (!dev || (uint64_t)st.st_dev == dev) && pread(fd, magic, sizeof(magic), 0) == (ssize_t)sizeof(magic) &&
              memcmp(magic, FTP_MAGIC, FTP_MAGIC_LEN) == 0;
    close(fd);
    return ok;
}

/* The name in `dir` of inode `ino`: the recorder creates its file unnamed (O_TMPFILE) and names it once
 * its header is written, so the mapping keeps the unnamed file's "DIR/#INODE (deleted)". */
static bool live_name_in_dir(const char *dir, uint64_t dev, uint64_t ino, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if ((uint64_t)e->d_ino != ino)
            continue;
        int n = snprintf(out, cap, "%s/%s", dir, e->d_name);
        found = n > 0 && (size_t)n < cap && live_is_recording(out, dev, ino);
    }
    closedir(d);
    return found;
}

int live_find_recording(long pid, char *out, size_t cap)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/maps", pid);
    FILE *m = fopen(path, "re");
    if (!m)
        return errno == ENOENT ? -ESRCH : -errno;
    char line[4096];
    int rc = -ENOENT;
    while (rc != 0 && fgets(line, sizeof(line), m)) {
        /* start-end perms offset major:minor inode path: the recorder maps its file read-write, shared,
         * from offset 0 */
        char perms[8] = "", *p;
        unsigned long long start, end, off, ino;
        unsigned major, minor;
        if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu", &start, &end, perms, &off, &major, &minor, &ino) != 7 ||
            strcmp(perms, "rw-s") != 0 || off != 0 || !ino || !(p = strchr(line, '/')))
            continue;
        p[strcspn(p, "\n")] = 0;
        size_t len = strlen(p);
        if (len > 10 && strcmp(p + len - 10, " (deleted)") == 0)
            p[len -= 10] = 0;
        uint64_t dev = ((uint64_t)major << 8) | minor; /* old-style encoding; checked loosely below */
        (void)dev;
        if (len < cap && live_is_recording(p, 0, ino)) {
            memcpy(out, p, len + 1);
            rc = 0;
            break;
        }
        char *slash = strrchr(p, '/');
        if (slash) {
            *slash = 0;
            if (live_name_in_dir(*p ? p : "/", 0, ino, out, cap)) {
                rc = 0;
                break;
            }
        }
        /* Moved or deleted since: the mapping itself, where /proc lets us open it. */
        char mf[128];
        snprintf(mf, sizeof(mf), "/proc/%ld/map_files/%llx-%llx", pid, start, end);
        if (strlen(mf) < cap && live_is_recording(mf, 0, ino)) {
            strcpy(out, mf);
            rc = 0;
        }
    }
    fclose(m);
    return rc;
}
