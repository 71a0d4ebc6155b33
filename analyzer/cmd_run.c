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
#include <sys/wait.h>
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

static const char run_usage[] = "usage: ftprof run [-o FILE] [--native] [--] CMD [ARGS...]";

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
        struct report_text_options opt = {.top = 5, .sites = 0, .width = cmd_terminal_width(STDERR_FILENO),
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

int cmd_run(int argc, char **argv)
{
    const char *output = RUN_DEFAULT_OUTPUT;
    bool native = false;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            if (i + 1 >= argc)
                return cmd_error(FTPROF_EXIT_USAGE, "run", "-o needs a file name (%s)", run_usage);
            output = argv[++i];
        } else if (strcmp(a, "--native") == 0) {
            native = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            puts(run_usage);
            return FTPROF_EXIT_OK;
        } else if (a[0] == '-') {
            return cmd_error(FTPROF_EXIT_USAGE, "run", "unknown option '%s' (%s)", a, run_usage);
        } else {
            break;
        }
    }
    if (i >= argc)
        return cmd_error(FTPROF_EXIT_USAGE, "run", "no command given (%s)", run_usage);
    if (!*output)
        return cmd_error(FTPROF_EXIT_USAGE, "run", "-o needs a file name");

    char lib[PATH_MAX];
    if (!run_find_library(lib, sizeof(lib)))
        return run_library_not_found("run", FTPROF_EXIT_CANNOT_START);

    glob_t before;
    run_glob(output, &before);

    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        globfree(&before);
        return cmd_error(FTPROF_EXIT_CANNOT_START, argv[i], "cannot start: %s", strerror(errno));
    }

    /* Like system(): the terminal's ^C and ^\ go to the command, and we stay to report. */
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_int, old_quit;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);

    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(pipefd[0]);
        close(pipefd[1]);
        globfree(&before);
        return cmd_error(FTPROF_EXIT_CANNOT_START, argv[i], "cannot start: %s", strerror(e));
    }
    if (pid == 0) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGQUIT, &old_quit, NULL);
        close(pipefd[0]);
        int e = 0;
        if (run_setenv_preload(lib) != 0 || setenv("FTPROF_OUTPUT", output, 1) != 0 ||
            (native && setenv("FTPROF_NATIVE", "1", 1) != 0))
            e = errno ? errno : ENOMEM;
        if (!e) {
            execvp(argv[i], argv + i);
            e = errno;
        }
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
    int child_errno = 0;
    ssize_t got;
    do
        got = read(pipefd[0], &child_errno, sizeof(child_errno));
    while (got < 0 && errno == EINTR);
    close(pipefd[0]);

    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            status = 0;
            break;
        }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    run_child_pid = 0;
    if (got == (ssize_t)sizeof(child_errno)) {
        globfree(&before);
        return cmd_error(FTPROF_EXIT_CANNOT_START, argv[i], "cannot start: %s", strerror(child_errno));
    }

    char **files = NULL;
    size_t n = run_collect(output, &before, &files);
    globfree(&before);
    for (size_t k = 0; k < n; k++)
        run_trim_unfinished(files[k]);
    run_summary(files, n);
    for (size_t k = 0; k < n; k++)
        free(files[k]);
    free(files);

    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 1;
}
