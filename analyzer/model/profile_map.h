/* Small containers of the profile model: an open-addressing hash map from a pair of 64-bit keys to a
 * 64-bit value (linear probing, backward-shift deletion) and a string interner. */
#ifndef FTPROF_ANALYZER_PROFILE_MAP_H
#define FTPROF_ANALYZER_PROFILE_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* n zeroed elements of `size` bytes, or NULL. Unlike calloc, the zeros are written at once: a table
 * that is read before it is written (a hash table's probe) would otherwise map the shared zero page
 * first and take a second fault on the first write, whose TLB flush interrupts every other core that
 * runs a thread of the process (the analyzer loads in two threads). */
void *pmap_zeroed(size_t n, size_t size);

struct pmap_slot {
    uint64_t k1, k2, val;
    uint64_t used;
};

struct pmap {
    struct pmap_slot *slots;
    size_t cap, len;
};

uint64_t *pmap_get(const struct pmap *m, uint64_t k1, uint64_t k2);
/* The value slot for the key, inserted as 0 if absent (*inserted tells). NULL when out of memory. */
uint64_t *pmap_put(struct pmap *m, uint64_t k1, uint64_t k2, bool *inserted);
void pmap_del(struct pmap *m, uint64_t k1, uint64_t k2);
/* Grows the table to at least `slots` slots (a power of two is used). 0 or -ENOMEM. */
int pmap_reserve(struct pmap *m, size_t slots);
void pmap_free(struct pmap *m);

struct pstr_pool {
    char **slots;
    size_t cap, len;
};

/* A stable copy of s[0..len) (NUL-terminated), the same pointer for the same text. NULL on ENOMEM. */
const char *pstr_intern(struct pstr_pool *p, const char *s, size_t len);
void pstr_free(struct pstr_pool *p);

#endif
