/* ftprof diff BASE.ftp NEW.ftp [--json]: one program before and after a fix, or on the GIL build and the
 * free-threaded one. Locks are matched by what they are, never by address (addresses differ from run to
 * run): kind, type (or the name without its address: "Condition", "PyMutex interp->types.mutex") and
 * the main waiter site (function, file name and line). Locks that share all three in one run (several
 * dicts locked on one line) are one entry: waits and totals add up, and the percentiles are those of
 * the one that waited most. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "reader.h"
#include "report.h"


struct diff_side {
    bool present;
    uint64_t contentions, wait_ns, max_wait_ns, top_wait_ns; /* top_wait_ns: of the member the percentiles are of */
    uint64_t p50_wait_ns, p99_wait_ns, hold_p50_ns, hold_p99_ns, holds;
    uint32_t threads;
};

struct diff_lock {
    char *key;
    enum prof_kind kind;
    char label[200], site[320];
    struct diff_side side[2];
};

struct diff {
    struct diff_lock *v;
    size_t n, cap;
};

/* What a lock is called without its address (which differs from run to run): "Lock", "dict",
 * "PyMutex interp->types.mutex". A native lock without the object that took it either: its file name
 * and distribution version change with an upgrade (numpy's libscipy_openblas64_-HASH.so), the very
 * change a diff is often run to judge, and a recording read elsewhere knows no distribution. */
static void diff_label(const struct prof_lock *l, char *out, size_t cap)
{
    const char *at = strstr(l->name, " @\u2026");
    if (l->native_object && strstr(l->name, " in "))
        at = strstr(l->name, " in ");
    snprintf(out, cap, "%.*s", at ? (int)(at - l->name) : (int)strlen(l->name), l->name);
}

static void diff_site(const struct prof_lock *l, char *out, size_t cap)
{
    const struct prof_frame *f = l->n_waiters ? prof_site_frame(l->waiters[0].stack, l->kind) : NULL;
    const char *base = f ? prof_short_file(f->file) : NULL;
    if (f && base && f->line)
        snprintf(out, cap, "%s (%s:%d)", f->function, base, f->line);
    else if (f)
        snprintf(out, cap, "%s", f->function);
    else
        snprintf(out, cap, "-");
}

static int diff_add(struct diff *d, const struct profile *p, int which)
{
    for (size_t i = 0; i < p->n_locks; i++) {
        const struct prof_lock *l = &p->locks[i];
        char label[200], site[320], key[600];
        diff_label(l, label, sizeof(label));
        diff_site(l, site, sizeof(site));
        snprintf(key, sizeof(key), "%s\x1f%s\x1f%s", prof_kind_name(l->kind), label, site);
        struct diff_lock *e = NULL;
        for (size_t j = 0; j < d->n && !e; j++)
            if (strcmp(d->v[j].key, key) == 0)
                e = &d->v[j];
        if (!e) {
            if (d->n == d->cap) {
                size_t cap = d->cap ? d->cap * 2 : 32;
                struct diff_lock *nv = realloc(d->v, cap * sizeof(*nv));
                if (!nv)
                    return -1;
                d->v = nv;
                d->cap = cap;
            }
            e = &d->v[d->n++];
            memset(e, 0, sizeof(*e));
            if (!(e->key = strdup(key)))
                return -1;
            e->kind = l->kind;
            snprintf(e->label, sizeof(e->label), "%s", label);
            snprintf(e->site, sizeof(e->site), "%s", site);
        }
        struct diff_side *s = &e->side[which];
        s->present = true;
        s->contentions += l->contentions;
        s->wait_ns += l->wait_ns;
        if (l->max_wait_ns > s->max_wait_ns)
            s->max_wait_ns = l->max_wait_ns;
        if (l->threads > s->threads)
            s->threads = l->threads;
        if (l->wait_ns >= s->top_wait_ns) { /* the percentiles of the member that waited most */
            s->top_wait_ns = l->wait_ns;
            s->p50_wait_ns = l->p50_wait_ns;
            s->p99_wait_ns = l->p99_wait_ns;
            s->hold_p50_ns = l->hold_p50_ns;
            s->hold_p99_ns = l->hold_p99_ns;
        }
        s->holds += l->holds;
    }
    return 0;
}

static int diff_cmp(const void *a, const void *b)
{
    const struct diff_lock *x = a, *y = b;
    uint64_t mx = x->side[0].wait_ns > x->side[1].wait_ns ? x->side[0].wait_ns : x->side[1].wait_ns;
    uint64_t my = y->side[0].wait_ns > y->side[1].wait_ns ? y->side[0].wait_ns : y->side[1].wait_ns;
    if (mx != my)
        return mx < my ? 1 : -1;
    return strcmp(x->key, y->key);
}

static double diff_share(uint64_t a, uint64_t b) { return b ? (double)a / (double)b : 0.0; }

/* "+12%", "-100%", "new", "=" */
static void diff_change(char *buf, size_t len, uint64_t a, uint64_t b)
{
    if (a == b)
        snprintf(buf, len, "=");
    else if (a == 0)
        snprintf(buf, len, "new");
    else
        snprintf(buf, len, "%+.0f%%", 100.0 * ((double)b - (double)a) / (double)a);
}

static void diff_text_run_row(const char *what, const char *a, const char *b, const char *change)
{
    printf("  %-18s %12s  %12s  %10s\n", what, a, b, change);
}

static void diff_text(const struct diff *d, const struct profile *p[2], char *const files[2], size_t top)
{
    printf("ftprof diff: %s -> %s\n\n", files[0], files[1]);
    printf("  %-18s %12s  %12s  %10s\n", "", "BASE", "NEW", "CHANGE");
    char a[32], b[32], c[32];
    report_format_ns(a, sizeof(a), p[0]->time.wall_ns);
    report_format_ns(b, sizeof(b), p[1]->time.wall_ns);
    diff_change(c, sizeof(c), p[0]->time.wall_ns, p[1]->time.wall_ns);
    diff_text_run_row("wall time", a, b, c);
    double cores[2], share[2];
    for (int i = 0; i < 2; i++) {
        cores[i] = diff_share(p[i]->time.cpu_ns, p[i]->time.wall_ns);
        share[i] = 100.0 * diff_share(p[i]->time.contention_ns, p[i]->time.thread_ns);
    }
    snprintf(a, sizeof(a), "%.2f", cores[0]);
    snprintf(b, sizeof(b), "%.2f", cores[1]);
    snprintf(c, sizeof(c), "%+.2f", cores[1] - cores[0]);
    diff_text_run_row("cores busy", a, b, c);
    snprintf(a, sizeof(a), "%.1f%%", share[0]);
    snprintf(b, sizeof(b), "%.1f%%", share[1]);
    snprintf(c, sizeof(c), "%+.1f pt", share[1] - share[0]);
    diff_text_run_row("contention share", a, b, c);
    report_format_ns(a, sizeof(a), p[0]->contention_wait_ns);
    report_format_ns(b, sizeof(b), p[1]->contention_wait_ns);
    diff_change(c, sizeof(c), p[0]->contention_wait_ns, p[1]->contention_wait_ns);
    diff_text_run_row("lock contention", a, b, c);

    printf("\nLocks, by the larger total wait (matched by kind, type or name, and main waiter site)\n");
    size_t shown = 0;
    for (size_t i = 0; i < d->n && shown < top; i++, shown++) {
        const struct diff_lock *e = &d->v[i];
        const struct diff_side *s0 = &e->side[0], *s1 = &e->side[1];
        const char *state = !s0->present ? "  NEW" : !s1->present ? " GONE" : "";
        printf("%3zu%s  %s %s  %s\n", i + 1, state, prof_kind_name(e->kind), e->label, e->site);
        char w0[32], w1[32], t0[32], t1[32], q0[32], q1[32], h0[32], h1[32], cw[16], ct[16];
        snprintf(w0, sizeof(w0), "%" PRIu64, s0->contentions);
        snprintf(w1, sizeof(w1), "%" PRIu64, s1->contentions);
        report_format_ns(t0, sizeof(t0), s0->wait_ns);
        report_format_ns(t1, sizeof(t1), s1->wait_ns);
        report_format_ns(q0, sizeof(q0), s0->p99_wait_ns);
        report_format_ns(q1, sizeof(q1), s1->p99_wait_ns);
        report_format_ns(h0, sizeof(h0), s0->hold_p50_ns);
        report_format_ns(h1, sizeof(h1), s1->hold_p50_ns);
        diff_change(cw, sizeof(cw), s0->contentions, s1->contentions);
        diff_change(ct, sizeof(ct), s0->wait_ns, s1->wait_ns);
        if (!s1->present) /* not "-100%": the lock is not waited on at all any more */
            snprintf(cw, sizeof(cw), "gone"), snprintf(ct, sizeof(ct), "gone");
        printf("      waits %s -> %s (%s)   total %s -> %s (%s)   p99 %s -> %s   hold p50 %s -> %s\n",
               s0->present ? w0 : "-", s1->present ? w1 : "-", cw, s0->present ? t0 : "-", s1->present ? t1 : "-", ct,
               s0->present ? q0 : "-", s1->present ? q1 : "-", s0->holds ? h0 : "-", s1->holds ? h1 : "-");
    }
    if (d->n > shown)
        printf("    (%zu more; --top N shows more)\n", d->n - shown);
}

static json_t *diff_json_run(const struct profile *p, const char *file)
{
    json_t *o = json_object();
    json_object_set_new(o, "file", report_json_str(file));
    json_object_set_new(o, "wall_ns", json_integer((json_int_t)p->time.wall_ns));
    json_object_set_new(o, "thread_ns", json_integer((json_int_t)p->time.thread_ns));
    json_object_set_new(o, "cpu_ns", json_integer((json_int_t)p->time.cpu_ns));
    json_object_set_new(o, "cores_busy", json_real(diff_share(p->time.cpu_ns, p->time.wall_ns)));
    json_object_set_new(o, "contention_ns", json_integer((json_int_t)p->time.contention_ns));
    json_object_set_new(o, "contention_share", json_real(diff_share(p->time.contention_ns, p->time.thread_ns)));
    json_object_set_new(o, "waiting_for_work_ns", json_integer((json_int_t)p->time.waiting_for_work_ns));
    json_object_set_new(o, "contention_wait_ns", json_integer((json_int_t)p->contention_wait_ns));
    return o;
}

static json_t *diff_json_side(const struct diff_side *s)
{
    if (!s->present)
        return json_null();
    json_t *o = json_object();
    json_object_set_new(o, "contentions", json_integer((json_int_t)s->contentions));
    json_object_set_new(o, "wait_ns", json_integer((json_int_t)s->wait_ns));
    json_object_set_new(o, "max_wait_ns", json_integer((json_int_t)s->max_wait_ns));
    json_object_set_new(o, "p50_wait_ns", json_integer((json_int_t)s->p50_wait_ns));
    json_object_set_new(o, "p99_wait_ns", json_integer((json_int_t)s->p99_wait_ns));
    json_object_set_new(o, "holds", json_integer((json_int_t)s->holds));
    json_object_set_new(o, "hold_p50_ns", json_integer((json_int_t)s->hold_p50_ns));
    json_object_set_new(o, "hold_p99_ns", json_integer((json_int_t)s->hold_p99_ns));
    json_object_set_new(o, "threads", json_integer(s->threads));
    return o;
}

static int diff_json(const struct diff *d, const struct profile *p[2], char *const files[2])
{
    json_t *root = json_object();
    json_object_set_new(root, "base", diff_json_run(p[0], files[0]));
    json_object_set_new(root, "new", diff_json_run(p[1], files[1]));
    json_t *locks = json_array();
    for (size_t i = 0; i < d->n; i++) {
        const struct diff_lock *e = &d->v[i];
        json_t *o = json_object();
        json_object_set_new(o, "kind", json_string(prof_kind_name(e->kind)));
        json_object_set_new(o, "name", report_json_str(e->label));
        json_object_set_new(o, "site", report_json_str(e->site));
        json_object_set_new(o, "status", json_string(!e->side[0].present ? "new" : !e->side[1].present ? "gone"
                                                                                                       : "both"));
        json_object_set_new(o, "base", diff_json_side(&e->side[0]));
        json_object_set_new(o, "new", diff_json_side(&e->side[1]));
        json_array_append_new(locks, o);
    }
    json_object_set_new(root, "locks", locks);
    int rc = json_dumpf(root, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER) == 0 && fputc('\n', stdout) != EOF ? 0 : -1;
    json_decref(root);
    return rc;
}

/* The two recordings load side by side, each in one thread: a load's second thread (its close stage,
 * profile_batch.c) would only take turns with the other load's on a machine of two cores. */
#define DIFF_LOAD ((struct prof_load_how){.one_thread = true})

/* The new recording, loaded in a thread of its own while the base one loads in the caller's: its
 * warnings are kept to be printed after the base's, and its error only if the base loaded, just as
 * loading one after the other would print them. */
struct diff_load {
    struct profile *p;
    char *path;
    FILE *warnings;
    int rc;
    size_t failed;
    char err[256];
};

static void *diff_load_main(void *arg)
{
    struct diff_load *l = arg;
    prof_warnings_to(l->warnings);
    l->rc = prof_load_with(l->p, &l->path, 1, DIFF_LOAD, &l->failed, l->err, sizeof(l->err));
    prof_warnings_to(NULL);
    return NULL;
}

/* Both profiles loaded (FTPROF_EXIT_OK), or neither (the exit code, the error printed). */
static int diff_load_both(struct profile *base, struct profile *new_, char **files)
{
    char *kept = NULL;
    size_t kept_len = 0;
    struct diff_load second = {.p = new_, .path = files[1], .warnings = open_memstream(&kept, &kept_len)};
    pthread_t thread;
    bool threaded = second.warnings && pthread_create(&thread, NULL, diff_load_main, &second) == 0;
    if (!threaded) { /* one after the other, then */
        if (second.warnings)
            fclose(second.warnings);
        free(kept);
        int rc = cmd_load(base, &files[0], 1, false);
        if (rc == FTPROF_EXIT_OK && (rc = cmd_load(new_, &files[1], 1, false)) != FTPROF_EXIT_OK)
            prof_free(new_);
        if (rc != FTPROF_EXIT_OK)
            prof_free(base);
        return rc;
    }
    int rc = cmd_load_with(base, &files[0], 1, DIFF_LOAD);
    pthread_join(thread, NULL);
    fclose(second.warnings);
    if (rc == FTPROF_EXIT_OK) {
        fwrite(kept, 1, kept_len, stderr);
        if (second.rc != 0)
            rc = cmd_error(cmd_read_exit_code(second.rc), files[1], "%s", second.err);
    }
    free(kept);
    if (rc != FTPROF_EXIT_OK) {
        prof_free(base);
        prof_free(new_);
    }
    return rc;
}

int cmd_diff(int argc, char **argv)
{
    bool json = false, help;
    const char *top_arg = NULL;
    size_t top = 20, n;
    const struct cmd_option opts[] = {
        CMD_VALUE("--top", &top_arg, "N", "compare the N locks with most contention in either run (default 10)"),
        CMD_FLAG("--json", &json, "the comparison as JSON"),
        CMD_END};
    char **files;
    int rc = cmd_parse_args(argc, argv, "diff", opts, &files, &n, &help);
    if (rc == FTPROF_EXIT_OK && !help && top_arg && !cmd_parse_count(top_arg, &top))
        rc = cmd_error(FTPROF_EXIT_USAGE, "diff", "--top needs a positive number");
    if (rc == FTPROF_EXIT_OK && !help && n != 2)
        rc = cmd_error(FTPROF_EXIT_USAGE, "diff", "two recordings are compared (%s)", cmd_usage("diff"));
    if (rc != FTPROF_EXIT_OK || help) {
        free(files);
        return rc;
    }
    struct profile base, new_;
    const struct profile *p[2] = {&base, &new_};
    rc = diff_load_both(&base, &new_, files);
    if (rc != FTPROF_EXIT_OK) {
        free(files);
        return rc;
    }
    struct diff d = {0};
    if (diff_add(&d, &base, 0) < 0 || diff_add(&d, &new_, 1) < 0) {
        rc = cmd_error(FTPROF_EXIT_NO_MEMORY, "diff", "out of memory");
    } else {
        qsort(d.v, d.n, sizeof(*d.v), diff_cmp);
        int w = 0;
        if (json)
            w = diff_json(&d, p, files);
        else
            diff_text(&d, p, files, top);
        if (w == 0 && (fflush(stdout) != 0 || ferror(stdout)))
            w = -1;
        if (w < 0)
            rc = cmd_error(FTPROF_EXIT_CANNOT_WRITE, "stdout", "cannot write the comparison");
    }
    for (size_t i = 0; i < d.n; i++)
        free(d.v[i].key);
    free(d.v);
    prof_free(&base);
    prof_free(&new_);
    free(files);
    return rc;
}
