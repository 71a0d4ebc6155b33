/* ftprof flamegraph FILE... -o OUT.{html,svg,folded} [--weight wait|count] [--holders] */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "cmd_samples.h"
#include "output.h"

static const char flame_usage[] =
    "usage: ftprof flamegraph FILE... -o OUT.{html,svg,folded} [--weight wait|count] [--holders]";

static bool flame_has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a > b && strcmp(s + a - b, suffix) == 0;
}

int cmd_flamegraph(int argc, char **argv)
{
    const char *out_path = NULL;
    bool holders = false;
    enum flame_weight weight = FLAME_WEIGHT_WAIT;
    char **files = calloc((size_t)argc, sizeof(*files));
    size_t n = 0;
    if (!files)
        return cmd_error(FTPROF_EXIT_CANNOT_READ, "flamegraph", "out of memory");
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || !a[1]) {
            files[n++] = argv[i];
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            out_path = i + 1 < argc ? argv[++i] : NULL;
        } else if (strcmp(a, "--weight") == 0) {
            const char *v = i + 1 < argc ? argv[++i] : "";
            if (strcmp(v, "wait") == 0)
                weight = FLAME_WEIGHT_WAIT;
            else if (strcmp(v, "count") == 0)
                weight = FLAME_WEIGHT_COUNT;
            else {
                free(files);
                return cmd_error(FTPROF_EXIT_USAGE, "flamegraph", "--weight is 'wait' or 'count'");
            }
        } else if (strcmp(a, "--holders") == 0) {
            holders = true;
        } else if (strcmp(a, "--") == 0) {
            options_done = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            free(files);
            puts(flame_usage);
            return FTPROF_EXIT_OK;
        } else {
            free(files);
            return cmd_error(FTPROF_EXIT_USAGE, "flamegraph", "unknown option '%s' (%s)", a, flame_usage);
        }
    }
    int (*writer)(FILE *, const struct out_sample *, size_t, const struct flame_options *) = NULL;
    if (out_path && flame_has_suffix(out_path, ".html"))
        writer = out_write_html;
    else if (out_path && flame_has_suffix(out_path, ".svg"))
        writer = out_write_svg;
    else if (out_path && flame_has_suffix(out_path, ".folded"))
        writer = out_write_folded;
    if (n == 0 || !out_path || !writer) {
        free(files);
        return cmd_error(FTPROF_EXIT_USAGE, "flamegraph", "%s", flame_usage);
    }

    struct profile p;
    int rc = cmd_load(&p, files, n, false);
    struct cmd_samples s = {0};
    if (rc == FTPROF_EXIT_OK && cmd_samples_build(&p, holders, &s) < 0)
        rc = cmd_error(FTPROF_EXIT_CANNOT_WRITE, out_path, "out of memory");
    if (rc == FTPROF_EXIT_OK) {
        char title[256];
        const char *what = p.n_files ? p.files[0].argv : NULL;
        snprintf(title, sizeof(title), "ftprof: lock waits%s%s", what && *what ? " in " : "",
                 what && *what ? what : "");
        char subtitle[96];
        snprintf(subtitle, sizeof(subtitle), "weight: %s \u00b7 %s stacks",
                 weight == FLAME_WEIGHT_WAIT ? "wait time" : "contended acquisitions", holders ? "holder" : "waiter");
        struct flame_options opt = {.weight = weight, .title = title, .subtitle = subtitle};
        FILE *out = cmd_create_output(out_path);
        if (!out) {
            rc = FTPROF_EXIT_CANNOT_WRITE;
        } else {
            int w = writer(out, s.samples, s.n, &opt);
            rc = cmd_finish_output(out, out_path, w < 0 ? w : 0);
        }
    }
    cmd_samples_free(&s);
    prof_free(&p);
    free(files);
    return rc;
}
