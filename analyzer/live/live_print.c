/* `ftprof top`'s frame: a terminal view (locks by wait over the last interval, then the threads blocked
 * now, then deadlocks) and the same as one JSON object (`--once --json`). */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "live.h"
#include "report.h"

#define BOLD(c) ((c) ? "\033[1m" : "")
#define RED(c) ((c) ? "\033[1;31m" : "")
#define OFF(c) ((c) ? "\033[0m" : "")

static const char *lp_base(const char *file)
{
    return prof_short_file(file);
}

static void lp_site(char *buf, size_t cap, const struct prof_frame *fr, const char *source)
{
    if (!fr) {
        snprintf(buf, cap, "[unknown]");
        return;
    }
    if (fr->file && !fr->native)
        snprintf(buf, cap, "%s:%d  %s", lp_base(fr->file), fr->line, source ? source : "");
    else
        snprintf(buf, cap, "%s", fr->function ? fr->function : "[unknown]");
}

/* Cut `s` to `w` columns (UTF-8 aware enough for names: continuation bytes take no column). */
static void lp_fit(FILE *out, const char *s, unsigned w)
{
    unsigned cols = 0;
    for (const char *p = s; *p; p++) {
        if (((unsigned char)*p & 0xC0) != 0x80 && ++cols > w)
            break;
        fputc(*p, out);
    }
}

static void lp_ns(char *buf, size_t cap, uint64_t ns) { report_format_ns(buf, cap, ns); }

static void lp_state_line(FILE *out, const struct live_frame *f, bool color)
{
    char t[32];
    lp_ns(t, sizeof(t), f->elapsed_ns);
    switch (f->state) {
    case LIVE_RUNNING:
        fprintf(out, "running for %s", t);
        break;
    case LIVE_FINISHED:
        fprintf(out, "%sENDED%s: the process exited after %s", RED(color), OFF(color), t);
        break;
    case LIVE_EXEC:
        fprintf(out, "%sENDED%s: the process replaced its image (exec) after %s", RED(color), OFF(color), t);
        break;
    case LIVE_KILLED:
        fprintf(out, "%sENDED%s: the process is gone without finishing its recording (killed, crashed or os._exit), last seen after %s",
                RED(color), OFF(color), t);
        break;
    }
    if (f->paused)
        fprintf(out, "  %sPAUSED%s", BOLD(color), OFF(color));
    if (f->hdr.version >= 4 && f->hdr.mode == FTP_MODE_RING)
        fputs("  ring", out);
    fputc('\n', out);
}

/* Threads the process shows waiting that the recording has no wait for (blocked before an attach). */
static void lp_unrecorded(FILE *out, const struct live_frame *f)
{
    if (!f->n_unrecorded)
        return;
    fprintf(out, "\nALSO WAITING, not in the recording (since before it began, or a wait it does not record; "
                 "lock and holder unknown)\n");
    for (size_t i = 0; i < f->n_unrecorded; i++) {
        const struct live_unrecorded *u = &f->unrecorded[i];
        const char *base = strrchr(u->frame.file, '/');
        if (u->frame.line)
            fprintf(out, "  %-16s tid %-8u futex wait, at %s (%s:%d)\n", u->name, u->tid, u->frame.func,
                    base ? base + 1 : u->frame.file, u->frame.line);
        else
            fprintf(out, "  %-16s tid %-8u futex wait, no Python frame\n", u->name, u->tid);
    }
}

int live_print_text(FILE *out, const struct live_frame *f, unsigned width, size_t top, bool color)
{
    if (width < 60)
        width = 60;
    char t1[32], t2[32], site[512];
    fprintf(out, "%sftprof top%s  %s  pid %u  ", BOLD(color), OFF(color), f->path, f->hdr.pid);
    lp_state_line(out, f, color);
    lp_ns(t1, sizeof(t1), f->interval_ns);
    fprintf(out, "%" PRIu64 " waits recorded", f->p.events);
    if (f->p.dropped_events)
        fprintf(out, ", %" PRIu64 " dropped", f->p.dropped_events);
    if (f->hdr.version >= 4 && f->hdr.overwritten_events)
        fprintf(out, ", %" PRIu64 " overwritten", f->hdr.overwritten_events);
    if (f->hdr.version >= 4 && f->hdr.below_min_events)
        fprintf(out, ", %" PRIu64 " under the minimum", f->hdr.below_min_events);
    fputs("\n\n", out);

    unsigned name_w = 24, site_w = width > 24 + 12 + 12 + 8 + 8 + 8 ? width - (24 + 12 + 12 + 8 + 8 + 6) : 20;
    fprintf(out, "%s%-*s %11s %12s %7s %7s  %s%s\n", BOLD(color), name_w, "LOCK", "LAST", "SINCE START", "WAITS",
            "BLOCKED", "WAITER", OFF(color));
    size_t shown = 0;
    for (size_t i = 0; i < f->n_locks && shown < top; i++, shown++) {
        const struct live_lock *l = &f->locks[i];
        lp_ns(t1, sizeof(t1), l->interval_ns);
        lp_ns(t2, sizeof(t2), l->wait_ns);
        lp_site(site, sizeof(site), l->frame, l->source);
        char name[128];
        snprintf(name, sizeof(name), "%s", l->name ? l->name : "?");
        lp_fit(out, name, name_w);
        fprintf(out, "%*s %11s %12s %7" PRIu64 " %7u  ", (int)(name_w - (strlen(name) < name_w ? strlen(name) : name_w)), "",
                t1, t2, l->contentions, l->blocked_now);
        lp_fit(out, site, site_w);
        fputc('\n', out);
    }
    if (f->n_locks == 0)
        fputs("  (no lock contention recorded yet)\n", out);

    fprintf(out, "\n%sBLOCKED NOW%s (%zu thread%s%s)\n", BOLD(color), OFF(color), f->n_blocked, f->n_blocked == 1 ? "" : "s",
            f->state == LIVE_RUNNING ? "" : ", when it ended");
    if (f->n_blocked) {
        fprintf(out, "%s%-16s %10s  %-22s %-16s %s%s\n", BOLD(color), "THREAD", "FOR", "LOCK", "HOLDER", "WAITER", OFF(color));
    }
    for (size_t i = 0; i < f->n_blocked; i++) {
        const struct live_blocked *b = &f->blocked[i];
        char who[40], holder[64];
        if (b->thread)
            snprintf(who, sizeof(who), "%s", b->thread);
        else
            snprintf(who, sizeof(who), "thread %u", b->tid);
        lp_ns(t1, sizeof(t1), b->blocked_ns);
        bool longw = b->blocked_ns >= LIVE_LONG_WAIT_NS;
        if (b->holder_tid)
            snprintf(holder, sizeof(holder), "%s", b->holder ? b->holder : "?");
        else
            snprintf(holder, sizeof(holder), "-");
        lp_site(site, sizeof(site), b->frame, b->source);
        fprintf(out, "%s", longw ? RED(color) : "");
        lp_fit(out, who, 16);
        fprintf(out, "%*s %10s%s ", (int)(16 - (strlen(who) < 16 ? strlen(who) : 16)), "", t1, longw ? "!" : " ");
        char lock[64];
        snprintf(lock, sizeof(lock), "%s", b->lock ? b->lock : "?");
        lp_fit(out, lock, 22);
        fprintf(out, "%*s %-16.16s ", (int)(22 - (strlen(lock) < 22 ? strlen(lock) : 22)), "", holder);
        lp_fit(out, site, width > 72 ? width - 72 : 20);
        fprintf(out, "%s\n", longw ? OFF(color) : "");
        char now[600];
        if (live_holder_now_text(b, now, sizeof(now)))
            fprintf(out, "    %s\n", now); /* whole: its line number is the point (a terminal wraps it) */
    }
    if (f->n_blocked && f->now_unreadable)
        fprintf(out, "  (the holders' state now is not shown: %s; the recording's view only)\n", f->now_unreadable);
    lp_unrecorded(out, f);
    for (size_t i = 0; i < f->n_findings; i++) {
        const struct live_finding *x = &f->findings[i];
        fprintf(out, "\n%s%s%s\n", RED(color), x->text, OFF(color));
        for (size_t j = 0; j < x->n_lines; j++) {
            lp_fit(out, x->lines[j], width);
            fputc('\n', out);
        }
    }
    return ferror(out) ? -1 : 0;
}

static json_t *lj_u64(uint64_t v) { return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v); }
static void lj_set(json_t *o, const char *k, json_t *v) { json_object_set_new(o, k, v ? v : json_null()); }

static json_t *lj_frame(const struct prof_frame *fr, const char *source)
{
    if (!fr)
        return json_null();
    json_t *o = json_object();
    lj_set(o, "function", report_json_str(fr->function));
    lj_set(o, "file", report_json_str(fr->file));
    lj_set(o, "line", json_integer(fr->line));
    lj_set(o, "source", report_json_str(source));
    return o;
}

/* A holder now: {"state", "blocked_on", "stack": [{"function", "file", "line"}...]}, or null (not read). */
static json_t *lj_now(const struct live_now *now)
{
    if (!now)
        return json_null();
    json_t *o = json_object(), *stack = json_array();
    lj_set(o, "state", json_string(now->state));
    lj_set(o, "blocked_on", now->blocked_on ? report_json_str(now->blocked_on) : json_null());
    for (int i = 0; i < now->n_frames; i++) {
        json_t *fr = json_object();
        lj_set(fr, "function", report_json_str(now->frames[i].func));
        lj_set(fr, "file", report_json_str(now->frames[i].file));
        lj_set(fr, "line", json_integer(now->frames[i].line));
        json_array_append_new(stack, fr);
    }
    lj_set(o, "stack", stack);
    return o;
}

int live_print_json(FILE *out, const struct live_frame *f, size_t top)
{
    json_t *o = json_object();
    lj_set(o, "file", report_json_str(f->path));
    lj_set(o, "pid", json_integer(f->hdr.pid));
    lj_set(o, "state", json_string(live_state_name(f->state)));
    lj_set(o, "paused", json_boolean(f->paused));
    lj_set(o, "mode", json_string(f->hdr.version >= 4 && f->hdr.mode == FTP_MODE_RING ? "ring" : "normal"));
    lj_set(o, "now_ns", lj_u64(f->now_ns));
    lj_set(o, "start_ns", lj_u64(f->hdr.start_ns));
    lj_set(o, "elapsed_ns", lj_u64(f->elapsed_ns));
    lj_set(o, "interval_ns", lj_u64(f->interval_ns));
    lj_set(o, "events", lj_u64(f->p.events));
    lj_set(o, "dropped_events", lj_u64(f->p.dropped_events));
    lj_set(o, "overwritten_events", lj_u64(f->hdr.version >= 4 ? f->hdr.overwritten_events : 0));
    lj_set(o, "below_min_events", lj_u64(f->hdr.version >= 4 ? f->hdr.below_min_events : 0));
    json_t *locks = json_array();
    for (size_t i = 0; i < f->n_locks && (top == 0 || i < top); i++) {
        const struct live_lock *l = &f->locks[i];
        json_t *j = json_object();
        lj_set(j, "name", report_json_str(l->name));
        lj_set(j, "kind", json_string(prof_kind_name(l->kind)));
        lj_set(j, "address", lj_u64(l->addr));
        lj_set(j, "interval_wait_ns", lj_u64(l->interval_ns));
        lj_set(j, "wait_ns", lj_u64(l->wait_ns));
        lj_set(j, "contentions", lj_u64(l->contentions));
        lj_set(j, "blocked_now", json_integer(l->blocked_now));
        lj_set(j, "waiter", lj_frame(l->frame, l->source));
        json_array_append_new(locks, j);
    }
    lj_set(o, "locks", locks);
    json_t *blocked = json_array();
    for (size_t i = 0; i < f->n_blocked; i++) {
        const struct live_blocked *b = &f->blocked[i];
        json_t *j = json_object();
        lj_set(j, "tid", json_integer(b->tid));
        lj_set(j, "thread", report_json_str(b->thread));
        lj_set(j, "kind", json_string(prof_kind_name(b->kind)));
        lj_set(j, "lock", report_json_str(b->lock));
        lj_set(j, "address", lj_u64(b->lock_addr));
        lj_set(j, "since_ns", lj_u64(b->start_ns));
        lj_set(j, "blocked_ns", lj_u64(b->blocked_ns));
        lj_set(j, "long", json_boolean(b->blocked_ns >= LIVE_LONG_WAIT_NS));
        lj_set(j, "waiter", lj_frame(b->frame, b->source));
        if (b->holder_tid) {
            json_t *hj = json_object();
            lj_set(hj, "tid", json_integer(b->holder_tid));
            lj_set(hj, "thread", report_json_str(b->holder));
            lj_set(hj, "known_by", json_string(b->holder_how));
            lj_set(hj, "blocked", json_boolean(b->holder_blocked >= 0));
            lj_set(hj, "now", lj_now(b->holder_now));
            lj_set(j, "holder", hj);
        } else {
            lj_set(j, "holder", json_null());
        }
        json_array_append_new(blocked, j);
    }
    lj_set(o, "blocked", blocked);
    json_t *unrec = json_array();
    for (size_t i = 0; i < f->n_unrecorded; i++) {
        const struct live_unrecorded *u = &f->unrecorded[i];
        json_t *j = json_object();
        lj_set(j, "tid", json_integer(u->tid));
        lj_set(j, "thread", report_json_str(u->name));
        lj_set(j, "function", u->frame.line ? report_json_str(u->frame.func) : json_null());
        lj_set(j, "file", u->frame.line ? report_json_str(u->frame.file) : json_null());
        lj_set(j, "line", u->frame.line ? json_integer(u->frame.line) : json_null());
        json_array_append_new(unrec, j);
    }
    lj_set(o, "waiting_unrecorded", unrec);
    lj_set(o, "process_read", json_boolean(f->now_read));
    lj_set(o, "process_unreadable", f->now_unreadable ? json_string(f->now_unreadable) : json_null());
    json_t *findings = json_array();
    for (size_t i = 0; i < f->n_findings; i++) {
        json_t *j = json_object();
        lj_set(j, "kind", json_string(f->findings[i].cycle ? "deadlock" : "no_progress"));
        lj_set(j, "text", report_json_str(f->findings[i].text));
        json_t *lines = json_array();
        for (size_t k = 0; k < f->findings[i].n_lines; k++)
            json_array_append_new(lines, report_json_str(f->findings[i].lines[k]));
        lj_set(j, "lines", lines);
        json_array_append_new(findings, j);
    }
    lj_set(o, "deadlocks", findings);
    int rc = json_dumpf(o, out, JSON_INDENT(2) | JSON_ENSURE_ASCII) == 0 ? 0 : -1;
    fputc('\n', out);
    json_decref(o);
    return rc;
}

void live_print_ending(FILE *out, const struct live_frame *f)
{
    if (f->n_blocked == 0 && f->n_findings == 0)
        return;
    char t[32], site[512];
    fprintf(out, "\nBlocked when the recording ended (%zu thread%s)\n", f->n_blocked, f->n_blocked == 1 ? "" : "s");
    for (size_t i = 0; i < f->n_blocked; i++) {
        const struct live_blocked *b = &f->blocked[i];
        report_format_ns(t, sizeof(t), b->blocked_ns);
        lp_site(site, sizeof(site), b->frame, b->source);
        fprintf(out, "  %-16s for %-10s on %s at %s\n", b->thread ? b->thread : "?", t, b->lock ? b->lock : "?", site);
        char now[600];
        if (live_holder_now_text(b, now, sizeof(now)))
            fprintf(out, "      %s\n", now);
        else if (b->holder_tid)
            fprintf(out, "      holder %s (tid %u, %s)\n", b->holder ? b->holder : "?", b->holder_tid,
                    b->holder_how ? b->holder_how : "?");
    }
    if (f->n_blocked && f->now_unreadable)
        fprintf(out, "  (the holders' state now is not shown: %s)\n", f->now_unreadable);
    for (size_t i = 0; i < f->n_findings; i++) {
        fprintf(out, "\n%s\n", f->findings[i].text);
        for (size_t j = 0; j < f->findings[i].n_lines; j++)
            fprintf(out, "%s\n", f->findings[i].lines[j]);
    }
}

void live_report_endings(FILE *out, char *const *paths, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct live_frame f;
        char err[256];
        if (!live_has_waits_in_flight(paths[i]))
            continue;
        if (live_load(&f, paths[i], 1000000000ull, err, sizeof(err)) == 0) {
            if (n > 1 && (f.n_blocked || f.n_findings))
                fprintf(out, "\n%s:", paths[i]);
            live_print_ending(out, &f);
        }
        live_free(&f);
    }
}

void live_report_notes(FILE *out, const struct profile *p)
{
    char a[32], b[32], c[32];
    for (size_t i = 0; i < p->n_files; i++) {
        const struct prof_file *f = &p->files[i];
        const char *who = p->n_files > 1 ? f->path : NULL;
        if (f->windowed) {
            uint64_t whole = 0;
            if (f->n_windows) {
                uint64_t end = f->windows[f->n_windows - 1].end_ns;
                whole = end > f->start_ns ? end - f->start_ns : 0;
            }
            report_format_ns(a, sizeof(a), f->recorded_ns);
            fprintf(out, "%s%sRecorded windows only: %s of the run in %u window%s (", who ? who : "", who ? ": " : "", a,
                    f->n_windows, f->n_windows == 1 ? "" : "s");
            for (uint32_t w = 0; w < f->n_windows; w++)
                fprintf(out, "%s+%.2f-%.2f s", w ? ", " : "", (double)(f->windows[w].start_ns - f->start_ns) / 1e9,
                        (double)(f->windows[w].end_ns - f->start_ns) / 1e9);
            report_format_ns(b, sizeof(b), whole);
            fprintf(out, " of %s); waits while paused are not in this report\n", b);
        }
        if (f->below_min_events) {
            report_format_ns(a, sizeof(a), f->min_wait_ns);
            report_format_ns(b, sizeof(b), f->below_min_ns);
            fprintf(out, "%s%s%" PRIu64 " waits under %s, %s, not itemised (FTPROF_MIN_WAIT)\n", who ? who : "",
                    who ? ": " : "", f->below_min_events, a, b);
        }
        if (f->overwritten_events) {
            report_format_ns(c, sizeof(c), f->overwritten_until_ns > f->start_ns ? f->overwritten_until_ns - f->start_ns : 0);
            fprintf(out, "%s%sRing buffer: %" PRIu64 " earlier waits were overwritten, the latest of them ending at +%s; "
                    "the report covers what came after\n", who ? who : "", who ? ": " : "", f->overwritten_events, c);
        }
    }
}

json_t *live_json_endings(char *const *paths, size_t n)
{
    json_t *o = json_object(), *blocked = json_array(), *found = json_array();
    if (!o || !blocked || !found) {
        json_decref(o);
        json_decref(blocked);
        json_decref(found);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        struct live_frame f;
        char err[256];
        if (!live_has_waits_in_flight(paths[i]))
            continue;
        if (live_load(&f, paths[i], 1000000000ull, err, sizeof(err)) == 0) {
            for (size_t k = 0; k < f.n_blocked; k++) {
                const struct live_blocked *b = &f.blocked[k];
                json_t *j = json_object();
                lj_set(j, "file", report_json_str(paths[i]));
                lj_set(j, "tid", json_integer(b->tid));
                lj_set(j, "thread", report_json_str(b->thread));
                lj_set(j, "kind", json_string(prof_kind_name(b->kind)));
                lj_set(j, "lock", report_json_str(b->lock));
                lj_set(j, "blocked_ns", lj_u64(b->blocked_ns));
                lj_set(j, "waiter", lj_frame(b->frame, b->source));
                lj_set(j, "holder", b->holder_tid ? report_json_str(b->holder) : json_null());
                lj_set(j, "holder_now", lj_now(b->holder_now));
                json_array_append_new(blocked, j);
            }
            for (size_t k = 0; k < f.n_findings; k++) {
                json_t *j = json_object(), *lines = json_array();
                lj_set(j, "file", report_json_str(paths[i]));
                lj_set(j, "kind", json_string(f.findings[k].cycle ? "deadlock" : "no_progress"));
                lj_set(j, "text", report_json_str(f.findings[k].text));
                for (size_t l = 0; l < f.findings[k].n_lines; l++)
                    json_array_append_new(lines, report_json_str(f.findings[k].lines[l]));
                lj_set(j, "lines", lines);
                json_array_append_new(found, j);
            }
        }
        live_free(&f);
    }
    json_object_set_new(o, "blocked_at_end", blocked);
    json_object_set_new(o, "deadlocks", found);
    return o;
}

void live_json_free(json_t *j) { json_decref(j); }
