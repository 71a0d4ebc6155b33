/* Samples for the output writers: one per (lock, waiter stack), or per (lock, holder stack). */
#ifndef FTPROF_ANALYZER_CMD_SAMPLES_H
#define FTPROF_ANALYZER_CMD_SAMPLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "output.h"
#include "profile.h"

struct cmd_samples {
    struct out_sample *samples;
    size_t n;
    struct out_frame *frames;
    char **names;
    size_t n_names;
};

/* 0 or -1 when out of memory. Without `all`, only contention: waits for work (conditions, queues,
 * thread joins) are left out. */
int cmd_samples_build(const struct profile *p, bool holders, bool all, struct cmd_samples *out);
void cmd_samples_free(struct cmd_samples *s);

/* What flamegraph and export share: loads the recordings, turns their waiter (or holder) sites into
 * samples, creates `out_path` (exclusively) and has `write` fill it. Returns the exit code. */
typedef int (*cmd_samples_writer)(FILE *out, const struct profile *p, const struct cmd_samples *s, void *ctx);
int cmd_samples_write(char *const *files, size_t n, bool holders, bool all, const char *out_path,
                      cmd_samples_writer write, void *ctx);

#endif
