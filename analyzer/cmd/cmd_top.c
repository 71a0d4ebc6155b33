/* ftprof top FILE|PID [--interval S] [--once] [--json] [--top N]: a live view of a recording, refreshed
 * every interval: the locks with the most wait over the last interval and since the start, then the
 * threads blocked right now (from the recording's table of waits in flight), then deadlocks. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "live.h"
#include "pyremote.h"
#include "reader.h"


static volatile sig_atomic_t top_stop;
static void top_on_signal(int sig) { (void)sig; top_stop = 1; }

static struct termios top_saved_tty;
static bool top_tty_changed;
static void top_restore_tty(void)
{
    if (top_tty_changed)
        tcsetattr(STDIN_FILENO, TCSANOW, &top_saved_tty);
    top_tty_changed = false;
}

static unsigned top_width(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
        return ws.ws_col;
    return 120;
}

/* One frame into a buffer, so the screen is redrawn in one write. */
static int top_frame(const char *path, uint64_t interval_ns, bool json, size_t top, bool color, bool clear, int *exit_code)
{
    struct live_frame f;
    char err[256] = "";
    int rc = live_load(&f, path, interval_ns, err, sizeof(err));
    if (rc < 0) {
        live_free(&f);
        *exit_code = cmd_error(cmd_read_exit_code(rc), path, "%s", err);
        return -1;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m) {
        live_free(&f);
        *exit_code = cmd_error(FTPROF_EXIT_NO_MEMORY, "stdout", "out of memory");
        return -1;
    }
    if (clear)
        fputs("\033[H\033[2J", m);
    int w = json ? live_print_json(m, &f, top) : live_print_text(m, &f, top_width(), top, color);
    if (clear && !json)
        fputs("\n(q to quit)\n", m);
    fclose(m);
    live_free(&f);
    bool ok = w == 0 && fwrite(buf, 1, len, stdout) == len && fflush(stdout) == 0;
    free(buf);
    if (!ok) {
        *exit_code = cmd_error(FTPROF_EXIT_CANNOT_WRITE, "stdout", "cannot write");
        return -1;
    }
    return 0;
}

static int top_run(const char *path, double interval, bool once, bool json, size_t top);

/* `top PID --attach`: a process started without the recorder gets one, through `ftprof attach PID` run
 * as a child of ours (the same checks, request and detach as the command itself), for as long as top
 * runs. Its messages go to a file first and are shown if it fails. */
struct top_attach {
    pid_t child;
    int log_fd;
};

static void top_attach_show_log(const struct top_attach *a)
{
    char buf[4096];
    ssize_t n = pread(a->log_fd, buf, sizeof(buf) - 1, 0);
    if (n > 0)
        fwrite(buf, 1, (size_t)n, stderr);
}

/* Starts the attach and waits until the process has its recording mapped: FTPROF_EXIT_OK with `path`
 * set, or the attach's own exit code after its message. */
static int top_attach_start(struct top_attach *a, long pid, const char *output, char *path, size_t cap)
{
    char log[] = "/tmp/ftprof-top-attach-XXXXXX", pidarg[32], outbuf[64];
    a->log_fd = mkstemp(log);
    if (a->log_fd < 0)
        return cmd_error(FTPROF_EXIT_CANNOT_WRITE, "/tmp", "cannot create a log for the attach: %s", strerror(errno));
    unlink(log);
    snprintf(pidarg, sizeof(pidarg), "%ld", pid);
    if (!output) {
        snprintf(outbuf, sizeof(outbuf), "ftprof-%ld.ftp", pid);
        output = outbuf;
    }
    a->child = fork();
    if (a->child < 0)
        return cmd_error(FTPROF_EXIT_CANNOT_START, "top", "cannot start the attach: %s", strerror(errno));
    if (a->child == 0) {
        dup2(a->log_fd, STDERR_FILENO);
        dup2(a->log_fd, STDOUT_FILENO);
        setpgid(0, 0); /* a Ctrl-C at top's terminal is top's: it detaches through us */
        execl("/proc/self/exe", "ftprof", "attach", pidarg, "-o", output, (char *)NULL);
        _exit(FTPROF_EXIT_CANNOT_START);
    }
    for (;;) {
        if (live_find_recording(pid, path, cap) == 0)
            return FTPROF_EXIT_OK;
        int status;
        if (waitpid(a->child, &status, WNOHANG) == a->child) {
            a->child = 0;
            top_attach_show_log(a);
            return WIFEXITED(status) ? WEXITSTATUS(status) : FTPROF_EXIT_ATTACH_FAILED;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Detaches (SIGINT to the attach, which then asks the recorder to) and says where the recording is. */
static void top_attach_stop(struct top_attach *a)
{
    if (a->child > 0) {
        kill(a->child, SIGINT);
        int status;
        while (waitpid(a->child, &status, 0) < 0 && errno == EINTR) {
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            top_attach_show_log(a);
        else
            fprintf(stderr, "ftprof: detached; the recording is kept (ftprof report it)\n");
    }
    if (a->log_fd >= 0)
        close(a->log_fd);
}

/* A process id with no recording: offer --attach when it is a CPython that could take one. */
static int top_resolve(const char *arg, bool attach, const char *output, struct top_attach *a, char *path,
                       size_t cap)
{
    bool digits = *arg != 0;
    for (const char *p = arg; *p; p++)
        digits = digits && isdigit((unsigned char)*p);
    long pid = digits ? strtol(arg, NULL, 10) : 0;
    if (!digits || access(arg, F_OK) == 0 || live_find_recording(pid, path, cap) != -ENOENT) {
        if (attach && digits && live_find_recording(pid, path, cap) == 0)
            return cmd_error(FTPROF_EXIT_USAGE, arg, "it records already: no --attach needed");
        return cmd_live_target(arg, path, cap);
    }
    if (!attach) {
        if (pyremote_is_python((pid_t)pid) > 0)
            return cmd_error(FTPROF_EXIT_NO_RECORDING, arg, "process %ld has no ftprof recording mapped: it runs without "
                             "the recorder; `ftprof top %ld --attach` attaches to it (as ftprof attach does) and "
                             "shows its blocked threads", pid, pid);
        return cmd_live_target(arg, path, cap);
    }
    return top_attach_start(a, pid, output, path, cap);
}

int cmd_top(int argc, char **argv)
{
    bool once = false, json = false, attach = false, help;
    const char *interval_arg = NULL, *top_arg = NULL, *output = NULL;
    const struct cmd_option opts[] = {
        CMD_VALUE("--interval", &interval_arg, "S", "seconds between refreshes (0.05 to 3600; default 1)"),
        CMD_FLAG("--once", &once, "print one frame and exit, not a live screen"),
        CMD_FLAG("--json", &json, "with --once: the frame as JSON"),
        CMD_VALUE("--top", &top_arg, "N", "show the N locks with most wait in the interval (default 10)"),
        CMD_FLAG("--attach", &attach, "PID not recorded: attach the recorder (as ftprof attach) while top runs"),
        CMD_VALUE("--output", &output, "FILE", "with --attach: the recording to keep (default ftprof-PID.ftp)"),
        CMD_END};
    char **targets;
    size_t n;
    int rc = cmd_parse_args(argc, argv, "top", opts, &targets, &n, &help);
    double interval = 1.0;
    size_t top = 10;
    if (rc == FTPROF_EXIT_OK && !help) {
        char *end = NULL;
        if (interval_arg && (!(interval = strtod(interval_arg, &end)) || *end || interval < 0.05 || interval > 3600))
            rc = cmd_error(FTPROF_EXIT_USAGE, "top", "--interval needs seconds between 0.05 and 3600");
        else if (top_arg && !cmd_parse_count(top_arg, &top))
            rc = cmd_error(FTPROF_EXIT_USAGE, "top", "--top needs a positive number");
        else if (n != 1)
            rc = cmd_error(FTPROF_EXIT_USAGE, "top", "one recording or process id (%s)", cmd_usage("top"));
        else if (json && !once)
            rc = cmd_error(FTPROF_EXIT_USAGE, "top", "--json prints one frame: use it with --once");
        else if (output && !attach)
            rc = cmd_error(FTPROF_EXIT_USAGE, "top", "-o names the recording of --attach");
    }
    if (rc != FTPROF_EXIT_OK || help) {
        free(targets);
        return rc;
    }
    char path[4096];
    struct top_attach att = {.child = 0, .log_fd = -1};
    rc = top_resolve(targets[0], attach, output, &att, path, sizeof(path));
    free(targets);
    if (rc != FTPROF_EXIT_OK) {
        top_attach_stop(&att);
        return rc;
    }
    rc = top_run(path, interval, once, json, top);
    top_attach_stop(&att);
    return rc;
}

/* The frames: one (--once) or one per interval until q, Ctrl-C or the terminal goes away. */
static int top_run(const char *path, double interval, bool once, bool json, size_t top)
{
    uint64_t interval_ns = (uint64_t)(interval * 1e9);
    const char *nc = getenv("NO_COLOR");
    bool color = isatty(STDOUT_FILENO) && !(nc && *nc);
    int exit_code = FTPROF_EXIT_OK;
    if (once)
        return top_frame(path, interval_ns, json, top, color, false, &exit_code) == 0 ? FTPROF_EXIT_OK : exit_code;

    /* Live: redraw every interval until q, Ctrl-C or the terminal goes away. */
    struct sigaction sa = {.sa_handler = top_on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    bool tty_in = isatty(STDIN_FILENO);
    if (tty_in && tcgetattr(STDIN_FILENO, &top_saved_tty) == 0) {
        struct termios raw = top_saved_tty;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0) {
            top_tty_changed = true;
            atexit(top_restore_tty);
        }
    }
    while (!top_stop) {
        if (top_frame(path, interval_ns, false, top, color, isatty(STDOUT_FILENO), &exit_code) != 0)
            break;
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int wait_ms = (int)(interval * 1000);
        int pr = tty_in ? poll(&pfd, 1, wait_ms) : (usleep((useconds_t)wait_ms * 1000), 0);
        if (pr > 0 && (pfd.revents & POLLIN)) {
            char c;
            ssize_t r = read(STDIN_FILENO, &c, 1);
            if (r <= 0 || c == 'q' || c == 'Q')
                break;
        } else if (pr > 0 && (pfd.revents & (POLLHUP | POLLERR))) {
            break;
        }
    }
    top_restore_tty();
    return exit_code;
}
