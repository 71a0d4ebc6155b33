/* ftprof export FILE... --format pprof -o OUT.pb.gz */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "cmd_samples.h"
#include "output.h"

static const char export_usage[] = "usage: ftprof export FILE... --format pprof -o OUT.pb.gz";

static int export_pprof(FILE *out, const struct profile *p, const struct cmd_samples *s, void *ctx)
{
    (void)ctx;
    struct pprof_meta meta = {.time_nanos = (int64_t)p->start_realtime_ns, .duration_nanos = (int64_t)p->duration_ns};
    return out_write_pprof_gz(out, s->samples, s->n, &meta);
}

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

    rc = cmd_samples_write(files, n, false, out_path, export_pprof, NULL);
    free(files);
    return rc;
}
