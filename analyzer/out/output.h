/* Output modules of the analyzer: each format is a small writer behind a plain-data interface, so
 * subcommands build samples from the profile and never know how a format is encoded.
 * Every writer returns 0 or -errno and leaves nothing half-written behind on failure (the caller
 * writes to a file it created exclusively and removes it on error). */
#ifndef FTPROF_ANALYZER_OUTPUT_H
#define FTPROF_ANALYZER_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* One frame as a reader sees it. `line` is 0 when unknown; `file` may be NULL. */
struct out_frame {
    const char *function; /* qualified name: "Cache.get", "_PyEval_EvalFrameDefault", "libfoo.so+0x12ab" */
    const char *file;     /* source path, or the module path for native frames without debug info */
    int line;
    bool native;
};

/* One weighted stack. frames[0] is the innermost frame (where the thread waited), frames[depth-1]
 * the outermost. Flame graphs draw the lock as their root, then outermost..innermost above it. */
struct out_sample {
    const struct out_frame *frames;
    size_t depth;
    const char *lock;      /* readable lock name, e.g. "critical_section dict @0x7f12…a0" */
    const char *kind;      /* "lock", "critical_section", ... */
    uint64_t wait_ns;      /* total wait of this stack on this lock */
    uint64_t count;        /* contended acquisitions */
};

enum flame_weight { FLAME_WEIGHT_WAIT, FLAME_WEIGHT_COUNT };

struct flame_options {
    enum flame_weight weight;
    const char *title;     /* e.g. "ftprof: lock waits in app.py" */
    const char *subtitle;  /* e.g. "weight: wait time · waiter stacks" */
};

/* Collapsed stacks, one line per sample: "lock;outermost;...;innermost N" (flamegraph.pl, inferno,
 * speedscope). Frame text is "function (file:line)"; ';' and newlines in names are replaced. */
int out_write_folded(FILE *out, const struct out_sample *samples, size_t n, const struct flame_options *opt);
/* A standalone SVG flame graph (no scripts needed to view it). */
int out_write_svg(FILE *out, const struct out_sample *samples, size_t n, const struct flame_options *opt);
/* One self-contained interactive HTML page: zoom, search, hover with wait time and share; no network. */
int out_write_html(FILE *out, const struct out_sample *samples, size_t n, const struct flame_options *opt);

/* pprof profile.proto, gzip-compressed, with the sample types of Go's mutex profile
 * (contentions/count, delay/nanoseconds), one location per frame with function name, file and line,
 * and string labels "lock" and "kind" on each sample. */
struct pprof_meta {
    int64_t time_nanos;      /* wall-clock start of the recording */
    int64_t duration_nanos;
};
int out_write_pprof_gz(FILE *out, const struct out_sample *samples, size_t n, const struct pprof_meta *meta);

/* Chrome trace-event JSON of every wait and wake-up (Perfetto, chrome://tracing, speedscope): the one
 * writer that is not fed samples but the profile's timeline, which it streams (out_trace.c). 0, -errno
 * or a reader error, with `err` set for the latter. */
struct profile;
int out_write_trace(FILE *out, struct profile *p, char *err, size_t errlen);

#endif
