/* ftprof ready [--gil-python PATH] [--json] [--strict] [-o DIR] [--] CMD [ARGS...]
 * ftprof ready --env PYTHON [--json] [--strict] [--timeout S]
 *
 * Is a program ready for free-threaded Python, and does it pay off? CMD runs under the recorder; every
 * extension module it imported is listed by distribution with what its module definition declares
 * (cmd_ready_report.c prints it). With --gil-python the same command runs again on that interpreter
 * (the GIL build of the same version, with the same packages), and the two runs are compared: wall
 * time, CPU time, cores busy, contention, speed-up, and the lock that limits the free-threaded run.
 * --env lists an environment's compiled modules without running a program (cmd_ready_env.c). */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd_ready.h"


/* Measures of one run (ready_run_measure). */
static void ready_measure(struct ready_run *r)
{
    const struct profile *p = &r->prof;
    r->cores = r->wall_ns ? (double)r->cpu_ns / (double)r->wall_ns : 0;
    r->contention_share = p->time.thread_ns ? (double)p->contention_wait_ns / (double)p->time.thread_ns : 0;
    if (r->contention_share > 1)
        r->contention_share = 1;
    for (size_t i = 0; i < p->n_locks; i++) {
        const struct prof_lock *l = &p->locks[i];
        if (!prof_kind_is_contention(l->kind))
            continue;
        r->top_lock = l;
        r->top_lock_share = p->time.thread_ns ? (double)l->wait_ns / (double)p->time.thread_ns : 0;
        break;
    }
    if (p->n_files) {
        r->python_version = p->files[0].python_version;
        r->free_threaded = p->files[0].flags & FTP_FLAG_FREE_THREADED;
    }
}

static int ready_remove_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Runs argv under the recorder into dir/NAME-%p.ftp and loads what it recorded. Exit code. */
static int ready_run(struct ready_run *r, char *const *argv, const char *dir, const char *name)
{
    char pattern[PATH_MAX];
    snprintf(pattern, sizeof pattern, "%s/%s-%%p.ftp", dir, name);
    struct run_child c = {.argv = argv, .output = pattern, .subject = "ready"};
    struct run_outcome o;
    int rc = run_recorded(&c, &o);
    if (rc != FTPROF_EXIT_OK)
        return rc;
    r->exit_status = run_exit_status(o.status);
    r->wall_ns = o.wall_ns;
    r->cpu_ns = o.cpu_ns;
    if (o.n_files == 0) {
        run_outcome_free(&o);
        return cmd_error(FTPROF_EXIT_NO_PYTHON, argv[0], "no recording was written: the command ran no Python "
                         "the recorder could read");
    }
    rc = cmd_load(&r->prof, o.files, o.n_files, true);
    r->loaded = rc == FTPROF_EXIT_OK;
    run_outcome_free(&o);
    if (rc == FTPROF_EXIT_OK)
        ready_measure(r);
    return rc;
}

struct ready_args {
    const char *gil_python, *out_dir, *env_python, *timeout;
    bool json, strict, help;
    int cmd_at;
};

static int ready_parse(int argc, char **argv, struct ready_args *a)
{
    memset(a, 0, sizeof *a);
    const struct cmd_option opts[] = {
        CMD_VALUE("--gil-python", &a->gil_python, "PATH", "also run CMD on this GIL build of the same version, and compare"),
        CMD_VALUE("--output", &a->out_dir, "DIR", "keep the recordings in DIR (default: a temporary directory, removed)"),
        CMD_VALUE("--env", &a->env_python, "PYTHON", "no CMD: each compiled module installed for PYTHON, imported alone"),
        CMD_VALUE("--timeout", &a->timeout, "S", "with --env: seconds each module's import may take (default 30)"),
        CMD_FLAG("--json", &a->json, "the readiness report as JSON"),
        CMD_FLAG("--strict", &a->strict, "exit 17 when a loaded module does not declare support or the GIL came back"),
        CMD_END};
    char **operands;
    size_t n_operands;
    int rc = cmd_parse_args(argc, argv, "ready", opts, &operands, &n_operands, &a->help);
    free(operands);
    if (rc != FTPROF_EXIT_OK || a->help)
        return rc;
    /* The command and its arguments are what follows the options, as they were. */
    int i = argc - (int)n_operands;
    a->cmd_at = i;
    if (a->env_python && i < argc)
        return cmd_error(FTPROF_EXIT_USAGE, "ready", "--env takes no command (%s)", cmd_usage("ready"));
    if (!a->env_python && i >= argc)
        return cmd_error(FTPROF_EXIT_USAGE, "ready", "no command given (%s)", cmd_usage("ready"));
    if (a->env_python && a->gil_python)
        return cmd_error(FTPROF_EXIT_USAGE, "ready", "--env and --gil-python do not go together");
    if (a->gil_python && access(a->gil_python, X_OK) != 0)
        return cmd_error(FTPROF_EXIT_USAGE, a->gil_python, "--gil-python: not an executable file (%s)", strerror(errno));
    return FTPROF_EXIT_OK;
}

/* A directory for the recordings: -o DIR (kept), else a temporary one (removed at the end). */
static int ready_out_dir(const struct ready_args *a, char *dir, size_t cap, bool *temporary)
{
    *temporary = !a->out_dir;
    if (a->out_dir) {
        if (mkdir(a->out_dir, 0700) != 0 && errno != EEXIST)
            return cmd_error(FTPROF_EXIT_CANNOT_WRITE, a->out_dir, "cannot create the directory: %s", strerror(errno));
        snprintf(dir, cap, "%s", a->out_dir);
        return FTPROF_EXIT_OK;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, cap, "%s/ftprof-ready-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return cmd_error(FTPROF_EXIT_CANNOT_WRITE, dir, "cannot create a temporary directory: %s", strerror(errno));
    return FTPROF_EXIT_OK;
}

static int ready_program(const struct ready_args *a, char **cmd)
{
    char dir[PATH_MAX];
    bool temporary;
    int rc = ready_out_dir(a, dir, sizeof dir, &temporary);
    if (rc != FTPROF_EXIT_OK)
        return rc;
    struct ready_result res = {0};
    rc = ready_run(&res.ft, cmd, dir, "ready");
    if (rc == FTPROF_EXIT_OK && a->gil_python) {
        size_t n = 0;
        while (cmd[n])
            n++;
        char **gil_cmd = calloc(n + 1, sizeof *gil_cmd);
        if (!gil_cmd) {
            rc = cmd_error(FTPROF_EXIT_NO_MEMORY, "ready", "%s", strerror(ENOMEM));
        } else {
            memcpy(gil_cmd, cmd, n * sizeof *gil_cmd);
            gil_cmd[0] = (char *)a->gil_python; /* the same command on the other interpreter */
            res.compared = true;
            rc = ready_run(&res.gil, gil_cmd, dir, "ready-gil");
            free(gil_cmd);
        }
    }
    if (rc == FTPROF_EXIT_OK) {
        ready_verdict(&res);
        rc = a->json ? ready_print_json(stdout, &res, cmd) : ready_print_text(stdout, &res, cmd);
        rc = rc ? cmd_error(FTPROF_EXIT_CANNOT_WRITE, "stdout", "%s", strerror(-rc)) : FTPROF_EXIT_OK;
        if (rc == FTPROF_EXIT_OK && a->strict && !res.ready)
            rc = FTPROF_EXIT_NOT_READY;
        else if (rc == FTPROF_EXIT_OK && res.ft.exit_status)
            rc = res.ft.exit_status;
    }
    if (res.ft.loaded)
        prof_free(&res.ft.prof);
    if (res.gil.loaded)
        prof_free(&res.gil.prof);
    if (temporary)
        nftw(dir, ready_remove_cb, 8, FTW_DEPTH | FTW_PHYS);
    else if (!a->json)
        fprintf(stderr, "ftprof: recordings in %s\n", dir);
    return rc;
}

int cmd_ready(int argc, char **argv)
{
    struct ready_args a;
    int rc = ready_parse(argc, argv, &a);
    if (rc != FTPROF_EXIT_OK)
        return rc;
    if (a.help)
        return FTPROF_EXIT_OK;
    if (a.env_python) {
        size_t timeout = 30;
        if (a.timeout && !cmd_parse_count(a.timeout, &timeout))
            return cmd_error(FTPROF_EXIT_USAGE, "ready", "--timeout needs a positive number of seconds, not '%s'",
                             a.timeout);
        return ready_env(a.env_python, (unsigned)timeout, a.json, a.strict);
    }
    return ready_program(&a, argv + a.cmd_at);
}
