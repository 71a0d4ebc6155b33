/* Lock-free tables in anonymous memory (intern.c): code/stack/type ids, waiters, RLock semaphores. */
#ifndef FTPROF_INTERN_H
#define FTPROF_INTERN_H

#include "state.h"

FTP_HIDDEN int ftp_tables_init(void);
FTP_HIDDEN void ftp_tables_reset(void);
/* 0 = not present; otherwise the id. `insert` claims a slot and returns 0 with *slot set. */
FTP_HIDDEN uint32_t ftp_intern_code_lookup(uintptr_t code, uintptr_t check, _Atomic uint64_t **slot);
FTP_HIDDEN uint32_t ftp_intern_stack_lookup(uint64_t hash, _Atomic uint64_t **slot);
FTP_HIDDEN uint32_t ftp_intern_type_lookup(uintptr_t type, _Atomic uint64_t **slot);
FTP_HIDDEN void ftp_intern_publish(_Atomic uint64_t *slot, uint32_t id, uint32_t extra);
FTP_HIDDEN uint32_t ftp_intern_extra(uintptr_t type); /* the `extra` word stored with a type */
FTP_HIDDEN uint32_t ftp_new_id(void);

static inline uint64_t ftp_mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}
/* The count of registered waiters a key shares with others (its high hash bits; the table's slot takes the
 * low ones): 0, and no thread is parked on this key. A release that races a new waiter's registration
 * misses it either way, as it would miss it in the table. */
static inline _Atomic uint16_t *ftp_parked_bucket(uintptr_t key)
{
    return &ftp_state.parked[ftp_mix64(key) >> 59 & (FTP_PARKED_BUCKETS - 1)];
}
static inline bool ftp_parked_on(uintptr_t key)
{
    return atomic_load_explicit(ftp_parked_bucket(key), memory_order_relaxed) != 0;
}

FTP_HIDDEN struct ftp_waiter *ftp_waiter_add(uintptr_t key, uint64_t event_id, uint64_t lock_addr, uint32_t tid);
FTP_HIDDEN struct ftp_waiter *ftp_waiter_find(uintptr_t key);
FTP_HIDDEN bool ftp_waiter_snapshot(struct ftp_waiter *w, uintptr_t key, struct ftp_waiter_copy *out);
/* Set a flag on the waiter of the snapshot; returns the flags before, or UINT32_MAX if the slot moved on. */
FTP_HIDDEN uint32_t ftp_waiter_flag(struct ftp_waiter *w, const struct ftp_waiter_copy *c, uint32_t flag);
FTP_HIDDEN void ftp_waiter_remove(struct ftp_waiter *w);
/* Semaphores created by threading.RLock (3.13: a PyThread_type_lock) */
FTP_HIDDEN void ftp_rlock_add(uintptr_t sem);
FTP_HIDDEN bool ftp_rlock_contains(uintptr_t sem);
FTP_HIDDEN void ftp_rlock_remove(uintptr_t sem);

#endif
