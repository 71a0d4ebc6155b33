/* Per-thread chunks of the shared file mapping (ring.c), and ring mode's overwriting of the oldest. */
#ifndef FTPROF_RING_H
#define FTPROF_RING_H

#include "state.h"

/* ---- ring (ring.c): per-thread chunks of the shared file mapping ---- */
/* Space for a record of `size` bytes (multiple of 8) in the thread's chunk, or NULL when the buffer is
 * full. Callers count lost WAIT records with ftp_ring_count_drop: the header's dropped_events and
 * dropped_wait_ns (their summed wait). */
FTP_HIDDEN void *ftp_ring_reserve(struct ftp_thread *t, uint32_t size);
/* Publish a reserved record: the size is stored last, with release ordering. */
FTP_HIDDEN void ftp_ring_commit(struct ftp_thread *t, void *rec, uint16_t type, uint16_t flags, uint32_t size);
FTP_HIDDEN void ftp_ring_count_drop(uint64_t wait_ns);
FTP_HIDDEN void ftp_ring_release_chunk(struct ftp_thread *t);
/* The free list's chunks, taken off it for good (a full disk: their unfilled pages are given back);
 * index + 1 of the first, linked through chunk_next; 0: none. */
FTP_HIDDEN uint32_t ftp_ring_detach_free_list(void);
/* No more chunks may be claimed; returns how many were. */
FTP_HIDDEN uint32_t ftp_ring_close(void);
/* Ring mode (FTPROF_MODE=ring): the chunk table for a new file's chunks (the mode falls back to normal,
 * in ftp_state and the header, when it cannot be allocated). */
FTP_HIDDEN void ftp_ring_file_opened(struct ftp_file_header *h);
/* Ring mode: is the definition written in chunk `index` at generation `gen` still there? */
FTP_HIDDEN bool ftp_ring_defined(uint64_t where);
/* (chunk index + 1) << 32 | generation of the calling thread's chunk (0: none), for the intern tables. */
FTP_HIDDEN uint64_t ftp_ring_where(void);
/* What a thread's THREAD record names it (its threading.Thread name, thread_name.c): set by the
 * orchestrator, since the interpreter reader sits above the ring and writes its own records through it. */
typedef size_t (*ftp_ring_namer)(struct ftp_thread *t, char *out, size_t cap);
FTP_HIDDEN void ftp_ring_name_threads_with(ftp_ring_namer namer);

#endif
