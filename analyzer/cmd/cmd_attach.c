/* ftprof attach PID [--duration S] [-o FILE] [--native] [--timeout S]
 *
 * Records a running CPython 3.14+ for a window, without a restart. The protocol is PEP 768's (what
 * sys.remote_exec does), written from here into every thread state of the target (pyremote.c, with the
 * recorder's own layout tables): the script path, the pending call and each thread's eval-breaker bit,
 * with process_vm_writev and the permissions the kernel grants us. Whichever thread next runs bytecode
 * runs the script, so a main thread blocked in a join, an Event, a queue or a sleep does not stop an
 * attach while any other thread runs Python; the request is asked again every 50 ms (threads started
 * since, eval-breaker bits the interpreter rewrote) and withdrawn from every thread once one ran it.
 *
 * The script claims a token file (so only the first thread to run it loads anything, and a script that
 * runs after we gave up does nothing), checks the SHA-256 of libftprof.so against the digest we
 * computed and dlopen()s it through ctypes, calls ftprof_attach (preload/attach.c) and writes the result
 * into a status file; it prints nothing and catches everything. The recorder then records until we set
 * FTP_CONTROL_DETACH in the recording's header, or until its watchdog thread sees that we are gone:
 * detaching needs no eval-breaker check, so a process that deadlocks meanwhile is still left as it was.
 * Where no thread reaches an eval-breaker check within --timeout seconds (default 10), attach names each
 * thread with what it is blocked in, withdraws the request and exits 14. The request (a directory only
 * the target's uid can enter) and what a third user can do to it: cmd_attach_request.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "cmd_attach_request.h"
#include "live.h"
#include "pyremote.h"
#include "ftprof/format.h"
#include "ftprof/size.h"
#include "report.h"
#include "sha256.h"

static volatile sig_atomic_t attach_stop;
static void attach_on_signal(int sig)
{
    (void)sig;
    attach_stop = 1;
}

static double attach_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void attach_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool attach_alive(pid_t pid)
{
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return false;
    /* A zombie has exited too. */
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return !(p && (p[2] == 'Z' || p[2] == 'X'));
}

/* Remote debugging turned off in the target: PYTHON_DISABLE_REMOTE_DEBUG in its environment, or
 * -X disable_remote_debug on its command line (3.14.7 and 3.15.0rc2 still run a remote_exec script
 * under the latter; we honour what the user asked for). NULL, or which one. */
static const char *attach_remote_debug_off(pid_t pid)
{
    char path[64];
    static char buf[1 << 16];
    snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        for (ssize_t i = 0; n > 0 && i < n; i += (ssize_t)strlen(buf + i) + 1) {
            buf[n] = 0;
            if (!strncmp(buf + i, "PYTHON_DISABLE_REMOTE_DEBUG=", 28) && buf[i + 28])
                return "PYTHON_DISABLE_REMOTE_DEBUG is set in its environment";
        }
    }
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        bool x = false;
        for (ssize_t i = 0; n > 0 && i < n; i += (ssize_t)strlen(buf + i) + 1) {
            buf[n] = 0;
            const char *a = buf + i;
            if ((x && !strcmp(a, "disable_remote_debug")) || !strcmp(a, "-Xdisable_remote_debug"))
                return "it runs with -X disable_remote_debug";
            if (i > 0 && !x && a[0] != '-')
                break; /* the script: its own arguments follow */
            if (!strcmp(a, "-c") || !strcmp(a, "-m"))
                break;
            x = !strcmp(a, "-X");
        }
    }
    return NULL;
}

/* Sets FTP_CONTROL_DETACH in the recording's header and waits for the recorder to finish the file. */
static int attach_request_detach(const char *path, pid_t pid, double timeout)
{
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    void *m = mmap(NULL, FTP_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return -errno;
    struct ftp_file_header *h = m;
    atomic_fetch_or((_Atomic uint32_t *)&h->control, FTP_CONTROL_DETACH);
    double end = attach_now() + timeout;
    int rc = -ETIMEDOUT;
    while (attach_now() < end) {
        if (atomic_load((_Atomic uint32_t *)&h->flags) & FTP_FLAG_FINISHED) {
            rc = 0;
            break;
        }
        if (!attach_alive(pid)) {
            rc = -ESRCH;
            break;
        }
        attach_sleep_ms(10);
    }
    munmap(m, FTP_HEADER_SIZE);
    return rc;
}

static void attach_summary(char *path)
{
    struct profile p;
    if (cmd_load(&p, &path, 1, false) == FTPROF_EXIT_OK) {
        struct report_text_options opt = {.top = 5, .sites = 0, .width = 100, .compact = true};
        struct winsize ws;
        if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
            opt.width = ws.ws_col;
        const char *nc = getenv("NO_COLOR");
        opt.color = isatty(STDERR_FILENO) && !(nc && *nc);
        report_text(stderr, &p, &opt);
    }
    prof_free(&p);
    fprintf(stderr, "\nftprof: recording: %s\nftprof: more: ftprof report %s\n", path, path);
}

/* Threads already waiting when the hooks went in are inside libc since before them: the recording will
 * not see their waits (until their next one). Say where they are: the script's frames of the other
 * threads, and for each, whether the kernel has it in a futex wait now (/proc/PID/task/TID/syscall). */
static void attach_print_waiting(pid_t pid, char *threads)
{
    int shown = 0;
    for (char *line = threads; line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        char *f[5] = {0};
        int n = 0;
        for (char *p = line; n < 5 && p; n++) {
            f[n] = p;
            p = strchr(p, '\t');
            if (p)
                *p++ = 0;
        }
        line = next;
        if (n < 5)
            continue;
        char path[96], buf[128] = "";
        snprintf(path, sizeof(path), "/proc/%d/task/%s/syscall", (int)pid, f[0]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t r = read(fd, buf, sizeof(buf) - 1);
            buf[r > 0 ? r : 0] = 0;
            close(fd);
        }
        if (strncmp(buf, "202 ", 4) != 0) /* SYS_futex on x86-64 */
            continue;
        if (!shown++)
            fprintf(stderr, "ftprof: already waiting when attached (since before the hooks, so their current "
                            "waits are not in the recording):\n");
        const char *base = strrchr(f[2], '/');
        fprintf(stderr, "  %s (tid %s) in %s at %s:%s\n", f[1], f[0], f[4], base ? base + 1 : f[2], f[3]);
    }
}

static bool attach_parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0) || v > 1e7)
        return false;
    *out = v;
    return true;
}

/* The target's runtime and layout, or the exit code (and its line) saying why not. A runtime without
 * an interpreter yet (a process just started) is waited for, up to `timeout`. */
static int attach_open_python(pid_t pid, const char *subject, struct pyremote *py, double timeout)
{
    double until = attach_now() + timeout;
    int rc;
    while ((rc = pyremote_open(py, pid)) == -EAGAIN && attach_now() < until && !attach_stop)
        attach_sleep_ms(10);
    if (rc == -EAGAIN)
        return cmd_error(FTPROF_EXIT_ATTACH_TIMEOUT, subject, "its Python runtime has no interpreter (starting up "
                         "or shutting down) for %g s; nothing was attached", timeout);
    if (rc == -EACCES || rc == -EPERM)
        return cmd_error(FTPROF_EXIT_ATTACH_PERMISSION, subject,
                         "no permission to inspect the process (another user, or ptrace restrictions)");
    if ((rc == -ENOENT || rc == -ESRCH) && !attach_alive(pid))
        return cmd_error(FTPROF_EXIT_ATTACH_GONE, subject, "the process exited during the attach");
    if (rc == -ENOENT)
        return cmd_error(FTPROF_EXIT_ATTACH_NOT_PYTHON, subject,
                         "not a Python process (no CPython runtime in its executable or libraries)");
    if (rc == -ENOTSUP)
        return cmd_error(FTPROF_EXIT_ATTACH_NOT_PYTHON, subject,
                         "a CPython whose memory layout this ftprof does not know (it knows 3.13-3.15)");
    if (rc != 0)
        return cmd_error(FTPROF_EXIT_ATTACH_PERMISSION, subject, "cannot read the process: %s", strerror(-rc));
    if (!py->lay.dbg_script_path_size)
        return cmd_error(FTPROF_EXIT_ATTACH_NOT_PYTHON, subject,
                         "Python %u.%u%s: attaching needs CPython 3.14 or later (PEP 768 remote execution)",
                         (unsigned)(py->version >> 24), (unsigned)(py->version >> 16) & 0xff,
                         py->free_threaded ? "t" : "");
    return FTPROF_EXIT_OK;
}

/* Sends the request into every thread state and waits for the script's status (into `st`): OK, or the
 * exit code after its line. Every way out but OK has withdrawn the request from every thread. */
static int attach_send_and_wait(struct attach_request *req, const struct pyremote *py, const char *subject,
                                double timeout, char *st, size_t cap)
{
    double asked = attach_now();
    int sent = pyremote_request_exec(py, req->script);
    if (sent <= 0) {
        pyremote_withdraw_exec(py);
        attach_request_remove(req);
        if (sent == -ENOTSUP)
            return cmd_error(FTPROF_EXIT_ATTACH_DISABLED, subject,
                             "remote debugging is disabled in the process (PYTHON_DISABLE_REMOTE_DEBUG, "
                             "-X disable_remote_debug, or a build configured --without-remote-debug)");
        if (sent == -EPERM || sent == -EACCES)
            return cmd_error(FTPROF_EXIT_ATTACH_PERMISSION, subject,
                             "no permission to write into the process (another user, or ptrace restrictions)");
        if (sent == -ESRCH || !attach_alive(py->pid))
            return cmd_error(FTPROF_EXIT_ATTACH_GONE, subject, "the process exited during the attach");
        return cmd_error(FTPROF_EXIT_ATTACH_FAILED, subject, "cannot write the request into its threads: %s",
                         sent ? strerror(-sent) : "no thread state");
    }
    double deadline = asked + timeout, last_sent = asked;
    bool claimed = false;
    for (;;) {
        ssize_t got = attach_request_status(req, st, cap);
        if (got >= 0)
            break;
        if (got != -ENOENT) {
            if (!attach_request_cancel(req, py))
                attach_request_remove(req);
            return cmd_error(FTPROF_EXIT_ATTACH_FAILED, subject, "refusing the attach's status file: %s",
                             got == -ELOOP    ? "a symbolic link"
                             : got == -EPERM  ? "owned by neither the process's user nor ours"
                             : got == -EINVAL ? "not a regular file"
                                              : strerror((int)-got));
        }
        if (!attach_alive(py->pid)) {
            attach_request_remove(req);
            return cmd_error(FTPROF_EXIT_ATTACH_GONE, subject, "the process exited during the attach");
        }
        /* Once the script has claimed the token it runs: a Ctrl-C then waits for its status too (the
         * window that follows is cut short), or the recorder would be left loading unwatched. */
        if ((attach_stop && !claimed) || attach_now() > deadline) {
            if (attach_request_cancel(req, py)) {
                if (attach_stop)
                    return cmd_error(FTPROF_EXIT_ATTACH_TIMEOUT, subject, "attach cancelled");
                int rc = cmd_error(FTPROF_EXIT_ATTACH_TIMEOUT, subject,
                                   "none of its %d Python threads ran Python code for %g s (each is blocked in a "
                                   "lock, a join, a sleep or C code; PEP 768 runs the attach in the first that "
                                   "does); nothing was attached or recorded",
                                   sent, timeout);
                pyremote_describe_threads(py, stderr);
                return rc;
            }
            if (!claimed) {
                claimed = true; /* the script is running: give it a moment more */
                deadline = attach_now() + 10;
                continue;
            }
            attach_request_remove(req);
            return cmd_error(FTPROF_EXIT_ATTACH_FAILED, subject, "the attach script did not report back");
        }
        attach_sleep_ms(claimed ? 10 : 1);
        /* Asked again every 50 ms until one runs it: threads started since get the request, and a
         * thread whose eval-breaker bit the interpreter recomputed meanwhile (start-up does) gets it
         * back. A thread that runs the script after another claimed it finds the token gone. */
        if (!claimed && attach_now() - last_sent > 0.05) {
            int again = pyremote_request_exec(py, req->script);
            if (again > sent)
                sent = again;
            last_sent = attach_now();
        }
    }
    /* How long from the request to the recorder's start: the user's measure of "within milliseconds". */
    if (getenv("FTPROF_ATTACH_TIMING"))
        fprintf(stderr, "ftprof: attach request written at %.6f (CLOCK_MONOTONIC)\n", asked);
    return FTPROF_EXIT_OK;
}

/* What the command line asks for. */
struct attach_args {
    pid_t pid;
    double duration, timeout; /* seconds; duration 0: until Ctrl-C */
    const char *output;       /* NULL: ftprof-PID.ftp */
    bool native;
};

/* The options and the process id. FTPROF_EXIT_OK, or an exit code after a one-line error (or after the
 * help: then *help). */
static int attach_parse(int argc, char **argv, struct attach_args *a, bool *help)
{
    const char *duration_arg = NULL, *timeout_arg = NULL;
    *a = (struct attach_args){.timeout = 10};
    const struct cmd_option opts[] = {
        CMD_VALUE("--duration", &duration_arg, "S", "record for S seconds, then detach (default: until Ctrl-C)"),
        CMD_VALUE("--output", &a->output, "FILE", "the recording to create (default ftprof-PID.ftp; never overwritten)"),
        CMD_VALUE("--timeout", &timeout_arg, "S", "give up when the process runs no Python code within S seconds (default 10)"),
        CMD_FLAG("--native", &a->native, "also record native stacks (as FTPROF_NATIVE=1)"),
        CMD_END};
    char **args;
    size_t n;
    int rc = cmd_parse_args(argc, argv, "attach", opts, &args, &n, help);
    char *end = NULL;
    long pid_l = 0;
    if (rc == FTPROF_EXIT_OK && !*help && n != 1)
        rc = cmd_error(FTPROF_EXIT_USAGE, "attach", "one process id expected (%s)", cmd_usage("attach"));
    if (rc == FTPROF_EXIT_OK && !*help) {
        errno = 0;
        pid_l = strtol(args[0], &end, 10);
        if (errno || !*args[0] || *end || pid_l <= 0 || pid_l > INT_MAX)
            rc = cmd_error(FTPROF_EXIT_USAGE, "attach", "'%s' is not a process id", args[0]);
    }
    if (rc == FTPROF_EXIT_OK && !*help && duration_arg && !attach_parse_seconds(duration_arg, &a->duration))
        rc = cmd_error(FTPROF_EXIT_USAGE, "attach", "--duration needs a positive number of seconds");
    if (rc == FTPROF_EXIT_OK && !*help && timeout_arg && !attach_parse_seconds(timeout_arg, &a->timeout))
        rc = cmd_error(FTPROF_EXIT_USAGE, "attach", "--timeout needs a positive number of seconds");
    free(args);
    a->pid = (pid_t)pid_l;
    return rc;
}

/* 1. Our own setup, before the target is touched: FTPROF_BUFFER by the recorder's own parser (a size
 * the recorder would refuse is refused here), and the recorder as an absolute path with its digest
 * (the script loads it only if it still has this digest when the target reads it). */
static int attach_own_setup(uint64_t *buffer, char *lib, size_t lib_cap, char digest[65])
{
    *buffer = FTP_BUFFER_DEFAULT;
    const char *bufenv = getenv("FTPROF_BUFFER");
    if (bufenv && *bufenv && ftp_parse_size(bufenv, buffer) != FTP_SIZE_OK)
        return cmd_error(FTPROF_EXIT_USAGE, "FTPROF_BUFFER", "'%s' is not a size " FTP_BUFFER_LIMITS_TEXT
                         " (a number with K, M, G or T, like 64M)", bufenv);
    if (!run_find_library(lib, lib_cap))
        return run_library_not_found("attach", FTPROF_EXIT_CANNOT_START);
    int lib_fd = open(lib, O_RDONLY | O_CLOEXEC);
    int dr = lib_fd < 0 ? -errno : sha256_fd_hex(lib_fd, digest);
    if (lib_fd >= 0)
        close(lib_fd);
    if (dr != 0)
        return cmd_error(FTPROF_EXIT_CANNOT_START, lib, "cannot read the recorder: %s", strerror(-dr));
    return FTPROF_EXIT_OK;
}

/* Is there such a process, may we look at it, is it Python, may it be debugged? Its Python threads
 * into *py, its user into *target. */
static int attach_check_target(const struct attach_args *a, const char *subject, struct pyremote *py,
                               struct attach_proc *target)
{
    pid_t pid = a->pid;
    if (kill(pid, 0) != 0) {
        if (errno == EPERM)
            return cmd_error(FTPROF_EXIT_ATTACH_PERMISSION, subject,
                             "no permission to attach (the process belongs to another user)");
        return cmd_error(FTPROF_EXIT_ATTACH_GONE, subject, "no such process");
    }
    int pr = attach_open_python(pid, subject, py, a->timeout);
    if (pr != FTPROF_EXIT_OK)
        return pr;
    const char *off = attach_remote_debug_off(pid);
    if (off)
        return cmd_error(FTPROF_EXIT_ATTACH_DISABLED, subject, "remote debugging is disabled: %s", off);
    int ids = attach_proc_read(pid, target);
    if (ids == -ENOENT || ids == -ESRCH)
        return cmd_error(FTPROF_EXIT_ATTACH_GONE, subject, "the process exited during the attach");
    if (ids != 0)
        return cmd_error(FTPROF_EXIT_ATTACH_PERMISSION, subject, "cannot read its user (/proc/%d/status): %s",
                         (int)pid, strerror(-ids));
    return FTPROF_EXIT_OK;
}

/* 2. The output as an absolute path into out (the target has its own cwd), that does not exist yet. */
static int attach_output_path(const struct attach_args *a, char *out, size_t cap)
{
    char outbuf[PATH_MAX], dirpart[PATH_MAX], cwd[PATH_MAX], real[PATH_MAX];
    const char *output = a->output;
    if (!output) {
        snprintf(outbuf, sizeof(outbuf), "ftprof-%d.ftp", (int)a->pid);
        output = outbuf;
    }
    const char *slash = strrchr(output, '/');
    const char *base = slash ? slash + 1 : output;
    if (!*base)
        return cmd_error(FTPROF_EXIT_USAGE, output, "-o needs a file name, not a directory");
    if (slash)
        snprintf(dirpart, sizeof(dirpart), "%.*s", (int)(slash - output) ? (int)(slash - output) : 1, output);
    else
        snprintf(dirpart, sizeof(dirpart), "%s", getcwd(cwd, sizeof(cwd)) ? cwd : ".");
    if (!realpath(dirpart, real))
        return cmd_error(FTPROF_EXIT_CANNOT_WRITE, output, "cannot create: %s", strerror(errno));
    if (snprintf(out, cap, "%s/%s", strcmp(real, "/") ? real : "", base) >= (int)cap || strchr(out, '%'))
        return cmd_error(FTPROF_EXIT_USAGE, output, "unusable recording name");
    struct stat st;
    if (lstat(out, &st) == 0)
        return cmd_error(FTPROF_EXIT_CANNOT_WRITE, out, "already exists; not overwriting it");
    return FTPROF_EXIT_OK;
}

/* 3. The request: a directory only the target's uid (and root) can enter, holding the script and the
 * token. Stale ones of killed CLIs go first. From here on every way out removes ours. */
static int attach_prepare_request(struct attach_request *req, const struct attach_proc *target, const char *subject,
                                  const char *lib, const char *digest, const char *out, uint64_t buffer, bool native)
{
    struct sigaction sa = {0};
    sa.sa_handler = attach_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    attach_sweep_stale(NULL);
    int cr = attach_request_create(req, target);
    if (cr == -EPERM)
        return cmd_error(FTPROF_EXIT_ATTACH_PERMISSION, subject,
                         "no permission to hand the attach request to its uid %u: run as that user or as root",
                         (unsigned)target->uid);
    if (cr != 0)
        return cmd_error(FTPROF_EXIT_CANNOT_WRITE, "/tmp", "cannot create the attach request: %s", strerror(-cr));
    int wr = attach_request_file(req, "token", "", 0400, true);
    if (!wr)
        wr = attach_write_script(req, lib, digest, out, buffer, native ? 1 : 0);
    if (wr != 0) {
        attach_request_remove(req);
        return cmd_error(FTPROF_EXIT_CANNOT_WRITE, "/tmp", "cannot write the attach request: %s", strerror(-wr));
    }
    if (attach_stop) { /* before anything was sent: nothing to withdraw in the target */
        attach_request_remove(req);
        return cmd_error(FTPROF_EXIT_ATTACH_TIMEOUT, subject, "attach cancelled");
    }
    return FTPROF_EXIT_OK;
}

/* 4. Every thread of the target is asked; whichever runs bytecode first runs the script, which reports
 * whether the recorder started. */
static int attach_start(struct attach_request *req, struct pyremote *py, const struct attach_proc *target,
                        const struct attach_args *a, const char *subject, const char *out)
{
    static char st[1 << 16];
    int wr_rc = attach_send_and_wait(req, py, subject, a->timeout, st, sizeof(st));
    if (wr_rc != FTPROF_EXIT_OK)
        return wr_rc;
    /* One thread ran the script: the others' pending calls go now. The directory stays until the end
     * of the window, so that a thread which copied the path just before the withdrawal still finds the
     * script (and the claimed token, so it does nothing) instead of printing CPython's error. */
    pyremote_withdraw_exec(py);
    attach_sweep_stale(target);
    /* "rc detail", then one line per other thread: native id, name, file, line, function */
    char *threads = strchr(st, '\n');
    if (threads)
        *threads++ = 0;
    char *end = NULL;
    long arc = strtol(st, &end, 10);
    const char *detail = *end == ' ' ? end + 1 : end;
    if (arc != 0) {
        attach_request_remove(req);
        return cmd_error(FTPROF_EXIT_ATTACH_FAILED, subject, "the recorder could not attach: %s",
                         *detail ? detail : "unknown error");
    }
    fprintf(stderr, "ftprof: attached to pid %d (%s); recording into %s %s\n", (int)a->pid, detail, out,
            a->duration > 0 ? "" : "until Ctrl-C");
    attach_print_waiting(a->pid, threads);
    return FTPROF_EXIT_OK;
}

/* 5. The window: until --duration, Ctrl-C or the process's end; then the recorder detaches. */
static int attach_window(struct attach_request *req, const struct attach_args *a, char *out)
{
    pid_t pid = a->pid;
    double stop_at = a->duration > 0 ? attach_now() + a->duration : 0;
    bool gone = false;
    while (!attach_stop && (!stop_at || attach_now() < stop_at)) {
        if (!attach_alive(pid)) {
            gone = true;
            break;
        }
        attach_sleep_ms(20);
    }
    if (!gone) {
        int d = attach_request_detach(out, pid, 10);
        if (d == -ESRCH)
            gone = true;
        else if (d != 0) {
            attach_request_remove(req);
            return cmd_error(FTPROF_EXIT_ATTACH_FAILED, out, "the recorder did not detach: %s", strerror(-d));
        }
    }
    if (gone)
        fprintf(stderr, "ftprof: pid %d exited while attached; the recording ends there\n", (int)pid);
    else
        fprintf(stderr, "ftprof: detached from pid %d\n", (int)pid);
    attach_request_remove(req);
    attach_summary(out);
    return FTPROF_EXIT_OK;
}

int cmd_attach(int argc, char **argv)
{
    struct attach_args a;
    bool help;
    int rc = attach_parse(argc, argv, &a, &help);
    if (rc != FTPROF_EXIT_OK || help)
        return rc;
    char subject[32];
    snprintf(subject, sizeof(subject), "pid %d", (int)a.pid);
    uint64_t buffer;
    char lib[PATH_MAX], digest[65], out[PATH_MAX];
    struct pyremote py;
    struct attach_proc target;
    struct attach_request req;
    if ((rc = attach_own_setup(&buffer, lib, sizeof(lib), digest)) != FTPROF_EXIT_OK ||
        (rc = attach_check_target(&a, subject, &py, &target)) != FTPROF_EXIT_OK ||
        (rc = attach_output_path(&a, out, sizeof(out))) != FTPROF_EXIT_OK ||
        (rc = attach_prepare_request(&req, &target, subject, lib, digest, out, buffer, a.native)) != FTPROF_EXIT_OK ||
        (rc = attach_start(&req, &py, &target, &a, subject, out)) != FTPROF_EXIT_OK)
        return rc;
    return attach_window(&req, &a, out);
}
