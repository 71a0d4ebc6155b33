/* Native stacks (libunwind) and the module map (native.c). */
#ifndef FTPROF_NATIVE_H
#define FTPROF_NATIVE_H

#include "state.h"

FTP_HIDDEN int ftp_native_backtrace(struct ftp_thread *t, uint64_t *pcs, int max);
FTP_HIDDEN void ftp_native_init(void);
/* MODULE records for objects loaded since the last call (walks the loader's link map, lock-free). */
FTP_HIDDEN void ftp_native_write_modules(struct ftp_thread *t);
/* Describes the objects loaded since the module map was last written (all of them the first time), so
 * that a native lock call's return address can be named whether or not FTPROF_NATIVE is on. */
FTP_HIDDEN void ftp_native_catch_up(struct ftp_thread *t);
/* The same for the object holding `caller` (a native lock call's return address): nothing to do, and
 * no system call, when this thread's last such caller was in the same object. */
FTP_HIDDEN void ftp_native_describe_caller(struct ftp_thread *t, uintptr_t caller);
/* The path of the most recently loaded Python extension module (for the GIL notice); length or 0. */
FTP_HIDDEN size_t ftp_native_last_extension(char *out, size_t cap);
FTP_HIDDEN void ftp_native_reset(void);
/* A NUL-terminated string at an address we are not sure of, through safe reads: its length (cut at cap-1). */
FTP_HIDDEN size_t ftp_native_read_cstr(uintptr_t addr, char *out, size_t cap);
/* The loaded object whose dlopen handle (its link-map entry) is `handle`: load bias and path. */
FTP_HIDDEN bool ftp_native_object_of(uintptr_t handle, uintptr_t *bias, char *path, size_t cap);
/* cb(t, bias, path) for every named object of the link map (lock-free walk). */
FTP_HIDDEN void ftp_native_each_object(struct ftp_thread *t, void (*cb)(struct ftp_thread *, uintptr_t, const char *));

#endif
