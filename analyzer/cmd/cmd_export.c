/* ftprof export FILE... --format pprof|trace -o OUT
 * Both formats carry every wait, waits for work included: pprof's samples say their kind in a label,
 * the timeline shows what each thread did. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "cmd_samples.h"
#include "output.h"
#include "reader.h"


static int export_pprof(FILE *out, const struct profile *p, const struct cmd_samples *s, void *ctx)
{
    (void)ctx;
    struct pprof_meta meta = {.time_nanos = (int64_t)p->start_realtime_ns, .duration_nanos = (int64_t)p->duration_ns};
    return out_write_pprof_gz(out, s->samples, s->n, &meta);
}

/* The timeline reads the recordings a second time, after the model is loaded. */
static int export_trace(char *const *files, size_t n, const char *out_path)
{
    struct profile p;
    int rc = cmd_load(&p, files, n, false);
    if (rc != FTPROF_EXIT_OK) {
        prof_free(&p);
        return rc;
    }
    FILE *out = cmd_create_output(out_path);
    if (!out) {
        prof_free(&p);
        return FTPROF_EXIT_CANNOT_WRITE;
    }
    char err[256] = "";
    int w = out_write_trace(out, &p, err, sizeof(err));
    if (w < 0 && err[0] && w != -EIO && w != -ENOSPC) {
        /* A recording that cannot be read again (removed meanwhile): say which, leave no output. */
        fclose(out);
        unlink(out_path);
        prof_free(&p);
        return cmd_error(cmd_read_exit_code(w), NULL, "%s", err);
    }
    rc = cmd_finish_output(out, out_path, w);
    prof_free(&p);
    return rc;
}

int cmd_export(int argc, char **argv)
{
    const char *out_path = NULL, *format = NULL;
    bool help;
    size_t n;
    const struct cmd_option opts[] = {
        CMD_VALUE("--format", &format, "pprof|trace", "pprof: a profile.proto (gzip); trace: every wait as Chrome trace-event JSON"),
        CMD_VALUE("--output", &out_path, "OUT", "the file to create (never overwritten)"),
        CMD_END};
    char **files;
    int rc = cmd_parse_args(argc, argv, "export", opts, &files, &n, &help);
    if (rc == FTPROF_EXIT_OK && !help && (n == 0 || !out_path || !format))
        rc = cmd_error(FTPROF_EXIT_USAGE, "export", "%s", cmd_usage("export"));
    if (rc == FTPROF_EXIT_OK && !help && strcmp(format, "pprof") != 0 && strcmp(format, "trace") != 0)
        rc = cmd_error(FTPROF_EXIT_USAGE, "export", "unknown format '%s' (supported: pprof, trace)", format);
    if (rc != FTPROF_EXIT_OK || help) {
        free(files);
        return rc;
    }

    rc = strcmp(format, "trace") == 0 ? export_trace(files, n, out_path)
                                      : cmd_samples_write(files, n, false, true, out_path, export_pprof, NULL);
    free(files);
    return rc;
}
