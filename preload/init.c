/* Start-up, configuration, fork and exit: everything that runs outside the hooks' hot paths. */
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
#include <time.h>
#include <unistd.h>

#include "got.h"
#include "recorder.h"
#include "ftprof/size.h"

struct ftp_state ftp_state;
struct ftp_real ftp_real;
_Atomic int ftp_real_resolved;

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
#define RESOLVE(fn, ver) r.fn = (__typeof__(r.fn))resolve(#fn, ver)
    RESOLVE(sem_init, NULL);
    RESOLVE(sem_destroy, NULL);
    RESOLVE(sem_wait, NULL);
    RESOLVE(sem_trywait, NULL);
    RESOLVE(sem_timedwait, NULL);
    RESOLVE(sem_clockwait, NULL);
    RESOLVE(sem_post, NULL);
    RESOLVE(sched_yield, NULL);
    RESOLVE(pthread_mutex_lock, NULL);
    RESOLVE(pthread_mutex_trylock, NULL);
    RESOLVE(pthread_mutex_unlock, NULL);
    RESOLVE(pthread_rwlock_rdlock, NULL);
    RESOLVE(pthread_rwlock_tryrdlock, NULL);
    RESOLVE(pthread_rwlock_wrlock, NULL);
    RESOLVE(pthread_rwlock_trywrlock, NULL);
    RESOLVE(pthread_rwlock_unlock, NULL);
    RESOLVE(pthread_cond_wait, "GLIBC_2.3.2");
    RESOLVE(pthread_cond_timedwait, "GLIBC_2.3.2");
    RESOLVE(pthread_cond_signal, "GLIBC_2.3.2");
    RESOLVE(pthread_cond_broadcast, "GLIBC_2.3.2");
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

static void stderr_remember(void)
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

/* Settings are read twice: quietly at start, and once more with warnings when it is known that this
 * process records. A shell or compiler that inherited the variables from a profiled program prints
 * nothing: whatever is wrong with them is not its business. */
static bool settings_warn;

/* "NAME=VALUE", the value cut short and with control characters shown as '?', for warnings. */
static void setting_text(char *out, size_t cap, const char *name, const char *value)
{
    size_t n = 0, len = strlen(name);
    if (len > cap - 8)
        len = cap - 8;
    memcpy(out, name, len);
    n = len;
    out[n++] = '=';
    for (const char *v = value; *v && n + 4 < cap; v++)
        out[n++] = (unsigned char)*v < 0x20 || *v == 0x7f ? '?' : *v;
    if (value[0] && n + 4 >= cap)
        memcpy(out + cap - 4, "...", 3), n = cap - 1;
    out[n] = 0;
}

static void warn_setting(const char *name, const char *value, const char *what)
{
    if (!settings_warn)
        return;
    char text[200];
    setting_text(text, sizeof text, name, value);
    ftp_warn(text, what, NULL);
}

static bool env_flag(const char *name, bool dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    if (!strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on"))
        return true;
    if (!strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off"))
        return false;
    warn_setting(name, v, " is not 0 or 1; using the default");
    return dflt;
}

/* FTPROF_BUFFER: bytes with an optional K/M/G/T suffix (powers of two), FTP_BUFFER_LIMITS_TEXT. */
static size_t env_buffer_size(void)
{
    const char *v = getenv("FTPROF_BUFFER");
    uint64_t bytes = FTP_BUFFER_DEFAULT;
    if (!v || !*v)
        return (size_t)bytes;
    switch (ftp_parse_size(v, &bytes)) {
    case FTP_SIZE_OK: break;
    case FTP_SIZE_NOT_A_SIZE:
        warn_setting("FTPROF_BUFFER", v, " is not a size (a number with K, M, G or T, like 64M); using 64M");
        bytes = FTP_BUFFER_DEFAULT;
        break;
    case FTP_SIZE_TOO_SMALL: warn_setting("FTPROF_BUFFER", v, " is below the minimum of 16K; using 16K"); break;
    case FTP_SIZE_TOO_LARGE: warn_setting("FTPROF_BUFFER", v, " is above the maximum of 1T; using 1T"); break;
    }
    return (size_t)bytes;
}

/* A misspelt setting (FTPROF_BUFER=1M) should not silently do nothing. Names that ftprof's own CLI,
 * tools and test harness read are not the recorder's, but they are not mistakes either. */
static void warn_unknown_variables(void)
{
    static const char *known[] = {
        "FTPROF_OUTPUT", "FTPROF_BUFFER", "FTPROF_NATIVE", "FTPROF_VERBOSE", "FTPROF_DISABLE", "FTPROF_ALL",
        "FTPROF_START", "FTPROF_MIN_WAIT", "FTPROF_MODE",
        /* read by the CLI and the tools */
        "FTPROF_LIBRARY", "FTPROF_PYTHON", "FTPROF_GIL_PYTHON", "FTPROF_MULTIARCH",
        /* read by the test harness (tools/run-tests, tests/) */
        "FTPROF_LIB", "FTPROF_CLI", "FTPROF_PY", "FTPROF_GIL_PY", "FTPROF_PYTHONS", "FTPROF_VERSION", "FTPROF_SKIP_SUITES", "FTPROF_SKIP_SLOW",
        "FTPROF_RESULTS", "FTPROF_KEEP", "FTPROF_FIXTURE_DIR"};
    extern char **environ;
    if (!settings_warn)
        return;
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, "FTPROF_", 7) || !strncmp(*e, "FTPROF_TEST_", 12))
            continue;
        size_t len = strcspn(*e, "=");
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof *known; i++)
            if (strlen(known[i]) == len && !strncmp(*e, known[i], len))
                ok = true;
        if (!ok) {
            char name[64];
            if (len >= sizeof name)
                len = sizeof name - 1;
            memcpy(name, *e, len);
            name[len] = 0;
            char text[200];
            setting_text(text, sizeof text, name, (*e)[strcspn(*e, "=")] ? *e + strcspn(*e, "=") + 1 : "");
            ftp_warn("unknown variable ", text, " ignored");
        }
    }
}

static size_t buffer_bytes;

static void after_fork_in_child(void)
{
    /* The parent's mapping is shared with the parent: writing one more byte into it would corrupt the
     * parent's recording. Drop it, forget every id the parent's file defined, and start our own file. */
    if (ftp_state.map) {
        munmap(ftp_state.map, ftp_state.map_size);
        ftp_state.map = NULL;
        ftp_state.hdr = NULL;
    }
    /* The recorder holds no descriptor (file.c): there is nothing to close, and nothing of the
     * program's is touched. */
    atomic_store(&ftp_state.recording, 0);
    atomic_fetch_add(&ftp_state.generation, 1);
    ftp_busy_reset_after_fork();
    ftp_tables_reset();
    ftp_native_reset();
    atomic_store(&ftp_state.free_chunks, 0);
    atomic_store(&ftp_state.claimed, 0);
    atomic_store(&ftp_state.parked, 0);
    atomic_store(&ftp_state.gil_reported, ftp_state.py.gil_enabled && *ftp_state.py.gil_enabled == INT_MAX);
    ftp_state.pid = (uint32_t)getpid();
    if (ftp_state.py.present || ftp_state.record_all)
        ftp_file_open(true);
}

FTP_HIDDEN size_t ftp_buffer_bytes(void) { return buffer_bytes; }

static char saved_argv[FTP_ARGV_MAX];
static uint32_t saved_argv_len, saved_argc;
FTP_HIDDEN void ftp_argv(const char **argv, uint32_t *len, uint32_t *argc)
{
    *argv = saved_argv;
    *len = saved_argv_len;
    *argc = saved_argc;
}

static void ftp_save_argv(int argc, char **argv)
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

/* ftprof attach: the settings come from the CLI, never from the host's environment. */
void ftp_attach_settings(const char *path, size_t buffer, bool native)
{
    ftp_state.native = native;
    ftp_state.verbose = false;
    ftp_state.record_all = false;
    buffer_bytes = buffer < ((size_t)16 << 10) ? (size_t)16 << 10 : buffer;
    ftp_state.min_wait_ns = 0;
    ftp_state.ring = false;
    ftp_state.start_paused = false;
    snprintf(ftp_state.output_pattern, sizeof ftp_state.output_pattern, "%s", path);
}

/* FTPROF_OUTPUT, FTPROF_BUFFER, FTPROF_NATIVE, FTPROF_VERBOSE (and unknown FTPROF_* names). */
static void read_settings(void)
{
    static const char dflt[] = "ftprof-%p.ftp";
    warn_unknown_variables();
    ftp_state.native = env_flag("FTPROF_NATIVE", false);
    ftp_state.verbose = env_flag("FTPROF_VERBOSE", false);
    ftp_state.test_slow_types = env_flag("FTPROF_TEST_SLOW_TYPES", false);
    buffer_bytes = env_buffer_size();
    ftp_control_settings(settings_warn); /* FTPROF_START, FTPROF_MIN_WAIT, FTPROF_MODE */
    const char *out = getenv("FTPROF_OUTPUT");
    if (!out || !*out)
        out = dflt;
    char pattern[sizeof ftp_state.output_pattern];
    size_t len = strlen(out);
    struct stat st;
    /* A directory (DIR/, or the name of an existing one) holds the recordings: DIR/ftprof-%p.ftp,
     * never a hidden DIR/.<pid> or a name beside it. */
    bool dir = len > 0 && (out[len - 1] == '/' || (!strchr(out, '%') && stat(out, &st) == 0 && S_ISDIR(st.st_mode)));
    if (len + sizeof dflt + 1 >= sizeof pattern) {
        warn_setting("FTPROF_OUTPUT", out, " is too long; using ftprof-%p.ftp");
        strcpy(pattern, dflt);
    } else if (dir) {
        snprintf(pattern, sizeof pattern, "%s%s%s", out, out[len - 1] == '/' ? "" : "/", dflt);
    } else {
        strcpy(pattern, out);
    }
    /* A relative name is kept relative to the directory we started in, not wherever we chdir later; a
     * leading "./" (ftprof run's default) goes, so that the name said in messages has no "/./". */
    char cwd[PATH_MAX];
    const char *rel = pattern;
    while (rel[0] == '.' && rel[1] == '/')
        for (rel += 2; *rel == '/'; rel++)
            ;
    if (pattern[0] != '/' && getcwd(cwd, sizeof cwd) &&
        strlen(cwd) + 1 + strlen(rel) < sizeof ftp_state.output_pattern)
    {
        strcpy(ftp_state.output_pattern, cwd);
        if (strcmp(cwd, "/"))
            strcat(ftp_state.output_pattern, "/");
        strcat(ftp_state.output_pattern, rel);
    } else
        snprintf(ftp_state.output_pattern, sizeof ftp_state.output_pattern, "%s", pattern);
}

/* An interpreter already running: _PyRuntime's debug cookie, and its interpreters_head (word 5 of
 * _Py_DebugOffsets in every version, runtime_state.interpreters_head) set. */
static bool loaded_into_running_python(void)
{
    const uint64_t *dbg = dlsym(RTLD_DEFAULT, "_PyRuntime");
    if (!dbg || memcmp(dbg, "xdebugpy", 8) != 0 || dbg[5] == 0 || dbg[5] > (1u << 20))
        return false;
    return *(volatile const uintptr_t *)((const char *)dbg + dbg[5]) != 0;
}

/* Is this library named in LD_PRELOAD (by path or by file name)? Not, when a program without Python
 * dlopen()s it (the attach unit tests). */
static bool named_in_ld_preload(void)
{
    Dl_info self;
    const char *pre = getenv("LD_PRELOAD");
    if (!pre || !dladdr((void *)named_in_ld_preload, &self) || !self.dli_fname)
        return false;
    const char *base = strrchr(self.dli_fname, '/');
    base = base ? base + 1 : self.dli_fname;
    size_t blen = strlen(base);
    for (const char *p = pre; *p;) {
        size_t len = strcspn(p, ": ");
        const char *name = p;
        for (const char *q = p; q < p + len; q++)
            if (*q == '/')
                name = q + 1;
        if ((size_t)(p + len - name) == blen && !strncmp(name, base, blen))
            return true;
        p += len;
        p += strspn(p, ": ");
    }
    return false;
}

/* glibc passes (argc, argv, envp) to ELF constructors; that is our only chance to see argv without
 * reading /proc. */
__attribute__((constructor)) static void ftp_init(int argc, char **argv, char **envp)
{
    (void)envp;
    struct ftp_thread *t = &ftp_tls;
    t->guard++;
    ftp_resolve_real();
    if (!ftp_real.sem_wait || !ftp_real.pthread_mutex_lock || !ftp_real.sem_post) {
        t->guard--;
        return; /* hooks pass through (they resolve lazily) */
    }
    /* Preloaded, this constructor runs before main, so before the interpreter exists; dlopen()ed into
     * a running process (ftprof attach) it runs with the interpreter up. Then nothing starts here and
     * no FTPROF_* variable of the host's is read: ftprof_attach (attach.c) sets the recording up from
     * its arguments. (Which sem_post the global scope finds says nothing: a sanitizer's runtime
     * preloaded ahead of us intercepts it too.) A process without Python that dlopen()s us is late
     * too: LD_PRELOAD does not name us. */
    if (loaded_into_running_python() || !named_in_ld_preload()) {
        /* fd 2 is not remembered: whatever it is now, nothing says it is the program's start-up stream,
         * so an attached recorder's warnings go into the recording only. */
        ftp_loaded_late = true;
        ftp_save_argv(argc, argv);
        t->guard--;
        return;
    }
    if (env_flag("FTPROF_DISABLE", false)) {
        t->guard--;
        return;
    }
    stderr_remember(); /* before main: this is the stream the program was started with */
    read_settings();
    ftp_save_argv(argc, argv);
    ftp_state.pid = (uint32_t)getpid();
    if (ftp_tables_init() != 0) {
        t->guard--;
        return;
    }
    ftp_thread_setup_key();
    pthread_atfork(NULL, NULL, after_fork_in_child);
    ftp_python_detect();
    /* Only Python processes record by default, so a preloaded sh or gcc runs untouched;
     * FTPROF_ALL=1 records native programs' pthread waits too. */
    ftp_state.record_all = env_flag("FTPROF_ALL", false);
    ftp_native_init();
    if (ftp_state.py.present || ftp_state.record_all) {
        settings_warn = true;
        (void)env_flag("FTPROF_DISABLE", false);
        read_settings();
        ftp_state.record_all = env_flag("FTPROF_ALL", false);
        ftp_file_open(false);
    } else {
        ftp_file_close_predecessor();
    }
    t->guard--;
}

__attribute__((destructor)) static void ftp_fini(void)
{
    ftp_tls.guard++;
    /* A GIL re-enabled by the last imports, with no wait since to notice it: told before the file closes. */
    if (ftp_state.hdr && atomic_load(&ftp_state.recording) && ftp_python_ready())
        ftp_python_check_gil(ftp_thread_enter());
    ftp_thread_exit_process(); /* this thread's end and the process's CPU time, before the file closes */
    ftp_file_finish();
    ftp_tls.guard--;
}
