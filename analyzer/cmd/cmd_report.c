/* ftprof report FILE... [--top N | --all] [--threads] [--depth N] [--json] */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "live.h"
#include "report.h"

/* Rows under this share of their section are summed in one line unless --top or --all asks for them. */
#define REPORT_FOLD_BELOW 0.001

int cmd_report(int argc, char **argv)
{
    bool json = false, all_threads = false, all = false, help;
    const char *top_arg = NULL, *depth_arg = NULL;
    size_t top = 0, depth = 1, n;
    const struct cmd_option opts[] = {
        CMD_VALUE("--top", &top_arg, "N", "list the N locks (and N sites) with most contention, none folded"),
        CMD_FLAG("--all", &all, "list every lock and site: rows under 0.1% are otherwise folded into one line"),
        CMD_FLAG("--threads", &all_threads, "list every thread, not the 10 with most contention"),
        CMD_VALUE("--depth", &depth_arg, "N", "frames shown per waiter and holder site (1 to 64; default 1)"),
        CMD_FLAG("--json", &json, "the report as JSON (analyzer/REPORT_JSON.md)"),
        CMD_END};
    char **files;
    int rc = cmd_parse_args(argc, argv, "report", opts, &files, &n, &help);
    if (rc == FTPROF_EXIT_OK && !help && top_arg && !cmd_parse_count(top_arg, &top))
        rc = cmd_error(FTPROF_EXIT_USAGE, "report", "--top needs a positive number");
    if (rc == FTPROF_EXIT_OK && !help && depth_arg && (!cmd_parse_count(depth_arg, &depth) || depth > 64))
        rc = cmd_error(FTPROF_EXIT_USAGE, "report", "--depth needs a number of frames from 1 to 64");
    if (rc == FTPROF_EXIT_OK && !help && top_arg && all)
        rc = cmd_error(FTPROF_EXIT_USAGE, "report", "--top and --all cannot go together");
    if (rc == FTPROF_EXIT_OK && !help && n == 0)
        rc = cmd_error(FTPROF_EXIT_USAGE, "report", "no recording given (%s)", cmd_usage("report"));
    if (rc != FTPROF_EXIT_OK || help) {
        free(files);
        return rc;
    }

    struct profile p;
    rc = cmd_load(&p, files, n, false);
    if (rc == FTPROF_EXIT_OK) {
        int w;
        if (json) {
            struct json_t *ending = live_json_endings(files, n); /* blocked_at_end, deadlocks */
            w = report_json_with(stdout, &p, top, ending);
            live_json_free(ending);
        } else {
            const char *nc = getenv("NO_COLOR");
            struct report_text_options opt = {
                .top = all ? SIZE_MAX : top ? top : 10,
                .fold_below = all || top ? 0 : REPORT_FOLD_BELOW,
                .sites = 3,
                .threads = all_threads ? SIZE_MAX : 10,
                .depth = depth,
                .width = cmd_terminal_width(STDOUT_FILENO),
                .color = isatty(STDOUT_FILENO) && !(nc && *nc),
            };
            live_report_notes(stdout, &p); /* windows, min-wait, ring: what the report covers */
            w = report_text(stdout, &p, &opt);
            if (w == 0)
                live_report_endings(stdout, files, n); /* threads blocked at the end, deadlocks */
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
