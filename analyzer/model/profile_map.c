#include "profile_map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t pmap_hash(uint64_t a, uint64_t b)
{
    uint64_t h = a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull + (a << 6) + (a >> 2));
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    return h;
}

uint64_t *pmap_get(const struct pmap *m, uint64_t k1, uint64_t k2)
{
    if (m->cap == 0)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = pmap_hash(k1, k2) & mask;; i = (i + 1) & mask) {
        struct pmap_slot *s = &m->slots[i];
        if (!s->used)
            return NULL;
        if (s->k1 == k1 && s->k2 == k2)
            return &s->val;
    }
}

void *pmap_zeroed(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *v = malloc(n * size);
    if (v)
        explicit_bzero(v, n * size); /* a memset the compiler would fold back into calloc */
    return v;
}

static int pmap_resize(struct pmap *m, size_t ncap)
{
    struct pmap_slot *ns = pmap_zeroed(ncap, sizeof(*ns));
    if (!ns)
        return -1;
    for (size_t j = 0; j < m->cap; j++) {
        struct pmap_slot *s = &m->slots[j];
        if (!s->used)
            continue;
        size_t i = pmap_hash(s->k1, s->k2) & (ncap - 1);
        while (ns[i].used)
            i = (i + 1) & (ncap - 1);
        ns[i] = *s;
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return 0;
}

static int pmap_grow(struct pmap *m)
{
    return pmap_resize(m, m->cap ? m->cap * 2 : 64);
}

int pmap_reserve(struct pmap *m, size_t slots)
{
    size_t cap = 64;
    while (cap < slots)
        cap *= 2;
    if (cap <= m->cap)
        return 0;
    return pmap_resize(m, cap) < 0 ? -ENOMEM : 0;
}

uint64_t *pmap_put(struct pmap *m, uint64_t k1, uint64_t k2, bool *inserted)
{
    if ((m->len + 1) * 4 > m->cap * 3 && pmap_grow(m) < 0)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = pmap_hash(k1, k2) & mask;; i = (i + 1) & mask) {
        struct pmap_slot *s = &m->slots[i];
        if (!s->used) {
            s->used = 1;
            s->k1 = k1;
            s->k2 = k2;
            s->val = 0;
            m->len++;
            if (inserted)
                *inserted = true;
            return &s->val;
        }
        if (s->k1 == k1 && s->k2 == k2) {
            if (inserted)
                *inserted = false;
            return &s->val;
        }
    }
}

void pmap_del(struct pmap *m, uint64_t k1, uint64_t k2)
{
    if (m->cap == 0)
        return;
    size_t mask = m->cap - 1;
    size_t i = pmap_hash(k1, k2) & mask;
    for (;; i = (i + 1) & mask) {
        if (!m->slots[i].used)
            return;
        if (m->slots[i].k1 == k1 && m->slots[i].k2 == k2)
            break;
    }
    /* Backward shift: pull later members of the probe run into the hole so lookups need no tombstones. */
    size_t hole = i;
    for (size_t j = (hole + 1) & mask; m->slots[j].used; j = (j + 1) & mask) {
        size_t home = pmap_hash(m->slots[j].k1, m->slots[j].k2) & mask;
        bool movable = (hole <= j) ? (home <= hole || home > j) : (home <= hole && home > j);
        if (movable) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].used = 0;
    m->len--;
}

void pmap_free(struct pmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->len = 0;
}

static uint64_t pstr_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

static int pstr_grow(struct pstr_pool *p)
{
    size_t ncap = p->cap ? p->cap * 2 : 256;
    char **ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return -1;
    for (size_t j = 0; j < p->cap; j++) {
        if (!p->slots[j])
            continue;
        size_t i = pstr_hash(p->slots[j], strlen(p->slots[j])) & (ncap - 1);
        while (ns[i])
            i = (i + 1) & (ncap - 1);
        ns[i] = p->slots[j];
    }
    free(p->slots);
    p->slots = ns;
    p->cap = ncap;
    return 0;
}

const char *pstr_intern(struct pstr_pool *p, const char *s, size_t len)
{
    /* Embedded NULs would make two different byte strings print the same: cut at the first one. */
    const char *nul = memchr(s, 0, len);
    if (nul)
        len = (size_t)(nul - s);
    if ((p->len + 1) * 2 > p->cap && pstr_grow(p) < 0)
        return NULL;
    size_t mask = p->cap - 1;
    for (size_t i = pstr_hash(s, len) & mask;; i = (i + 1) & mask) {
        char *cur = p->slots[i];
        if (!cur) {
            char *copy = malloc(len + 1);
            if (!copy)
                return NULL;
            memcpy(copy, s, len);
            copy[len] = 0;
            p->slots[i] = copy;
            p->len++;
            return copy;
        }
        if (strncmp(cur, s, len) == 0 && cur[len] == 0)
            return cur;
    }
}

void pstr_free(struct pstr_pool *p)
{
    for (size_t i = 0; i < p->cap; i++)
        free(p->slots[i]);
    free(p->slots);
    p->slots = NULL;
    p->cap = p->len = 0;
}
