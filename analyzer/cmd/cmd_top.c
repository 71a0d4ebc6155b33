/* ftprof top FILE|PID [--interval S] [--once] [--json] [--top N]: a live view of a recording, refreshed
 * every interval: the locks with the most wait over the last interval and since the start, then the
 * threads blocked right now (from the recording's table of waits in flight), then deadlocks. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "cmd.h"
#include "live.h"
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
        *exit_code = cmd_error(rd_exit_code(rc), path, "%s", err);
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

int cmd_top(int argc, char **argv)
{
    bool once = false, json = false, help;
    const char *interval_arg = NULL, *top_arg = NULL;
    const struct cmd_option opts[] = {
        CMD_VALUE("--interval", &interval_arg, "S", "seconds between refreshes (0.05 to 3600; default 1)"),
        CMD_FLAG("--once", &once, "print one frame and exit, not a live screen"),
        CMD_FLAG("--json", &json, "with --once: the frame as JSON"),
        CMD_VALUE("--top", &top_arg, "N", "show the N locks with most wait in the interval (default 10)"),
        CMD_END};
    char **targets = calloc((size_t)argc, sizeof(*targets));
    if (!targets)
        return cmd_error(FTPROF_EXIT_NO_MEMORY, "top", "out of memory");
    size_t n;
    int rc = cmd_parse_args(argc, argv, "top", opts, targets, &n, &help);
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
    }
    if (rc != FTPROF_EXIT_OK || help) {
        free(targets);
        return rc;
    }
    char path[4096];
    rc = cmd_live_target(targets[0], path, sizeof(path));
    free(targets);
    if (rc != FTPROF_EXIT_OK)
        return rc;
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
