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
    uint32_t counts[PHIST_BUCKETS];
};

void phist_add(struct phist *h, uint64_t value_ns);
/* phist_add in two steps: the bucket of a value, then one more count in it (for adds deferred until
 * the bucket's memory was fetched). */
unsigned phist_bucket(uint64_t value_ns);
static inline void phist_add_bucket(struct phist *h, unsigned bucket)
{
    if (h->counts[bucket] != UINT32_MAX) {
        h->counts[bucket]++;
        h->total++;
    }
}
void phist_merge(struct phist *into, const struct phist *from);
/* The value at quantile q (0..1): the midpoint of the bucket holding that rank, 0 when empty. */
uint64_t phist_quantile(const struct phist *h, double q);

#endif
