/* GOT rewriting for a late-loaded recorder (got.c) and attach/detach (attach.c). Internal. */
#ifndef FTPROF_GOT_H
#define FTPROF_GOT_H

#include <stddef.h>
#include <stdint.h>

#include "recorder.h"

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
/* extension.c: dlsym of PyInit_<name> / PyModExport_<name> on a freshly loaded object. */
FTP_HIDDEN void ftp_extension_before_dlsym(uintptr_t handle, const char *symbol);

/* In a forked child (one thread): the lock may have been held by a thread that is gone; restore. */
FTP_HIDDEN void ftp_got_after_fork_in_child(void);

/* A thread that blocked in a hook before a detach (or an attach) comes back stale: what it saw
 * belongs to no recording, or to one that is finished. Under LD_PRELOAD only a fork changes the
 * generation, in the child, whose one thread is not blocked in a hook. */
static inline bool ftp_thread_stale(const struct ftp_thread *t)
{
    return t->generation != atomic_load_explicit(&ftp_state.generation, memory_order_relaxed);
}

/* attach.c: true once the library was loaded late (not preloaded); hooks then ignore what they could
 * only misread, such as a park semaphore initialised before the hooks were installed. */
FTP_HIDDEN extern bool ftp_loaded_late;
/* file.c: the address range a new recording is mapped at (one left by a previous attach), or NULL. */
FTP_HIDDEN void *ftp_attach_map_at(size_t size);
/* init.c: attach-mode settings, instead of the FTPROF_* environment of someone else's process. */
FTP_HIDDEN void ftp_attach_settings(const char *path, size_t buffer, bool native);

#endif
