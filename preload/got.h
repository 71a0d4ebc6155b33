/* GOT rewriting for a late-loaded recorder (got.c) and attach/detach (attach.c). Internal. */
#ifndef FTPROF_GOT_H
#define FTPROF_GOT_H

#include <stddef.h>
#include <stdint.h>

#include "state.h"

/* Points every loaded object's relocation slots for the interposed functions (and dlsym) at the
 * hooks; *patched: slots saved. 0 or -errno (-ENOSPC: more slots than the table holds). */
FTP_HIDDEN int ftp_got_install(size_t *patched);
/* Writes every saved slot back where its object is still loaded; *restored: how many. */
FTP_HIDDEN int ftp_got_restore(size_t *restored);
/* The slots currently patched (for the tests, through ftprof_attach_got). */
struct ftp_got_entry {
    uintptr_t slot, old, hook;
};
FTP_HIDDEN size_t ftp_got_list(struct ftp_got_entry *out, size_t cap);
/* Points the GOT slots through which the loaded objects whose file name contains `object` call
 * `symbol` at `target`, for good (outside hooks; no restore). Returns how many slots. */
FTP_HIDDEN size_t ftp_got_redirect_in(const char *object, const char *symbol, uintptr_t target);
/* Points the GOT slots through which the object loaded at `bias` (just loaded: its init has not run)
 * calls symbols[i] at targets[i] (0: leave it), for good; lock-free. Returns how many slots. */
FTP_HIDDEN size_t ftp_got_redirect_object(uintptr_t bias, const char *const *symbols, const uintptr_t *targets,
                                          size_t n);
/* The real dlsym (libc's), into ftp_real_dlsym; false when it cannot be found. */
FTP_HIDDEN bool ftp_got_resolve_dlsym(void);
FTP_HIDDEN extern void *ftp_real_dlsym;
/* What the dlsym entry calls, once the recorder has started, with dlsym's handle and symbol name (set by
 * the orchestrator: extension.c's look at PyInit_/PyModExport_, which sits above this file). */
typedef void (*ftp_got_dlsym_watcher)(uintptr_t handle, const char *symbol);
FTP_HIDDEN void ftp_got_watch_dlsym(ftp_got_dlsym_watcher watcher);

/* In a forked child (one thread): the lock may have been held by a thread that is gone; restore. */
FTP_HIDDEN void ftp_got_after_fork_in_child(void);

#endif
