/* Reading recordings that may be truncated, damaged or hostile: the header is validated, chunk counts
 * are clamped to what the file holds, and records are handed out only after their size was checked
 * against the chunk. Records are streamed chunk by chunk with pread, so memory does not grow with the
 * recording's size. */
#ifndef FTPROF_ANALYZER_READER_H
#define FTPROF_ANALYZER_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ftprof/format.h"

/* The reader's errors: rd_open and rd_walk return 0, a negative errno (the file cannot be opened or
 * read; -ENOMEM: out of memory), or one of these. The reader never exits: the commands map an error
 * to an exit code (cmd_read_exit_code in cmd/cmd.c), so that `top` can restore the terminal first. */
enum rd_error {
    RD_ERR_NOT_FTPROF = -1001, /* not a recording at all */
    RD_ERR_CORRUPT = -1002,    /* a recording, damaged beyond use */
    RD_ERR_TOO_NEW = -1003,    /* needs a newer reader */
    RD_ERR_CUT_SHORT = -1004,  /* the mapped file was cut short by someone else while it was walked */
};

#define RD_MAX_CHUNK_SIZE (256u << 20)
#define RD_MIN_CHUNK_SIZE 64u

struct rd_file {
    const char *path;
    int fd;
    uint64_t file_size;
    uint64_t dev, ino;        /* which file it is: the same one named twice is read once */
    struct ftp_file_header hdr;
    uint32_t chunks;          /* chunks to read, clamped to chunks_used and to the file */
    uint64_t last_chunk_len;  /* bytes present in the last chunk (< chunk_size when truncated) */
    bool truncated;           /* the file ends before the chunks the header announces */
    uint32_t damaged_chunks;  /* chunks cut short by an invalid record size */
    uint8_t *buf;             /* one chunk, read with pread: when the file cannot be mapped */
    const uint8_t *map;       /* the header and chunks, mapped read-only */
    size_t map_len;
};

/* A second view of an open file for a walk in another thread at the same time: the same chunks,
 * mapped again (each walk lets its own pages go behind it). Only for a mapped file; 0 or -errno.
 * The twin has no descriptor of its own: rd_close only unmaps it. */
int rd_twin(const struct rd_file *f, struct rd_file *twin);

/* Called for every record whose size fits its chunk; `rec->size` bytes are readable at `rec`.
 * Return false to stop the walk. */
typedef bool (*rd_visit_fn)(void *ctx, uint32_t chunk, const struct ftp_record *rec);

/* 0, -errno (cannot read) or RD_ERR_*; `err` receives a one-line reason. */
int rd_open(struct rd_file *f, const char *path, char *err, size_t errlen);
/* Visits the records of every used chunk in index order. 0, -errno, or RD_ERR_CUT_SHORT: then the
 * walk stopped at the lost page, in the middle of a visit, and nothing it visited can be trusted. */
int rd_walk(struct rd_file *f, rd_visit_fn visit, void *ctx);
/* rd_walk that also calls `chunk_done` once a chunk's records were all visited, before its memory may
 * go (the read buffer is reused for the next chunk, a mapping's pages are let go behind the walk): a
 * visitor that holds on to records lets go of them there, and reads them in place until then. */
typedef bool (*rd_chunk_done_fn)(void *ctx, uint32_t chunk);
int rd_walk_holding(struct rd_file *f, rd_visit_fn visit, rd_chunk_done_fn chunk_done, void *ctx);
void rd_close(struct rd_file *f);

/* Copies of the in-flight slots (FTP_REC_INFLIGHT) of threads waiting now, or when the file was last
 * written: malloc'ed into *out (free it). 0, or -errno; *n 0 for a file without the table. */
int rd_read_inflight(const char *path, const struct ftp_file_header *h, uint64_t file_size,
                     struct ftp_inflight_slot **out, size_t *n);

/* A one-line reason for an rd_walk error, or any other negative errno: static text. */
const char *rd_error_text(int err);

#endif
