/* `ftprof ready`: the verdict, and the report as text or JSON. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_ready.h"
#include "report.h"

void ready_python_name(char *buf, size_t len, uint64_t v, bool free_threaded)
{
    if (!v)
        snprintf(buf, len, "%s", "an unknown Python");
    else
        snprintf(buf, len, "%u.%u%s", (unsigned)(v >> 24) & 0xff, (unsigned)(v >> 16) & 0xff, free_threaded ? "t" : "");
}

const char *ready_group(const struct prof_extension *e)
{
    if (e->distribution)
        return e->distribution;
    return e->origin && !strcmp(e->origin, "stdlib") ? "(standard library)" : "(not installed by a package manager)";
}

static int group_rank(const struct prof_extension *e)
{
    return e->distribution ? 0 : e->origin && !strcmp(e->origin, "stdlib") ? 2 : 1;
}

static int module_cmp(const void *a, const void *b)
{
    const struct prof_extension *x = *(const struct prof_extension *const *)a, *y = *(const struct prof_extension *const *)b;
    int r = group_rank(x) - group_rank(y);
    if (!r)
        r = strcasecmp(ready_group(x), ready_group(y));
    return r ? r : strcmp(x->module ? x->module : "", y->module ? y->module : "");
}

size_t ready_modules(const struct profile *p, const struct prof_extension ***out)
{
    const struct prof_extension **v = calloc(p->n_extensions + 1, sizeof *v);
    size_t n = 0;
    for (size_t i = 0; v && i < p->n_extensions; i++) {
        const struct prof_extension *e = &p->extensions[i];
        bool dup = false;
        for (size_t k = 0; k < n && !dup; k++)
            dup = v[k]->path == e->path && v[k]->module == e->module; /* interned: another process's import */
        if (!dup)
            v[n++] = e;
    }
    if (v)
        qsort(v, n, sizeof *v, module_cmp);
    *out = v;
    return n;
}

/* The name the program gives a lock on its acquire line: `with RENDER_LOCK:` or `self.lock.acquire()`
 * give "RENDER_LOCK", "self.lock"; 0 when the line is not one of those. */
static size_t ready_lock_variable(const char *source, char *out, size_t cap)
{
    const char *s = source, *end = NULL;
    if (!strncmp(s, "with ", 5)) {
        s += 5;
        end = s + strcspn(s, ": ");
    } else {
        end = strstr(s, ".acquire(");
    }
    if (!end || end == s || (size_t)(end - s) >= cap)
        return 0;
    for (const char *p = s; p < end; p++)
        if (!(*p == '_' || *p == '.' || (*p >= '0' && *p <= '9') || ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z')))
            return 0;
    memcpy(out, s, (size_t)(end - s));
    out[end - s] = 0;
    return (size_t)(end - s);
}

static void ready_lock_name(char *buf, size_t len, const struct prof_lock *l)
{
    char var[128];
    if (l->source && ready_lock_variable(l->source, var, sizeof var))
        snprintf(buf, len, "%s (%s)", var, l->name ? l->name : "?");
    else if (l->source)
        snprintf(buf, len, "%s (%s)", l->name ? l->name : "?", l->source);
    else
        snprintf(buf, len, "%s", l->name ? l->name : "?");
}

/* What the comparison and the free-threaded run's limit add to the verdict. */
static void verdict_speed(struct ready_result *r, char *buf, size_t len)
{
    char ft[16], gil[16], lock[400] = "";
    ready_python_name(ft, sizeof ft, r->ft.python_version, r->ft.free_threaded);
    ready_python_name(gil, sizeof gil, r->gil.python_version, r->gil.free_threaded);
    size_t o = 0;
    if (r->compared) {
        double s = r->speedup;
        if (s >= 1.1)
            o += (size_t)snprintf(buf + o, len - o, "; %s runs %.1f× faster than %s (%.1f cores busy vs %.1f)", ft, s,
                                  gil, r->ft.cores, r->gil.cores);
        else if (s >= 0.9)
            o += (size_t)snprintf(buf + o, len - o, "; %s runs no faster than %s (%.2f×, %.1f cores busy vs %.1f)", ft,
                                  gil, s, r->ft.cores, r->gil.cores);
        else
            o += (size_t)snprintf(buf + o, len - o, "; %s runs %.1f× as fast as %s (%.1f cores busy vs %.1f)", ft, s,
                                  gil, r->ft.cores, r->gil.cores);
    }
    if (o >= len)
        return;
    if (r->ft.top_lock && r->ft.top_lock_share >= 0.05) {
        ready_lock_name(lock, sizeof lock, r->ft.top_lock);
        snprintf(buf + o, len - o, "; what limits it now: %s, %.0f%% of thread time", lock, 100 * r->ft.top_lock_share);
    } else if (r->reenabler) {
        snprintf(buf + o, len - o, "; what limits it: the GIL, back on since %s was imported", r->reenabler->module);
    } else if (r->ft.cores < 1.3 && r->ft.free_threaded) {
        snprintf(buf + o, len - o, "; %.1f cores busy on average: the program has little parallel work", r->ft.cores);
    }
}

/* The modules that keep the GIL, with their import lines: "legacy_ext, imported at app.py:35". */
static size_t keepers_text(const struct prof_extension *const *v, size_t n, char *buf, size_t len)
{
    size_t o = 0, shown = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && o < len; i++) {
        if (v[i]->gil != PROF_EXT_GIL_USED)
            continue;
        char where[256];
        report_ext_where(where, sizeof where, v[i]);
        if (shown++ < 3)
            o += (size_t)snprintf(buf + o, len - o, "%s%s, imported %s", shown > 1 ? "; " : "", v[i]->module, where);
    }
    if (shown > 3 && o < len)
        snprintf(buf + o, len - o, "; and %zu more", shown - 3);
    return shown;
}

static bool ready_all_finished(const struct profile *p)
{
    for (size_t i = 0; i < p->n_files; i++)
        if (!(p->files[i].flags & FTP_FLAG_FINISHED))
            return false;
    return true;
}

/* Why modules that keep the GIL did not turn it back on, when none did. */
static const char *ready_gil_story(const struct ready_result *r)
{
    if (r->reenabler)
        return "";
    for (size_t i = 0; i < r->ft.prof.n_files; i++)
        if (r->ft.prof.files[i].flags & FTP_FLAG_GIL_AT_START)
            return "; the GIL was on from the start (PYTHON_GIL=1 or -X gil=1)";
    if (!ready_all_finished(&r->ft.prof))
        return "; the GIL was not seen re-enabled (the process did not exit normally)";
    return "; PYTHON_GIL=0 (or -X gil=0) kept the GIL off anyway, at your own risk";
}

void ready_verdict(struct ready_result *r)
{
    const struct prof_extension **v;
    size_t n = ready_modules(&r->ft.prof, &v);
    const char *dists[256];
    size_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        r->declared += v[i]->gil == PROF_EXT_GIL_NOT_USED;
        r->keeps += v[i]->gil == PROF_EXT_GIL_USED;
        r->unknown += v[i]->gil == PROF_EXT_GIL_UNKNOWN;
        if (v[i]->reenabled_gil && !r->reenabler)
            r->reenabler = v[i];
        bool seen = !v[i]->distribution;
        for (size_t k = 0; k < nd && !seen; k++)
            seen = dists[k] == v[i]->distribution;
        if (!seen && nd < 256)
            dists[nd++] = v[i]->distribution;
    }
    r->modules = n;
    r->distributions = nd;
    r->ready = r->keeps == 0 && !r->reenabler && r->ft.prof.n_gil_events == 0;
    if (r->compared && r->ft.wall_ns)
        r->speedup = (double)r->gil.wall_ns / (double)r->ft.wall_ns;
    char keepers[600], speed[600] = "", py[16];
    keepers_text(v, n, keepers, sizeof keepers);
    verdict_speed(r, speed, sizeof speed);
    ready_python_name(py, sizeof py, r->ft.python_version, r->ft.free_threaded);
    char unknown[64] = "";
    if (r->unknown)
        snprintf(unknown, sizeof unknown, "; %zu unknown%s", r->unknown, r->ft.free_threaded ? "" : " on this build");
    if (!r->ft.free_threaded)
        snprintf(r->verdict, sizeof r->verdict, "%s: %s is a GIL build: %zu modules declare free-threading support%s%s%s%s",
                 r->keeps ? "not ready" : "cannot tell yet", py, r->declared, unknown, r->keeps ? "; keeps the GIL: " : "",
                 keepers, "; run ftprof ready on the free-threaded build to decide");
    else if (!r->ready && r->keeps)
        snprintf(r->verdict, sizeof r->verdict, "not ready: %zu module%s keep%s the GIL (%s)%s%s", r->keeps,
                 r->keeps == 1 ? "" : "s", r->keeps == 1 ? "s" : "", keepers,
                 ready_gil_story(r), speed);
    else if (!r->ready)
        snprintf(r->verdict, sizeof r->verdict, "not ready: the GIL was re-enabled (by a module the recording could not "
                 "name)%s", speed);
    else {
        char from[64] = "";
        if (r->distributions)
            snprintf(from, sizeof from, " from %zu distribution%s", r->distributions, r->distributions == 1 ? "" : "s");
        snprintf(r->verdict, sizeof r->verdict, "ready: %zu module%s%s declare%s free-threading support%s%s", r->declared,
                 r->declared == 1 ? "" : "s", from, r->declared == 1 ? "s" : "", unknown, speed);
    }
    free(v);
}

static void print_module(FILE *out, const struct prof_extension *e, const struct ready_run *ft)
{
    char where[256], after[32] = "";
    report_ext_where(where, sizeof where, e);
    const char *mark = e->gil == PROF_EXT_GIL_NOT_USED ? "ok" : e->gil == PROF_EXT_GIL_USED ? "!!" : "??";
    fprintf(out, "    %s  %-36s %-34s imported %s\n", mark, e->module, report_ext_declared(e), where);
    if (!e->reenabled_gil)
        return;
    for (size_t i = 0; i < ft->prof.n_gil_events; i++)
        if (ft->prof.gil_events[i].file == e->file)
            report_format_ns(after, sizeof after, ft->prof.gil_events[i].gil_wait_after_ns);
    fprintf(out, "        re-enabled the GIL for the whole process; waits on the GIL afterwards: %s\n", after[0] ? after : "?");
}

static void print_compare(FILE *out, const struct ready_result *r)
{
    char ft[16], gil[16], a[32], b[32], lock[400] = "-";
    ready_python_name(ft, sizeof ft, r->ft.python_version, r->ft.free_threaded);
    ready_python_name(gil, sizeof gil, r->gil.python_version, r->gil.free_threaded);
    fprintf(out, "\nThe same command on both builds\n  %-22s %14s %14s\n", "", gil, ft);
    report_format_ns(a, sizeof a, r->gil.wall_ns);
    report_format_ns(b, sizeof b, r->ft.wall_ns);
    fprintf(out, "  %-22s %14s %14s\n", "wall time", a, b);
    report_format_ns(a, sizeof a, r->gil.cpu_ns);
    report_format_ns(b, sizeof b, r->ft.cpu_ns);
    fprintf(out, "  %-22s %14s %14s\n", "CPU time", a, b);
    fprintf(out, "  %-22s %14.2f %14.2f\n", "cores busy (average)", r->gil.cores, r->ft.cores);
    fprintf(out, "  %-22s %13.1f%% %13.1f%%\n", "lock contention", 100 * r->gil.contention_share, 100 * r->ft.contention_share);
    fprintf(out, "  %-22s %14s %13.2f×\n", "speed-up", "", r->speedup);
    if (r->ft.top_lock)
        ready_lock_name(lock, sizeof lock, r->ft.top_lock);
    fprintf(out, "  %-22s %s%s", "limiting lock", lock, r->ft.top_lock ? "" : "\n");
    if (r->ft.top_lock)
        fprintf(out, ", %.1f%% of thread time\n", 100 * r->ft.top_lock_share);
}

int ready_print_text(FILE *out, const struct ready_result *r, char *const *cmd)
{
    char py[16];
    ready_python_name(py, sizeof py, r->ft.python_version, r->ft.free_threaded);
    fprintf(out, "Readiness for free-threading:");
    for (size_t i = 0; cmd[i]; i++)
        fprintf(out, " %s", cmd[i]);
    fprintf(out, "  (%s)\n\nExtension modules loaded, by distribution\n", py);
    const struct prof_extension **v;
    size_t n = ready_modules(&r->ft.prof, &v);
    const char *group = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!group || strcmp(group, ready_group(v[i]))) {
            group = ready_group(v[i]);
            fprintf(out, "  %s", group);
            if (v[i]->distribution)
                fprintf(out, " %s  %s%s", v[i]->version ? v[i]->version : "?",
                        v[i]->wheel_tag ? v[i]->wheel_tag : "no wheel (built from source, or installed without one)",
                        v[i]->origin && !strcmp(v[i]->origin, "built here") ? " (built here from source)" : "");
            fputc('\n', out);
        }
        print_module(out, v[i], &r->ft);
    }
    if (!n)
        fprintf(out, "  none\n");
    free(v);
    if (r->compared)
        print_compare(out, r);
    fprintf(out, "\nVerdict: %s\n", r->verdict);
    return ferror(out) ? -EIO : 0;
}

static json_t *run_json(const struct ready_run *run)
{
    char py[16], lock[400];
    ready_python_name(py, sizeof py, run->python_version, run->free_threaded);
    json_t *o = json_object();
    json_object_set_new(o, "python", json_string(py));
    json_object_set_new(o, "free_threaded", json_boolean(run->free_threaded));
    json_object_set_new(o, "exit_status", json_integer(run->exit_status));
    json_object_set_new(o, "wall_ns", json_integer((json_int_t)run->wall_ns));
    json_object_set_new(o, "cpu_ns", json_integer((json_int_t)run->cpu_ns));
    json_object_set_new(o, "cores_busy", json_real(run->cores));
    json_object_set_new(o, "contention_share", json_real(run->contention_share));
    json_t *l = json_null();
    if (run->top_lock) {
        ready_lock_name(lock, sizeof lock, run->top_lock);
        l = json_object();
        json_object_set_new(l, "name", report_json_str(lock));
        json_object_set_new(l, "kind", json_string(prof_kind_name(run->top_lock->kind)));
        json_object_set_new(l, "share_of_thread_time", json_real(run->top_lock_share));
    }
    json_object_set_new(o, "limiting_lock", l);
    return o;
}

int ready_print_json(FILE *out, const struct ready_result *r, char *const *cmd)
{
    json_t *root = json_object(), *argv = json_array();
    for (size_t i = 0; cmd[i]; i++)
        json_array_append_new(argv, report_json_str(cmd[i]));
    json_object_set_new(root, "command", argv);
    json_object_set_new(root, "extensions", report_json_extensions(&r->ft.prof));
    json_object_set_new(root, "run", run_json(&r->ft));
    json_t *cmp = json_null();
    if (r->compared) {
        cmp = json_object();
        json_object_set_new(cmp, "gil_run", run_json(&r->gil));
        json_object_set_new(cmp, "speedup", json_real(r->speedup));
    }
    json_object_set_new(root, "comparison", cmp);
    json_t *v = json_object();
    json_object_set_new(v, "ready", json_boolean(r->ready));
    json_object_set_new(v, "modules", json_integer((json_int_t)r->modules));
    json_object_set_new(v, "declared", json_integer((json_int_t)r->declared));
    json_object_set_new(v, "keep_gil", json_integer((json_int_t)r->keeps));
    json_object_set_new(v, "unknown", json_integer((json_int_t)r->unknown));
    json_object_set_new(v, "distributions", json_integer((json_int_t)r->distributions));
    json_object_set_new(v, "reenabled_by", r->reenabler ? report_json_str(r->reenabler->module) : json_null());
    json_object_set_new(v, "text", report_json_str(r->verdict));
    json_object_set_new(root, "verdict", v);
    int rc = json_dumpf(root, out, JSON_INDENT(1) | JSON_PRESERVE_ORDER) == 0 ? 0 : -EIO;
    if (!rc && fputc('\n', out) == EOF)
        rc = -EIO;
    json_decref(root);
    return rc;
}
