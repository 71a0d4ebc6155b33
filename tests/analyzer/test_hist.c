/* Percentiles from the fixed-size histogram stay within the bucket error (1/32 relative) of the exact
 * order statistics, for narrow, wide and heavy-tailed distributions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "profile_hist.h"
#include "xorshift.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void) { return xorshift64(&rng_state); }

static int check(const char *name, uint64_t *v, size_t n)
{
    static struct phist h;
    h = (struct phist){0};
    for (size_t i = 0; i < n; i++)
        phist_add(&h, v[i]);
    qsort(v, n, sizeof(*v), cmp_u64);
    int bad = 0;
    const double qs[] = {0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0};
    for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
        size_t rank = (size_t)ceil(qs[k] * (double)n);
        uint64_t exact = v[rank ? rank - 1 : 0];
        uint64_t got = phist_quantile(&h, qs[k]);
        double err = exact ? fabs((double)got - (double)exact) / (double)exact : (double)got;
        if (err > 1.0 / 32 + 1e-9) {
            fprintf(stderr, "FAIL %s q=%.3f: %llu, exact %llu (error %.2f%%)\n", name, qs[k], (unsigned long long)got,
                    (unsigned long long)exact, err * 100);
            bad++;
        }
    }
    printf("%s: ok=%s\n", name, bad ? "no" : "yes");
    return bad;
}

int main(void)
{
    enum { N = 200000 };
    static uint64_t v[N];
    int bad = 0;
    for (size_t i = 0; i < N; i++)
        v[i] = 1000000 + rng() % 1000; /* ~1 ms, narrow */
    bad += check("narrow", v, N);
    for (size_t i = 0; i < N; i++)
        v[i] = 1 + rng() % 10000000000ull; /* 1 ns .. 10 s, uniform */
    bad += check("uniform", v, N);
    for (size_t i = 0; i < N; i++) {
        double u = ((double)(rng() >> 11) + 1) / 9007199254740993.0;
        v[i] = (uint64_t)(1000.0 / pow(u, 1.0 / 1.2)); /* Pareto tail from 1 µs */
    }
    bad += check("pareto", v, N);
    for (size_t i = 0; i < 15; i++)
        v[i] = i; /* exact below 16 ns */
    bad += check("tiny", v, 15);

    struct phist a = {0}, b = {0};
    for (int i = 0; i < 1000; i++)
        phist_add(&a, 1000);
    for (int i = 0; i < 1000; i++)
        phist_add(&b, 3000000);
    phist_merge(&a, &b);
    uint64_t p25 = phist_quantile(&a, 0.25), p75 = phist_quantile(&a, 0.75);
    if (a.total != 2000 || p25 < 970 || p25 > 1030 || p75 < 2900000 || p75 > 3100000) {
        fprintf(stderr, "FAIL merge: total %llu p25 %llu p75 %llu\n", (unsigned long long)a.total,
                (unsigned long long)p25, (unsigned long long)p75);
        bad++;
    }
    struct phist empty = {0};
    if (phist_quantile(&empty, 0.5) != 0) {
        fprintf(stderr, "FAIL empty histogram\n");
        bad++;
    }
    return bad ? 1 : 0;
}
