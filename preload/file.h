/* The recording file (file.c): exclusive create, shared mapping, block reservation, finish. */
#ifndef FTPROF_FILE_H
#define FTPROF_FILE_H

#include "state.h"

/* Creates and maps a new recording and fills its header; ftp_state's map, hdr and chunk geometry are
 * set, recording is not started (session.c does that). `map_at(size)`: where to map it (a range an
 * earlier attach left, or NULL), or NULL. 0 or -errno. */
FTP_HIDDEN int ftp_file_open(bool forked_child, void *(*map_at)(size_t size));
/* Stamps the end, closes claims through `close_claims` (the ring's, which returns how many chunks were
 * claimed: passed in because the ring sits above the file) and trims the file to them. With
 * FTPROF_VERBOSE, prints the one summary line, `verbose_tail` (from the layers above) at its end. */
FTP_HIDDEN void ftp_file_finish(uint32_t (*close_claims)(void), const char *verbose_tail);
/* A process that records nothing (not Python) may still be the new image of one that did: mark that
 * recording as ended by exec, silently. */
FTP_HIDDEN void ftp_file_close_predecessor(void);
/* Reserve the blocks of [off, off + len) of the file before its pages are first stored to: 0 or an errno
 * value (ENOSPC and the like: the disk is full), or FTP_RESERVE_LOW_SPACE when taking them would leave
 * the file system less free space than the margin kept for the program (file.c). What a failed call
 * reserved is given back. Preserves errno. */
FTP_HIDDEN int ftp_file_reserve(size_t off, size_t len);
#define FTP_RESERVE_LOW_SPACE 0x10000 /* not an errno value */
/* The disk is full (an errno value or FTP_RESERVE_LOW_SPACE): flag the header, say so once (file name,
 * what was kept), give back the unfilled part of the chunks `take_free_list` takes off the ring's free
 * list (index + 1 of the first, linked through chunk_next; the ring's, passed in since the ring sits
 * above the file). Hook-safe. */
FTP_HIDDEN void ftp_file_disk_full(int err, uint32_t (*take_free_list)(void));

#endif
