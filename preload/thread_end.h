/* A thread's end (thread_end.c): its THREAD_END record, its in-flight slot and chunk handed back. */
#ifndef FTPROF_THREAD_END_H
#define FTPROF_THREAD_END_H

#include "state.h"

/* The thread-exit key's destructor (ftp_thread_setup_key). */
FTP_HIDDEN void ftp_thread_end_at_exit(void *value);
/* At exit, for the thread running exit(): its THREAD_END record and the process's CPU time into the
 * header (the TLS destructor, which writes other threads' records, does not run for it). */
FTP_HIDDEN void ftp_thread_end_process(void);

#endif
