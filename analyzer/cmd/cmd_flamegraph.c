/* ftprof flamegraph FILE... -o OUT.{html,svg,folded} [--weight wait|count] [--holders] [--all]
 * Contention only by default: a main thread joining its workers or a pool waiting on its queue would
 * otherwise take most of the width for time nobody can win back. */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "cmd_samples.h"
#include "output.h"

static bool flame_has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a > b && strcmp(s + a - b, suffix) == 0;
}

typedef int (*flame_writer)(FILE *, const struct out_sample *, size_t, const struct flame_options *);

struct flame_job {
    flame_writer writer;
    enum flame_weight weight;
    bool holders, all;
};

static int flame_write(FILE *out, const struct profile *p, const struct cmd_samples *s, void *ctx)
{
    const struct flame_job *job = ctx;
    char title[256];
    const char *what = p->n_files ? p->files[0].argv : NULL;
    snprintf(title, sizeof(title), "ftprof: lock waits%s%s", what && *what ? " in " : "", what && *what ? what : "");
    char subtitle[160];
    snprintf(subtitle, sizeof(subtitle), "weight: %s \u00b7 %s stacks \u00b7 %s",
             job->weight == FLAME_WEIGHT_WAIT ? "wait time" : "contended acquisitions",
             job->holders ? "holder" : "waiter",
             job->all ? "contention and waiting for work" : "contention only (--all adds waiting for work)");
    if (s->n == 0 && !job->all)
        fprintf(stderr, "ftprof: flamegraph: no lock contention in %s; --all shows the waits for work\n",
                p->n_files == 1 ? p->files[0].path : "these recordings");
    struct flame_options opt = {.weight = job->weight, .title = title, .subtitle = subtitle};
    return job->writer(out, s->samples, s->n, &opt);
}

int cmd_flamegraph(int argc, char **argv)
{
    const char *out_path = NULL, *weight_arg = NULL;
    bool holders = false, all = false, help;
    size_t n;
    const struct cmd_option opts[] = {
        CMD_VALUE("--output", &out_path, "OUT", "OUT.html (interactive), OUT.svg or OUT.folded (never overwritten)"),
        CMD_VALUE("--weight", &weight_arg, "wait|count", "frame widths by time waited (default) or by contended acquisitions"),
        CMD_FLAG("--holders", &holders, "the holders' stacks instead of the waiters'"),
        CMD_FLAG("--all", &all, "also the waits for work (conditions, joins), not only contention"),
        CMD_END};
    char **files;
    int rc = cmd_parse_args(argc, argv, "flamegraph", opts, &files, &n, &help);
    enum flame_weight weight = FLAME_WEIGHT_WAIT;
    if (rc == FTPROF_EXIT_OK && !help && weight_arg && strcmp(weight_arg, "count") == 0)
        weight = FLAME_WEIGHT_COUNT;
    else if (rc == FTPROF_EXIT_OK && !help && weight_arg && strcmp(weight_arg, "wait") != 0)
        rc = cmd_error(FTPROF_EXIT_USAGE, "flamegraph", "--weight is 'wait' or 'count'");
    flame_writer writer = NULL;
    if (out_path && flame_has_suffix(out_path, ".html"))
        writer = out_write_html;
    else if (out_path && flame_has_suffix(out_path, ".svg"))
        writer = out_write_svg;
    else if (out_path && flame_has_suffix(out_path, ".folded"))
        writer = out_write_folded;
    if (rc == FTPROF_EXIT_OK && !help && (n == 0 || !out_path || !writer))
        rc = cmd_error(FTPROF_EXIT_USAGE, "flamegraph", "%s", cmd_usage("flamegraph"));
    if (rc != FTPROF_EXIT_OK || help) {
        free(files);
        return rc;
    }

    struct flame_job job = {.writer = writer, .weight = weight, .holders = holders, .all = all};
    rc = cmd_samples_write(files, n, holders, all, out_path, flame_write, &job);
    free(files);
    return rc;
}
