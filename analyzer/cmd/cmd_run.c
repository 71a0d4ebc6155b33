/* ftprof run [-o FILE] [--native] [--] CMD [ARGS...] */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "ftprof/format.h"
#include "live.h"
#include "report.h"

#define RUN_LIBRARY "libftprof.so"
#define RUN_DEFAULT_OUTPUT "./ftprof-%p.ftp"

static volatile sig_atomic_t run_child_pid;

/* A terminate or hang-up sent to ftprof is meant for the profiled command: pass it on, keep waiting,
 * and report what it recorded. */
static void run_forward_signal(int sig)
{
    if (run_child_pid > 0)
        kill((pid_t)run_child_pid, sig);
}


static bool run_readable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, R_OK) == 0;
}

/* The recorder next to this executable, in the build tree or in the usual install layouts. */
bool run_find_library(char *out, size_t len)
{
    const char *env = getenv("FTPROF_LIBRARY");
    if (env && *env) {
        if (!run_readable(env))
            return false;
        return realpath(env, out) != NULL || (snprintf(out, len, "%s", env), true);
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return false;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return false;
    *slash = 0;
    const char *rel[] = {"../preload/" RUN_LIBRARY, RUN_LIBRARY, "../lib/ftprof/" RUN_LIBRARY,
                         "../lib64/ftprof/" RUN_LIBRARY,
#ifdef FTPROF_MULTIARCH
                         "../lib/" FTPROF_MULTIARCH "/ftprof/" RUN_LIBRARY,
#endif
                         "../share/ftprof/" RUN_LIBRARY};
    for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
        char cand[PATH_MAX * 2];
        snprintf(cand, sizeof(cand), "%s/%s", exe, rel[i]);
        if (run_readable(cand) && realpath(cand, out))
            return true;
    }
    (void)len;
    return false;
}

int run_library_not_found(const char *subject, int code)
{
    const char *env = getenv("FTPROF_LIBRARY");
    if (env && *env) {
        /* The user named it: say what is wrong with that file, not to set what is set. */
        struct stat st;
        const char *why = stat(env, &st) != 0 ? (errno == ENOENT ? "no such file" : strerror(errno))
                          : !S_ISREG(st.st_mode) ? "not a regular file" : "not readable";
        return cmd_error(code, env, "the recorder FTPROF_LIBRARY names cannot be used: %s", why);
    }
    return cmd_error(code, subject, "cannot find the recorder %s next to ftprof (set "
                     "FTPROF_LIBRARY to its path)", RUN_LIBRARY);
}

static int run_setenv_preload(const char *lib)
{
    const char *old = getenv("LD_PRELOAD");
    if (!old || !*old)
        return setenv("LD_PRELOAD", lib, 1);
    size_t len = strlen(lib) + strlen(old) + 2;
    char *v = malloc(len);
    if (!v)
        return -1;
    snprintf(v, len, "%s:%s", lib, old);
    int rc = setenv("LD_PRELOAD", v, 1);
    free(v);
    return rc;
}

/* The glob pattern matching the recordings of an FTPROF_OUTPUT value: %p as a wildcard, and without
 * %p also NAME.<pid>, which the recorder uses when NAME exists. */
static void run_glob(const char *pattern, glob_t *g)
{
    char globpat[PATH_MAX];
    size_t o = 0;
    bool has_pid = false;
    for (const char *s = pattern; *s && o + 2 < sizeof(globpat); s++) {
        if (s[0] == '%' && s[1] == 'p') {
            globpat[o++] = '*';
            s++;
            has_pid = true;
        } else {
            if (strchr("*?[\\", *s))
                globpat[o++] = '\\';
            globpat[o++] = *s;
        }
    }
    globpat[o] = 0;
    memset(g, 0, sizeof(*g));
    glob(globpat, 0, NULL, g);
    if (!has_pid) {
        char more[PATH_MAX + 8];
        snprintf(more, sizeof(more), "%s.[0-9]*", globpat);
        glob(more, g->gl_pathc ? GLOB_APPEND : 0, NULL, g);
    }
}

static bool run_listed(const glob_t *g, const char *path)
{
    for (size_t i = 0; i < g->gl_pathc; i++)
        if (strcmp(g->gl_pathv[i], path) == 0)
            return true;
    return false;
}

/* Recordings are created exclusively, so the ones this run made are exactly the names that did not
 * exist before it started. */
static size_t run_collect(const char *pattern, const glob_t *before, char ***out)
{
    glob_t g;
    run_glob(pattern, &g);
    char **files = calloc(g.gl_pathc + 1, sizeof(*files));
    size_t n = 0;
    for (size_t i = 0; files && i < g.gl_pathc; i++) {
        struct stat st;
        if (run_listed(before, g.gl_pathv[i]) || lstat(g.gl_pathv[i], &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        files[n] = strdup(g.gl_pathv[i]);
        if (files[n])
            n++;
    }
    globfree(&g);
    *out = files;
    return n;
}

/* A process that ended without exit() (os._exit, a signal) leaves its recording at the full buffer's
 * apparent size (sparse: only the chunks it used hold blocks). Once its writer is gone for sure (no
 * process has its pid and start time: a daemonised child may still be writing), cut it to the chunks it
 * used, as exit() would have. */
static void run_trim_unfinished(const char *path)
{
    int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return;
    struct ftp_file_header h;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && pread(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
        !memcmp(h.magic, FTP_MAGIC, FTP_MAGIC_LEN) && h.version >= 2 && h.header_size == FTP_HEADER_SIZE &&
        !(h.flags & (FTP_FLAG_FINISHED | FTP_FLAG_ENDED_BY_EXEC)) && h.chunk_size && h.chunks_used <= h.chunk_count &&
        h.pid && h.proc_start_ticks) {
        char stat_path[64];
        snprintf(stat_path, sizeof(stat_path), "/proc/%u/stat", h.pid);
        uint32_t kept = h.chunks_used > h.inflight_chunk ? h.chunks_used : h.inflight_chunk;
        off_t used = (off_t)FTP_HEADER_SIZE + (off_t)kept * h.chunk_size;
        if (live_proc_start_ticks_at(AT_FDCWD, stat_path) != h.proc_start_ticks && used < st.st_size &&
            ftruncate(fd, used) != 0) {
            /* it stays at its apparent size: still readable */
        }
    }
    close(fd);
}

static void run_summary(char **files, size_t n)
{
    if (n == 0) {
        fprintf(stderr, "ftprof: no recording was written (the command ran no Python, or the recorder "
                        "could not create its file)\n");
        return;
    }
    struct profile p;
    if (cmd_load(&p, files, n, false) == FTPROF_EXIT_OK) {
        struct report_text_options opt = {.top = 5, .sites = 0, .fold_below = 0.001, .width = cmd_terminal_width(STDERR_FILENO),
                                          .compact = true};
        const char *nc = getenv("NO_COLOR");
        opt.color = isatty(STDERR_FILENO) && !(nc && *nc);
        report_text(stderr, &p, &opt);
    }
    prof_free(&p);
    fprintf(stderr, "\nftprof: recording%s:", n == 1 ? "" : "s");
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %s", files[i]);
    fprintf(stderr, "\nftprof: more: ftprof report FILE...; ftprof flamegraph FILE... -o ftprof.html\n");
}

static uint64_t run_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* In the child: the recorder's environment, then the command. Only returns (with errno) on failure. */
static int run_exec_child(const struct run_child *c, const char *lib)
{
    if (run_setenv_preload(lib) != 0 || setenv("FTPROF_OUTPUT", c->output, 1) != 0 ||
        (c->native && setenv("FTPROF_NATIVE", "1", 1) != 0))
        return errno ? errno : ENOMEM;
    for (size_t k = 0; c->env && c->env[k]; k++)
        if (putenv((char *)c->env[k]) != 0)
            return errno ? errno : ENOMEM;
    if (c->discard_output) {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
        }
    }
    execvp(c->argv[0], c->argv);
    return errno;
}

/* Waits for the child; with a time limit, kills it once the limit has passed (*timed_out). */
static int run_wait_child(pid_t pid, unsigned timeout_s, struct rusage *ru, bool *timed_out)
{
    int status = 0;
    uint64_t deadline = timeout_s ? run_now_ns() + (uint64_t)timeout_s * 1000000000u : 0;
    for (;;) {
        pid_t got = wait4(pid, &status, deadline ? WNOHANG : 0, ru);
        if (got == pid)
            return status;
        if (got < 0 && errno != EINTR)
            return 0;
        if (deadline && got == 0) {
            if (run_now_ns() > deadline && !*timed_out) {
                kill(pid, SIGKILL);
                *timed_out = true;
            }
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
}

int run_recorded(const struct run_child *c, struct run_outcome *o)
{
    memset(o, 0, sizeof *o);
    char lib[PATH_MAX];
    if (!run_find_library(lib, sizeof(lib)))
        return run_library_not_found(c->subject, FTPROF_EXIT_RUN_FAILED);
    glob_t before;
    run_glob(c->output, &before);
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        globfree(&before);
        return cmd_error(FTPROF_EXIT_RUN_FAILED, c->argv[0], "cannot start: %s", strerror(errno));
    }
    /* Like system(): the terminal's ^C and ^\ go to the command, and we stay to report. */
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_int, old_quit;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    uint64_t t0 = run_now_ns();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(pipefd[0]);
        close(pipefd[1]);
        globfree(&before);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGQUIT, &old_quit, NULL);
        return cmd_error(FTPROF_EXIT_RUN_FAILED, c->argv[0], "cannot start: %s", strerror(e));
    }
    if (pid == 0) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGQUIT, &old_quit, NULL);
        close(pipefd[0]);
        int e = run_exec_child(c, lib);
        ssize_t unused = write(pipefd[1], &e, sizeof(e));
        (void)unused;
        _exit(127);
    }
    close(pipefd[1]);
    run_child_pid = pid;
    struct sigaction fwd = {.sa_handler = run_forward_signal}, old_term, old_hup;
    sigemptyset(&fwd.sa_mask);
    sigaction(SIGTERM, &fwd, &old_term);
    sigaction(SIGHUP, &fwd, &old_hup);
    ssize_t got;
    do
        got = read(pipefd[0], &o->child_errno, sizeof(o->child_errno));
    while (got < 0 && errno == EINTR);
    close(pipefd[0]);
    struct rusage ru = {0};
    o->status = run_wait_child(pid, c->timeout_s, &ru, &o->timed_out);
    o->wall_ns = run_now_ns() - t0;
    o->cpu_ns = ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
                ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    run_child_pid = 0;
    if (got == (ssize_t)sizeof(o->child_errno)) {
        globfree(&before);
        /* As a shell and env(1) say it: 127 not found, 126 found but not runnable. */
        return cmd_error(o->child_errno == ENOENT ? FTPROF_EXIT_RUN_NOT_FOUND : FTPROF_EXIT_RUN_CANNOT_EXEC,
                         c->argv[0], "cannot start: %s", strerror(o->child_errno));
    }
    o->child_errno = 0;
    o->n_files = run_collect(c->output, &before, &o->files);
    globfree(&before);
    /* A recording whose process ended by os._exit or a signal keeps its whole size: cut to what it used
     * once no process can still write it. */
    for (size_t k = 0; k < o->n_files; k++)
        run_trim_unfinished(o->files[k]);
    return FTPROF_EXIT_OK;
}

void run_outcome_free(struct run_outcome *o)
{
    for (size_t k = 0; k < o->n_files; k++)
        free(o->files[k]);
    free(o->files);
    o->files = NULL;
    o->n_files = 0;
}

int run_exit_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 1;
}

int cmd_run(int argc, char **argv)
{
    const char *output = RUN_DEFAULT_OUTPUT;
    bool native = false, help;
    const struct cmd_option opts[] = {
        CMD_VALUE("--output", &output, "FILE", "the recording (default " RUN_DEFAULT_OUTPUT "; %p: the pid)"),
        CMD_FLAG("--native", &native, "also record native stacks (as FTPROF_NATIVE=1)"),
        CMD_END};
    char **operands;
    size_t n_operands;
    int rc = cmd_parse_args(argc, argv, "run", opts, &operands, &n_operands, &help);
    if (rc == FTPROF_EXIT_OK && !help && n_operands == 0)
        rc = cmd_error(FTPROF_EXIT_USAGE, "run", "no command given (%s)", cmd_usage("run"));
    /* The command and its arguments are what follows the options, as they were. */
    int i = argc - (int)n_operands;
    free(operands);
    if (rc != FTPROF_EXIT_OK || help)
        return rc == FTPROF_EXIT_OK ? rc : FTPROF_EXIT_RUN_FAILED;
    if (!*output)
        return cmd_error(FTPROF_EXIT_RUN_FAILED, "run", "-o needs a file name");
    struct run_child c = {.argv = argv + i, .output = output, .native = native, .subject = "run"};
    struct run_outcome o;
    rc = run_recorded(&c, &o);
    if (rc != FTPROF_EXIT_OK)
        return rc;
    run_summary(o.files, o.n_files);
    run_outcome_free(&o);
    return run_exit_status(o.status);
}
