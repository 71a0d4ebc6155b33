/* Time accounting: each thread's lifetime from its THREAD_END record (or, without one, from its first
 * record to its recording's end), and the run's split of thread time into CPU, lock contention, waiting
 * for work, waiting for a CPU (the kernel's run delay) and the rest. The waits were summed per thread as
 * they were read (profile_events.c), those still in progress at the end up to it. */
#include "profile_model.h"

/* How much of [a, b) lies inside the file's recorded windows. */
static uint64_t prof_recorded_part(const struct prof_file *f, uint64_t a, uint64_t b)
{
    uint64_t in_windows = 0;
    for (uint32_t w = 0; w < f->n_windows; w++) {
        uint64_t lo = a > f->windows[w].start_ns ? a : f->windows[w].start_ns;
        uint64_t hi = b < f->windows[w].end_ns ? b : f->windows[w].end_ns;
        if (hi > lo)
            in_windows += hi - lo;
    }
    return in_windows;
}

void prof_time(struct prof_internal *in)
{
    struct profile *p = in->p;
    struct prof_time *t = &p->time;
    memset(t, 0, sizeof(*t));
    t->wall_ns = p->duration_ns;
    /* One recording of windows only: the wall time is the time it recorded. */
    if (p->n_files == 1 && p->files[0].windowed) {
        t->wall_ns = p->files[0].recorded_ns;
        t->windowed = true;
    }
    uint64_t process_cpu = 0;
    bool all_process_cpu = p->n_files > 0;
    for (size_t k = 0; k < p->n_files; k++) {
        const struct prof_file *f = &p->files[k];
        /* An image replaced by exec did not finish either, but was not killed: its successor ended it. */
        if ((!(f->flags & FTP_FLAG_FINISHED) || !f->end_ns) && !(f->flags & FTP_FLAG_ENDED_BY_EXEC))
            t->files_killed++;
        process_cpu += f->process_cpu_ns;
        t->known |= f->version >= 3;
        all_process_cpu &= f->process_cpu_ns != 0;
    }
    for (size_t i = 0; i < p->n_threads; i++) {
        struct prof_thread *th = &p->threads[i];
        const struct prof_file *f = &p->files[th->file];
        bool finished = (f->flags & FTP_FLAG_FINISHED) && f->end_ns;
        if (!th->ended) {
            /* Alive at exit (a daemon), or in a killed process: it ran until the end of what was
             * recorded; its CPU time is not known. */
            th->start_ns = th->first_seen_ns;
            th->end_ns = finished ? f->end_ns : in->defs[th->file].max_end_ns;
            th->cpu_ns = 0;
            t->threads_not_ended++;
        }
        /* Nothing before the recording began counts: the wall time starts there too. */
        if (th->start_ns < f->start_ns)
            th->start_ns = f->start_ns;
        if (th->end_ns < th->start_ns)
            th->end_ns = th->start_ns;
        th->lifetime_ns = th->end_ns - th->start_ns;
        if (f->windowed) {
            /* Only the recorded windows count; the CPU clock is read once, at the thread's end, so the
             * recorded part of it is prorated (the waits were recorded in the windows only anyway). */
            uint64_t rec = prof_recorded_part(f, th->start_ns, th->end_ns);
            double part = th->lifetime_ns ? (double)th->cpu_ns * (double)rec / (double)th->lifetime_ns : 0;
            if (th->lifetime_ns && part < 0x1p64) /* a damaged CPU time near 2^64 rounds up to it */
                th->cpu_ns = (uint64_t)part;
            th->lifetime_ns = rec;
            t->windowed = true;
        }
        t->thread_ns += th->lifetime_ns;
        t->threads_cpu_ns += th->cpu_ns;
        t->contention_ns += th->contention_ns;
        t->waiting_for_work_ns += th->waiting_for_work_ns;
        if (th->run_delay_known && !f->windowed) { /* read at its end: not known per window */
            t->run_delay_ns += th->run_delay_ns;
            t->run_delay_threads++;
        }
    }
    /* The process clock also counts threads the recorder never saw (they never called a hooked
     * function) and those alive at exit: the better total when every recording has it. */
    bool whole_process = all_process_cpu && process_cpu > t->threads_cpu_ns && !t->windowed;
    t->cpu_ns = whole_process ? process_cpu : t->threads_cpu_ns;
    /* A killed process (kill -9, SIGTERM) has no CPU clock at exit, and its threads still running then
     * none of their own: the CPU time of those that ended before is only part of it, whatever their
     * number, so it is unknown alike. */
    t->cpu_known = p->n_threads > 0 && (whole_process || t->threads_not_ended == 0 || (all_process_cpu && !t->windowed));
    uint64_t used = (t->cpu_known ? t->threads_cpu_ns : 0) + t->contention_ns + t->waiting_for_work_ns + t->run_delay_ns;
    t->other_ns = t->thread_ns > used ? t->thread_ns - used : 0;
}

/* The verdict's class from the contention share it can stand on. Waits dropped for a full buffer put the
 * share between what was recorded and that plus their summed wait: a class stands only when both ends
 * give it (a file too old to say that sum gives none). */
enum prof_verdict prof_verdict_of(const struct profile *p, double *low, double *high)
{
    const struct prof_time *t = &p->time;
    double whole = t->thread_ns ? (double)t->thread_ns : 1.0;
    *low = (double)t->contention_ns / whole;
    if (*low > 1.0)
        *low = 1.0; /* waits overlapping in one thread (a recording made up by hand) never count twice */
    *high = *low;
    if (p->dropped_events) {
        *high = p->dropped_wait_unknown ? 1.0 : ((double)t->contention_ns + (double)p->dropped_wait_ns) / whole;
        if (*high > 1.0)
            *high = 1.0;
    }
    if (!t->known || !t->thread_ns)
        return PROF_VERDICT_NONE;
    enum prof_verdict lo = *low >= 0.20 ? PROF_VERDICT_LOCKS : *low >= 0.05 ? PROF_VERDICT_SOME : PROF_VERDICT_NOT_LOCKS;
    enum prof_verdict hi = *high >= 0.20 ? PROF_VERDICT_LOCKS : *high >= 0.05 ? PROF_VERDICT_SOME : PROF_VERDICT_NOT_LOCKS;
    if (lo == PROF_VERDICT_LOCKS)
        return lo; /* at least that much, whatever was dropped */
    return lo == hi ? lo : PROF_VERDICT_WITHHELD;
}

const char *prof_verdict_name(enum prof_verdict v)
{
    switch (v) {
    case PROF_VERDICT_LOCKS: return "locks_limit";
    case PROF_VERDICT_SOME: return "some_contention";
    case PROF_VERDICT_NOT_LOCKS: return "not_locks";
    case PROF_VERDICT_WITHHELD: return "withheld";
    case PROF_VERDICT_NONE: break;
    }
    return "none";
}
