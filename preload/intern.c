/* Lock-free tables in private anonymous memory: interned code objects, stacks and type names (so a
 * repeated stack costs an id, not its frames), the waiters a releaser may wake, and the semaphores that
 * belong to RLocks. Every table uses open addressing with a short bounded probe: a full neighbourhood
 * means "not interned" (the caller writes the definition again under a fresh id), never a wait. */
#include <string.h>
#include <sys/mman.h>

#include "intern.h"
#include "ring.h"

#define PROBE 32
#define CODE_SLOTS (1u << 15)
#define STACK_SLOTS (1u << 16)
#define TYPE_SLOTS (1u << 11)
#define WAITER_SLOTS (1u << 12)
/* Waiters are looked up on every release while any thread is parked (an idle pool thread in
 * Queue.get is enough), mostly to find nobody: a lookup reads this many slots and no more, whatever the
 * number of parked threads, and a waiter whose neighbourhood is full is not registered (its wait is
 * still recorded; only its holder goes unnamed). 4 of 4,096 slots taken by hundreds of parked threads
 * is rare. */
#define WAITER_PROBE 4
#define RLOCK_SLOTS (1u << 13)

struct intern_slot {
    _Atomic uint64_t key;
    _Atomic uint64_t value; /* id | extra << 32; 0 until the definition record is published */
    _Atomic uint64_t where; /* ring mode: the chunk and generation the definition was written in */
};

struct tables {
    struct intern_slot code[CODE_SLOTS];
    struct intern_slot stack[STACK_SLOTS];
    struct intern_slot type[TYPE_SLOTS];
    struct ftp_waiter waiter[WAITER_SLOTS];
    _Atomic uintptr_t rlock[RLOCK_SLOTS];
};

static struct tables *tables;

int ftp_tables_init(void)
{
    void *p = mmap(NULL, sizeof *tables, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    tables = p;
    return 0;
}

void ftp_tables_reset(void)
{
    /* Private anonymous pages come back zeroed: every id the parent defined is forgotten. */
    if (tables)
        madvise(tables, sizeof *tables, MADV_DONTNEED);
    atomic_store(&ftp_state.next_id, 0);
}

uint32_t ftp_new_id(void)
{
    return atomic_fetch_add_explicit(&ftp_state.next_id, 1, memory_order_relaxed) + 1;
}

static uint32_t intern_lookup(struct intern_slot *table, uint32_t nslots, uint64_t key, _Atomic uint64_t **slot,
                              uint32_t *extra)
{
    *slot = NULL;
    if (!tables)
        return 0;
    uint32_t i = (uint32_t)ftp_mix64(key) & (nslots - 1);
    for (int n = 0; n < PROBE; n++, i = (i + 1) & (nslots - 1)) {
        struct intern_slot *s = &table[i];
        uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);
        if (k == 0) {
            uint64_t expect = 0;
            if (atomic_compare_exchange_strong(&s->key, &expect, key)) {
                *slot = &s->value;
                return 0;
            }
            k = expect;
        }
        if (k == key) {
            uint64_t v = atomic_load_explicit(&s->value, memory_order_acquire);
            if (v && FTP_UNLIKELY(ftp_state.ring) &&
                !ftp_ring_defined(atomic_load_explicit(&s->where, memory_order_relaxed))) {
                *slot = &s->value; /* its chunk was overwritten: define it again, under a new id */
                return 0;
            }
            if (extra)
                *extra = (uint32_t)(v >> 32);
            return (uint32_t)v; /* 0: another thread is still writing the definition */
        }
    }
    return 0;
}

void ftp_intern_publish(_Atomic uint64_t *slot, uint32_t id, uint32_t extra)
{
    if (!slot)
        return;
    if (FTP_UNLIKELY(ftp_state.ring)) {
        struct intern_slot *s = (struct intern_slot *)((char *)slot - offsetof(struct intern_slot, value));
        atomic_store_explicit(&s->where, ftp_ring_where(), memory_order_relaxed);
    }
    atomic_store_explicit(slot, (uint64_t)extra << 32 | id, memory_order_release);
}

uint32_t ftp_intern_code_lookup(uintptr_t code, uintptr_t check, _Atomic uint64_t **slot)
{
    /* The check word (the code's name and line-table pointers) keeps a freed-and-reused code address
     * from inheriting the old code's names. */
    uint64_t key = ftp_mix64(code ^ ftp_mix64(check)) | 1;
    return intern_lookup(tables ? tables->code : NULL, CODE_SLOTS, key, slot, NULL);
}

uint32_t ftp_intern_stack_lookup(uint64_t hash, _Atomic uint64_t **slot)
{
    return intern_lookup(tables ? tables->stack : NULL, STACK_SLOTS, hash | 1, slot, NULL);
}

uint32_t ftp_intern_type_lookup(uintptr_t type, _Atomic uint64_t **slot)
{
    return intern_lookup(tables ? tables->type : NULL, TYPE_SLOTS, (uint64_t)type, slot, NULL);
}

uint32_t ftp_intern_extra(uintptr_t type)
{
    _Atomic uint64_t *slot;
    uint32_t extra = 0;
    if (!tables)
        return 0;
    /* Lookup without inserting: probe for the key only. */
    uint32_t i = (uint32_t)ftp_mix64(type) & (TYPE_SLOTS - 1);
    for (int n = 0; n < PROBE; n++, i = (i + 1) & (TYPE_SLOTS - 1)) {
        uint64_t k = atomic_load_explicit(&tables->type[i].key, memory_order_acquire);
        if (k == 0)
            return 0;
        if (k == type) {
            slot = &tables->type[i].value;
            extra = (uint32_t)(atomic_load_explicit(slot, memory_order_acquire) >> 32);
            return extra;
        }
    }
    return 0;
}

/* ---- waiters ---- */
#define WAITER_EMPTY 0
#define WAITER_TOMBSTONE 1
#define WAITER_FILLING 2

struct ftp_waiter *ftp_waiter_add(uintptr_t key, uint64_t event_id, uint64_t lock_addr, uint32_t tid)
{
    if (!tables)
        return NULL;
    uint32_t i = (uint32_t)ftp_mix64(key) & (WAITER_SLOTS - 1);
    for (int n = 0; n < WAITER_PROBE; n++, i = (i + 1) & (WAITER_SLOTS - 1)) {
        struct ftp_waiter *w = &tables->waiter[i];
        uintptr_t k = atomic_load_explicit(&w->key, memory_order_relaxed);
        if (k != WAITER_EMPTY && k != WAITER_TOMBSTONE)
            continue;
        /* Claim with a "filling" marker first, fill, then publish the key. */
        if (!atomic_compare_exchange_strong(&w->key, &k, WAITER_FILLING))
            continue;
        atomic_fetch_add_explicit(&w->claims, 1, memory_order_relaxed);
        atomic_store_explicit(&w->event_id, event_id, memory_order_relaxed);
        atomic_store_explicit(&w->lock_addr, lock_addr, memory_order_relaxed);
        atomic_store_explicit(&w->tid, tid, memory_order_relaxed);
        atomic_store_explicit(&w->flags, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(ftp_parked_bucket(key), 1, memory_order_relaxed);
        atomic_store_explicit(&w->key, key, memory_order_release);
        return w;
    }
    return NULL;
}

struct ftp_waiter *ftp_waiter_find(uintptr_t key)
{
    if (!tables)
        return NULL;
    uint32_t i = (uint32_t)ftp_mix64(key) & (WAITER_SLOTS - 1);
    for (int n = 0; n < WAITER_PROBE; n++, i = (i + 1) & (WAITER_SLOTS - 1)) {
        struct ftp_waiter *w = &tables->waiter[i];
        if (atomic_load_explicit(&w->key, memory_order_acquire) == key)
            return w;
    }
    return NULL;
}

bool ftp_waiter_snapshot(struct ftp_waiter *w, uintptr_t key, struct ftp_waiter_copy *out)
{
    if (!w)
        return false;
    out->claims = atomic_load_explicit(&w->claims, memory_order_acquire);
    out->tid = atomic_load_explicit(&w->tid, memory_order_relaxed);
    out->event_id = atomic_load_explicit(&w->event_id, memory_order_relaxed);
    out->lock_addr = atomic_load_explicit(&w->lock_addr, memory_order_relaxed);
    out->flags = atomic_load_explicit(&w->flags, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(&w->key, memory_order_relaxed) == key &&
           atomic_load_explicit(&w->claims, memory_order_relaxed) == out->claims;
}

uint32_t ftp_waiter_flag(struct ftp_waiter *w, const struct ftp_waiter_copy *c, uint32_t flag)
{
    uint32_t old = atomic_fetch_or(&w->flags, flag);
    /* A slot claimed again in between belongs to another waiter: its flag was set by mistake only if
     * the claim count moved, and then the new owner resets flags before publishing its key. */
    return atomic_load_explicit(&w->claims, memory_order_relaxed) == c->claims ? old : UINT32_MAX;
}

void ftp_waiter_remove(struct ftp_waiter *w)
{
    if (!w)
        return;
    uintptr_t key = atomic_load_explicit(&w->key, memory_order_relaxed); /* only its owner removes it */
    atomic_store_explicit(&w->key, WAITER_TOMBSTONE, memory_order_release);
    atomic_fetch_sub_explicit(ftp_parked_bucket(key), 1, memory_order_relaxed);
}

/* ---- RLock semaphores ---- */
void ftp_rlock_add(uintptr_t sem)
{
    if (!tables)
        return;
    uint32_t i = (uint32_t)ftp_mix64(sem) & (RLOCK_SLOTS - 1);
    for (int n = 0; n < PROBE; n++, i = (i + 1) & (RLOCK_SLOTS - 1)) {
        uintptr_t k = atomic_load(&tables->rlock[i]);
        if (k == sem)
            return;
        if ((k == 0 || k == 1) && atomic_compare_exchange_strong(&tables->rlock[i], &k, sem))
            return;
    }
}

bool ftp_rlock_contains(uintptr_t sem)
{
    if (!tables)
        return false;
    uint32_t i = (uint32_t)ftp_mix64(sem) & (RLOCK_SLOTS - 1);
    for (int n = 0; n < PROBE; n++, i = (i + 1) & (RLOCK_SLOTS - 1)) {
        uintptr_t k = atomic_load_explicit(&tables->rlock[i], memory_order_relaxed);
        if (k == sem)
            return true;
        if (k == 0)
            return false; /* never-used slot: adds fill the first free slot, so the key is not further on */
    }
    return false;
}

void ftp_rlock_remove(uintptr_t sem)
{
    if (!tables)
        return;
    uint32_t i = (uint32_t)ftp_mix64(sem) & (RLOCK_SLOTS - 1);
    /* Every PyThread lock freed passes here: plain loads until the key (or a never-used slot), and
     * a locked instruction only on the slot that holds it. */
    for (int n = 0; n < PROBE; n++, i = (i + 1) & (RLOCK_SLOTS - 1)) {
        uintptr_t k = atomic_load_explicit(&tables->rlock[i], memory_order_relaxed);
        if (k == 0)
            return;
        if (k == sem && atomic_compare_exchange_strong(&tables->rlock[i], &k, (uintptr_t)1))
            return;
    }
}
