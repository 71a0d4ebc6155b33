/* The bottom of the recorder: the state every part shares, the libc originals, warnings (into the
 * recording's notes and, when that is safe, the program's stderr), a stop, safe reads, and the settings
 * kept for the file. It calls nothing else of the recorder (state.h). */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "state.h"

struct ftp_state ftp_state;
__thread struct ftp_thread ftp_tls __attribute__((tls_model("initial-exec"), aligned(64)));
struct ftp_real ftp_real;
_Atomic int ftp_real_resolved;
bool ftp_loaded_late;

/* Is `p` one of our own functions? (A "real" function must never be our hook.) */
static bool is_ours(void *p)
{
    Dl_info self, other;
    return p && dladdr((void *)is_ours, &self) && dladdr(p, &other) && other.dli_fbase == self.dli_fbase;
}

static void *resolve(const char *name, const char *version)
{
    void *p = NULL;
    /* pthread_cond_* exist in two versions; the unversioned lookup can return the old 2.2.5 ABI,
     * which would misread today's pthread_cond_t. */
    if (version)
        p = dlvsym(RTLD_NEXT, name, version);
    if (!p)
        p = dlsym(RTLD_NEXT, name);
    /* dlopen()ed (ftprof attach, RTLD_LOCAL) RTLD_NEXT may find nothing: the global scope's
     * definition is libc's then, since ours is not in it. */
    if (!p || is_ours(p)) {
        p = version ? dlvsym(RTLD_DEFAULT, name, version) : NULL;
        if (!p)
            p = dlsym(RTLD_DEFAULT, name);
        if (is_ours(p))
            p = NULL;
    }
    return p;
}

void ftp_resolve_real(void)
{
    struct ftp_real r;
/* The name as a string, the field as real_<name>: see struct ftp_real. */
#define RESOLVE(field, name, ver) r.field = (__typeof__(r.field))resolve(name, ver)
    RESOLVE(real_sem_init, "sem_init", NULL);
    RESOLVE(real_sem_destroy, "sem_destroy", NULL);
    RESOLVE(real_sem_wait, "sem_wait", NULL);
    RESOLVE(real_sem_trywait, "sem_trywait", NULL);
    RESOLVE(real_sem_timedwait, "sem_timedwait", NULL);
    RESOLVE(real_sem_clockwait, "sem_clockwait", NULL);
    RESOLVE(real_sem_post, "sem_post", NULL);
    RESOLVE(real_sched_yield, "sched_yield", NULL);
    RESOLVE(real_pthread_mutex_lock, "pthread_mutex_lock", NULL);
    RESOLVE(real_pthread_mutex_trylock, "pthread_mutex_trylock", NULL);
    RESOLVE(real_pthread_mutex_unlock, "pthread_mutex_unlock", NULL);
    RESOLVE(real_pthread_rwlock_rdlock, "pthread_rwlock_rdlock", NULL);
    RESOLVE(real_pthread_rwlock_tryrdlock, "pthread_rwlock_tryrdlock", NULL);
    RESOLVE(real_pthread_rwlock_wrlock, "pthread_rwlock_wrlock", NULL);
    RESOLVE(real_pthread_rwlock_trywrlock, "pthread_rwlock_trywrlock", NULL);
    RESOLVE(real_pthread_rwlock_unlock, "pthread_rwlock_unlock", NULL);
    RESOLVE(real_pthread_cond_wait, "pthread_cond_wait", "GLIBC_2.3.2");
    RESOLVE(real_pthread_cond_timedwait, "pthread_cond_timedwait", "GLIBC_2.3.2");
    RESOLVE(real_pthread_cond_signal, "pthread_cond_signal", "GLIBC_2.3.2");
    RESOLVE(real_pthread_cond_broadcast, "pthread_cond_broadcast", "GLIBC_2.3.2");
#undef RESOLVE
    ftp_real = r;
    atomic_store_explicit(&ftp_real_resolved, 1, memory_order_release);
}

/* ---- warnings ----
 * A warning goes to two places: the recording's notes (header.notes, format.h), where nothing is lost,
 * and the program's descriptor 2 only when that is safe. The recorder does not own fd 2: a daemon may
 * have closed it and opened a data file or a socket of its own under that number, and a stderr pipe
 * nobody reads would block the warning thread (a hook, sometimes) for good. So fd 2 is written only
 * while it is provably the stream the program started with (same device and inode as when the
 * constructor ran; never for a recorder attached late, which cannot know that stream), and only in a
 * way that cannot block or signal:
 *   - a regular file: write(2), as any log line (a file write does not wait for a reader);
 *   - a socket: send(MSG_DONTWAIT | MSG_NOSIGNAL), non-blocking for this call alone;
 *   - a pipe or a terminal: opened again through /proc/self/fd/2, which gives a file description of our
 *     own, made O_NONBLOCK: a full pipe or a stopped terminal (^S) returns EAGAIN instead of blocking,
 *     and the program's description keeps its flags. SIGPIPE is blocked around the write. (Not a
 *     terminal's master side, /dev/ptmx, which a new open would turn into another terminal);
 *   - anything else (another device, /dev/null, fd 2 closed or replaced): dropped.
 * A write that fails or is short is dropped too; the note says whether the line reached stderr.
 * Messages are built by hand and go through write(2): stdio may hold locks or allocate. */
static struct {
    bool known;
    dev_t dev;
    ino_t ino;
} stderr_at_start;

void ftp_warn_remember_stderr(void)
{
    struct stat st;
    int saved = errno;
    stderr_at_start.known = fstat(STDERR_FILENO, &st) == 0;
    stderr_at_start.dev = st.st_dev;
    stderr_at_start.ino = st.st_ino;
    errno = saved;
}

static bool same_stream(const struct stat *st)
{
    return st->st_dev == stderr_at_start.dev && st->st_ino == stderr_at_start.ino;
}

static bool write_reopened(const char *buf, size_t n)
{
    int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return false; /* no /proc, or a pipe without a reader (ENXIO) */
    struct stat st;
    bool ok = false;
    if (fstat(fd, &st) == 0 && same_stream(&st)) {
        sigset_t pipe_only, old, pending;
        sigemptyset(&pipe_only);
        sigaddset(&pipe_only, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
        bool was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
        ok = write(fd, buf, n) == (ssize_t)n;
        if (!ok && errno == EPIPE && !was_pending) {
            /* the reader went away since the open: take back the SIGPIPE our write raised */
            struct timespec zero = {0, 0};
            sigtimedwait(&pipe_only, NULL, &zero);
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    close(fd);
    return ok;
}

/* One line to the program's stderr if that is safe (see above); true if it got there whole. */
static bool stderr_write(const char *buf, size_t n)
{
    struct stat st;
    if (!stderr_at_start.known || fstat(STDERR_FILENO, &st) != 0 || !same_stream(&st))
        return false;
    if (S_ISREG(st.st_mode))
        return write(STDERR_FILENO, buf, n) == (ssize_t)n;
    if (S_ISSOCK(st.st_mode))
        return send(STDERR_FILENO, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)n;
    /* Not a pseudo-terminal's master (/dev/ptmx): opening it again would make a new terminal. */
    bool ptmx = S_ISCHR(st.st_mode) && major(st.st_rdev) == 5 && minor(st.st_rdev) == 2;
    if (S_ISFIFO(st.st_mode) || (S_ISCHR(st.st_mode) && !ptmx && isatty(STDERR_FILENO)))
        return write_reopened(buf, n);
    return false;
}

/* Notes given while no recording is open (start-up: settings, the interpreter's layout) wait here and
 * are copied into each recording this process opens, a forked child's included (same settings). */
static char early_notes[FTP_NOTES_MAX];
static _Atomic uint32_t early_notes_len;

/* Claims room with one atomic add, then copies: safe from any thread, hooks included. A note that does
 * not fit whole is cut at the end of the area and still ends with a newline. */
static void notes_append(char *area, _Atomic uint32_t *len, const char *line, size_t n)
{
    uint32_t at = atomic_fetch_add(len, (uint32_t)n);
    if (at >= FTP_NOTES_MAX)
        return;
    size_t room = FTP_NOTES_MAX - at;
    if (n > room) {
        memcpy(area + at, line, room - 1);
        area[at + room - 1] = '\n';
    } else
        memcpy(area + at, line, n);
}

void ftp_notes_copy_early(struct ftp_file_header *h)
{
    uint32_t n = atomic_load(&early_notes_len);
    memcpy(h->notes, early_notes, n < FTP_NOTES_MAX ? n : FTP_NOTES_MAX);
    atomic_store((_Atomic uint32_t *)&h->notes_len, n);
}

void ftp_warn(const char *a, const char *b, const char *c)
{
    static const char prefix[] = "ftprof: ";
    char buf[1024];
    size_t n = 0;
    const char *parts[] = {prefix, a, b, c, "\n"};
    int saved = errno; /* a hook's caller may look at errno after the call we wrap */
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        const char *s = parts[i];
        if (!s)
            continue;
        size_t len = strlen(s);
        if (len > sizeof buf - 1 - n)
            len = sizeof buf - 1 - n;
        memcpy(buf + n, s, len);
        n += len;
    }
    if (buf[n - 1] != '\n')
        buf[n++] = '\n';
    bool shown = stderr_write(buf, n);
    /* The note is the same line without the prefix, after its status byte. */
    char *note = buf + sizeof prefix - 2;
    note[0] = shown ? FTP_NOTE_SHOWN : FTP_NOTE_UNSHOWN;
    size_t note_len = n - (sizeof prefix - 2);
    struct ftp_file_header *h = ftp_state.hdr;
    if (h)
        notes_append(h->notes, (_Atomic uint32_t *)&h->notes_len, note, note_len);
    else
        notes_append(early_notes, &early_notes_len, note, note_len);
    errno = saved;
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

/* Copy len bytes from an address we are not sure of: false instead of a fault (process_vm_readv). */
bool ftp_safe_read(void *dst, uintptr_t src, size_t len)
{
    if (src < 4096 || src + len < src)
        return false;
    struct iovec local = {dst, len}, remote = {(void *)src, len};
    return process_vm_readv((pid_t)ftp_state.pid, &local, 1, &remote, 1, 0) == (ssize_t)len;
}

/* `each` bytes from each of `n` addresses into consecutive slots of `dst`, in as few system calls as
 * they allow: process_vm_readv stops at the first range that does not read (maybe partway into it),
 * which is marked unreadable and skipped, and the call resumes after it. */
void ftp_safe_read_each(void *dst, size_t each, const uintptr_t *src, int n, bool *readable)
{
    struct iovec local[8], remote[8];
    n = n < 8 ? n : 8;
    for (int i = 0; i < n; i++) {
        local[i] = (struct iovec){(uint8_t *)dst + (size_t)i * each, each};
        remote[i] = (struct iovec){(void *)src[i], each};
        readable[i] = false;
    }
    for (int done = 0; done < n;) {
        ssize_t got = process_vm_readv((pid_t)ftp_state.pid, local + done, (unsigned long)(n - done), remote + done,
                                       (unsigned long)(n - done), 0);
        size_t whole = got > 0 ? (size_t)got / each : 0; /* ranges read in full */
        for (int i = done; i < done + (int)whole && i < n; i++)
            readable[i] = true;
        done += (int)whole + 1; /* the one after them failed (or nothing is left) */
    }
}

/* Reads [src, src + len) in place when it lies within the 4 KiB block of `live`, an address the
 * interpreter itself is reading right now (the PyMutex a thread parks or spins on): a mapping is made of
 * whole pages, so those bytes are mapped too. Anywhere else, through ftp_safe_read: a system call per
 * read is what made each wait cost microseconds. Not instrumented, byte by byte: the window may reach
 * past an object into memory a sanitizer marks as another allocation's. */
__attribute__((no_sanitize("address", "thread", "undefined"))) bool ftp_read_near(void *dst, uintptr_t src,
                                                                                   size_t len, uintptr_t live)
{
    uintptr_t block = live & ~(uintptr_t)4095;
    if (!live || src < block || src + len < src || src + len > block + 4096)
        return ftp_safe_read(dst, src, len);
    for (size_t i = 0; i < len; i++)
        ((uint8_t *)dst)[i] = ((const volatile uint8_t *)src)[i];
    return true;
}

/* ---- settings kept for the recording file ---- */
static size_t buffer_bytes;

size_t ftp_buffer_bytes(void) { return buffer_bytes; }
void ftp_set_buffer_bytes(size_t bytes) { buffer_bytes = bytes; }

static char saved_argv[FTP_ARGV_MAX];
static uint32_t saved_argv_len, saved_argc;
void ftp_argv(const char **argv, uint32_t *len, uint32_t *argc)
{
    *argv = saved_argv;
    *len = saved_argv_len;
    *argc = saved_argc;
}

void ftp_save_argv(int argc, char **argv)
{
    for (int i = 0; argv && i < argc && argv[i]; i++) {
        size_t len = strlen(argv[i]) + 1;
        if (saved_argv_len + len > sizeof saved_argv)
            break;
        memcpy(saved_argv + saved_argv_len, argv[i], len);
        saved_argv_len += (uint32_t)len;
        saved_argc++;
    }
}

void ftp_ticks_decide(bool allowed)
{
    ftp_state.spin_ticks = false;
#if defined(__x86_64__)
    /* The kernel's own choice: it keeps CLOCK_MONOTONIC on the counter only when it found the counter
     * constant-rate and the same on every CPU (and, in a guest, vouched for by the host). */
    char name[16] = {0};
    int fd = allowed ? open("/sys/devices/system/clocksource/clocksource0/current_clocksource",
                            O_RDONLY | O_CLOEXEC | O_NOCTTY) : -1;
    if (fd < 0)
        return;
    ssize_t n = read(fd, name, sizeof name - 1);
    close(fd);
    ftp_state.spin_ticks = n >= 3 && strncmp(name, "tsc", 3) == 0 && (n == 3 || name[3] == '\n');
#else
    (void)allowed;
#endif
}

/* ftprof attach: the settings come from the CLI, never from the host's environment. */
void ftp_attach_settings(const char *path, size_t buffer, bool native)
{
    ftp_state.native = native;
    ftp_ticks_decide(true);
    ftp_state.verbose = false;
    ftp_state.record_all = false;
    buffer_bytes = buffer < ((size_t)16 << 10) ? (size_t)16 << 10 : buffer;
    ftp_state.min_wait_ns = 0;
    ftp_state.ring = false;
    ftp_state.start_paused = false;
    snprintf(ftp_state.output_pattern, sizeof ftp_state.output_pattern, "%s", path);
}

