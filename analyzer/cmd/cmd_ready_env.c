/* ftprof ready --env PYTHON: the distributions installed for an interpreter that contain compiled
 * modules, with version, wheel tag and what each module declares. Each module is imported alone, in a
 * child interpreter of its own (-I: no user site, no current directory) under the recorder, with a time
 * limit; its declaration is read from the recording, the same way as in a run. Importing runs the
 * module's init code (and whatever it imports), nothing else. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd_ready.h"
#include "dist.h"
#include "report.h"

static const char env_probe[] =
    "import json,site,sys,sysconfig\n"
    "p=sysconfig.get_paths()\n"
    "d=[p['purelib'],p['platlib']]+site.getsitepackages()\n"
    "print(json.dumps({'dirs':list(dict.fromkeys(d)),'hexversion':sys.hexversion,"
    "'free_threaded':bool(sysconfig.get_config_var('Py_GIL_DISABLED'))}))\n";

/* The interpreter's site directories and build, from a child running env_probe. NULL after an error. */
static json_t *env_ask(const char *python)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return NULL;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        char *argv[] = {(char *)python, "-I", "-c", (char *)env_probe, NULL};
        execvp(python, argv);
        _exit(127);
    }
    close(fds[1]);
    char buf[65536];
    size_t n = 0;
    ssize_t got;
    while (pid > 0 && n + 1 < sizeof buf && (got = read(fds[0], buf + n, sizeof buf - 1 - n)) != 0) {
        if (got < 0 && errno != EINTR)
            break;
        n += got > 0 ? (size_t)got : 0;
    }
    close(fds[0]);
    int status = 0;
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    buf[n] = 0;
    if (pid <= 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return NULL;
    return json_loads(buf, 0, NULL);
}

struct env_module {
    char *module, *path;
    enum prof_ext_gil gil;
    const char *outcome; /* "imported", "import failed", "timed out", "not seen" */
};

static int env_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Imports `m->module` alone under the recorder and reads its declaration from the recording. */
static void env_probe_module(const char *python, const char *dir, unsigned timeout_s, struct env_module *m)
{
    char pattern[PATH_MAX + 16], want[PATH_MAX];
    snprintf(pattern, sizeof pattern, "%s/env-%%p.ftp", dir);
    char *argv[] = {(char *)python, "-I", "-c", "import importlib,sys; importlib.import_module(sys.argv[1])",
                    m->module, NULL};
    static const char *const env[] = {"PYTHONWARNINGS=ignore", NULL};
    struct run_child c = {.argv = argv, .output = pattern, .discard_output = true, .timeout_s = timeout_s,
                          .subject = "ready", .env = env};
    struct run_outcome o;
    m->gil = PROF_EXT_GIL_UNKNOWN;
    m->outcome = "not seen";
    if (run_recorded(&c, &o) != FTPROF_EXIT_OK)
        return;
    m->outcome = o.timed_out ? "timed out" : run_exit_status(o.status) ? "import failed" : "imported";
    struct profile p;
    if (!realpath(m->path, want))
        snprintf(want, sizeof want, "%s", m->path);
    if (o.n_files && cmd_load(&p, o.files, o.n_files, true) == FTPROF_EXIT_OK) {
        for (size_t i = 0; i < p.n_extensions; i++) {
            char got[PATH_MAX];
            if (p.extensions[i].path && realpath(p.extensions[i].path, got) && !strcmp(got, want)) {
                m->gil = p.extensions[i].gil;
                if (!strcmp(m->outcome, "import failed"))
                    m->outcome = "imported, then failed"; /* its init ran: the declaration stands */
                break;
            }
        }
        prof_free(&p);
    }
    for (size_t i = 0; i < o.n_files; i++)
        remove(o.files[i]);
    run_outcome_free(&o);
}

static const char *env_declared(enum prof_ext_gil g, bool ft)
{
    return g == PROF_EXT_GIL_NOT_USED ? "declares support" : g == PROF_EXT_GIL_USED ? "declares nothing (keeps the GIL)"
           : ft ? "unknown" : "unknown on this build";
}

/* One distribution: probe each compiled module; print it (text) or add it to `dists` (JSON). Returns
 * how many modules keep the GIL. */
static size_t env_distribution(const char *python, const char *site, const struct dist_entry *d, const char *dir,
                               unsigned timeout_s, bool ft, json_t *dists)
{
    size_t keeps = 0;
    json_t *mods = json_array();
    if (!dists)
        printf("  %s %s  %s\n", d->name ? d->name : "?", d->version ? d->version : "?",
               d->wheel_tag ? d->wheel_tag : "no wheel (built from source, or installed without one)");
    for (size_t k = 0; k < d->n_files; k++) {
        struct env_module m = {dist_module_name(d->files[k]), NULL, PROF_EXT_GIL_UNKNOWN, NULL};
        if (!m.module || asprintf(&m.path, "%s/%s", site, d->files[k]) < 0) {
            free(m.module);
            continue;
        }
        env_probe_module(python, dir, timeout_s, &m);
        keeps += m.gil == PROF_EXT_GIL_USED;
        if (dists) {
            json_t *o = json_object();
            json_object_set_new(o, "module", report_json_str(m.module));
            json_object_set_new(o, "path", report_json_str(m.path));
            json_object_set_new(o, "gil", json_string(prof_ext_gil_name(m.gil)));
            json_object_set_new(o, "import", json_string(m.outcome));
            json_array_append_new(mods, o);
        } else {
            bool note = strcmp(m.outcome, "imported") != 0;
            printf("    %s  %-36s %-*s%s\n", m.gil == PROF_EXT_GIL_NOT_USED ? "ok" : m.gil == PROF_EXT_GIL_USED ? "!!" : "??",
                   m.module, note ? 35 : 0, env_declared(m.gil, ft), note ? m.outcome : "");
        }
        free(m.module);
        free(m.path);
    }
    if (dists) {
        json_t *o = json_object();
        json_object_set_new(o, "distribution", report_json_str(d->name));
        json_object_set_new(o, "version", report_json_str(d->version));
        json_object_set_new(o, "wheel_tag", report_json_str(d->wheel_tag));
        json_object_set_new(o, "site", report_json_str(site));
        json_object_set_new(o, "modules", mods);
        json_array_append_new(dists, o);
    } else {
        json_decref(mods);
    }
    return keeps;
}

int ready_env(const char *python, unsigned timeout_s, bool json, bool strict)
{
    json_t *info = env_ask(python);
    if (!info)
        return cmd_error(FTPROF_EXIT_CANNOT_START, python, "--env: cannot ask this interpreter for its site "
                         "directories (not a Python, or it failed)");
    char dir[PATH_MAX];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/ftprof-env-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        json_decref(info);
        return cmd_error(FTPROF_EXIT_CANNOT_WRITE, dir, "cannot create a temporary directory: %s", strerror(errno));
    }
    bool ft = json_is_true(json_object_get(info, "free_threaded"));
    char py[16];
    ready_python_name(py, sizeof py, (uint64_t)json_integer_value(json_object_get(info, "hexversion")), ft);
    if (!json)
        printf("Compiled modules installed for %s (%s), by distribution\n", python, py);
    json_t *dists = json ? json_array() : NULL;
    struct dist_cache *dc = dist_cache_new();
    size_t keeps = 0, listed = 0;
    json_t *dirs = json_object_get(info, "dirs"), *d;
    size_t i;
    json_array_foreach(dirs, i, d) {
        const struct dist_entry *e;
        size_t n = dc && json_is_string(d) ? dist_list(dc, json_string_value(d), &e) : 0;
        for (size_t k = 0; k < n; k++)
            if (e[k].n_files) {
                keeps += env_distribution(python, json_string_value(d), &e[k], dir, timeout_s, ft, dists);
                listed++;
            }
    }
    if (!json && !listed)
        printf("  none: no installed distribution has compiled modules\n");
    int rc = FTPROF_EXIT_OK;
    if (json) {
        json_t *root = json_object();
        json_object_set_new(root, "python", report_json_str(python));
        json_object_set_new(root, "version", json_string(py));
        json_object_set_new(root, "free_threaded", json_boolean(ft));
        json_object_set_new(root, "distributions", dists);
        json_object_set_new(root, "keep_gil", json_integer((json_int_t)keeps));
        if (json_dumpf(root, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER) != 0 || fputc('\n', stdout) == EOF)
            rc = cmd_error(FTPROF_EXIT_CANNOT_WRITE, "stdout", "%s", strerror(errno));
        json_decref(root);
    }
    dist_cache_free(dc);
    json_decref(info);
    nftw(dir, env_rm_cb, 8, FTW_DEPTH | FTW_PHYS);
    if (rc == FTPROF_EXIT_OK && strict && keeps)
        rc = FTPROF_EXIT_NOT_READY;
    return rc;
}
