/* The holders now (live_holder.c): what the process of a live recording shows of the threads holding
 * the locks its blocked threads wait for. */
#ifndef FTPROF_ANALYZER_LIVE_HOLDER_H
#define FTPROF_ANALYZER_LIVE_HOLDER_H

#include <stdbool.h>
#include <stddef.h>

#include "live_frame.h"

/* Reads the recording's process now, where it is alive and we may (the permission attach needs): the
 * owner a lock names when that thread is not blocked, each long-blocked thread's holder's state and
 * Python stack, and which threads are free to make progress. Called by live_load. */
void live_holders_now(struct live_frame *f);
/* "HOLDER now: STATE, at FUNC (FILE:LINE)" for a blocked thread's holder, or false when there is none. */
bool live_holder_now_text(const struct live_blocked *b, char *buf, size_t cap);

#endif
