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
