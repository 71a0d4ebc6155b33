/* ftprof export FILE... --format pprof -o OUT.pb.gz */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "cmd_samples.h"
#include "output.h"

static const char export_usage[] = "usage: ftprof export FILE... --format pprof -o OUT.pb.gz";

int cmd_export(int argc, char **argv)
{
    const char *out_path = NULL, *format = NULL;
    char **files = calloc((size_t)argc, sizeof(*files));
    size_t n = 0;
    if (!files)
        return cmd_error(FTPROF_EXIT_CANNOT_READ, "export", "out of memory");
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || !a[1]) {
            files[n++] = argv[i];
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            out_path = i + 1 < argc ? argv[++i] : NULL;
        } else if (strcmp(a, "--format") == 0) {
            format = i + 1 < argc ? argv[++i] : NULL;
        } else if (strncmp(a, "--format=", 9) == 0) {
            format = a + 9;
        } else if (strcmp(a, "--") == 0) {
            options_done = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            free(files);
            puts(export_usage);
            return FTPROF_EXIT_OK;
        } else {
            free(files);
            return cmd_error(FTPROF_EXIT_USAGE, "export", "unknown option '%s' (%s)", a, export_usage);
        }
    }
    if (n == 0 || !out_path || !format) {
        free(files);
        return cmd_error(FTPROF_EXIT_USAGE, "export", "%s", export_usage);
    }
    if (strcmp(format, "pprof") != 0) {
        free(files);
        return cmd_error(FTPROF_EXIT_USAGE, "export", "unknown format '%s' (supported: pprof)", format);
    }

    struct profile p;
    int rc = cmd_load(&p, files, n, false);
    struct cmd_samples s = {0};
    if (rc == FTPROF_EXIT_OK && cmd_samples_build(&p, false, &s) < 0)
        rc = cmd_error(FTPROF_EXIT_CANNOT_WRITE, out_path, "out of memory");
    if (rc == FTPROF_EXIT_OK) {
        struct pprof_meta meta = {.time_nanos = (int64_t)p.start_realtime_ns, .duration_nanos = (int64_t)p.duration_ns};
        FILE *out = cmd_create_output(out_path);
        if (!out) {
            rc = FTPROF_EXIT_CANNOT_WRITE;
        } else {
            int w = out_write_pprof_gz(out, s.samples, s.n, &meta);
            rc = cmd_finish_output(out, out_path, w < 0 ? w : 0);
        }
    }
    cmd_samples_free(&s);
    prof_free(&p);
    free(files);
    return rc;
}
