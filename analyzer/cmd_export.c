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
    bool help;
    size_t n;
    const struct cmd_option opts[] = {{"--output", "-o", &out_path, NULL}, {"--format", NULL, &format, NULL}, {0}};
    char **files = calloc((size_t)argc, sizeof(*files));
    if (!files)
        return cmd_error(FTPROF_EXIT_CANNOT_READ, "export", "out of memory");
    int rc = cmd_parse_args(argc, argv, "export", export_usage, opts, files, &n, &help);
    if (rc == FTPROF_EXIT_OK && !help && (n == 0 || !out_path || !format))
        rc = cmd_error(FTPROF_EXIT_USAGE, "export", "%s", export_usage);
    if (rc == FTPROF_EXIT_OK && !help && strcmp(format, "pprof") != 0)
        rc = cmd_error(FTPROF_EXIT_USAGE, "export", "unknown format '%s' (supported: pprof)", format);
    if (rc != FTPROF_EXIT_OK || help) {
        free(files);
        return rc;
    }

    struct profile p;
    rc = cmd_load(&p, files, n, false);
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
