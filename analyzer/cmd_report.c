/* ftprof report FILE... [--top N] [--json] */
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cmd.h"
#include "report.h"

static unsigned report_terminal_width(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
        return ws.ws_col;
    const char *cols = getenv("COLUMNS");
    size_t n;
    if (cols && cmd_parse_count(cols, &n) && n >= 40 && n <= 1000)
        return (unsigned)n;
    /* Not a terminal (a pipe, a file, a CI log): nothing to fit, so leave room for the lock names. */
    return 160;
}

int cmd_report(int argc, char **argv)
{
    bool json = false;
    size_t top = 0;
    char **files = calloc((size_t)argc, sizeof(*files));
    size_t n = 0;
    if (!files)
        return cmd_error(FTPROF_EXIT_CANNOT_READ, "report", "out of memory");
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done && strcmp(a, "--json") == 0) {
            json = true;
        } else if (!options_done && (strcmp(a, "--top") == 0 || strncmp(a, "--top=", 6) == 0)) {
            const char *v = a[5] == '=' ? a + 6 : (i + 1 < argc ? argv[++i] : NULL);
            if (!cmd_parse_count(v, &top)) {
                free(files);
                return cmd_error(FTPROF_EXIT_USAGE, "report", "--top needs a positive number");
            }
        } else if (!options_done && strcmp(a, "--") == 0) {
            options_done = true;
        } else if (!options_done && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
            free(files);
            puts("usage: ftprof report FILE... [--top N] [--json]");
            return FTPROF_EXIT_OK;
        } else if (!options_done && a[0] == '-' && a[1]) {
            free(files);
            return cmd_error(FTPROF_EXIT_USAGE, "report", "unknown option '%s'", a);
        } else {
            files[n++] = argv[i];
        }
    }
    if (n == 0) {
        free(files);
        return cmd_error(FTPROF_EXIT_USAGE, "report", "no recording given (usage: ftprof report FILE... [--top N] [--json])");
    }

    struct profile p;
    int rc = cmd_load(&p, files, n, false);
    if (rc == FTPROF_EXIT_OK) {
        int w;
        if (json) {
            w = report_json(stdout, &p, top);
        } else {
            const char *nc = getenv("NO_COLOR");
            struct report_text_options opt = {
                .top = top ? top : 10,
                .sites = 3,
                .width = report_terminal_width(),
                .color = isatty(STDOUT_FILENO) && !(nc && *nc),
            };
            w = report_text(stdout, &p, &opt);
        }
        if (w == 0 && fflush(stdout) != 0)
            w = -1;
        if (w < 0)
            rc = cmd_error(FTPROF_EXIT_CANNOT_WRITE, "stdout", "cannot write the report");
    }
    prof_free(&p);
    free(files);
    return rc;
}
