/* A recording session (session.c): what opening, finishing and forgetting a recording takes across the
 * parts below, written once for the two orchestrators above it (init.c: preload and fork; attach.c). */
#ifndef FTPROF_SESSION_H
#define FTPROF_SESSION_H

#include "state.h"

/* Opens a new recording file (ftp_file_open's arguments) and starts recording into it: the header's
 * interpreter facts, control and ring-mode state, the in-flight table, the module map. 0 or -errno. */
FTP_HIDDEN int ftp_session_open(bool forked_child, void *(*map_at)(size_t size));
/* Ends the recording: the file's end stamped, claims closed, the file trimmed. */
FTP_HIDDEN void ftp_session_finish(void);
/* A new session's clean slate: the generation moves on (threads of the previous one are stale), every
 * id, waiter and chunk it had is forgotten, and whether the GIL was already reported is read afresh. */
FTP_HIDDEN void ftp_session_forget(void);
/* A forked child's first step (it has one thread): the parent's mapping is shared with the parent, and
 * writing one more byte into it would corrupt the parent's recording: stop recording and drop it. */
FTP_HIDDEN void ftp_session_leave_parent(void);

#endif
