#include "reader.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

const char *rd_error_text(int err)
{
    switch (err) {
    case RD_ERR_NOT_FTPROF: return "not an ftprof recording";
    case RD_ERR_CORRUPT: return "corrupted recording";
    case RD_ERR_TOO_NEW: return "recording needs a newer ftprof";
    case RD_ERR_CUT_SHORT: return "the file was cut short while it was being read";
    default: return strerror(-err);
    }
}

static ssize_t rd_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

static int rd_fail(int code, char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s", what);
    return code;
}

static const char *rd_not_regular(mode_t mode)
{
    if (S_ISDIR(mode))
        return "is a directory, not a recording file";
    if (S_ISFIFO(mode))
        return "is a FIFO (a named pipe), not a recording file";
    if (S_ISSOCK(mode))
        return "is a socket, not a recording file";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "is a device, not a recording file";
    return "is not a regular file";
}

/* The header read (`got` bytes of it): an ftprof recording this reader can read, with sizes that hold
 * together. 0, or an RD_ERR_* with its reason in err. */
static int rd_check_header(const struct rd_file *f, size_t got, char *err, size_t errlen)
{
    if (got < FTP_MAGIC_LEN || memcmp(f->hdr.magic, FTP_MAGIC, FTP_MAGIC_LEN) != 0)
        return rd_fail(RD_ERR_NOT_FTPROF, err, errlen, "not an ftprof recording");
    if (got < sizeof(f->hdr))
        return rd_fail(RD_ERR_CORRUPT, err, errlen, "recording truncated inside its header");
    if (f->hdr.version == 0 || f->hdr.min_reader_version == 0)
        return rd_fail(RD_ERR_CORRUPT, err, errlen, "corrupted header (format version 0)");
    if (f->hdr.min_reader_version > FTP_VERSION) {
        char msg[128];
        snprintf(msg, sizeof(msg), "recording needs ftprof format version %u, this ftprof reads version %u",
                 f->hdr.min_reader_version, FTP_VERSION);
        return rd_fail(RD_ERR_TOO_NEW, err, errlen, msg);
    }
    if (f->hdr.min_reader_version > f->hdr.version)
        return rd_fail(RD_ERR_CORRUPT, err, errlen, "corrupted header (needs a reader newer than its own version)");
    if (f->hdr.header_size < FTP_HEADER_SIZE || f->hdr.header_size > f->file_size)
        return rd_fail(RD_ERR_CORRUPT, err, errlen, "corrupted header (header size)");
    uint32_t cs = f->hdr.chunk_size;
    if (cs < RD_MIN_CHUNK_SIZE || cs > RD_MAX_CHUNK_SIZE || cs % FTP_RECORD_ALIGN != 0)
        return rd_fail(RD_ERR_CORRUPT, err, errlen, "corrupted header (chunk size)");
    return 0;
}

int rd_open(struct rd_file *f, const char *path, char *err, size_t errlen)
{
    memset(f, 0, sizeof(*f));
    f->path = path;
    f->fd = -1;
    /* Look before opening: opening a FIFO blocks until a writer comes, a device may do something. */
    struct stat st;
    if (stat(path, &st) < 0) {
        int e = errno;
        return rd_fail(-e, err, errlen, strerror(e));
    }
    if (!S_ISREG(st.st_mode))
        return rd_fail(S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL, err, errlen, rd_not_regular(st.st_mode));
    /* O_NONBLOCK as well, for a name swapped for a FIFO in between; then check what was opened. */
    f->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (f->fd < 0) {
        int e = errno;
        return rd_fail(-e, err, errlen, strerror(e));
    }
    if (fstat(f->fd, &st) < 0) {
        int e = errno;
        rd_close(f);
        return rd_fail(-e, err, errlen, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        rd_close(f);
        return rd_fail(S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL, err, errlen, rd_not_regular(st.st_mode));
    }
    f->dev = (uint64_t)st.st_dev;
    f->ino = (uint64_t)st.st_ino;
    f->file_size = (uint64_t)st.st_size;

    ssize_t n = rd_pread_full(f->fd, &f->hdr, sizeof(f->hdr), 0);
    if (n < 0) {
        rd_close(f);
        return rd_fail((int)n, err, errlen, strerror((int)-n));
    }
    int bad = rd_check_header(f, (size_t)n, err, errlen);
    if (bad) {
        rd_close(f);
        return bad;
    }

    uint32_t cs = f->hdr.chunk_size;
    uint64_t announced = f->hdr.chunks_used < f->hdr.chunk_count ? f->hdr.chunks_used : f->hdr.chunk_count;
    uint64_t body = f->file_size - f->hdr.header_size;
    uint64_t whole = body / cs, rest = body % cs;
    if (whole >= announced) {
        f->chunks = (uint32_t)announced;
        f->last_chunk_len = cs;
    } else {
        /* Keep the partly written last chunk: its complete records are still good. */
        f->truncated = true;
        f->chunks = (uint32_t)whole + (rest >= sizeof(struct ftp_record) ? 1 : 0);
        f->last_chunk_len = rest >= sizeof(struct ftp_record) ? rest : cs;
    }
    if (f->chunks > 0) {
        /* The chunks are read in place from the page cache, twice (definitions, then events), where
         * read() would copy them twice: a third of a report's time on a large file. */
        size_t span = (size_t)(f->hdr.header_size + (uint64_t)(f->chunks - 1) * cs + f->last_chunk_len);
        /* Records must stay aligned as in the recorder's chunks: a header size off the record alignment
         * (a damaged or hostile file) is read through the aligned buffer instead. */
        void *m = f->hdr.header_size % FTP_RECORD_ALIGN == 0 ? mmap(NULL, span, PROT_READ, MAP_SHARED, f->fd, 0)
                                                             : MAP_FAILED;
        if (m != MAP_FAILED) {
            (void)madvise(m, span, MADV_SEQUENTIAL);
            f->map = m;
            f->map_len = span;
            return 0;
        }
        /* A header may claim huge chunks in a small file: never allocate more than the file holds. */
        f->buf = malloc(body < cs ? (size_t)body : cs);
        if (!f->buf) {
            rd_close(f);
            return rd_fail(-ENOMEM, err, errlen, strerror(ENOMEM));
        }
    }
    return 0;
}

int rd_twin(const struct rd_file *f, struct rd_file *twin)
{
    if (!f->map)
        return -EINVAL; /* read through a buffer: nothing to share cheaply */
    *twin = *f;
    twin->buf = NULL;
    twin->map = NULL;
    twin->fd = -1;
    void *m = mmap(NULL, f->map_len, PROT_READ, MAP_SHARED, f->fd, 0);
    if (m == MAP_FAILED)
        return -errno;
    (void)madvise(m, f->map_len, MADV_SEQUENTIAL);
    twin->map = m;
    return 0;
}

/* A mapped file cut shorter while it is read (by someone else: the recorder only ever trims past the
 * chunks a reader can see) raises SIGBUS on the lost pages. Nothing read so far can be trusted to be
 * whole then: the handler jumps back to rd_walk, which returns RD_ERR_CUT_SHORT instead of a crash,
 * and the command that asked reports it (and `top` restores the terminal on its way out). */
#define RD_UNMAP_EVERY 8 /* chunks */

/* What the calling thread walks (SIGBUS is delivered to the thread that touched the page): threads may
 * walk files of their own at once (diff loads its two recordings side by side). */
static _Thread_local const uint8_t *volatile rd_walking_map;
static _Thread_local volatile size_t rd_walking_len;
static _Thread_local sigjmp_buf rd_walking_jump;
static struct sigaction rd_old_bus;
static pthread_once_t rd_bus_once = PTHREAD_ONCE_INIT;

static void rd_on_sigbus(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    const uint8_t *at = si->si_addr, *map = rd_walking_map;
    if (map && at >= map && at < map + rd_walking_len) {
        rd_walking_map = NULL;
        siglongjmp(rd_walking_jump, 1); /* back into rd_walk, the signal mask restored */
    }
    sigaction(sig, &rd_old_bus, NULL); /* not ours: the default action, on return */
}

/* Installed once and left in place: taking it down after one thread's walk would leave another's
 * unguarded. A SIGBUS outside every walk meets the action there was before. */
static void rd_install_sigbus(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = rd_on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &rd_old_bus);
}

static void rd_guard(const struct rd_file *f, bool on)
{
    if (on) {
        pthread_once(&rd_bus_once, rd_install_sigbus);
        rd_walking_len = f->map_len;
        rd_walking_map = f->map;
    } else {
        rd_walking_map = NULL;
    }
}

/* Gives back the mapped pages of [from, to), offsets in the file. Only pages wholly inside the mapping:
 * the last chunk of a cut-short file is shorter than a chunk, and advice past the mapping's end would
 * drop the pages of whatever the process mapped next to it (memory the analyzer is using, zeroed). */
static void rd_drop_pages(const struct rd_file *f, uint64_t from, uint64_t to)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    if (to > f->map_len)
        to = f->map_len;
    from -= from % page;
    if (to > from)
        (void)madvise((void *)(f->map + from), (size_t)(to - from), MADV_DONTNEED);
}

static int rd_walk_chunks(struct rd_file *f, rd_visit_fn visit, rd_chunk_done_fn chunk_done, void *ctx)
{
    uint32_t cs = f->hdr.chunk_size;
    f->damaged_chunks = 0;
    for (uint32_t c = 0; c < f->chunks; c++) {
        size_t want = (c + 1 == f->chunks) ? (size_t)f->last_chunk_len : cs;
        uint64_t at = f->hdr.header_size + (uint64_t)c * cs;
        const uint8_t *chunk = f->map ? f->map + at : f->buf;
        size_t len = want;
        if (!f->map) {
            ssize_t n = rd_pread_full(f->fd, f->buf, want, at);
            if (n < 0)
                return (int)n;
            len = (size_t)n;
        }
        size_t off = 0;
        while (off + sizeof(struct ftp_record) <= len) {
            const struct ftp_record *rec = (const struct ftp_record *)(chunk + off);
            uint32_t size = rec->size;
            if (size == 0)
                break; /* nothing published past here */
            if (size % FTP_RECORD_ALIGN != 0 || size < sizeof(struct ftp_record) || size > len - off) {
                /* A record cut by truncation is expected in the last chunk; elsewhere it is damage. */
                if (!(f->truncated && c + 1 == f->chunks))
                    f->damaged_chunks++;
                break;
            }
            if (!visit(ctx, c, rec))
                return 0;
            off += size;
        }
        if (chunk_done && !chunk_done(ctx, c))
            return 0;
        /* The pages stay in the page cache, but leave this process: its memory grows with the stacks
         * and locks it found, not with the size of the file. */
        if (f->map && (c + 1) % RD_UNMAP_EVERY == 0)
            rd_drop_pages(f, at + cs - (uint64_t)RD_UNMAP_EVERY * cs, at + want);
    }
    return 0;
}

int rd_walk(struct rd_file *f, rd_visit_fn visit, void *ctx)
{
    return rd_walk_holding(f, visit, NULL, ctx);
}

int rd_walk_holding(struct rd_file *f, rd_visit_fn visit, rd_chunk_done_fn chunk_done, void *ctx)
{
    if (!f->map)
        return rd_walk_chunks(f, visit, chunk_done, ctx);
    if (sigsetjmp(rd_walking_jump, 1) != 0)
        return RD_ERR_CUT_SHORT; /* the handler took the guard down */
    rd_guard(f, true);
    int rc = rd_walk_chunks(f, visit, chunk_done, ctx);
    rd_guard(f, false);
    return rc;
}

void rd_close(struct rd_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    free(f->buf);
    f->buf = NULL;
    if (f->map)
        munmap((void *)f->map, f->map_len);
    f->map = NULL;
}

/* One consistent copy of a slot, or false (free, not waiting, or still torn after a few tries). */
static bool rd_read_slot(const struct ftp_inflight_slot *s, struct ftp_inflight_slot *out)
{
    for (int tries = 0; tries < 100; tries++) {
        uint32_t s1 = atomic_load_explicit((const _Atomic uint32_t *)&s->seq, memory_order_acquire);
        if (s1 & 1)
            continue;
        memcpy(out, (const void *)s, sizeof(*out));
        atomic_thread_fence(memory_order_acquire);
        uint32_t s2 = atomic_load_explicit((const _Atomic uint32_t *)&s->seq, memory_order_relaxed);
        if (s1 == s2)
            return out->tid != 0 && out->start_ns != 0;
    }
    return false;
}

/* ---- the table of waits in flight (format 4): read under each slot's seqlock ---- */

int rd_read_inflight(const char *path, const struct ftp_file_header *h, uint64_t file_size,
                              struct ftp_inflight_slot **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (h->version < 4 || !h->inflight_chunk || h->inflight_chunk > h->chunk_count)
        return 0;
    uint64_t off = h->header_size + (uint64_t)(h->inflight_chunk - 1) * h->chunk_size;
    long page = sysconf(_SC_PAGESIZE);
    if (off % (uint64_t)page || off + h->chunk_size > file_size)
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return -errno;
    void *m = mmap(NULL, h->chunk_size, PROT_READ, MAP_SHARED, fd, (off_t)off);
    close(fd);
    if (m == MAP_FAILED)
        return -errno;
    const struct ftp_rec_inflight *r = m;
    int rc = 0;
    if (r->h.type == FTP_REC_INFLIGHT && r->h.size == h->chunk_size && r->slot_size == sizeof(struct ftp_inflight_slot) &&
        (uint64_t)r->slot_count * r->slot_size + sizeof(*r) <= h->chunk_size) {
        const struct ftp_inflight_slot *slots = (const void *)(r + 1);
        struct ftp_inflight_slot *v = calloc(r->slot_count ? r->slot_count : 1, sizeof(*v));
        if (!v) {
            rc = -ENOMEM;
        } else {
            for (uint32_t i = 0; i < r->slot_count; i++)
                if (rd_read_slot(&slots[i], &v[*n]))
                    (*n)++;
            *out = v;
        }
    }
    munmap(m, h->chunk_size);
    return rc;
}
