/* The text report's account of time: where the threads' time went (running, waiting on locks, on
 * work, on I/O), the verdict it allows, and the table of threads. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftprof/format.h"
#include "report_text.h"

static double rt_pct(uint64_t part, uint64_t whole) { return whole ? 100.0 * (double)part / (double)whole : 0.0; }

/* The name a user knows a lock by: the variable of its main acquire line (`with RENDER_LOCK:`,
 * `CACHE_LOCK.acquire()`) when the source says it, else the report's name. */
static bool rt_ident_char(char c)
{
    return c == '_' || c == '.' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static void rt_lock_known_name(const struct prof_lock *l, char *out, size_t cap)
{
    if (l->owner) {
        snprintf(out, cap, "%s", l->owner);
        return;
    }
    const char *src = l->source, *b = NULL, *e = NULL;
    if (src && strncmp(src, "with ", 5) == 0) {
        b = e = src + 5;
        while (rt_ident_char(*e))
            e++;
        if (*e != ':' && *e != ',' && *e != ' ')
            e = b; /* `with open(...)`: a call, not a lock's name */
    } else if (src && (e = strstr(src, ".acquire("))) {
        b = e;
        while (b > src && rt_ident_char(b[-1]))
            b--;
    }
    if (b && e > b && e - b < 64 && !(*b >= '0' && *b <= '9') && *b != '.')
        snprintf(out, cap, "%.*s", (int)(e - b), b);
    else
        snprintf(out, cap, "%s", l->name);
}

/* The line saying why no verdict is given, when dropped waits leave the share spanning two verdicts. */
static void rt_verdict_withheld(const struct rt *r, double low, double high, char *why, size_t cap)
{
    const struct profile *p = r->p;
    char d[32], all[32], dt[24];
    rt_count(d, sizeof(d), p->dropped_events);
    rt_count(all, sizeof(all), p->dropped_events + p->events);
    if (p->dropped_wait_unknown) {
        snprintf(why, cap, "no verdict: %s of %s waits were dropped (buffer full) and this recording does not "
                 "say how long they waited; raise FTPROF_BUFFER and record again", d, all);
        return;
    }
    report_format_ns(dt, sizeof(dt), p->dropped_wait_ns);
    snprintf(why, cap, "no verdict: %s of %s waits (%s) were dropped because the buffer was full, so contention "
             "is between %.0f%% and %.0f%% of thread time; raise FTPROF_BUFFER and record again", d, all, dt,
             100.0 * low, 100.0 * high);
}

/* One line a user can act on: does contention matter for this run, and which lock. */
static void rt_verdict(struct rt *r)
{
    const struct prof_time *t = &r->p->time;
    const struct prof_lock *top = NULL;
    for (size_t i = 0; i < r->p->n_locks && !top; i++)
        if (prof_kind_is_contention(r->p->locks[i].kind))
            top = &r->p->locks[i];
    double share = rt_pct(t->contention_ns, t->thread_ns);
    char name[96] = "", line[400], rq[48] = "";
    /* With waits dropped, what was recorded is a lower bound: said so when the verdict stands anyway. */
    const char *at_least = r->p->dropped_events ? "at least " : "";
    if (top)
        rt_lock_known_name(top, name, sizeof(name));
    double waiting = top && t->wall_ns ? (double)top->wait_ns / (double)t->wall_ns : 0, low, high;
    enum prof_verdict v = prof_verdict_of(r->p, &low, &high);
    if (v == PROF_VERDICT_WITHHELD) {
        rt_verdict_withheld(r, low, high, line, sizeof(line));
    } else if (top && v == PROF_VERDICT_LOCKS) {
        snprintf(line, sizeof(line), "contention cost %s%.0f%% of thread time; %s alone kept %.1f of %u thread%s "
                 "waiting on average", at_least, share, name, waiting, top->threads, top->threads == 1 ? "" : "s");
    } else if (top && v == PROF_VERDICT_SOME) {
        snprintf(line, sizeof(line), "contention is %s%.0f%% of thread time; %s is %.0f%% of it (%.1f threads "
                 "waiting on average)", at_least, share, name,
                 rt_pct(top->wait_ns, t->contention_ns), waiting);
    } else if (!t->cpu_known) {
        /* Say what does take the time, as far as it is known. */
        snprintf(line, sizeof(line), "contention is %.0f%% of thread time; locks are not what limits this "
                 "program (its CPU time is unknown)", share);
    } else {
        if (t->run_delay_threads)
            snprintf(rq, sizeof(rq), ", %.0f%% waiting for a CPU", rt_pct(t->run_delay_ns, t->thread_ns));
        snprintf(line, sizeof(line), "contention is %.0f%% of thread time; locks are not what limits this "
                 "program: %.1f cores busy, %.0f%% of thread time on CPU, %.0f%% waiting for work%s, %.0f%% elsewhere "
                 "(I/O, sleep)", share, t->wall_ns ? (double)t->cpu_ns / (double)t->wall_ns : 0,
                 rt_pct(t->threads_cpu_ns, t->thread_ns), rt_pct(t->waiting_for_work_ns, t->thread_ns), rq,
                 rt_pct(t->other_ns, t->thread_ns));
    }
    fprintf(r->out, "  %s=> ", rt_c(r, RT_BOLD));
    rt_put_wrapped(r->out, line, r->opt->width > 25 ? r->opt->width - 5 : 20, 5);
    fprintf(r->out, "%s\n", rt_c(r, RT_RESET));
}

static void rt_time_row(struct rt *r, const char *label, uint64_t ns, uint64_t whole, const char *note)
{
    char d[24];
    report_format_ns(d, sizeof(d), ns);
    fprintf(r->out, "  %-22s", label);
    rt_right(r->out, d, 10);
    fprintf(r->out, " %6.1f%%%s%s\n", rt_pct(ns, whole), note ? "   " : "", note ? note : "");
}

static int rt_thread_cmp(const void *a, const void *b)
{
    const struct prof_thread *x = *(const struct prof_thread *const *)a, *y = *(const struct prof_thread *const *)b;
    if (x->contention_ns != y->contention_ns)
        return x->contention_ns < y->contention_ns ? 1 : -1;
    if (x->lifetime_ns != y->lifetime_ns)
        return x->lifetime_ns < y->lifetime_ns ? 1 : -1;
    return x->tid < y->tid ? -1 : x->tid > y->tid;
}

#define RT_THREAD_NAME_MAX 96

static void rt_thread_label(const struct profile *p, const struct prof_thread *th, char *out, size_t cap)
{
    if (p->n_files > 1)
        snprintf(out, cap, "%s [pid %u]", th->name ? th->name : "?", th->pid);
    else
        snprintf(out, cap, "%s", th->name ? th->name : "?");
}

/* Byte offset of the `n`th code point of `s` (its length when shorter). */
static size_t rt_cp_offset(const char *s, size_t n)
{
    size_t i = 0;
    for (; s[i]; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80 && n-- == 0)
            break;
    return i;
}

/* Whether another name than `self` starts with the first `head` code points of `self` and ends with its
 * last `tail`: then "head…tail" would not tell them apart. */
static bool rt_name_shared(const char (*names)[RT_THREAD_NAME_MAX], size_t n, size_t self, size_t head, size_t tail)
{
    const char *s = names[self];
    size_t hb = rt_cp_offset(s, head), len = strlen(s), tb = len - rt_cp_offset(s, rt_width(s) - tail);
    for (size_t j = 0; j < n; j++) {
        const char *o = names[j];
        size_t olen = strlen(o);
        if (j != self && strcmp(o, s) != 0 && olen >= hb + tb && memcmp(o, s, hb) == 0 &&
            memcmp(o + olen - tb, s + len - tb, tb) == 0)
            return true;
    }
    return false;
}

/* A thread's name in exactly `cols` columns. A name too long keeps its head and as much of its end as
 * tells it from every other shown name ("ThreadPoolExecutor-0_3" → "ThreadPoolEx…0_3"): two different
 * names never print the same, and every row keeps its columns. */
static void rt_put_thread_name(FILE *out, const char (*names)[RT_THREAD_NAME_MAX], size_t n, size_t self,
                               size_t cols)
{
    const char *s = names[self];
    size_t w = rt_width(s);
    if (w <= cols || cols < 2) {
        fputs(s, out);
        for (size_t i = w; i < cols; i++)
            fputc(' ', out);
        return;
    }
    size_t tail = 0;
    while (tail + 2 < cols && rt_name_shared(names, n, self, cols - 1 - tail, tail))
        tail++;
    fwrite(s, 1, rt_cp_offset(s, cols - 1 - tail), out);
    fputs("\u2026", out);
    fputs(s + rt_cp_offset(s, w - tail), out);
}

static void rt_threads(struct rt *r)
{
    struct profile *p = r->p;
    size_t n = p->n_threads, shown = n < r->opt->threads ? n : r->opt->threads;
    if (shown == 0)
        return;
    const struct prof_thread **order = malloc(n * sizeof(*order));
    char (*names)[RT_THREAD_NAME_MAX] = malloc(shown * sizeof(*names));
    if (!order || !names) {
        free(order);
        free(names);
        return;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = &p->threads[i];
    qsort(order, n, sizeof(*order), rt_thread_cmp);
    bool wide = r->opt->width >= 100;
    fprintf(r->out, "\n%sThreads, by lock contention%s", rt_c(r, RT_BOLD), rt_c(r, RT_RESET));
    if (shown < n)
        fprintf(r->out, " %s(top %zu of %zu; --threads shows all)%s", rt_c(r, RT_DIM), shown, n, rt_c(r, RT_RESET));
    /* The name column: as wide as the widest name, as far as the terminal leaves room for the numbers. */
    size_t numbers = 2 + 10 + (wide ? 3 * 17 + 9 : 7 + 11 + 11 + 7), name_cols = 6;
    for (size_t i = 0; i < shown; i++) {
        rt_thread_label(p, order[i], names[i], sizeof(names[i]));
        size_t w = rt_width(names[i]);
        name_cols = w > name_cols ? w : name_cols;
    }
    if (r->opt->width > numbers + 12 && name_cols > r->opt->width - numbers)
        name_cols = r->opt->width - numbers;
    else if (r->opt->width <= numbers + 12 && name_cols > 12)
        name_cols = 12;
    fprintf(r->out, "\n%s  %-*s %9s %*s %*s %*s %*s%s\n", rt_c(r, RT_DIM), (int)name_cols, "THREAD", "LIFETIME", wide ? 16 : 6,
            "CPU", wide ? 16 : 10, "CONTENTION", wide ? 16 : 10, "WAIT WORK", wide ? 8 : 6, "REST", rt_c(r, RT_RESET));
    for (size_t i = 0; i < shown; i++) {
        const struct prof_thread *th = order[i];
        char life[24], cols[3][40];
        report_format_ns(life, sizeof(life), th->lifetime_ns);
        uint64_t parts[3] = {th->cpu_ns, th->contention_ns, th->waiting_for_work_ns};
        for (int c = 0; c < 3; c++) {
            char d[24];
            report_format_ns(d, sizeof(d), parts[c]);
            if (c == 0 && !th->ended)
                snprintf(cols[c], sizeof(cols[c]), "?");
            else if (wide)
                snprintf(cols[c], sizeof(cols[c]), "%s %5.1f%%", d, rt_pct(parts[c], th->lifetime_ns));
            else
                snprintf(cols[c], sizeof(cols[c]), "%.1f%%", rt_pct(parts[c], th->lifetime_ns));
        }
        uint64_t used = th->cpu_ns + th->contention_ns + th->waiting_for_work_ns + th->run_delay_ns;
        char rest[16];
        if (th->ended)
            snprintf(rest, sizeof(rest), "%.1f%%", rt_pct(th->lifetime_ns > used ? th->lifetime_ns - used : 0,
                                                          th->lifetime_ns));
        else
            snprintf(rest, sizeof(rest), "?");
        fputs("  ", r->out);
        rt_put_thread_name(r->out, (const char (*)[RT_THREAD_NAME_MAX])names, shown, i, name_cols);
        fputc(' ', r->out);
        rt_right(r->out, life, 9);
        int w[3] = {wide ? 16 : 6, wide ? 16 : 10, wide ? 16 : 10};
        for (int c = 0; c < 3; c++) {
            fputc(' ', r->out);
            rt_right(r->out, cols[c], (size_t)w[c]);
        }
        fputc(' ', r->out);
        rt_right(r->out, rest, wide ? 8 : 6);
        fputc('\n', r->out);
    }
    free(order);
    free(names);
}

/* The rows of the time split: CPU (or unknown), contention, waiting for work, waiting for a CPU where
 * the kernel said it, and the rest. */
static void rt_time_rows(struct rt *r)
{
    const struct profile *p = r->p;
    const struct prof_time *t = &p->time;
    char cores[64], note[160] = "";
    snprintf(cores, sizeof(cores), "%.2f cores busy on average", t->wall_ns ? (double)t->cpu_ns / (double)t->wall_ns : 0);
    if (!t->cpu_known)
        fprintf(r->out, "  %-22s %10s\n", "CPU", "unknown");
    else
        rt_time_row(r, "CPU", t->threads_cpu_ns, t->thread_ns, cores);
    if (p->inflight_waits)
        snprintf(note, sizeof(note), "(with %" PRIu64 " wait%s still blocked at the end, up to it)", p->inflight_waits,
                 p->inflight_waits == 1 ? "" : "s");
    rt_time_row(r, "lock contention", t->contention_ns, t->thread_ns, note[0] ? note : NULL);
    rt_time_row(r, "waiting for work", t->waiting_for_work_ns, t->thread_ns, NULL);
    if (t->run_delay_threads) {
        if (t->run_delay_threads < p->n_threads)
            snprintf(note, sizeof(note), "(run queue, per the kernel; %u of %zu threads; wake-ups from waits too)", t->run_delay_threads,
                     p->n_threads);
        else
            snprintf(note, sizeof(note), "(run queue, per the kernel; wake-ups from waits too)");
        rt_time_row(r, "waiting for a CPU", t->run_delay_ns, t->thread_ns, note);
    }
    /* (Without the kernel's run delay, format < 8, the rest holds the run queue too, as it always did.) */
    const char *rest = !t->cpu_known ? "the rest (CPU, I/O...)" : "the rest (I/O, sleep)";
    rt_time_row(r, rest, t->other_ns, t->thread_ns, NULL);
    if (p->dropped_events && !p->dropped_wait_unknown) {
        char d[32], dt[24];
        rt_count(d, sizeof(d), p->dropped_events);
        report_format_ns(dt, sizeof(dt), p->dropped_wait_ns);
        fprintf(r->out, "  %s(not above: %s dropped wait%s, %s in all, kind unknown)%s\n", rt_c(r, RT_YELLOW), d,
                p->dropped_events == 1 ? "" : "s", dt, rt_c(r, RT_RESET));
    }
}

void rt_time(struct rt *r)
{
    const struct prof_time *t = &r->p->time;
    if (r->opt->compact && (!t->known || !t->thread_ns))
        return; /* `ftprof run`'s summary says nothing of time it did not see */
    if (!t->known) {
        fprintf(r->out, "\n%s(no thread ends in %s: recorded before ftprof noted them, so no time accounting)%s\n",
                rt_c(r, RT_DIM), r->p->n_files == 1 ? "this recording" : "these recordings", rt_c(r, RT_RESET));
        return;
    }
    char wall[24], th[24];
    report_format_ns(wall, sizeof(wall), t->wall_ns);
    report_format_ns(th, sizeof(th), t->thread_ns);
    bool attached = false;
    for (size_t i = 0; i < r->p->n_files; i++)
        attached |= (r->p->files[i].flags & FTP_FLAG_ATTACHED) != 0;
    fprintf(r->out, "\n%sWhere the threads' time went%s: %zu thread%s, %s of thread time in %s of wall time%s%s\n",
            rt_c(r, RT_BOLD), rt_c(r, RT_RESET), r->p->n_threads, r->p->n_threads == 1 ? "" : "s", th, wall,
            t->windowed ? " (recorded windows only; CPU prorated to them)" : "",
            attached ? " (attached: threads already running count from the attach)" : "");
    rt_time_rows(r);
    if (r->opt->compact) {
        rt_verdict(r);
        return;
    }
    /* (The process clock is read a moment after the exiting thread's own: ignore that difference.) */
    if (t->cpu_known && t->cpu_ns > t->threads_cpu_ns + 1000000 && t->cpu_ns - t->threads_cpu_ns > t->cpu_ns / 100) {
        char d[24];
        report_format_ns(d, sizeof(d), t->cpu_ns - t->threads_cpu_ns);
        fprintf(r->out, "  %s(and %s of CPU time in threads the recorder did not see end: they never called a "
                "hooked function, or ran until exit)%s\n", rt_c(r, RT_DIM), d, rt_c(r, RT_RESET));
    }
    if (t->files_killed)
        fprintf(r->out, "  %s(%s killed, or left through os._exit: its threads end at the last event recorded, "
                "their CPU time is unknown)%s\n", rt_c(r, RT_YELLOW),
                t->files_killed == 1 && r->p->n_files == 1 ? "the process was" : "a process was", rt_c(r, RT_RESET));
    else if (t->threads_not_ended)
        fprintf(r->out, "  %s(%u thread%s still running at exit or exec: %s at the end of the recording, CPU time "
                "unknown)%s\n",
                rt_c(r, RT_DIM), t->threads_not_ended, t->threads_not_ended == 1 ? "" : "s",
                t->threads_not_ended == 1 ? "it ends" : "they end", rt_c(r, RT_RESET));
    rt_verdict(r);
    rt_threads(r);
}
