#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftprof/format.h"
#include "report.h"

/* Names come from recordings and may hold bytes that are not UTF-8; jansson rejects those, so they
 * become '?' rather than losing the whole entry. */
json_t *report_json_str(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t n = strlen(s);
    char *copy = malloc(n + 1);
    if (!copy)
        return json_null();
    for (size_t i = 0; i < n; i++)
        copy[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    copy[n] = 0;
    j = json_string(copy);
    free(copy);
    return j ? j : json_null();
}

static json_t *rj_u64(uint64_t v)
{
    /* JSON integers here are signed 64-bit; no real duration comes near the limit. */
    return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static void rj_set(json_t *o, const char *key, json_t *v)
{
    json_object_set_new(o, key, v ? v : json_null());
}

static json_t *rj_frames(const struct prof_stack *s)
{
    json_t *a = json_array();
    for (size_t k = 0; s && k < s->depth; k++) {
        const struct prof_frame *fr = &s->frames[k];
        json_t *f = json_object();
        rj_set(f, "function", report_json_str(fr->function));
        rj_set(f, "file", report_json_str(fr->file));
        rj_set(f, "line", fr->line ? json_integer(fr->line) : json_null());
        rj_set(f, "native", json_boolean(fr->native));
        json_array_append_new(a, f);
    }
    return a;
}

json_t *report_json_extensions(const struct profile *p)
{
    json_t *a = json_array();
    for (size_t i = 0; i < p->n_extensions; i++) {
        const struct prof_extension *e = &p->extensions[i];
        json_t *o = json_object();
        rj_set(o, "module", report_json_str(e->module));
        rj_set(o, "path", report_json_str(e->path));
        rj_set(o, "gil", json_string(prof_ext_gil_name(e->gil)));
        rj_set(o, "reenabled_gil", json_boolean(e->reenabled_gil));
        rj_set(o, "distribution", report_json_str(e->distribution));
        rj_set(o, "version", report_json_str(e->version));
        rj_set(o, "wheel_tag", report_json_str(e->wheel_tag));
        rj_set(o, "origin", report_json_str(e->origin));
        rj_set(o, "init", report_json_str(e->init));
        rj_set(o, "imported_ns", rj_u64(e->imported_ns));
        rj_set(o, "loaded_before_start", json_boolean(e->before_start));
        rj_set(o, "tid", json_integer(e->tid));
        rj_set(o, "free_threaded", json_boolean(e->free_threaded));
        rj_set(o, "import_stack", rj_frames(e->import_stack));
        json_t *line = json_null();
        if (e->import_line) {
            line = json_object();
            rj_set(line, "file", report_json_str(e->import_line->file));
            rj_set(line, "line", e->import_line->line ? json_integer(e->import_line->line) : json_null());
            rj_set(line, "function", report_json_str(e->import_line->function));
        }
        rj_set(o, "import_line", line);
        rj_set(o, "file", report_json_str(p->files[e->file].path));
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *rj_sites(const struct prof_site *sites, size_t n, bool holders)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *stack = json_array();
        const struct prof_stack *st = sites[i].stack;
        for (size_t f = 0; st && f < st->depth; f++) {
            const struct prof_frame *fr = &st->frames[f];
            json_t *jf = json_object();
            rj_set(jf, "function", report_json_str(fr->function));
            rj_set(jf, "file", report_json_str(fr->file));
            rj_set(jf, "line", json_integer(fr->line));
            rj_set(jf, "native", json_boolean(fr->native));
            json_array_append_new(stack, jf);
        }
        json_t *js = json_object();
        rj_set(js, "wait_ns", rj_u64(sites[i].wait_ns));
        rj_set(js, "count", rj_u64(sites[i].count));
        if (holders) {
            rj_set(js, "holds", rj_u64(sites[i].holds));
            rj_set(js, "holds_from_acquisition", rj_u64(sites[i].holds_from_acquisition));
            rj_set(js, "hold_p50_ns", rj_u64(sites[i].hold_p50_ns));
            rj_set(js, "hold_p99_ns", rj_u64(sites[i].hold_p99_ns));
            rj_set(js, "hold_max_ns", rj_u64(sites[i].hold_max_ns));
        }
        rj_set(js, "stack", stack);
        json_array_append_new(arr, js);
    }
    return arr;
}

static double rj_ratio(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : 0.0;
}

static json_t *rj_time(const struct profile *p)
{
    const struct prof_time *t = &p->time;
    json_t *o = json_object();
    double low, high;
    enum prof_verdict v = prof_verdict_of(p, &low, &high);
    rj_set(o, "wall_ns", rj_u64(t->wall_ns));
    rj_set(o, "thread_ns", rj_u64(t->thread_ns));
    rj_set(o, "cpu_ns", rj_u64(t->cpu_ns));
    rj_set(o, "threads_cpu_ns", rj_u64(t->threads_cpu_ns));
    rj_set(o, "contention_ns", rj_u64(t->contention_ns));
    rj_set(o, "waiting_for_work_ns", rj_u64(t->waiting_for_work_ns));
    rj_set(o, "other_ns", rj_u64(t->other_ns));
    rj_set(o, "cores_busy", json_real(rj_ratio(t->cpu_ns, t->wall_ns)));
    rj_set(o, "cpu_known", json_boolean(t->cpu_known));
    rj_set(o, "run_delay_ns", t->run_delay_threads ? rj_u64(t->run_delay_ns) : json_null());
    rj_set(o, "run_delay_threads", json_integer(t->run_delay_threads));
    rj_set(o, "inflight_waits", rj_u64(p->inflight_waits));
    rj_set(o, "verdict", json_string(prof_verdict_name(v)));
    rj_set(o, "contention_share_max", json_real(high));
    rj_set(o, "contention_share", json_real(rj_ratio(t->contention_ns, t->thread_ns)));
    rj_set(o, "threads_not_ended", json_integer(t->threads_not_ended));
    rj_set(o, "files_killed", json_integer(t->files_killed));
    rj_set(o, "known", json_boolean(t->known));
    rj_set(o, "windowed", json_boolean(t->windowed));
    return o;
}

/* pthread kinds: {"object", "other_object", "distribution", "version", "wheel_tag"} (each null when not
 * known); other kinds: null. */
static json_t *rj_native_owner(const struct prof_lock *l)
{
    if (!l->native_object)
        return json_null();
    json_t *o = json_object();
    rj_set(o, "object", report_json_str(l->native_object));
    rj_set(o, "other_object", report_json_str(l->native_other_object));
    rj_set(o, "distribution", report_json_str(l->native_distribution));
    rj_set(o, "version", report_json_str(l->native_version));
    rj_set(o, "wheel_tag", report_json_str(l->native_wheel_tag));
    return o;
}

int report_json(FILE *out, const struct profile *p, size_t top) { return report_json_with(out, p, top, NULL); }

/* "locks": the first `top` (0: all). */
static json_t *rj_locks(const struct profile *p, size_t top)
{
    json_t *locks = json_array();
    size_t n = top && top < p->n_locks ? top : p->n_locks;
    for (size_t i = 0; i < n; i++) {
        const struct prof_lock *l = &p->locks[i];
        char addr[24];
        snprintf(addr, sizeof(addr), "0x%" PRIx64, l->address);
        json_t *o = json_object();
        rj_set(o, "kind", json_string(prof_kind_name(l->kind)));
        rj_set(o, "type", report_json_str(l->type));
        rj_set(o, "address", json_string(addr));
        rj_set(o, "name", report_json_str(l->name));
        rj_set(o, "source", report_json_str(l->source));
        rj_set(o, "owner", report_json_str(l->owner));
        rj_set(o, "native_owner", rj_native_owner(l));
        rj_set(o, "file", report_json_str(p->files[l->file].path));
        rj_set(o, "pid", json_integer(p->files[l->file].pid));
        rj_set(o, "contentions", rj_u64(l->contentions));
        rj_set(o, "wait_ns", rj_u64(l->wait_ns));
        rj_set(o, "max_wait_ns", rj_u64(l->max_wait_ns));
        rj_set(o, "p50_wait_ns", rj_u64(l->p50_wait_ns));
        rj_set(o, "p99_wait_ns", rj_u64(l->p99_wait_ns));
        rj_set(o, "spin_ns", rj_u64(l->spin_ns));
        rj_set(o, "threads", json_integer(l->threads));
        rj_set(o, "handoffs", rj_u64(l->handoffs));
        rj_set(o, "parked", rj_u64(l->parked));
        rj_set(o, "threads_waiting_avg", json_real(rj_ratio(l->wait_ns, p->time.wall_ns)));
        rj_set(o, "holds", rj_u64(l->holds));
        rj_set(o, "holds_from_acquisition", rj_u64(l->holds_from_acquisition));
        rj_set(o, "hold_p50_ns", rj_u64(l->hold_p50_ns));
        rj_set(o, "hold_p99_ns", rj_u64(l->hold_p99_ns));
        rj_set(o, "hold_max_ns", rj_u64(l->hold_max_ns));
        rj_set(o, "holder_known_share", json_real(rj_ratio(l->holder_known_ns, l->wait_ns)));
        rj_set(o, "waiters", rj_sites(l->waiters, l->n_waiters, false));
        rj_set(o, "holders", rj_sites(l->holders, l->n_holders, prof_kind_is_contention(l->kind)));
        json_array_append_new(locks, o);
    }
    return locks;
}

/* "gil_enabled": where a module re-enabled the GIL. */
static json_t *rj_gil_events(const struct profile *p)
{
    json_t *gil = json_array();
    for (size_t i = 0; i < p->n_gil_events; i++) {
        const struct prof_gil_event *g = &p->gil_events[i];
        json_t *o = json_object();
        rj_set(o, "module", report_json_str(g->module));
        rj_set(o, "path", report_json_str(g->path));
        rj_set(o, "time_ns", rj_u64(g->time_ns));
        rj_set(o, "gil_wait_after_ns", rj_u64(g->gil_wait_after_ns));
        rj_set(o, "file", report_json_str(p->files[g->file].path));
        json_array_append_new(gil, o);
    }
    return gil;
}

/* "notes": what the recorder warned about while it ran. */
static json_t *rj_notes(const struct profile *p)
{
    json_t *notes = json_array();
    for (size_t i = 0; i < p->n_files; i++) {
        struct prof_note note;
        uint32_t pos = 0;
        while (prof_note_next(&p->files[i], &pos, &note)) {
            char text[FTP_NOTES_MAX + 1];
            memcpy(text, note.text, note.len);
            text[note.len] = 0;
            json_t *o = json_object();
            rj_set(o, "file", report_json_str(p->files[i].path));
            rj_set(o, "text", report_json_str(text));
            rj_set(o, "shown_on_stderr", json_boolean(note.shown_on_stderr));
            json_array_append_new(notes, o);
        }
    }
    return notes;
}

/* "threads": each thread's time. */
static json_t *rj_threads(const struct profile *p)
{
    json_t *threads = json_array();
    for (size_t i = 0; i < p->n_threads; i++) {
        const struct prof_thread *t = &p->threads[i];
        json_t *o = json_object();
        rj_set(o, "tid", json_integer(t->tid));
        rj_set(o, "name", report_json_str(t->name));
        rj_set(o, "pid", json_integer(t->pid));
        rj_set(o, "ended", json_boolean(t->ended));
        rj_set(o, "lifetime_ns", rj_u64(t->lifetime_ns));
        rj_set(o, "cpu_ns", rj_u64(t->cpu_ns));
        rj_set(o, "contention_ns", rj_u64(t->contention_ns));
        rj_set(o, "waiting_for_work_ns", rj_u64(t->waiting_for_work_ns));
        rj_set(o, "run_delay_ns", t->run_delay_known ? rj_u64(t->run_delay_ns) : json_null());
        json_array_append_new(threads, o);
    }
    return threads;
}

/* "files": what each recording says of itself. */
static json_t *rj_files(const struct profile *p)
{
    json_t *files = json_array();
    for (size_t i = 0; i < p->n_files; i++) {
        const struct prof_file *f = &p->files[i];
        json_t *o = json_object();
        rj_set(o, "path", report_json_str(f->path));
        rj_set(o, "pid", json_integer(f->pid));
        rj_set(o, "ppid", json_integer(f->ppid));
        rj_set(o, "argv", report_json_str(f->argv ? f->argv : ""));
        rj_set(o, "python_version", rj_u64(f->python_version));
        rj_set(o, "dropped_events", rj_u64(f->dropped_events));
        rj_set(o, "truncated", json_boolean(f->truncated));
        rj_set(o, "finished", json_boolean(f->flags & FTP_FLAG_FINISHED));
        rj_set(o, "free_threaded", json_boolean(f->flags & FTP_FLAG_FREE_THREADED));
        rj_set(o, "native_stacks", json_boolean(f->features & FTP_FEATURE_NATIVE_STACKS));
        rj_set(o, "gil_at_start", json_boolean(f->flags & FTP_FLAG_GIL_AT_START));
        rj_set(o, "stopped_early", json_boolean(f->flags & FTP_FLAG_STOPPED));
        rj_set(o, "disk_full", json_boolean(f->flags & FTP_FLAG_DISK_FULL));
        rj_set(o, "disk_full_events", rj_u64(f->disk_full_events));
        rj_set(o, "process_cpu_ns", rj_u64(f->process_cpu_ns));
        rj_set(o, "ended_by_exec", json_boolean(f->flags & FTP_FLAG_ENDED_BY_EXEC));
        rj_set(o, "attached", json_boolean(f->flags & FTP_FLAG_ATTACHED));
        rj_set(o, "notes_cut", json_boolean(f->notes_cut));
        rj_set(o, "python_layout_unknown", json_boolean(f->flags & FTP_FLAG_LAYOUT_UNKNOWN));
        json_t *win = json_array();
        for (uint32_t w = 0; w < f->n_windows; w++) {
            json_t *pair = json_array();
            json_array_append_new(pair, rj_u64(f->windows[w].start_ns));
            json_array_append_new(pair, rj_u64(f->windows[w].end_ns));
            json_array_append_new(win, pair);
        }
        rj_set(o, "windows", win);
        rj_set(o, "windowed", json_boolean(f->windowed));
        rj_set(o, "recorded_ns", rj_u64(f->recorded_ns));
        rj_set(o, "start_ns", rj_u64(f->start_ns));
        rj_set(o, "min_wait_ns", rj_u64(f->min_wait_ns));
        rj_set(o, "below_min_events", rj_u64(f->below_min_events));
        rj_set(o, "below_min_ns", rj_u64(f->below_min_ns));
        rj_set(o, "ring", json_boolean(f->ring));
        rj_set(o, "overwritten_events", rj_u64(f->overwritten_events));
        rj_set(o, "overwritten_until_ns", rj_u64(f->overwritten_until_ns));
        json_t *d = json_object();
        rj_set(d, "stacks", rj_u64(f->dangling_stacks));
        rj_set(d, "codes", rj_u64(f->dangling_codes));
        rj_set(d, "types", rj_u64(f->dangling_types));
        rj_set(o, "dangling_ids", d);
        json_array_append_new(files, o);
    }
    return files;
}

int report_json_with(FILE *out, const struct profile *p, size_t top, struct json_t *extra)
{
    json_t *root = json_object();
    rj_set(root, "locks", rj_locks(p, top));
    rj_set(root, "gil_enabled", rj_gil_events(p));
    rj_set(root, "extensions", report_json_extensions(p));
    rj_set(root, "notes", rj_notes(p));
    rj_set(root, "dropped_events", rj_u64(p->dropped_events));
    rj_set(root, "dropped_wait_ns", p->dropped_wait_unknown ? json_null() : rj_u64(p->dropped_wait_ns));
    rj_set(root, "disk_full_events", rj_u64(p->disk_full_events));
    rj_set(root, "duration_ns", rj_u64(p->duration_ns));
    rj_set(root, "events", rj_u64(p->events));
    rj_set(root, "contention_wait_ns", rj_u64(p->contention_wait_ns));
    rj_set(root, "time", rj_time(p));
    rj_set(root, "threads", rj_threads(p));
    rj_set(root, "files", rj_files(p));
    if (extra)
        json_object_update(root, extra); /* keys of the caller's (live.c: the threads blocked at the end) */

    int rc = json_dumpf(root, out, JSON_INDENT(1) | JSON_PRESERVE_ORDER) == 0 ? 0 : -EIO;
    if (rc == 0 && fputc('\n', out) == EOF)
        rc = -EIO;
    json_decref(root);
    return rc;
}
