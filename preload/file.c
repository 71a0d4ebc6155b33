/* The recording file: created exclusively, sized once, mapped MAP_SHARED so that the kernel writes it
 * back whatever happens to the process (kill -9 included), and finished at exit.
 *
 * The descriptor is closed as soon as the file is mapped. The program owns every descriptor number:
 * daemons and process spawners close all of them (os.closerange(3, ...)) and their next open() gets
 * the number back, so a descriptor kept for later would make a chunk reservation fallocate, and the
 * exit trim ftruncate, the program's own file. Later work on the file goes through the mapping
 * (madvise(MADV_POPULATE_WRITE) reserves a chunk's blocks, Linux 5.14+) or through a descriptor opened
 * for that one call by name, O_NOFOLLOW, and used only if it is still the file we created (device and
 * inode). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "file.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* ---- the program's disk space ----
 * A full disk must be the program's to fill, not the recorder's: a chunk is reserved only if the file
 * system keeps at least a margin free afterwards, for the program's own next writes. The margin is
 * 8 MiB or 2% of the file system, whichever is more, but never more than half of it: on a file system
 * under 16 MiB the recorder uses at most half of what is free (a 200 KiB tmpfs keeps 100 KiB free). */
#define FTP_MARGIN_MIN ((uint64_t)8 << 20)
#define FTP_MARGIN_PERCENT 2
/* Chunks are at most this share of the space the recorder may use when the file is created, and at
 * least FTP_CHUNK_MIN: on a small file system, threads hold small chunks and leave less of it unfilled. */
#define FTP_CHUNK_SHARE 8
#define FTP_CHUNK_MIN ((uint32_t)16 << 10)

static uint64_t margin_of(const struct statfs *fs)
{
    uint64_t bsize = (uint64_t)(fs->f_frsize ? fs->f_frsize : fs->f_bsize);
    uint64_t total = (uint64_t)fs->f_blocks * bsize;
    uint64_t margin = total / 100 * FTP_MARGIN_PERCENT;
    if (margin < FTP_MARGIN_MIN)
        margin = FTP_MARGIN_MIN;
    return margin > total / 2 ? total / 2 : margin;
}

/* Bytes the recorder may still take on this file system; UINT64_MAX when that cannot be read (the
 * reservation itself then finds out), as on file systems that report no size at all. */
static uint64_t space_to_spare(const struct statfs *fs)
{
    if (fs->f_blocks == 0)
        return UINT64_MAX;
    uint64_t avail = (uint64_t)fs->f_bavail * (uint64_t)(fs->f_frsize ? fs->f_frsize : fs->f_bsize);
    uint64_t margin = margin_of(fs);
    return avail > margin ? avail - margin : 0;
}

/* statfs(2), not statvfs(3): glibc's statvfs may read /proc/mounts through stdio for the mount flags. */
static uint64_t spare_at(const char *path)
{
    struct statfs fs;
    return statfs(path, &fs) == 0 ? space_to_spare(&fs) : UINT64_MAX;
}

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif

/* How many images of one process (exec into itself) get a recording of their own. */
#define FTP_MAX_EXEC_NAMES 64

/* ---- which process wrote a file: kept across exec, unique on one machine ---- */
struct ftp_identity {
    bool read;            /* read only when needed: most processes never look at an existing file */
    uint64_t start_ticks; /* 0: unknown (no /proc), never matched */
    uint64_t pid_ns;
    uint8_t boot_id[16];
};

static size_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0)
        n = 0;
    buf[n] = 0;
    return (size_t)n;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void read_identity(struct ftp_identity *id)
{
    if (id->read)
        return;
    memset(id, 0, sizeof *id);
    id->read = true;
    char buf[1024];
    /* Field 22 (starttime) of /proc/self/stat; the command name in field 2 may hold spaces and ')'. */
    if (read_small("/proc/self/stat", buf, sizeof buf)) {
        char *p = strrchr(buf, ')');
        for (int field = 2; p && field < 22; field++)
            p = strchr(p + 1, ' ');
        if (p)
            id->start_ticks = strtoull(p + 1, NULL, 10);
    }
    struct stat st;
    if (stat("/proc/self/ns/pid", &st) == 0)
        id->pid_ns = (uint64_t)st.st_ino;
    if (read_small("/proc/sys/kernel/random/boot_id", buf, sizeof buf)) {
        int n = 0;
        for (const char *p = buf; *p && n < 32; p++)
            if (hexval(*p) >= 0) {
                id->boot_id[n / 2] = (uint8_t)(id->boot_id[n / 2] << 4 | hexval(*p));
                n++;
            }
    }
}

static bool same_process(const struct ftp_file_header *h, const struct ftp_identity *id)
{
    return id->start_ticks && h->pid == ftp_state.pid && h->proc_start_ticks == id->start_ticks &&
           h->pid_ns == id->pid_ns && memcmp(h->boot_id, id->boot_id, sizeof id->boot_id) == 0;
}

/* ---- names ---- */

/* Expand %p (pid) and %% in the pattern. Each %p of the last path component also gets `suffix` (the
 * name of a later image of the same process: ".exec1"). snprintf is safe here: this runs at start-up
 * or in a forked child, never inside a hook. */
static int expand_pattern(char *out, size_t size, const char *pattern, uint32_t pid, const char *suffix,
                          bool *had_pid)
{
    size_t n = 0;
    const char *last = strrchr(pattern, '/');
    last = last ? last + 1 : pattern;
    *had_pid = false;
    for (const char *p = pattern; *p; p++) {
        char piece[48];
        const char *s = piece;
        if (p[0] == '%' && p[1] == 'p') {
            snprintf(piece, sizeof piece, "%u%s", pid, p >= last ? suffix : "");
            *had_pid |= p >= last;
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            piece[0] = '%', piece[1] = 0;
            p++;
        } else {
            piece[0] = *p, piece[1] = 0;
        }
        size_t len = strlen(s);
        if (n + len + 1 > size)
            return -ENAMETOOLONG;
        memcpy(out + n, s, len);
        n += len;
    }
    out[n] = 0;
    return 0;
}

/* The name of the attempt-th candidate. With %p in the file name: PID, PID.exec1, PID.exec2, ...;
 * without: NAME, NAME.PID, NAME.PID.exec1, ... (several processes sharing one FTPROF_OUTPUT). */
static int candidate_name(char *out, size_t size, int attempt, bool *had_pid)
{
    char suffix[24] = "";
    int rc = expand_pattern(out, size, ftp_state.output_pattern, ftp_state.pid, "", had_pid);
    if (rc != 0 || attempt == 0)
        return rc;
    if (*had_pid) {
        snprintf(suffix, sizeof suffix, ".exec%d", attempt);
        return expand_pattern(out, size, ftp_state.output_pattern, ftp_state.pid, suffix, had_pid);
    }
    size_t len = strlen(out);
    int n = attempt == 1 ? snprintf(out + len, size - len, ".%u", ftp_state.pid)
                         : snprintf(out + len, size - len, ".%u.exec%d", ftp_state.pid, attempt - 1);
    return n > 0 && (size_t)n < size - len ? 0 : -ENAMETOOLONG;
}

/* Opens `path` only if it is a regular file that is not a link; with `want` set, only if it is that
 * very file (device and inode). The caller closes it. */
static int open_checked(const char *path, int flags, const struct stat *want, struct stat *st)
{
    int fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return -1;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode) ||
        (want && (st->st_dev != want->st_dev || st->st_ino != want->st_ino))) {
        close(fd);
        errno = ESTALE;
        return -1;
    }
    return fd;
}

/* An existing file at our name that our own process wrote before it exec'd (same pid, same start,
 * same pid namespace and boot): mark it ended by exec, give back its unused tail, and tell the caller
 * to move on to the next name. Anything else at the name is not ours. */
static bool own_earlier_image(const char *path, const struct stat *lst, struct ftp_identity *id)
{
    struct stat st;
    struct ftp_file_header h;
    if (!S_ISREG(lst->st_mode) || lst->st_uid != geteuid() || lst->st_size < FTP_HEADER_SIZE)
        return false;
    read_identity(id);
    if (!id->start_ticks)
        return false;
    int fd = open_checked(path, O_RDONLY, lst, &st);
    if (fd < 0)
        return false;
    bool ours = pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h && memcmp(h.magic, FTP_MAGIC, FTP_MAGIC_LEN) == 0 &&
                h.version >= 2 && same_process(&h, id);
    close(fd);
    if (!ours || (h.flags & FTP_FLAG_ENDED_BY_EXEC))
        return ours;
    fd = open_checked(path, O_RDWR, lst, &st);
    if (fd < 0)
        return true; /* ours, but it cannot be finished: leave it, take the next name */
    /* Every thread of the earlier image is gone (exec ends them all), so nothing writes it any more. */
    uint32_t flags = h.flags | FTP_FLAG_ENDED_BY_EXEC;
    uint64_t end = ftp_now();
    ssize_t rc = pwrite(fd, &end, sizeof end, offsetof(struct ftp_file_header, end_ns));
    rc = pwrite(fd, &flags, sizeof flags, offsetof(struct ftp_file_header, flags));
    (void)rc;
    if (h.header_size == FTP_HEADER_SIZE && h.chunk_size && h.chunks_used <= h.chunk_count) {
        off_t used = (off_t)FTP_HEADER_SIZE + (off_t)h.chunks_used * h.chunk_size;
        if (used < st.st_size && ftruncate(fd, used) != 0) {
            /* it stays at its mapped size: still readable */
        }
    }
    close(fd);
    return true;
}

enum name_refusal { NAME_OK, NAME_EXISTS, NAME_LINK, NAME_DIR, NAME_DEVICE, NAME_FIFO, NAME_SOCKET, NAME_LONG, NAME_ERRNO };

/* Moves *attempt to the first candidate name that does not exist, finishing our own earlier images on
 * the way; NAME_OK with the name in `path`, or why there is none. */
static enum name_refusal choose_name(char *path, size_t size, int *attempt, struct ftp_identity *id, int *err)
{
    for (; *attempt < FTP_MAX_EXEC_NAMES; ++*attempt) {
        bool had_pid;
        if (candidate_name(path, size, *attempt, &had_pid) != 0)
            return NAME_LONG;
        struct stat st;
        if (lstat(path, &st) != 0) {
            if (errno == ENOENT)
                return NAME_OK;
            *err = errno;
            return NAME_ERRNO;
        }
        if (S_ISLNK(st.st_mode))
            return NAME_LINK;
        if (S_ISDIR(st.st_mode))
            return NAME_DIR;
        if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
            return NAME_DEVICE;
        if (S_ISFIFO(st.st_mode))
            return NAME_FIFO;
        if (S_ISSOCK(st.st_mode))
            return NAME_SOCKET;
        if (own_earlier_image(path, &st, id))
            continue;
        if (!(*attempt == 0 && !had_pid))
            return NAME_EXISTS;
    }
    return NAME_EXISTS;
}

static void warn_refusal(const char *path, enum name_refusal why, int err)
{
    static const char *const reasons[] = {
        [NAME_EXISTS] = "it exists (never overwritten)",
        [NAME_LINK] = "it is a symbolic link",
        [NAME_DIR] = "it is a directory",
        [NAME_DEVICE] = "it is a device, not a regular file",
        [NAME_FIFO] = "it is a FIFO, not a regular file",
        [NAME_SOCKET] = "it is a socket, not a regular file",
    };
    char msg[1400];
    const char *value = getenv("FTPROF_OUTPUT");
    const char *reason = why == NAME_ERRNO ? strerror(err) : reasons[why];
    if (why == NAME_LONG)
        snprintf(msg, sizeof msg, "the recording: FTPROF_OUTPUT is too long");
    else if (why >= NAME_DIR && why <= NAME_SOCKET && value)
        snprintf(msg, sizeof msg, "%s: %s (FTPROF_OUTPUT=%.200s)", path, reason, value);
    else
        snprintf(msg, sizeof msg, "%s: %s", path, reason);
    ftp_warn("cannot create ", msg, "; running unprofiled");
}

static void warn_create(const char *path, int err)
{
    warn_refusal(path, err == ELOOP ? NAME_LINK : err == EEXIST ? NAME_EXISTS : NAME_ERRNO, err);
}

static int create_exclusive(const char *path)
{
    /* O_NOFOLLOW refuses a planted symlink at the final component; O_EXCL refuses any existing file. */
    return open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
}

/* An unnamed file in the output's directory (O_TMPFILE): it gets its name only once its header is
 * written (publish_file), so a process killed while starting up — a pool tearing down a fresh worker —
 * leaves no file rather than a headerless one. -1 with errno EOPNOTSUPP/EISDIR where unsupported. */
static int create_unnamed(const char *path)
{
    char dir[1100];
    const char *slash = strrchr(path, '/');
    size_t len = slash ? (size_t)(slash - path) : 0;
    if (len == 0)
        strcpy(dir, slash ? "/" : ".");
    else {
        memcpy(dir, path, len);
        dir[len] = 0;
    }
    return open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
}

/* Give the unnamed file its name. linkat never replaces an existing name (a planted symlink included). */
static int publish_file(int fd, const char *path)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0 ? 0 : -errno;
}

static bool env_set(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

/* The name chosen and the file created: unnamed (O_TMPFILE, published once its header is written) where
 * the file system can, else under its name at once (*named). A descriptor, or -errno (warned). */
static int create_file(char *path, size_t cap, int *attempt, struct ftp_identity *id, bool *named)
{
    int err = 0;
    enum name_refusal why = choose_name(path, cap, attempt, id, &err);
    if (why != NAME_OK) {
        warn_refusal(path, why, err);
        return -EEXIST;
    }
    *named = false;
    int fd = create_unnamed(path);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        /* No O_TMPFILE on this file system: create the name at once. */
        for (int tries = 0; (fd = create_exclusive(path)) < 0 && errno == EEXIST && tries < 8; tries++)
            if ((why = choose_name(path, cap, attempt, id, &err)) != NAME_OK) {
                warn_refusal(path, why, err);
                return -EEXIST;
            }
        *named = fd >= 0;
    }
    if (fd < 0) {
        int e = errno;
        warn_create(path, e);
        return -e;
    }
    return fd;
}

/* Chunk size and count for FTPROF_BUFFER: at least 4 chunks, and smaller chunks on a small file system. */
static void choose_geometry(int fd, uint32_t *chunk_out, uint32_t *count_out)
{
    size_t total = ftp_buffer_bytes();
    uint32_t chunk = 64u << 10;
    while (chunk > 4096 && (total - FTP_HEADER_SIZE) / chunk < 4)
        chunk >>= 1;
    struct statfs fs;
    if (fstatfs(fd, &fs) == 0)
        while (chunk > FTP_CHUNK_MIN && chunk > space_to_spare(&fs) / FTP_CHUNK_SHARE)
            chunk >>= 1;
    uint32_t count = (uint32_t)((total - FTP_HEADER_SIZE) / chunk);
    if (count == 0)
        count = 1;
    *chunk_out = chunk;
    *count_out = count;
}

/* The header of a new recording: format, geometry, the process and its arguments, the interpreter. */
static void fill_header(struct ftp_file_header *h, uint32_t chunk, uint32_t count, struct ftp_identity *id,
                        bool forked_child)
{
    memcpy(h->magic, FTP_MAGIC, FTP_MAGIC_LEN);
    h->version = FTP_VERSION;
    h->min_reader_version = FTP_MIN_READER_VERSION;
    h->header_size = FTP_HEADER_SIZE;
    h->features = ftp_state.native ? FTP_FEATURE_NATIVE_STACKS : 0;
    h->chunk_size = chunk;
    h->chunk_count = count;
    h->pid = ftp_state.pid;
    h->ppid = (uint32_t)getppid();
    read_identity(id);
    h->proc_start_ticks = id->start_ticks;
    h->pid_ns = id->pid_ns;
    memcpy(h->boot_id, id->boot_id, sizeof h->boot_id);
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    h->start_realtime_ns = (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec;
    h->start_ns = ftp_now();
    const char *argv;
    uint32_t argv_len, argc;
    ftp_argv(&argv, &argv_len, &argc);
    memcpy(h->argv, argv, argv_len);
    h->argv_len = argv_len;
    h->argc = argc;
    uint32_t flags = ftp_state.py.present ? FTP_FLAG_PYTHON : 0;
    if (ftp_state.py.present && ftp_state.py.layout_unknown) {
        /* which interpreter it was: ftp_python_describe, which says so for known ones, never runs */
        flags |= FTP_FLAG_LAYOUT_UNKNOWN | (ftp_state.py.free_threaded ? FTP_FLAG_FREE_THREADED : 0);
        h->python_version = ftp_state.py.version;
    }
    if (forked_child)
        flags |= FTP_FLAG_FORKED_CHILD;
    atomic_store((_Atomic uint32_t *)&h->flags, flags);
}

/* Free-list links and fill levels of released chunks: private memory, not part of the file (kept from
 * an earlier recording of this process when large enough). False (warned) when it cannot be had. */
static bool chunk_links(uint32_t count)
{
    if (!ftp_state.chunk_next || count > ftp_state.chunk_count) {
        void *links = mmap(NULL, (size_t)count * 2 * sizeof(uint32_t), PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (links == MAP_FAILED) {
            ftp_warn("cannot allocate the chunk table; running unprofiled", NULL, NULL);
            return false;
        }
        ftp_state.chunk_next = links;
        ftp_state.chunk_fill = (uint32_t *)links + count;
    }
    return true;
}

int ftp_file_open(bool forked_child, void *(*map_at)(size_t size))
{
    char path[1100];
    struct ftp_identity id = {0};
    int attempt = 0, err = 0;
    enum name_refusal why;
    bool named;
    int fd = create_file(path, sizeof path, &attempt, &id, &named);
    if (fd < 0)
        return fd;
    uint32_t chunk, count;
    choose_geometry(fd, &chunk, &count);
    size_t map_size = FTP_HEADER_SIZE + (size_t)count * chunk;
    void *map = MAP_FAILED;
    const char *fail = NULL;
    int fail_err = 0;
    if (!chunk_links(count)) {
        fail_err = ENOMEM;
        goto out_close;
    }
    if (ftruncate(fd, (off_t)map_size) != 0) {
        fail_err = errno;
        fail = fail_err == ENOSPC ? ": the disk is full (no space left on device); running unprofiled"
                                  : ": cannot size it; running unprofiled";
        goto out_close;
    }
    /* ftprof attach: a previous attach's range, anonymous since its detach, is reused (attach.c). */
    void *at = map_at ? map_at(map_size) : NULL;
    map = mmap(at, map_size, PROT_READ | PROT_WRITE, MAP_SHARED | (at ? MAP_FIXED : 0), fd, 0);
    if (map == MAP_FAILED) {
        fail_err = errno;
        fail = ": cannot map it; running unprofiled";
        goto out_close;
    }
    /* Reserve the header's blocks now; chunks reserve theirs when claimed (see ring.c), so a full
     * disk costs events, never a SIGBUS in the host. */
    if ((fail_err = posix_fallocate(fd, 0, FTP_HEADER_SIZE)) == ENOSPC || fail_err == EDQUOT) {
        fail = ": the disk is full (no space left on device); running unprofiled";
        goto out_close;
    }
    fail_err = 0;
    /* Chunks are reserved through the mapping where the kernel can (5.14+); else by name (ring.c).
     * FTPROF_TEST_NO_POPULATE=1 takes the second way on any kernel, for the tests. */
    ftp_state.populate = madvise(map, FTP_HEADER_SIZE, MADV_POPULATE_WRITE) == 0 && !env_set("FTPROF_TEST_NO_POPULATE");

    struct ftp_file_header *h = map;
    fill_header(h, chunk, count, &id, forked_child);
    ftp_notes_copy_early(h); /* before ftp_state.hdr is set: later notes go straight to the header */
    if (!named) {
        int rc = publish_file(fd, path);
        for (int tries = 0; rc == -EEXIST && tries < 8; tries++) {
            /* Someone took the name meanwhile: the next one. */
            if ((why = choose_name(path, sizeof path, &attempt, &id, &err)) != NAME_OK) {
                warn_refusal(path, why, err);
                munmap(map, map_size);
                close(fd);
                return -EEXIST;
            }
            rc = publish_file(fd, path);
        }
        if (rc != 0) {
            warn_create(path, -rc);
            munmap(map, map_size);
            close(fd);
            return rc;
        }
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        fail_err = errno;
        fail = ": cannot read back what it is; running unprofiled";
        goto out_close;
    }
    close(fd); /* from here on the recorder holds no descriptor: the numbers are the program's */

    ftp_state.file_dev = (uint64_t)st.st_dev;
    ftp_state.file_ino = (uint64_t)st.st_ino;
    snprintf(ftp_state.path, sizeof ftp_state.path, "%s", path);
    atomic_store(&ftp_state.disk_full, 0);
    ftp_state.map = map;
    ftp_state.map_size = map_size;
    ftp_state.hdr = h;
    ftp_state.chunk_size = chunk;
    ftp_state.chunk_count = count;
    return 0;

out_close:
    if (fail)
        ftp_warn("cannot create ", path, fail);
    if (map != MAP_FAILED)
        munmap(map, map_size);
    close(fd);
    if (named)
        unlink(path);
    return -(fail_err ? fail_err : EIO);
}

void ftp_file_close_predecessor(void)
{
    char path[1100];
    struct ftp_identity id = {0};
    int attempt = 0, err;
    choose_name(path, sizeof path, &attempt, &id, &err);
}

/* The recording, opened again for one call, if it is still the file we created. */
static int open_own_file(void)
{
    struct stat want = {.st_dev = (dev_t)ftp_state.file_dev, .st_ino = (ino_t)ftp_state.file_ino}, st;
    if (!ftp_state.path[0])
        return -1;
    return open_checked(ftp_state.path, O_RDWR, &want, &st);
}

/* Deallocates [off, off + len) of the file (rounded inward to whole pages): only for pages no thread
 * can store to any more, since a store into a punched page of the shared mapping allocates it again,
 * or raises SIGBUS on a full disk. */
static void give_back(int fd, size_t off, size_t len)
{
    size_t page = 4096, from = (off + page - 1) & ~(page - 1), to = (off + len) & ~(page - 1);
    if (to > from && fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)from, (off_t)(to - from)) != 0) {
        /* the file system cannot punch holes: the blocks stay the recording's until the exit trim */
    }
}

int ftp_file_reserve(size_t off, size_t len)
{
    int saved = errno, rc;
    if (spare_at(ftp_state.path) < len) {
        errno = saved;
        return FTP_RESERVE_LOW_SPACE;
    }
    int fd = -1;
    if (ftp_state.populate) {
        rc = EINTR;
        for (int i = 0; i < 8 && (rc == EINTR || rc == EAGAIN); i++)
            rc = madvise(ftp_state.map + off, len, MADV_POPULATE_WRITE) == 0 ? 0 : errno;
        /* EFAULT: a store there would raise SIGBUS, i.e. the file system has no block for it. */
        if (rc == EFAULT)
            rc = ENOSPC;
        if (rc != 0)
            fd = open_own_file();
    } else {
        /* Kernels before 5.14: fallocate through a descriptor of our own, opened for this call. */
        fd = open_own_file();
        rc = fd < 0 ? ESTALE : posix_fallocate(fd, (off_t)off, (off_t)len);
    }
    /* What a failed reservation did allocate (the pages populated before the disk filled): the range is
     * the caller's alone until it hands the chunk index back, so no thread stores there. */
    if (rc != 0 && fd >= 0)
        give_back(fd, off, len);
    if (fd >= 0)
        close(fd);
    errno = saved;
    return rc;
}

/* A full disk: chunks handed back by exited threads will not be adopted any more (they are taken off
 * the free list, so no thread can store to them); the pages past what each holds are given back. */
static void give_back_free_chunks(uint32_t (*take_free_list)(void))
{
    uint32_t top = take_free_list();
    if (!top)
        return;
    int fd = open_own_file();
    if (fd < 0)
        return;
    for (uint32_t n = 0; top && n < ftp_state.chunk_count; top = ftp_state.chunk_next[top - 1], n++) {
        size_t off = FTP_HEADER_SIZE + (size_t)(top - 1) * ftp_state.chunk_size;
        uint32_t fill = ftp_state.chunk_fill[top - 1];
        give_back(fd, off + fill, ftp_state.chunk_size - fill);
    }
    close(fd);
}

/* Decimal digits of v into buf (no stdio in hooks); returns buf. */
static char *fmt_u64(char *buf, size_t cap, uint64_t v)
{
    char *p = buf + cap - 1;
    *p = 0;
    do
        *--p = (char)('0' + v % 10);
    while ((v /= 10) && p > buf);
    return p;
}

void ftp_file_disk_full(int err, uint32_t (*take_free_list)(void))
{
    if (atomic_exchange(&ftp_state.disk_full, 1))
        return;
    struct ftp_file_header *h = ftp_state.hdr;
    if (!h)
        return;
    int saved = errno; /* a hook's caller may look at errno after the call we wrap */
    atomic_fetch_or((_Atomic uint32_t *)&h->flags, FTP_FLAG_DISK_FULL);
    give_back_free_chunks(take_free_list);
    uint64_t kept = FTP_HEADER_SIZE + (uint64_t)atomic_load((_Atomic uint32_t *)&h->chunks_used) * ftp_state.chunk_size;
    char num[24], msg[200];
    const char *reason = err == EDQUOT ? ": the disk quota is exceeded, the disk is full for this recording"
                         : err == ENOSPC ? ": the disk is full (no space left on device)"
                         : err == FTP_RESERVE_LOW_SPACE
                             ? ": the disk is full for this recording (the rest of its free space is left to the program)"
                             : ": the disk is full (its blocks cannot be reserved)";
    size_t n = 0;
    const char *parts[] = {reason, "; the recording stops growing at ", fmt_u64(num, sizeof num, (kept + 1023) / 1024),
                           " KiB, later waits are counted, not stored"};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        size_t len = strlen(parts[i]);
        if (n + len >= sizeof msg)
            break;
        memcpy(msg + n, parts[i], len);
        n += len;
    }
    msg[n] = 0;
    ftp_warn(ftp_state.path, msg, NULL);
    errno = saved;
}

void ftp_file_finish(uint32_t (*close_claims)(void), const char *verbose_tail)
{
    struct ftp_file_header *h = ftp_state.hdr;
    if (!h)
        return;
    h->end_ns = ftp_now();
    /* Give back the unused tail of the file. Threads still running (daemons) keep the chunks they
     * hold, which all lie below the cut; they cannot claim new ones once claims are closed. */
    uint32_t used = close_claims();
    int fd = open_own_file();
    if (fd >= 0) {
        if (ftruncate(fd, (off_t)(FTP_HEADER_SIZE + (size_t)used * ftp_state.chunk_size)) != 0) {
            /* it keeps its mapped size, which readers handle */
        }
        close(fd);
    }
    atomic_fetch_or((_Atomic uint32_t *)&h->flags, FTP_FLAG_FINISHED);
    if (ftp_state.verbose) {
        char msg[400], lost[64] = "";
        if (atomic_load(&ftp_state.disk_full))
            snprintf(lost, sizeof lost, ", %llu lost to a full disk",
                     (unsigned long long)atomic_load((_Atomic uint64_t *)&h->disk_full_events));
        snprintf(msg, sizeof msg, "%llu waits recorded, %llu dropped%s, %u of %u chunks used%s",
                 (unsigned long long)atomic_load(&ftp_state.events),
                 (unsigned long long)atomic_load((_Atomic uint64_t *)&h->dropped_events), lost,
                 atomic_load((_Atomic uint32_t *)&h->chunks_used), h->chunk_count, verbose_tail ? verbose_tail : "");
        ftp_warn(msg, NULL, NULL);
    }
}
