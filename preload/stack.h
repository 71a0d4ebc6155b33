/* Capturing and interning stacks (stack.c). */
#ifndef FTPROF_STACK_H
#define FTPROF_STACK_H

#include "state.h"

/* Capture the calling thread's Python (and with FTPROF_NATIVE, native) stack; returns its id (0: none). */
FTP_HIDDEN uint32_t ftp_stack_capture(struct ftp_thread *t);

#endif
