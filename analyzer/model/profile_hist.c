#include "profile_hist.h"

static uint64_t phist_midpoint(unsigned idx)
{
    if (idx < PHIST_SUB)
        return idx;
    unsigned e = idx / PHIST_SUB + PHIST_SUB_BITS - 1;
    uint64_t sub = idx % PHIST_SUB;
    uint64_t width = 1ull << (e - PHIST_SUB_BITS);
    uint64_t lo = (1ull << e) + sub * width;
    return lo + (width - 1) / 2;
}

void phist_add(struct phist *h, uint64_t value_ns)
{
    phist_add_bucket(h, phist_bucket(value_ns));
}

void phist_ring_flush(struct phist_ring *r)
{
    for (; r->len; r->len--) {
        phist_add_bucket(r->adds[r->first].hist, r->adds[r->first].bucket);
        r->first = (r->first + 1) % PHIST_RING_AHEAD;
    }
    r->first = 0;
}

void phist_merge(struct phist *into, const struct phist *from)
{
    if (from->total == 0)
        return;
    if (into->total == 0 || from->lo < into->lo)
        into->lo = from->lo;
    if (from->hi > into->hi)
        into->hi = from->hi;
    for (unsigned i = from->lo; i < from->hi; i++) {
        uint64_t sum = (uint64_t)into->counts[i] + from->counts[i];
        uint32_t c = sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
        into->total += c - into->counts[i];
        into->counts[i] = c;
    }
}

uint64_t phist_quantile(const struct phist *h, double q)
{
    if (h->total == 0)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    /* The smallest value with at least ceil(q * total) samples at or below it. */
    uint64_t rank = (uint64_t)(q * (double)h->total + 0.999999);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = h->lo; i < h->hi; i++) {
        seen += h->counts[i];
        if (seen >= rank)
            return phist_midpoint(i);
    }
    return phist_midpoint(PHIST_BUCKETS - 1);
}
