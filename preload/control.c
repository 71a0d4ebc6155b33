/* Live control of a recording: pause and resume (a word in the mapped header that `ftprof pause` and
 * `ftprof resume` flip and the hooks read: no signal, no thread), FTPROF_START=paused, FTPROF_MIN_WAIT
 * (short waits counted, not written) and the FTPROF_MODE setting (ring mode itself, which overwrites
 * the oldest full chunks and counts exactly what they held, is the ring's: ring.c). */
#include <stdlib.h>
#include <string.h>

#include "control.h"

/* "NAME=VALUE is ...; ..." through ftp_warn, the value cut short and control characters shown as '?'. */
static void control_warn(const char *name, const char *value, const char *what)
{
    char text[160];
    size_t n = strlen(name);
    memcpy(text, name, n);
    text[n++] = '=';
    for (const char *v = value; *v && n < 100; v++)
        text[n++] = (unsigned char)*v < 0x20 || *v == 0x7f ? '?' : *v;
    text[n] = 0;
    ftp_warn(text, what, NULL);
}

/* "50us", "2ms", "0.5ms", "1s", "800ns", "0": nanoseconds, or -1. */
static int64_t parse_duration(const char *v)
{
    char *end;
    double x = strtod(v, &end);
    if (end == v || x < 0 || x > 1e6)
        return -1;
    double mul;
    if (!strcmp(end, "ns"))
        mul = 1;
    else if (!strcmp(end, "us") || !strcmp(end, "\xc2\xb5s"))
        mul = 1e3;
    else if (!strcmp(end, "ms"))
        mul = 1e6;
    else if (!strcmp(end, "s"))
        mul = 1e9;
    else if (!*end && x == 0)
        mul = 0;
    else
        return -1;
    return (int64_t)(x * mul + 0.5);
}

/* A setting with two words: true for `yes`; false for `no`, unset or anything else (warned when `warn`). */
static bool two_word_setting(const char *name, const char *yes, const char *no, bool warn, const char *what)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return false;
    if (!strcmp(v, yes))
        return true;
    if (strcmp(v, no) && warn)
        control_warn(name, v, what);
    return false;
}

void ftp_control_settings(bool warn)
{
    ftp_state.start_paused = two_word_setting("FTPROF_START", "paused", "running", warn,
                                              " is not 'paused' or 'running'; recording from the start");
    const char *v = getenv("FTPROF_MIN_WAIT");
    ftp_state.min_wait_ns = 0;
    if (v && *v) {
        int64_t ns = parse_duration(v);
        if (ns >= 0)
            ftp_state.min_wait_ns = (uint64_t)ns;
        else if (warn)
            control_warn("FTPROF_MIN_WAIT", v, " is not a duration like 50us; writing every wait");
    }
    ftp_state.ring = two_word_setting("FTPROF_MODE", "ring", "normal", warn,
                                      " is not 'ring' or 'normal'; using normal (stop when the buffer is full)");
}

void ftp_control_file_opened(struct ftp_file_header *h)
{
    h->mode = ftp_state.ring ? FTP_MODE_RING : FTP_MODE_NORMAL;
    h->min_wait_ns = ftp_state.min_wait_ns;
    if (ftp_state.start_paused) {
        h->windows[0] = FTP_WINDOW_PAUSE | h->start_ns;
        h->n_windows = 1;
        h->control = FTP_CONTROL_PAUSED;
    }
    atomic_store_explicit(&ftp_state.control, (_Atomic uint32_t *)&h->control, memory_order_relaxed);
}

bool ftp_control_below_min(uint64_t wait_ns)
{
    if (FTP_LIKELY(wait_ns >= ftp_state.min_wait_ns) || !ftp_state.hdr)
        return false;
    struct ftp_file_header *h = ftp_state.hdr;
    atomic_fetch_add_explicit((_Atomic uint64_t *)&h->below_min_events, 1, memory_order_relaxed);
    atomic_fetch_add_explicit((_Atomic uint64_t *)&h->below_min_ns, wait_ns, memory_order_relaxed);
    return true;
}
