#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftprof/format.h"
#include "report.h"

#define RT_BOLD "\033[1m"
#define RT_DIM "\033[2m"
#define RT_YELLOW "\033[33m"
#define RT_RED "\033[31m"
#define RT_RESET "\033[0m"

struct rt {
    FILE *out;
    const struct report_text_options *opt;
    struct profile *p;
};

static const char *rt_c(const struct rt *r, const char *code) { return r->opt->color ? code : ""; }

void report_format_ns(char *buf, size_t len, uint64_t ns)
{
    if (ns < 1000)
        snprintf(buf, len, "%" PRIu64 " ns", ns);
    else if (ns < 1000000)
        snprintf(buf, len, "%.1f \u00b5s", (double)ns / 1e3);
    else if (ns < 1000000000)
        snprintf(buf, len, "%.2f ms", (double)ns / 1e6);
    else
        snprintf(buf, len, "%.2f s", (double)ns / 1e9);
}

static void rt_count(char *buf, size_t len, uint64_t v)
{
    char raw[32];
    snprintf(raw, sizeof(raw), "%" PRIu64, v);
    size_t n = strlen(raw), o = 0;
    for (size_t i = 0; i < n && o + 2 < len; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = 0;
}

/* Display width of UTF-8 text, counting code points (the names we print have no wide characters). */
static size_t rt_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

/* Prints at most `cols` columns of `s`, padded to `cols` when `pad`. */
static void rt_put_fit(FILE *out, const char *s, size_t cols, bool pad)
{
    size_t w = rt_width(s);
    if (w <= cols) {
        fputs(s, out);
        if (pad)
            for (size_t i = w; i < cols; i++)
                fputc(' ', out);
        return;
    }
    if (cols == 0)
        return;
    size_t keep = cols - 1, seen = 0;
    const char *p = s;
    for (; *p; p++) {
        if (((unsigned char)*p & 0xc0) != 0x80) {
            if (seen == keep)
                break;
            seen++;
        }
    }
    fwrite(s, 1, (size_t)(p - s), out);
    fputs("\u2026", out);
}

static const char *rt_basename(const char *path)
{
    const char *b = path ? strrchr(path, '/') : NULL;
    return b ? b + 1 : path;
}

static void rt_sites(struct rt *r, const char *label, enum prof_kind kind, const struct prof_site *sites, size_t n,
                     uint64_t total_wait, uint64_t total_count)
{
    size_t shown = n < r->opt->sites ? n : r->opt->sites;
    /* Sites come ranked by wait; shares by count (holders) are shown ranked by count: pick the
     * top `shown` by count without reordering the profile's array. */
    size_t order[16];
    if (shown > sizeof order / sizeof *order)
        shown = sizeof order / sizeof *order;
    for (size_t i = 0; i < shown; i++) {
        size_t best = SIZE_MAX;
        for (size_t j = 0; j < n; j++) {
            bool taken = false;
            for (size_t k = 0; k < i; k++)
                taken |= order[k] == j;
            if (taken)
                continue;
            if (best == SIZE_MAX || (!total_wait && sites[j].count > sites[best].count))
                best = j;
            if (total_wait)
                break; /* by wait: the profile's order already */
        }
        order[i] = best;
    }
    for (size_t oi = 0; oi < shown; oi++) {
        size_t i = order[oi];
        const struct prof_frame *f = prof_site_frame(sites[i].stack, kind);
        double share = total_wait ? 100.0 * (double)sites[i].wait_ns / (double)total_wait
                                  : (total_count ? 100.0 * (double)sites[i].count / (double)total_count : 0);
        char where[512];
        if (f && f->file && f->line)
            snprintf(where, sizeof(where), "%s (%s:%d)", f->function, rt_basename(f->file), f->line);
        else if (f && f->file)
            snprintf(where, sizeof(where), "%s (%s)", f->function, rt_basename(f->file));
        else
            snprintf(where, sizeof(where), "%s", f ? f->function : "[unknown]");
        fprintf(r->out, "      %s%-8s%s %5.1f%%  ", rt_c(r, RT_DIM), oi == 0 ? label : "", rt_c(r, RT_RESET), share);
        size_t used = 6 + 8 + 1 + 6 + 2;
        rt_put_fit(r->out, where, r->opt->width > used + 10 ? r->opt->width - used : 10, false);
        fputc('\n', r->out);
    }
}

static uint64_t rt_sum_wait(const struct prof_site *s, size_t n, uint64_t *count)
{
    uint64_t w = 0, c = 0;
    for (size_t i = 0; i < n; i++) {
        w += s[i].wait_ns;
        c += s[i].count;
    }
    *count = c;
    return w;
}

/* Durations in at most 7 columns, for the table. */
static void rt_dur(char *buf, size_t len, uint64_t ns)
{
    if (ns < 1000)
        snprintf(buf, len, "%" PRIu64 "ns", ns);
    else if (ns < 100000)
        snprintf(buf, len, "%.1f\u00b5s", (double)ns / 1e3);
    else if (ns < 1000000)
        snprintf(buf, len, "%.0f\u00b5s", (double)ns / 1e3);
    else if (ns < 100000000)
        snprintf(buf, len, "%.1fms", (double)ns / 1e6);
    else if (ns < 1000000000)
        snprintf(buf, len, "%.0fms", (double)ns / 1e6);
    else
        snprintf(buf, len, "%.2fs", (double)ns / 1e9);
}

/* Right-aligns UTF-8 text in `cols` columns (printf pads by bytes, not by characters). */
static void rt_right(FILE *out, const char *s, size_t cols)
{
    size_t w = rt_width(s);
    for (size_t i = w; i < cols; i++)
        fputc(' ', out);
    fputs(s, out);
}

/* Numbers first, then kind and name, which take whatever width is left. */
#define RT_NUM_COLS 66

static void rt_lock_row(struct rt *r, size_t rank, const struct prof_lock *l, uint64_t base)
{
    char name[640], waits[32], total[24], mean[24], p50[24], p99[24], max[24], share[16];
    char pid[24] = "";
    /* Locks of different processes never merge: say whose each one is. */
    if (r->p->n_files > 1)
        snprintf(pid, sizeof(pid), " [pid %u]", r->p->files[l->file].pid);
    snprintf(name, sizeof(name), "%s%s%s%s", l->name, pid, l->source ? "  " : "", l->source ? l->source : "");
    rt_count(waits, sizeof(waits), l->contentions);
    rt_dur(total, sizeof(total), l->wait_ns);
    rt_dur(mean, sizeof(mean), l->contentions ? l->wait_ns / l->contentions : 0);
    rt_dur(p50, sizeof(p50), l->p50_wait_ns);
    rt_dur(p99, sizeof(p99), l->p99_wait_ns);
    rt_dur(max, sizeof(max), l->max_wait_ns);
    if (base)
        snprintf(share, sizeof(share), "%.1f%%", 100.0 * (double)l->wait_ns / (double)base);
    else
        snprintf(share, sizeof(share), "-");
    /* Narrow terminals get the name on a line of its own above the numbers. */
    bool narrow = r->opt->width < RT_NUM_COLS + 34;
    if (narrow) {
        fprintf(r->out, "%3zu  %s%s%s ", rank, rt_c(r, RT_BOLD), prof_kind_name(l->kind), rt_c(r, RT_RESET));
        size_t used = 5 + strlen(prof_kind_name(l->kind)) + 1;
        rt_put_fit(r->out, name, r->opt->width > used + 12 ? r->opt->width - used : 12, false);
        fprintf(r->out, "\n    %9s ", waits);
    } else {
        fprintf(r->out, "%3zu %9s ", rank, waits);
    }
    rt_right(r->out, total, 7);
    fprintf(r->out, " %6s ", share);
    rt_right(r->out, mean, 7);
    fputc(' ', r->out);
    rt_right(r->out, p50, 7);
    fputc(' ', r->out);
    rt_right(r->out, p99, 7);
    fputc(' ', r->out);
    rt_right(r->out, max, 7);
    fprintf(r->out, " %3u", l->threads);
    if (narrow) {
        fputc('\n', r->out);
        return;
    }
    fprintf(r->out, "  %s%s%s ", rt_c(r, RT_BOLD), prof_kind_name(l->kind), rt_c(r, RT_RESET));
    size_t used = RT_NUM_COLS + strlen(prof_kind_name(l->kind)) + 1;
    rt_put_fit(r->out, name, r->opt->width > used + 12 ? r->opt->width - used : 12, false);
    fputc('\n', r->out);
}

static void rt_header(struct rt *r, const char *title)
{
    fprintf(r->out, "\n%s%s%s\n", rt_c(r, RT_BOLD), title, rt_c(r, RT_RESET));
    fprintf(r->out, "%s%3s %9s %7s %6s %7s %7s %7s %7s %3s  %s%s\n", rt_c(r, RT_DIM), "#", "WAITS", "TOTAL", "SHARE",
            "MEAN", "P50", "P99", "MAX", "THR", r->opt->width < RT_NUM_COLS + 34 ? "" : "KIND  LOCK",
            rt_c(r, RT_RESET));
}

static void rt_section(struct rt *r, const char *title, bool contention, uint64_t base)
{
    size_t shown = 0;
    for (size_t i = 0; i < r->p->n_locks && shown < r->opt->top; i++) {
        const struct prof_lock *l = &r->p->locks[i];
        if (prof_kind_is_contention(l->kind) != contention)
            continue;
        if (shown == 0)
            rt_header(r, title);
        rt_lock_row(r, ++shown, l, base);
        if (r->opt->compact)
            continue;
        uint64_t wc, hc;
        uint64_t ww = rt_sum_wait(l->waiters, l->n_waiters, &wc);
        rt_sum_wait(l->holders, l->n_holders, &hc);
        rt_sites(r, "waiters", l->kind, l->waiters, l->n_waiters, ww, wc);
        /* Holders by share of wake-ups: not every wake-up could be matched with the wait it ended. */
        rt_sites(r, "holders", l->kind, l->holders, l->n_holders, 0, hc);
    }
    size_t total = 0;
    for (size_t i = 0; i < r->p->n_locks; i++)
        total += prof_kind_is_contention(r->p->locks[i].kind) == contention;
    if (total > shown && shown > 0)
        fprintf(r->out, "    %s(%zu more; --top N shows more)%s\n", rt_c(r, RT_DIM), total - shown, rt_c(r, RT_RESET));
}

int report_text(FILE *out, struct profile *p, const struct report_text_options *opt)
{
    struct rt r = {.out = out, .opt = opt, .p = p};
    char dur[24], total[24], count[32];
    uint64_t contentions = 0;
    for (size_t i = 0; i < p->n_locks; i++)
        if (prof_kind_is_contention(p->locks[i].kind))
            contentions += p->locks[i].contentions;
    report_format_ns(dur, sizeof(dur), p->duration_ns);
    report_format_ns(total, sizeof(total), p->contention_wait_ns);
    rt_count(count, sizeof(count), contentions);

    if (!opt->compact) {
        fprintf(out, "%sftprof%s: %zu recording%s, %s, %zu thread%s, %s contended acquisitions, %s waiting on locks\n",
                rt_c(&r, RT_BOLD), rt_c(&r, RT_RESET), p->n_files, p->n_files == 1 ? "" : "s", dur, p->n_threads,
                p->n_threads == 1 ? "" : "s", count, total);
    }
    for (size_t i = 0; i < p->n_files; i++) {
        const struct prof_file *f = &p->files[i];
        if ((f->flags & FTP_FLAG_GIL_AT_START) && (f->flags & FTP_FLAG_PYTHON))
            fprintf(out, "%s! The GIL was enabled from the start in %s (pid %u): %s%s\n", rt_c(&r, RT_YELLOW), f->path,
                    f->pid,
                    (f->flags & FTP_FLAG_FREE_THREADED) ? "a free-threaded build told to keep it (PYTHON_GIL=1, -X gil=1)"
                                                        : "not a free-threaded interpreter",
                    rt_c(&r, RT_RESET));
    }
    for (size_t i = 0; i < p->n_gil_events; i++) {
        const struct prof_gil_event *g = &p->gil_events[i];
        const struct prof_file *f = &p->files[g->file];
        char at[24], after[24];
        report_format_ns(at, sizeof(at), g->time_ns > f->start_ns ? g->time_ns - f->start_ns : 0);
        report_format_ns(after, sizeof(after), g->gil_wait_after_ns);
        fprintf(out, "%s! The GIL was re-enabled by module %s (%s) at +%s; waits on the GIL afterwards: %s%s\n",
                rt_c(&r, RT_YELLOW), g->module, g->path, at, after, rt_c(&r, RT_RESET));
        fprintf(out, "  %s(an extension that does not declare free-threading support; threads now take turns)%s\n",
                rt_c(&r, RT_DIM), rt_c(&r, RT_RESET));
    }
    for (size_t i = 0; i < p->n_files; i++) {
        const struct prof_file *f = &p->files[i];
        if (!(f->flags & FTP_FLAG_DISK_FULL))
            continue;
        char d[32];
        rt_count(d, sizeof(d), f->disk_full_events);
        fprintf(out, "%s! %s ends early because the disk was full: %s later wait%s not stored%s\n", rt_c(&r, RT_RED),
                f->path, d, f->disk_full_events == 1 ? " was" : "s were", rt_c(&r, RT_RESET));
    }
    if (p->dropped_events) {
        char d[32];
        rt_count(d, sizeof(d), p->dropped_events);
        bool one = p->dropped_events == 1;
        fprintf(out, "%s! %s event%s dropped because the recording buffer was full (raise FTPROF_BUFFER)%s\n",
                rt_c(&r, RT_RED), d, one ? " was" : "s were", rt_c(&r, RT_RESET));
    }

    if (p->n_locks == 0) {
        fprintf(out, "\nNo contended waits were recorded.\n");
        return ferror(out) ? -EIO : 0;
    }
    rt_section(&r, "Lock contention, ranked by total wait", true, p->contention_wait_ns);
    if (!opt->compact) {
        uint64_t waiting = 0;
        for (size_t i = 0; i < p->n_locks; i++)
            if (!prof_kind_is_contention(p->locks[i].kind))
                waiting += p->locks[i].wait_ns;
        rt_section(&r, "Waiting for work (conditions, thread joins)", false, waiting);
    }
    return ferror(out) ? -EIO : 0;
}
