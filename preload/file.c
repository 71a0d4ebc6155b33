/* The recording file: created exclusively, sized once, mapped MAP_SHARED so that the kernel writes it
 * back whatever happens to the process (kill -9 included), and finished at exit. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "recorder.h"

FTP_HIDDEN size_t ftp_buffer_bytes(void);
FTP_HIDDEN void ftp_argv(const char **argv, uint32_t *len, uint32_t *argc);

/* Expand %p (pid) and %% in the pattern. snprintf is safe here: this runs at start-up or in a forked
 * child, never inside a hook. */
static int expand_pattern(char *out, size_t size, const char *pattern, uint32_t pid, bool *had_pid)
{
    size_t n = 0;
    *had_pid = false;
    for (const char *p = pattern; *p; p++) {
        char piece[24];
        const char *s = piece;
        if (p[0] == '%' && p[1] == 'p') {
            snprintf(piece, sizeof piece, "%u", pid);
            *had_pid = true;
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

static void warn_create(const char *path, int err)
{
    char msg[96];
    snprintf(msg, sizeof msg, ": %s; running unprofiled",
             err == ELOOP ? "it is a symbolic link" : err == EEXIST ? "it exists (never overwritten)" : strerror(err));
    ftp_warn("cannot create ", path, msg);
}

static bool is_symlink(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

int ftp_file_open(bool forked_child)
{
    char path[1100];
    bool had_pid;
    if (expand_pattern(path, sizeof path, ftp_state.output_pattern, ftp_state.pid, &had_pid) != 0) {
        ftp_warn("cannot create the recording: FTPROF_OUTPUT is too long; running unprofiled", NULL, NULL);
        return -ENAMETOOLONG;
    }
    bool named = false;
    int fd = create_unnamed(path);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        /* No O_TMPFILE on this file system: create the name at once. */
        fd = create_exclusive(path);
        if (fd < 0 && errno == EEXIST && !had_pid && !is_symlink(path)) {
            /* Several processes share one FTPROF_OUTPUT without %p (children, workers): each gets
             * "<name>.<pid>" rather than a refusal. */
            size_t len = strlen(path);
            snprintf(path + len, sizeof path - len, ".%u", ftp_state.pid);
            fd = create_exclusive(path);
        } else if (fd < 0 && errno == EEXIST && is_symlink(path)) {
            errno = ELOOP;
        }
        named = fd >= 0;
    }
    if (fd < 0) {
        int err = errno;
        warn_create(path, err);
        return -err;
    }
    size_t total = ftp_buffer_bytes();
    uint32_t chunk = 64u << 10;
    while (chunk > 4096 && (total - FTP_HEADER_SIZE) / chunk < 4)
        chunk >>= 1;
    uint32_t count = (uint32_t)((total - FTP_HEADER_SIZE) / chunk);
    if (count == 0)
        count = 1;
    size_t map_size = FTP_HEADER_SIZE + (size_t)count * chunk;
    /* Free-list links and fill levels of released chunks: private memory, not part of the file. */
    if (!ftp_state.chunk_next || count > ftp_state.chunk_count) {
        void *links = mmap(NULL, (size_t)count * 2 * sizeof(uint32_t), PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (links == MAP_FAILED) {
            ftp_warn("cannot allocate the chunk table; running unprofiled", NULL, NULL);
            close(fd);
            if (named)
                unlink(path);
            return -ENOMEM;
        }
        ftp_state.chunk_next = links;
        ftp_state.chunk_fill = (uint32_t *)links + count;
    }
    if (ftruncate(fd, (off_t)map_size) != 0) {
        int err = errno;
        ftp_warn("cannot size ", path, err == ENOSPC ? ": no space left; running unprofiled" : ": running unprofiled");
        close(fd);
        if (named)
            unlink(path);
        return -err;
    }
    void *map = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        int err = errno;
        ftp_warn("cannot map ", path, ": running unprofiled");
        close(fd);
        if (named)
            unlink(path);
        return -err;
    }
    /* Reserve the header's blocks now; chunks reserve theirs when claimed (see ring.c), so a full
     * disk costs events, never a SIGBUS in the host. */
    if (posix_fallocate(fd, 0, FTP_HEADER_SIZE) == ENOSPC) {
        ftp_warn("cannot write ", path, ": no space left; running unprofiled");
        munmap(map, map_size);
        close(fd);
        if (named)
            unlink(path);
        return -ENOSPC;
    }
    struct ftp_file_header *h = map;
    memcpy(h->magic, FTP_MAGIC, FTP_MAGIC_LEN);
    h->version = FTP_VERSION;
    h->min_reader_version = FTP_MIN_READER_VERSION;
    h->header_size = FTP_HEADER_SIZE;
    h->features = ftp_state.native ? FTP_FEATURE_NATIVE_STACKS : 0;
    h->chunk_size = chunk;
    h->chunk_count = count;
    h->pid = ftp_state.pid;
    h->ppid = (uint32_t)getppid();
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
    if (forked_child)
        flags |= FTP_FLAG_FORKED_CHILD;
    atomic_store((_Atomic uint32_t *)&h->flags, flags);
    if (!named) {
        int rc = publish_file(fd, path);
        if (rc == -EEXIST && !had_pid && !is_symlink(path)) {
            size_t len = strlen(path);
            snprintf(path + len, sizeof path - len, ".%u", ftp_state.pid);
            rc = publish_file(fd, path);
        } else if (rc == -EEXIST && is_symlink(path)) {
            rc = -ELOOP;
        }
        if (rc != 0) {
            warn_create(path, -rc);
            munmap(map, map_size);
            close(fd);
            return rc;
        }
    }

    ftp_state.fd = fd;
    ftp_state.map = map;
    ftp_state.map_size = map_size;
    ftp_state.hdr = h;
    ftp_state.chunk_size = chunk;
    ftp_state.chunk_count = count;
    if (ftp_state.py.ready)
        ftp_python_describe(h); /* a forked child: the interpreter is already up */
    atomic_store(&ftp_state.recording, 1);
    /* The module map: native stacks need it, and the object holding _PyRuntime lets the analyzer
     * name the interpreter-state field a PyMutex lives in. */
    if (ftp_state.native || ftp_state.py.present)
        ftp_native_write_modules(ftp_thread_enter());
    return 0;
}

/* Something the recorder did not expect: stop recording, keep what is already in the file, and let
 * the program run on. Hooks see `recording == 0` and pass straight through. */
void ftp_stop(const char *why)
{
    if (!atomic_exchange(&ftp_state.recording, 0))
        return;
    if (ftp_state.hdr)
        atomic_fetch_or((_Atomic uint32_t *)&ftp_state.hdr->flags, FTP_FLAG_STOPPED);
    ftp_warn("recording stopped: ", why, NULL);
}

void ftp_file_finish(void)
{
    struct ftp_file_header *h = ftp_state.hdr;
    if (!h)
        return;
    h->end_ns = ftp_now();
    /* Give back the unused tail of the file. Threads still running (daemons) keep the chunks they
     * hold, which all lie below the cut; they cannot claim new ones once claims are closed. */
    uint32_t used = ftp_ring_close();
    if (ftruncate(ftp_state.fd, (off_t)(FTP_HEADER_SIZE + (size_t)used * ftp_state.chunk_size)) == 0)
        ftp_state.map_size = FTP_HEADER_SIZE + (size_t)used * ftp_state.chunk_size;
    atomic_fetch_or((_Atomic uint32_t *)&h->flags, FTP_FLAG_FINISHED);
    if (ftp_state.verbose) {
        char msg[160];
        snprintf(msg, sizeof msg, "%llu waits recorded, %llu dropped, %u of %u chunks used",
                 (unsigned long long)atomic_load(&ftp_state.events),
                 (unsigned long long)atomic_load((_Atomic uint64_t *)&h->dropped_events),
                 atomic_load((_Atomic uint32_t *)&h->chunks_used), h->chunk_count);
        ftp_warn(msg, NULL, NULL);
    }
}
