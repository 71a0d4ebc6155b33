/* Fixed-size log-linear histograms of wait times: exact below 16 ns, then 16 buckets per power of two
 * (at most 1/32 relative error when reporting a bucket's midpoint), so percentiles cost 3.9 KiB per
 * lock however many events there are. */
#ifndef FTPROF_ANALYZER_PROFILE_HIST_H
#define FTPROF_ANALYZER_PROFILE_HIST_H

#include <stdint.h>

#define PHIST_SUB_BITS 4
#define PHIST_SUB (1u << PHIST_SUB_BITS)
#define PHIST_BUCKETS ((64 - PHIST_SUB_BITS + 1) * PHIST_SUB)

struct phist {
    uint64_t total;
    /* The buckets counted lie in [lo, hi) (when total is not 0): merges and quantiles read only those,
     * a few dozen of the 976 for most locks and sites. */
    uint16_t lo, hi;
    uint32_t counts[PHIST_BUCKETS];
};

void phist_add(struct phist *h, uint64_t value_ns);
/* phist_add in two steps: the bucket of a value, then one more count in it (for adds deferred until
 * the bucket's memory was fetched). Inline: pass 2 calls them for every wait and hold. */
static inline unsigned phist_bucket(uint64_t v)
{
    if (v < PHIST_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* e >= PHIST_SUB_BITS */
    unsigned sub = (unsigned)(v >> (e - PHIST_SUB_BITS)) & (PHIST_SUB - 1);
    return (e - PHIST_SUB_BITS + 1) * PHIST_SUB + sub;
}
static inline void phist_add_bucket(struct phist *h, unsigned bucket)
{
    if (h->counts[bucket] != UINT32_MAX) {
        if (h->total == 0 || bucket < h->lo)
            h->lo = (uint16_t)bucket;
        if (bucket >= h->hi)
            h->hi = (uint16_t)(bucket + 1);
        h->counts[bucket]++;
        h->total++;
    }
}
void phist_merge(struct phist *into, const struct phist *from);
/* The value at quantile q (0..1): the midpoint of the bucket holding that rank, 0 when empty. */
uint64_t phist_quantile(const struct phist *h, double q);

/* Adds deferred while their bucket is fetched: the buckets of thousands of histograms are far apart,
 * and counting is order-free. An add waits PHIST_RING_AHEAD adds in the ring; phist_ring_flush does
 * the rest. A ring belongs to one thread. */
#define PHIST_RING_AHEAD 16
struct phist_ring {
    struct {
        struct phist *hist;
        unsigned bucket;
    } adds[PHIST_RING_AHEAD];
    unsigned first, len;
};

static inline void phist_ring_add(struct phist_ring *r, struct phist *h, uint64_t value_ns)
{
    unsigned at;
    if (r->len == PHIST_RING_AHEAD) {
        at = r->first;
        phist_add_bucket(r->adds[at].hist, r->adds[at].bucket);
        r->first = (r->first + 1) % PHIST_RING_AHEAD;
    } else {
        at = (r->first + r->len++) % PHIST_RING_AHEAD;
    }
    unsigned bucket = phist_bucket(value_ns);
    r->adds[at].hist = h;
    r->adds[at].bucket = bucket;
    __builtin_prefetch(h, 1); /* its total */
    __builtin_prefetch(&h->counts[bucket], 1);
}

void phist_ring_flush(struct phist_ring *r);

#endif
