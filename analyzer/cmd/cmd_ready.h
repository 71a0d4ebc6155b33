/* `ftprof ready` (cmd_ready.c): its runs, the verdict and the printed report (cmd_ready_report.c), and
 * the environment listing (cmd_ready_env.c). Internal to those files. */
#ifndef FTPROF_ANALYZER_CMD_READY_H
#define FTPROF_ANALYZER_CMD_READY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cmd.h"
#include "profile.h"

/* One run of the command under the recorder. */
struct ready_run {
    struct profile prof;
    bool loaded;
    int exit_status;
    uint64_t wall_ns, cpu_ns;       /* measured around the command (all its processes) */
    double cores;                   /* cpu / wall: cores busy on average */
    double contention_share;        /* lock contention / thread time */
    const struct prof_lock *top_lock; /* the contention lock with the most wait, or NULL */
    double top_lock_share;          /* its wait / thread time */
    uint64_t python_version;
    bool free_threaded;
};

struct ready_result {
    struct ready_run ft, gil;
    bool compared;                  /* gil holds the --gil-python run */
    /* the verdict (ready_verdict) */
    bool ready;                     /* every module declares support and the GIL stayed off */
    size_t modules, declared, keeps, unknown, distributions;
    const struct prof_extension *reenabler;
    double speedup;                 /* gil wall / ft wall (compared) */
    char verdict[1024];
};

void ready_verdict(struct ready_result *r);
int ready_print_text(FILE *out, const struct ready_result *r, char *const *cmd);
int ready_print_json(FILE *out, const struct ready_result *r, char *const *cmd);
/* "3.14t" for a run's interpreter. */
void ready_python_name(char *buf, size_t len, uint64_t version, bool free_threaded);
/* The extensions of a profile, one per (module, path), in report order (by distribution); count. The
 * array is malloc'd. */
size_t ready_modules(const struct profile *p, const struct prof_extension ***out);
/* A group heading's key for a module: its distribution, or its origin. */
const char *ready_group(const struct prof_extension *e);

int ready_env(const char *python, unsigned timeout_s, bool json, bool strict);

#endif
