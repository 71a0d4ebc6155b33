/* A recording session: the steps that open, finish and forget a recording across the parts below, in
 * one place for the two orchestrators (init.c: preload, fork; attach.c: attach, detach). It is also
 * where the parts that sit lower learn what comes from above them: the ring gets the interpreter
 * reader's thread names here, and the file gets the ring's claim word and free list as arguments. */
#include <limits.h>
#include <stdio.h>
#include <sys/mman.h>

#include "control.h"
#include "extension.h"
#include "file.h"
#include "hooks.h"
#include "inflight.h"
#include "intern.h"
#include "native.h"
#include "python.h"
#include "ring.h"
#include "session.h"
#include "thread.h"
#include "thread_name.h"

int ftp_session_open(bool forked_child, void *(*map_at)(size_t size))
{
    /* The ring names a thread through the interpreter reader (thread_name.c, python.c), which writes
     * its own records through the ring: a function pointer, so that the ring does not call up into it. */
    ftp_ring_name_threads_with(ftp_thread_name_read);
    int rc = ftp_file_open(forked_child, map_at);
    if (rc != 0)
        return rc;
    struct ftp_file_header *h = ftp_state.hdr;
    if (ftp_state.py.ready)
        ftp_python_describe(h); /* a forked child: the interpreter is already up */
    ftp_control_file_opened(h); /* mode, min-wait, a pause at start */
    ftp_ring_file_opened(h);    /* ring mode's chunk table */
    ftp_inflight_init();        /* chunk 0: the waits in flight */
    atomic_store(&ftp_state.recording, 1);
    /* The module map: native stacks need it, and the object holding _PyRuntime lets the analyzer
     * name the interpreter-state field a PyMutex lives in. */
    if (ftp_state.native || ftp_state.py.present)
        ftp_native_write_modules(ftp_thread_enter());
#if defined(__x86_64__)
    if (ftp_state.py.present)
        ftp_extension_recording_started(ftp_thread_enter());
#endif
    return 0;
}

void ftp_session_finish(void)
{
    /* FTPROF_VERBOSE's one line also says how many of the interpreter's spin call sites know which
     * register holds their lock (the spin hook's cheap path: spin sites in hooks.c). */
    char tail[300] = "", timed[100] = "clock";
    int learnt, sites = ftp_hooks_spin_sites(&learnt);
    uint64_t checks = atomic_load(&ftp_state.ticks_checks);
    if (ftp_state.spin_ticks)
        snprintf(timed, sizeof timed, "time-stamp counter (its rate within %u ppm of the clock's in %llu checks)",
                 atomic_load(&ftp_state.ticks_worst_ppm), (unsigned long long)checks);
    if (ftp_state.verbose && sites)
        snprintf(tail, sizeof tail, "; %d spin call sites, %d with their lock's register learnt; spins timed by the %s"
                 "; %llu of %llu spin yields on the quiet path, in %llu spins",
                 sites, learnt, timed, (unsigned long long)atomic_load(&ftp_state.quiet_yields),
                 (unsigned long long)(atomic_load(&ftp_state.quiet_yields) + atomic_load(&ftp_state.full_yields)),
                 (unsigned long long)atomic_load(&ftp_state.spin_starts));
    ftp_file_finish(ftp_ring_close, tail);
}

void ftp_session_forget(void)
{
    atomic_fetch_add(&ftp_state.generation, 1);
    ftp_tables_reset();
    ftp_native_reset();
    atomic_store(&ftp_state.free_chunks, 0);
    atomic_store(&ftp_state.claimed, 0);
    atomic_store(&ftp_state.quiet_yields, 0);
    atomic_store(&ftp_state.full_yields, 0);
    atomic_store(&ftp_state.spin_starts, 0);
    for (int i = 0; i < FTP_PARKED_BUCKETS; i++)
        atomic_store(&ftp_state.parked[i], 0);
    atomic_store(&ftp_state.gil_reported, ftp_state.py.gil_enabled && *ftp_state.py.gil_enabled == INT_MAX);
}

void ftp_session_leave_parent(void)
{
    atomic_store(&ftp_state.recording, 0);
    if (ftp_state.map)
        munmap(ftp_state.map, ftp_state.map_size);
    /* The recorder holds no descriptor (file.c): there is nothing to close, and nothing of the
     * program's is touched. Nothing may point into the parent's mapping any more. */
    atomic_store_explicit(&ftp_state.control, NULL, memory_order_relaxed);
    ftp_state.inflight_slots = NULL;
    ftp_state.hdr = NULL;
    ftp_state.map = NULL;
}
