/* Extension modules (extension.c; x86-64): imports and GIL declarations. */
#ifndef FTPROF_EXTENSION_H
#define FTPROF_EXTENSION_H

#include "state.h"

/* A new recording: list the extension modules already loaded. */
FTP_HIDDEN void ftp_extension_recording_started(struct ftp_thread *t);
/* dlsym of PyInit_<name> / PyModExport_<name> on a freshly loaded object (got.c's dlsym entry calls it
 * through the watcher init.c sets). */
FTP_HIDDEN void ftp_extension_before_dlsym(uintptr_t handle, const char *symbol);

#endif
