/* Chrome trace-event JSON (the "JSON Array/Object Format" that Perfetto's UI, chrome://tracing and
 * speedscope open), written as the timeline stage streams it:
 *   - one process per recording (pid: the recorded process's, made unique if two recordings share
 *     one), named by its command line; one track per thread, named by the thread's name;
 *   - each wait a complete slice ("X") on its thread: name "KIND LOCK", category the kind, the spin
 *     time and the waiter's top frames in its args; stop-the-world waits also as async slices on the
 *     process's own "stop-the-world" track, so that pauses read as events of their own;
 *   - each wake-up a 1 µs "release" slice on the releaser's track with a flow arrow ("s" → "f") to
 *     the wait it ended;
 *   - each GIL re-enable an instant event over the whole process.
 * Times are microseconds from the earliest recording's start, with nanosecond decimals. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ftprof/format.h"
#include "output.h"
#include "profile.h"

#define OT_FRAMES 5

struct ot {
    FILE *out;
    const struct profile *p;
    uint64_t t0;
    uint32_t *pids; /* per file: the trace's pid */
    uint64_t stw_id;
    bool first;
};

/* A JSON string of `s` (names come from recordings: bytes that are not printable ASCII become '?'). */
static void ot_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *c = (const unsigned char *)(s ? s : ""); *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(out, "\\%c", *c);
        else if (*c < 0x20)
            fprintf(out, "\\u%04x", *c);
        else if (*c >= 0x80)
            fputs(*c == 0xe2 && c[1] == 0x80 && c[2] == 0xa6 ? (c += 2, "\u2026") : "?", out);
        else
            fputc(*c, out);
    }
    fputc('"', out);
}

static void ot_ts(FILE *out, const struct ot *o, uint64_t ns)
{
    uint64_t rel = ns > o->t0 ? ns - o->t0 : 0;
    fprintf(out, "%" PRIu64 ".%03u", rel / 1000, (unsigned)(rel % 1000));
}

static void ot_begin(struct ot *o)
{
    fputs(o->first ? "\n" : ",\n", o->out);
    o->first = false;
}

static void ot_frames(FILE *out, const struct prof_stack *st)
{
    fputc('[', out);
    for (size_t i = 0, shown = 0; st && i < st->depth && shown < OT_FRAMES; i++) {
        const struct prof_frame *f = &st->frames[i];
        char buf[600];
        const char *base = prof_short_file(f->file);
        if (base && f->line)
            snprintf(buf, sizeof(buf), "%s (%s:%d)", f->function, base, f->line);
        else
            snprintf(buf, sizeof(buf), "%s", f->function ? f->function : "[unknown]");
        if (shown++)
            fputc(',', out);
        ot_str(out, buf);
    }
    fputc(']', out);
}

static int ot_wait(void *ctx, const struct prof_tl_wait *w)
{
    struct ot *o = ctx;
    FILE *out = o->out;
    char name[256];
    snprintf(name, sizeof(name), "%s %s", prof_kind_name(w->kind), w->lock);
    uint64_t dur = w->end_ns - w->start_ns;
    ot_begin(o);
    fputs("{\"ph\":\"X\",\"name\":", out);
    ot_str(out, name);
    fprintf(out, ",\"cat\":\"%s\",\"pid\":%u,\"tid\":%u,\"ts\":", prof_kind_name(w->kind), o->pids[w->file], w->tid);
    ot_ts(out, o, w->start_ns);
    fprintf(out, ",\"dur\":%" PRIu64 ".%03u,\"args\":{\"lock\":", dur / 1000, (unsigned)(dur % 1000));
    ot_str(out, w->lock);
    fprintf(out, ",\"wait_ns\":%" PRIu64 ",\"spin_ns\":%" PRIu64 ",\"parked\":%s,\"waiter\":", dur, w->spin_ns,
            w->parked ? "true" : "false");
    ot_frames(out, w->stack);
    fputs("}}", out);
    if (w->kind == PROF_KIND_STOP_THE_WORLD) {
        uint64_t stw_id = ++o->stw_id;
        for (int e = 0; e < 2; e++) {
            ot_begin(o);
            fprintf(out, "{\"ph\":\"%s\",\"name\":\"stop-the-world\",\"cat\":\"stop_the_world\",\"id\":\"stw%" PRIu64
                    "\",\"pid\":%u,\"tid\":%u,\"ts\":", e ? "e" : "b", stw_id, o->pids[w->file], w->tid);
            ot_ts(out, o, e ? w->end_ns : w->start_ns);
            fputc('}', out);
        }
    }
    return ferror(out) ? -EIO : 0;
}

static int ot_wake(void *ctx, const struct prof_tl_wake *k)
{
    struct ot *o = ctx;
    FILE *out = o->out;
    uint32_t pid = o->pids[k->file];
    ot_begin(o);
    fprintf(out, "{\"ph\":\"X\",\"name\":\"release\",\"cat\":\"wake\",\"pid\":%u,\"tid\":%u,\"ts\":", pid, k->tid);
    ot_ts(out, o, k->time_ns);
    fputs(",\"dur\":1,\"args\":{\"holder\":", out);
    ot_frames(out, k->stack);
    fputs("}}", out);
    /* The flow starts inside the release slice and ends in the waiter's slice that encloses the
     * wake-up (the woken thread's wait ends a little after it). */
    ot_begin(o);
    fprintf(out, "{\"ph\":\"s\",\"name\":\"wake\",\"cat\":\"wake\",\"id\":\"%u.%" PRIu64 "\",\"pid\":%u,\"tid\":%u,\"ts\":",
            k->file, k->id, pid, k->tid);
    ot_ts(out, o, k->time_ns);
    fputc('}', out);
    ot_begin(o);
    fprintf(out, "{\"ph\":\"f\",\"bp\":\"e\",\"name\":\"wake\",\"cat\":\"wake\",\"id\":\"%u.%" PRIu64
            "\",\"pid\":%u,\"tid\":%u,\"ts\":", k->file, k->id, pid, k->waiter_tid);
    ot_ts(out, o, k->time_ns);
    fputc('}', out);
    return ferror(out) ? -EIO : 0;
}

int out_write_trace(FILE *out, struct profile *p, char *err, size_t errlen)
{
    struct ot o = {.out = out, .p = p, .t0 = UINT64_MAX, .first = true};
    o.pids = calloc(p->n_files ? p->n_files : 1, sizeof(*o.pids));
    if (!o.pids)
        return -ENOMEM;
    for (size_t k = 0; k < p->n_files; k++) {
        if (p->files[k].start_ns && p->files[k].start_ns < o.t0)
            o.t0 = p->files[k].start_ns;
        /* Two recordings of one pid (images of one process, exec'd): tracks of their own. */
        uint32_t pid = p->files[k].pid;
        for (size_t j = 0; j < k; j++)
            if (o.pids[j] == pid)
                pid = (uint32_t)(p->files[k].pid + ((k + 1) << 22));
        o.pids[k] = pid;
    }
    if (o.t0 == UINT64_MAX)
        o.t0 = 0;
    fputs("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[", out);
    for (size_t k = 0; k < p->n_files; k++) {
        const struct prof_file *f = &p->files[k];
        char name[2200];
        /* Viewers print the trace's pid beside the name; say the process's own only where the trace's
         * differs (two recordings of one pid, from two pid namespaces or machines). */
        if (o.pids[k] == f->pid)
            snprintf(name, sizeof(name), "%s", f->argv && *f->argv ? f->argv : f->path);
        else
            snprintf(name, sizeof(name), "%s (pid %u)", f->argv && *f->argv ? f->argv : f->path, f->pid);
        ot_begin(&o);
        fprintf(out, "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":%u,\"tid\":0,\"args\":{\"name\":", o.pids[k]);
        ot_str(out, name);
        fputs("}}", out);
    }
    for (size_t i = 0; i < p->n_threads; i++) {
        const struct prof_thread *t = &p->threads[i];
        char name[64];
        if (!t->name)
            snprintf(name, sizeof(name), "thread %u", t->tid);
        ot_begin(&o);
        fprintf(out, "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":%u,\"tid\":%u,\"args\":{\"name\":", o.pids[t->file],
                t->tid);
        ot_str(out, t->name ? t->name : name);
        fputs("}}", out);
    }
    for (size_t i = 0; i < p->n_gil_events; i++) {
        const struct prof_gil_event *g = &p->gil_events[i];
        char name[256];
        snprintf(name, sizeof(name), "GIL re-enabled by %s", g->module);
        ot_begin(&o);
        fprintf(out, "{\"ph\":\"i\",\"s\":\"p\",\"name\":");
        ot_str(out, name);
        fprintf(out, ",\"cat\":\"gil\",\"pid\":%u,\"tid\":0,\"ts\":", o.pids[g->file]);
        ot_ts(out, &o, g->time_ns);
        fputs(",\"args\":{\"path\":", out);
        ot_str(out, g->path);
        fputs("}}", out);
    }
    const struct prof_timeline_ops ops = {.wait = ot_wait, .wake = ot_wake};
    int rc = prof_timeline(p, &ops, &o, err, errlen);
    fputs("\n]}\n", out);
    free(o.pids);
    if (rc == 0 && ferror(out))
        rc = -EIO;
    return rc;
}
