/* What a live recording's header says about the whole run (format 4): the windows recording was on
 * (pauses and resumes, FTPROF_START=paused), the waits under FTPROF_MIN_WAIT that were counted but not
 * written, and the waits a ring-mode recording overwrote. */
#include "profile_model.h"

static int prof_u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a & ~FTP_WINDOW_PAUSE, y = *(const uint64_t *)b & ~FTP_WINDOW_PAUSE;
    return x < y ? -1 : x > y;
}

void prof_file_live_facts(struct prof_file *f, const struct ftp_file_header *h, uint64_t end_ns)
{
    uint64_t start = h->start_ns, end = end_ns > start ? end_ns : start;
    f->n_windows = 0;
    f->windowed = false;
    if (h->version < 4) {
        f->windows[f->n_windows++] = (struct prof_window){start, end};
        f->recorded_ns = end - start;
        return;
    }
    f->min_wait_ns = h->min_wait_ns;
    f->below_min_events = h->below_min_events;
    f->below_min_ns = h->below_min_ns;
    f->ring = h->mode == FTP_MODE_RING;
    f->overwritten_events = h->overwritten_events;
    f->overwritten_until_ns = h->overwritten_until_ns;

    /* The boundaries in time order (two CLIs may have written theirs out of order); recording is on
     * from the start until the first pause. */
    uint64_t b[FTP_WINDOWS_MAX];
    uint32_t n = h->n_windows < FTP_WINDOWS_MAX ? h->n_windows : FTP_WINDOWS_MAX, k = 0;
    for (uint32_t i = 0; i < n; i++)
        if (h->windows[i])
            b[k++] = h->windows[i];
    qsort(b, k, sizeof(*b), prof_u64_cmp);
    bool on = true;
    uint64_t from = start;
    f->recorded_ns = 0;
    for (uint32_t i = 0; i < k; i++) {
        bool pause = b[i] & FTP_WINDOW_PAUSE;
        uint64_t t = b[i] & ~FTP_WINDOW_PAUSE;
        if (t < start)
            t = start;
        if (t > end)
            t = end;
        if (pause && on) {
            if (t > from && f->n_windows < PROF_WINDOWS_MAX)
                f->windows[f->n_windows++] = (struct prof_window){from, t};
            f->recorded_ns += t > from ? t - from : 0;
            on = false;
            f->windowed = true;
        } else if (!pause && !on) {
            from = t;
            on = true;
        }
    }
    if (on) {
        if (end > from && f->n_windows < PROF_WINDOWS_MAX)
            f->windows[f->n_windows++] = (struct prof_window){from, end};
        f->recorded_ns += end > from ? end - from : 0;
    }
}
