/* Live control of a recording: pause and resume (a word in the mapped header that `ftprof pause` and
 * `ftprof resume` flip and the hooks read: no signal, no thread), FTPROF_START=paused, FTPROF_MIN_WAIT
 * (short waits counted, not written) and FTPROF_MODE=ring (the oldest full chunks are overwritten, and
 * what they held is counted exactly). */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "recorder.h"

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

void ftp_control_settings(bool warn)
{
    const char *v = getenv("FTPROF_START");
    ftp_state.start_paused = false;
    if (v && *v) {
        if (!strcmp(v, "paused"))
            ftp_state.start_paused = true;
        else if (strcmp(v, "running") && warn)
            control_warn("FTPROF_START", v, " is not 'paused' or 'running'; recording from the start");
    }
    v = getenv("FTPROF_MIN_WAIT");
    ftp_state.min_wait_ns = 0;
    if (v && *v) {
        int64_t ns = parse_duration(v);
        if (ns >= 0)
            ftp_state.min_wait_ns = (uint64_t)ns;
        else if (warn)
            control_warn("FTPROF_MIN_WAIT", v, " is not a duration like 50us; writing every wait");
    }
    v = getenv("FTPROF_MODE");
    ftp_state.ring = false;
    if (v && *v) {
        if (!strcmp(v, "ring"))
            ftp_state.ring = true;
        else if (strcmp(v, "normal") && warn)
            control_warn("FTPROF_MODE", v, " is not 'ring' or 'normal'; using normal (stop when the buffer is full)");
    }
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
    atomic_store(&ftp_state.ring_next, 0);
    if (ftp_state.ring) {
        /* Private bookkeeping, one byte and one word per chunk (start-up or a forked child: no hook). */
        size_t need = (size_t)ftp_state.chunk_count * (1 + sizeof(uint32_t));
        void *p = mmap(NULL, need, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            ftp_warn("FTPROF_MODE=ring: cannot allocate the chunk table; using normal mode", NULL, NULL);
            ftp_state.ring = false;
            h->mode = FTP_MODE_NORMAL;
            return;
        }
        ftp_state.chunk_gen = p;
        ftp_state.chunk_owned = (_Atomic uint8_t *)((uint32_t *)p + ftp_state.chunk_count);
    }
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

/* ---- ring mode ---- */

void ftp_ring_mark_owned(uint32_t index, bool owned)
{
    if (ftp_state.ring && ftp_state.chunk_owned && index < ftp_state.chunk_count)
        atomic_store_explicit(&ftp_state.chunk_owned[index], owned, memory_order_release);
}

static void atomic_max_u64(_Atomic uint64_t *p, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(p, memory_order_relaxed);
    while (cur < v && !atomic_compare_exchange_weak(p, &cur, v))
        ;
}

bool ftp_ring_recycle(uint32_t *index)
{
    uint32_t n = ftp_state.chunk_count;
    if (!ftp_state.ring || !ftp_state.chunk_owned || !ftp_state.hdr)
        return false;
    struct ftp_file_header *h = ftp_state.hdr;
    /* Round robin over the chunks in the order they were first claimed: the one overwritten next is
     * the one filled longest ago, less those a thread (or the free list) still holds. */
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = atomic_fetch_add_explicit(&ftp_state.ring_next, 1, memory_order_relaxed) % n;
        uint8_t free_now = 0;
        if (atomic_load_explicit(&ftp_state.chunk_owned[i], memory_order_relaxed) ||
            !atomic_compare_exchange_strong(&ftp_state.chunk_owned[i], &free_now, 1))
            continue;
        /* What is lost: every WAIT record the chunk holds, and up to when. */
        uint8_t *c = ftp_state.map + FTP_HEADER_SIZE + (size_t)i * ftp_state.chunk_size;
        uint64_t lost = 0, until = 0;
        for (uint32_t off = 0; off + sizeof(struct ftp_record) <= ftp_state.chunk_size;) {
            const struct ftp_record *r = (const struct ftp_record *)(c + off);
            uint32_t size = atomic_load_explicit((_Atomic uint32_t *)&r->size, memory_order_acquire);
            if (size == 0 || size % FTP_RECORD_ALIGN || size > ftp_state.chunk_size - off)
                break;
            if (r->type == FTP_REC_WAIT && size >= FTP_REC_WAIT_V6_SIZE) {
                lost++;
                uint64_t end = ((const struct ftp_rec_wait *)r)->end_ns;
                if (end > until)
                    until = end;
            }
            off += size;
        }
        atomic_fetch_add_explicit(&ftp_state.chunk_gen[i], 1, memory_order_release);
        /* A reader stops at the first size 0: cut the chunk there first, then clear the rest. */
        atomic_store_explicit((_Atomic uint32_t *)c, 0, memory_order_release);
        memset(c + 8, 0, ftp_state.chunk_size - 8);
        atomic_fetch_add_explicit((_Atomic uint64_t *)&h->overwritten_events, lost, memory_order_relaxed);
        atomic_max_u64((_Atomic uint64_t *)&h->overwritten_until_ns, until);
        atomic_fetch_add_explicit((_Atomic uint64_t *)&h->chunks_recycled, 1, memory_order_relaxed);
        ftp_state.chunk_fill[i] = 0;
        *index = i;
        return true;
    }
    return false;
}

uint64_t ftp_ring_where(void)
{
    struct ftp_thread *t = &ftp_tls;
    if (!ftp_state.ring || !ftp_state.chunk_gen || !t->chunk)
        return 0;
    return (uint64_t)(t->chunk_index + 1) << 32 |
           atomic_load_explicit(&ftp_state.chunk_gen[t->chunk_index], memory_order_relaxed);
}

bool ftp_ring_defined(uint64_t where)
{
    if (!where || !ftp_state.chunk_gen)
        return true;
    uint32_t i = (uint32_t)(where >> 32) - 1;
    return i >= ftp_state.chunk_count ||
           atomic_load_explicit(&ftp_state.chunk_gen[i], memory_order_relaxed) == (uint32_t)where;
}
