/* The text report of `ftprof report` (and `ftprof run`'s compact summary): the banners about the
 * recordings, then the lock sections, each lock with its waiter and holder sites. The account of time
 * is in report_text_time.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftprof/format.h"
#include "report.h"
#include "report_text.h"

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

void rt_count(char *buf, size_t len, uint64_t v)
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
size_t rt_width(const char *s)
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
    /* Cut between words, not inside one (a source line cut at "self.ca…" reads as another name): at
     * a space, else after an opening bracket, a dot or a comma, keeping at least half of what fits. */
    if (*p != ' ' && p > s && p[-1] != ' ' && !strchr("([{.,", p[-1])) {
        const char *half = s + (p - s) / 2, *cut = NULL;
        for (const char *q = p - 1; q > half && !cut; q--)
            if (*q == ' ')
                cut = q;
        for (const char *q = p - 1; q > half && !cut; q--)
            if (strchr("([{.,", q[-1]))
                cut = q;
        if (cut)
            p = cut;
    }
    while (p > s && p[-1] == ' ')
        p--;
    fwrite(s, 1, (size_t)(p - s), out);
    fputs("\u2026", out);
}

/* Prose (a verdict, a note under a lock) in lines of at most `cols` columns, broken between words;
 * continuation lines start with `indent` spaces, under the first line's text. */
void rt_put_wrapped(FILE *out, const char *s, size_t cols, size_t indent)
{
    if (cols < 20)
        cols = 20;
    bool first = true;
    while (*s) {
        if (!first) {
            fputc('\n', out);
            for (size_t i = 0; i < indent; i++)
                fputc(' ', out);
        }
        first = false;
        if (rt_width(s) <= cols) {
            fputs(s, out);
            return;
        }
        /* The last space within `cols` columns; a word longer than a line goes on a line of its own. */
        const char *p = s, *brk = NULL;
        for (size_t seen = 0; *p && seen <= cols; p++) {
            if (((unsigned char)*p & 0xc0) == 0x80)
                continue;
            if (*p == ' ')
                brk = p;
            seen++;
        }
        if (!brk || brk == s) {
            brk = strchr(s + 1, ' ');
            if (!brk) {
                fputs(s, out);
                return;
            }
        }
        fwrite(s, 1, (size_t)(brk - s), out);
        s = brk;
        while (*s == ' ')
            s++;
    }
}


/* Durations in at most 7 columns, for the table. */
static void rt_dur(char *buf, size_t len, uint64_t ns);

static bool rt_str_eq(const char *a, const char *b) { return a == b || (a && b && strcmp(a, b) == 0); }

static bool rt_frame_eq(const struct prof_frame *a, const struct prof_frame *b)
{
    return a->line == b->line && a->native == b->native && rt_str_eq(a->function, b->function) &&
           rt_str_eq(a->file, b->file);
}

/* "function (file:line)", "function (file)" or "function". */
static int rt_frame_text(char *buf, size_t len, const struct prof_frame *f)
{
    if (f && f->file && f->line)
        return snprintf(buf, len, "%s (%s:%d)", f->function, prof_short_file(f->file), f->line);
    if (f && f->file)
        return snprintf(buf, len, "%s (%s)", f->function, prof_short_file(f->file));
    return snprintf(buf, len, "%s", f ? f->function : "[unknown]");
}

/* How many frames outward from its site frame site `i` must show so that no other shown site prints
 * the same: two sites that wait at one line for different callers are told apart by the first frame
 * where their stacks part (1: the site frame alone is enough). */
static size_t rt_frames_to_differ(const struct prof_site *sites, size_t shown, size_t i, enum prof_kind kind)
{
    const struct prof_stack *a = sites[i].stack;
    const struct prof_frame *fa = prof_site_frame(a, kind);
    size_t need = 1;
    if (!fa)
        return need;
    size_t ia = (size_t)(fa - a->frames);
    for (size_t j = 0; j < shown; j++) {
        const struct prof_stack *b = sites[j].stack;
        const struct prof_frame *fb = j == i ? NULL : prof_site_frame(b, kind);
        if (!fb || !rt_frame_eq(fa, fb))
            continue;
        size_t ib = (size_t)(fb - b->frames), k = 1;
        while (ia + k < a->depth && ib + k < b->depth && rt_frame_eq(&a->frames[ia + k], &b->frames[ib + k]))
            k++;
        if (k + 1 > need)
            need = k + 1;
    }
    return need;
}

/* The site frame, then `depth - 1` callers, and — when `differ` lies beyond them — the first caller
 * that tells this site from another: "f (a.py:3) <- g (a.py:9) <- ... <- main (a.py:20)". */
static void rt_site_chain(char *buf, size_t len, const struct prof_stack *st, const struct prof_frame *f,
                          size_t depth, size_t differ)
{
    int n = rt_frame_text(buf, len, f);
    if (!f || !st || n < 0 || (size_t)n >= len)
        return;
    size_t at = (size_t)(f - st->frames), shown = 1;
    for (; shown < depth && at + shown < st->depth && (size_t)n < len; shown++) {
        int m = snprintf(buf + n, len - (size_t)n, " \u2190 ");
        n += m;
        if ((size_t)n >= len)
            return;
        n += rt_frame_text(buf + n, len - (size_t)n, &st->frames[at + shown]);
    }
    if (differ > shown && (size_t)n < len) {
        if (at + differ - 1 < st->depth) {
            n += snprintf(buf + n, len - (size_t)n, differ > shown + 1 ? " \u2190 \u2026 \u2190 " : " \u2190 ");
            if ((size_t)n < len)
                rt_frame_text(buf + n, len - (size_t)n, &st->frames[at + differ - 1]);
        } else {
            snprintf(buf + n, len - (size_t)n, " \u2190 [outermost]"); /* the other site has more callers */
        }
    }
}

/* Sites in the profile's order (by wait), each as its share of `base`. Holder sites share out the part
 * of the lock's wait whose holder is known (`known`), so their shares never add up to more than it. */
static void rt_sites(struct rt *r, const char *label, enum prof_kind kind, const struct prof_site *sites, size_t n,
                     uint64_t base, uint64_t known, bool holds)
{
    size_t shown = n < r->opt->sites ? n : r->opt->sites;
    uint64_t left = known;
    size_t depth = r->opt->depth ? r->opt->depth : 1;
    for (size_t i = 0; i < shown; i++) {
        const struct prof_frame *f = prof_site_frame(sites[i].stack, kind);
        uint64_t part = sites[i].wait_ns < left ? sites[i].wait_ns : left;
        left -= part;
        double share = base ? 100.0 * (double)part / (double)base : 0;
        char where[1024], held[48] = "";
        if (holds && sites[i].holds) {
            char p50[24];
            rt_dur(p50, sizeof(p50), sites[i].hold_p50_ns);
            snprintf(held, sizeof(held), "  held p50 %s", p50);
        }
        rt_site_chain(where, sizeof(where) - sizeof(held), sites[i].stack, f, depth,
                      rt_frames_to_differ(sites, shown, i, kind));
        strcat(where, held);
        fprintf(r->out, "      %s%-8s%s %5.1f%%  ", rt_c(r, RT_DIM), i == 0 ? label : "", rt_c(r, RT_RESET), share);
        size_t used = 6 + 8 + 1 + 6 + 2;
        rt_put_fit(r->out, where, r->opt->width > used + 10 ? r->opt->width - used : 10, false);
        fputc('\n', r->out);
    }
}

/* "holder known for 73% of the wait; held p50 1.0ms, p99 2.1ms, max 3.0ms" under a lock's holders. */
static void rt_holds(struct rt *r, const struct prof_lock *l)
{
    if (!l->n_holders && !l->holds)
        return;
    char line[256];
    int n = snprintf(line, sizeof(line), "holder known for %.0f%% of the wait",
                     l->wait_ns ? 100.0 * (double)l->holder_known_ns / (double)l->wait_ns : 0.0);
    if (l->holds && prof_kind_is_contention(l->kind)) {
        char p50[24], p99[24], max[24];
        rt_dur(p50, sizeof(p50), l->hold_p50_ns);
        rt_dur(p99, sizeof(p99), l->hold_p99_ns);
        rt_dur(max, sizeof(max), l->hold_max_ns);
        snprintf(line + n, sizeof(line) - (size_t)n, "; held p50 %s, p99 %s, max %s", p50, p99, max);
    }
    fprintf(r->out, "      %s%-8s ", rt_c(r, RT_DIM), "");
    rt_put_wrapped(r->out, line, r->opt->width > 35 ? r->opt->width - 15 : 20, 15);
    fprintf(r->out, "%s\n", rt_c(r, RT_RESET));
    /* Holds of a holder whose acquisition went unrecorded are the part the waiter saw: say how many. */
    if (l->holds && prof_kind_is_contention(l->kind) && l->holds_from_acquisition < l->holds) {
        snprintf(line, sizeof(line), "(%" PRIu64 " of %" PRIu64 " holds from the holder's own acquisition, the rest "
                 "from the wait's start)", l->holds_from_acquisition, l->holds);
        fprintf(r->out, "      %s%-8s ", rt_c(r, RT_DIM), "");
        rt_put_wrapped(r->out, line, r->opt->width > 35 ? r->opt->width - 15 : 20, 15);
        fprintf(r->out, "%s\n", rt_c(r, RT_RESET));
    }
}

/* What a row of the interpreter's own machinery is, when its name alone does not say. */
static void rt_lock_note(struct rt *r, const struct prof_lock *l)
{
    const char *note = NULL;
    if (l->kind == PROF_KIND_GIL && l->address == 0)
        note = "(a free-threaded build turns the GIL on while it imports an extension module, and off again "
               "once the module declares free-threading support: threads running meanwhile wait for it)";
    else if (strcmp(l->name, "spin (unattributed)") == 0)
        note = "(short spins that got their lock without ever parking, from stacks that never parked on a known "
               "lock: the recorder cannot tell which lock they were; README, Limitations)";
    char owner[1024];
    if (!note && l->native_object) {
        /* The name may be cut to the terminal's width: the object, distribution and wheel in full. */
        int n = snprintf(owner, sizeof(owner), "(taken by code in %s", l->native_object);
        if (l->native_other_object && n > 0 && (size_t)n < sizeof(owner))
            n += snprintf(owner + n, sizeof(owner) - (size_t)n, " and in %s", l->native_other_object);
        if (n > 0 && (size_t)n < sizeof(owner))
            snprintf(owner + n, sizeof(owner) - (size_t)n, "%s%s%s%s%s%s", l->native_distribution ? ", installed by " : "; "
                     "no installed distribution lists it", l->native_distribution ? l->native_distribution : "",
                     l->native_distribution ? " " : "", l->native_version ? l->native_version : "",
                     l->native_wheel_tag ? " from a wheel tagged " : "", l->native_wheel_tag ? l->native_wheel_tag : "");
        strncat(owner, ")", sizeof(owner) - strlen(owner) - 1);
        note = owner;
    }
    if (!note)
        return;
    fprintf(r->out, "      %s%-8s ", rt_c(r, RT_DIM), "");
    rt_put_wrapped(r->out, note, r->opt->width > 35 ? r->opt->width - 15 : 20, 15);
    fprintf(r->out, "%s\n", rt_c(r, RT_RESET));
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
void rt_right(FILE *out, const char *s, size_t cols)
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
    /* The owner goes after the type: "Lock queue.Queue.mutex @…a720", "dict CACHE @…91c0". */
    const char *at = l->owner ? strstr(l->name, " @\u2026") : NULL;
    int head = at ? (int)(at - l->name) : (int)strlen(l->name);
    snprintf(name, sizeof(name), "%.*s%s%s%s%s%s%s", head, l->name, l->owner ? " " : "", l->owner ? l->owner : "",
             l->name + head, pid, l->source ? "  " : "", l->source ? l->source : "");
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

static bool rt_folded(const struct rt *r, const struct prof_lock *l, uint64_t base)
{
    return r->opt->fold_below > 0 && base && (double)l->wait_ns < r->opt->fold_below * (double)base;
}

/* After a section's rows: how many more there are, those above the threshold as a count and those
 * below it summed by kind: "(3 more; --top N shows more) (167 under 0.1% of contention, 1.2ms in all:
 * 160 critical_section, 7 lock; --all lists them)". */
static void rt_fold_line(struct rt *r, bool contention, uint64_t base, size_t shown)
{
    size_t above = 0, below = 0, by_kind[PROF_KIND_COUNT] = {0};
    uint64_t below_ns = 0;
    for (size_t i = 0; i < r->p->n_locks; i++) {
        const struct prof_lock *l = &r->p->locks[i];
        if (prof_kind_is_contention(l->kind) != contention)
            continue;
        if (rt_folded(r, l, base)) {
            below++, below_ns += l->wait_ns, by_kind[l->kind]++;
        } else {
            above++;
        }
    }
    if (above > shown && shown > 0)
        fprintf(r->out, "    %s(%zu more; --top N shows more)%s\n", rt_c(r, RT_DIM), above - shown, rt_c(r, RT_RESET));
    if (!below)
        return;
    char line[512], d[24];
    rt_dur(d, sizeof(d), below_ns);
    int n = snprintf(line, sizeof(line), "(%zu more row%s, each under %.1f%% of %s, %s in all:", below,
                     below == 1 ? "" : "s", 100.0 * r->opt->fold_below, contention ? "contention" : "this section", d);
    for (int k = 0, first = 1; k < PROF_KIND_COUNT && n > 0 && (size_t)n < sizeof(line); k++)
        if (by_kind[k]) {
            n += snprintf(line + n, sizeof(line) - (size_t)n, "%s %zu %s", first ? "" : ",", by_kind[k],
                          prof_kind_name((enum prof_kind)k));
            first = 0;
        }
    if (n > 0 && (size_t)n < sizeof(line))
        snprintf(line + n, sizeof(line) - (size_t)n, "; --all lists them)");
    fprintf(r->out, "    %s", rt_c(r, RT_DIM));
    rt_put_wrapped(r->out, line, r->opt->width > 25 ? r->opt->width - 5 : 20, 5);
    fprintf(r->out, "%s\n", rt_c(r, RT_RESET));
}

static void rt_section(struct rt *r, const char *title, bool contention, uint64_t base)
{
    size_t shown = 0;
    for (size_t i = 0; i < r->p->n_locks && shown < r->opt->top; i++) {
        const struct prof_lock *l = &r->p->locks[i];
        if (prof_kind_is_contention(l->kind) != contention)
            continue;
        if (rt_folded(r, l, base))
            break; /* rows come by wait: the rest are smaller still */
        if (shown == 0)
            rt_header(r, title);
        rt_lock_row(r, ++shown, l, base);
        if (r->opt->compact)
            continue;
        uint64_t wc;
        uint64_t ww = rt_sum_wait(l->waiters, l->n_waiters, &wc);
        rt_sites(r, "waiters", l->kind, l->waiters, l->n_waiters, ww, ww, false);
        /* Holders by their share of the lock's wait: only waits joined with the wake-up that ended them
         * have a known holder (a spin that took the lock without parking has none). */
        rt_sites(r, "holders", l->kind, l->holders, l->n_holders, l->wait_ns, l->holder_known_ns,
                 prof_kind_is_contention(l->kind));
        rt_holds(r, l);
        rt_lock_note(r, l);
    }
    rt_fold_line(r, contention, base, shown);
}

/* What the recorder warned about while it ran (header.notes). The full report lists every note; the
 * compact one (`ftprof run`, printed after the program's own output) only those the program's stderr
 * did not get, so none is said twice. */
static void rt_notes(struct rt *r, const struct profile *p)
{
    for (size_t i = 0; i < p->n_files; i++) {
        const struct prof_file *f = &p->files[i];
        struct prof_note note;
        uint32_t pos = 0;
        bool first = true;
        while (prof_note_next(f, &pos, &note)) {
            if (r->opt->compact && note.shown_on_stderr)
                continue;
            if (first)
                fprintf(r->out, "%sRecorder notes%s (%s, pid %u):\n", rt_c(r, RT_YELLOW),
                        r->opt->compact ? " the program's stderr did not show" : "", f->path, f->pid);
            first = false;
            fprintf(r->out, "  %.*s%s%s\n", (int)note.len, note.text,
                    note.shown_on_stderr || r->opt->compact ? "" : " (not shown on the program's stderr)",
                    rt_c(r, RT_RESET));
        }
        if (f->notes_cut)
            fprintf(r->out, "  %s(more notes did not fit in the recording's header)%s\n", rt_c(r, RT_DIM),
                    rt_c(r, RT_RESET));
    }
}

/* What stands above the tables: the summary line, then whatever the reader must know first about the
 * recordings (the GIL on, no stacks, an attach window, the GIL re-enabled, extensions, a full disk,
 * the recorder's notes, dropped events). */
static void rt_banners(struct rt *r)
{
    FILE *out = r->out;
    const struct report_text_options *opt = r->opt;
    struct profile *p = r->p;
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
                rt_c(r, RT_BOLD), rt_c(r, RT_RESET), p->n_files, p->n_files == 1 ? "" : "s", dur, p->n_threads,
                p->n_threads == 1 ? "" : "s", count, total);
    }
    for (size_t i = 0; i < p->n_files; i++) {
        const struct prof_file *f = &p->files[i];
        if ((f->flags & FTP_FLAG_GIL_AT_START) && (f->flags & FTP_FLAG_PYTHON))
            fprintf(out, "%s! The GIL was enabled from the start in %s (pid %u): %s%s\n", rt_c(r, RT_YELLOW), f->path,
                    f->pid,
                    (f->flags & FTP_FLAG_FREE_THREADED) ? "a free-threaded build told to keep it (PYTHON_GIL=1, -X gil=1)"
                                                        : "not a free-threaded interpreter",
                    rt_c(r, RT_RESET));
    }
    for (size_t i = 0; i < p->n_files; i++) {
        const struct prof_file *f = &p->files[i];
        if (!(f->flags & FTP_FLAG_LAYOUT_UNKNOWN))
            continue;
        uint64_t v = f->python_version;
        unsigned level = (unsigned)(v >> 4) & 0xf;
        char pre[8] = "";
        if (level != 0xf)
            snprintf(pre, sizeof pre, "%s%u", level == 0xa ? "a" : level == 0xb ? "b" : level == 0xc ? "rc" : "?",
                     (unsigned)v & 0xf);
        fprintf(out, "%s! No Python stacks in %s (pid %u): CPython %u.%u.%u%s%s's memory layout is not one this ftprof "
                     "knows; its waits were recorded without Python stacks or object names%s\n",
                rt_c(r, RT_YELLOW), f->path, f->pid, (unsigned)(v >> 24) & 0xff, (unsigned)(v >> 16) & 0xff,
                (unsigned)(v >> 8) & 0xff, pre, (f->flags & FTP_FLAG_FREE_THREADED) ? " free-threaded" : "",
                rt_c(r, RT_RESET));
    }
    for (size_t i = 0; i < p->n_files; i++) {
        const struct prof_file *f = &p->files[i];
        if (!(f->flags & FTP_FLAG_ATTACHED))
            continue;
        char win[24];
        report_format_ns(win, sizeof(win), f->end_ns > f->start_ns ? f->end_ns - f->start_ns : 0);
        fprintf(out, "%s(attached) %s covers a %s window of pid %u, from attach to %s, not its whole run%s\n",
                rt_c(r, RT_DIM), f->path, win, f->pid, f->end_ns ? "detach" : "the last event", rt_c(r, RT_RESET));
    }
    for (size_t i = 0; i < p->n_gil_events; i++) {
        const struct prof_gil_event *g = &p->gil_events[i];
        const struct prof_file *f = &p->files[g->file];
        char at[24], after[24];
        report_format_ns(at, sizeof(at), g->time_ns > f->start_ns ? g->time_ns - f->start_ns : 0);
        report_format_ns(after, sizeof(after), g->gil_wait_after_ns);
        fprintf(out, "%s! The GIL was re-enabled by module %s (%s) at +%s; waits on the GIL afterwards: %s%s\n",
                rt_c(r, RT_YELLOW), g->module, g->path, at, after, rt_c(r, RT_RESET));
        fprintf(out, "  %s(an extension that does not declare free-threading support; threads now take turns)%s\n",
                rt_c(r, RT_DIM), rt_c(r, RT_RESET));
    }
    if (!opt->compact)
        report_text_extensions(out, p, opt->color);
    for (size_t i = 0; i < p->n_files; i++) {
        const struct prof_file *f = &p->files[i];
        if (!(f->flags & FTP_FLAG_DISK_FULL))
            continue;
        char d[32];
        rt_count(d, sizeof(d), f->disk_full_events);
        fprintf(out, "%s! %s ends early because the disk was full: %s later wait%s not stored%s\n", rt_c(r, RT_RED),
                f->path, d, f->disk_full_events == 1 ? " was" : "s were", rt_c(r, RT_RESET));
    }
    rt_notes(r, p);
    if (p->dropped_events) {
        char d[32];
        rt_count(d, sizeof(d), p->dropped_events);
        bool one = p->dropped_events == 1;
        fprintf(out, "%s! %s event%s dropped because the recording buffer was full (raise FTPROF_BUFFER)%s\n",
                rt_c(r, RT_RED), d, one ? " was" : "s were", rt_c(r, RT_RESET));
    }
}

int report_text(FILE *out, struct profile *p, const struct report_text_options *opt)
{
    struct rt r = {.out = out, .opt = opt, .p = p};
    rt_banners(&r);
    rt_time(&r); /* `ftprof run`'s compact summary too: its split and verdict, without the thread table */
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
