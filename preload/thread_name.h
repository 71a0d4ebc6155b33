/* The threading.Thread name of a thread (thread_name.c). */
#ifndef FTPROF_THREAD_NAME_H
#define FTPROF_THREAD_NAME_H

#include "state.h"

/* The calling thread's threading.Thread name ("MainThread" for the main thread), or 0 if unknown. */
FTP_HIDDEN size_t ftp_thread_name_read(struct ftp_thread *t, char *out, size_t cap);

#endif
