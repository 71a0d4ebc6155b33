/* A recording read while it is written (or after its process ended): the profile so far, the waits in
 * flight right now (the INFLIGHT table), the locks with the most wait over the last interval, and what
 * the blocked threads say about each other (a deadlock cycle, or threads stuck without progress).
 * Used by `ftprof top` and, for the state a recording ended in, by `ftprof report`. */
#ifndef FTPROF_ANALYZER_LIVE_H
#define FTPROF_ANALYZER_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ftprof/format.h"
#include "live_frame.h"
#include "live_holder.h"
#include "profile.h"

/* Field 22 of a process's stat file (its start time in clock ticks; stat_path relative to dirfd, which
 * may be AT_FDCWD), or 0 when it cannot be read: tells a process from a later one with the same pid. */
uint64_t live_proc_start_ticks_at(int dirfd, const char *stat_path);

/* "running", "finished", "ended_by_exec" or "killed", as `top --json` says it. */
const char *live_state_name(enum live_state s);

/* Loads `path` as it is now. 0 or an rd_open error (with a one-line reason in err). */
int live_load(struct live_frame *f, const char *path, uint64_t interval_ns, char *err, size_t errlen);
void live_free(struct live_frame *f);

/* The recording process `pid` has mapped (MAP_SHARED, an ftprof header): its path into `out`.
 * 0, -ESRCH (no such process), -ENOENT (no recording mapped), -EACCES. */
int live_find_recording(long pid, char *out, size_t cap);


/* `top`'s frame as text (width columns; color escapes when `color`) or as one JSON object. 0 or -1. */
int live_print_text(FILE *out, const struct live_frame *f, unsigned width, size_t top, bool color);
int live_print_json(FILE *out, const struct live_frame *f, size_t top);

/* What `report` says about the end of a recording: threads blocked when it ended, deadlocks. */
void live_print_ending(FILE *out, const struct live_frame *f);
/* What `report` says first about live recordings: the recorded windows when paused, the waits under
 * FTPROF_MIN_WAIT, the waits a ring buffer overwrote. */
void live_report_notes(FILE *out, const struct profile *p);
/* The same as JSON keys for `report --json`: {"blocked_at_end": [...], "deadlocks": [...]} (a JSON object;
 * NULL when out of memory), freed with live_json_free. */
struct json_t;
struct json_t *live_json_endings(char *const *paths, size_t n);
void live_json_free(struct json_t *j);
/* The same for each recording of `report` (a file that cannot be read says nothing here). */
void live_report_endings(FILE *out, char *const *paths, size_t n);
/* Whether a recording ends with a thread blocked (its in-flight table has a wait): a look at one
 * chunk. Blocked threads and deadlocks need the whole file read again; a recording without any is
 * spared that (report's cost stays one pass). */
bool live_has_waits_in_flight(const char *path);

#endif
