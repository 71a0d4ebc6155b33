/* Attach and detach: the recorder loaded into a running process (`ftprof attach PID`).
 *
 * The CLI makes whichever of the target's threads first reaches an eval-breaker check run a short
 * Python script (PEP 768's request, written into every thread state); that script dlopen()s this
 * library through ctypes and calls ftprof_attach(). Loaded that way the constructor (init.c) only notes that it came late: nothing is
 * read from the environment, nothing records. ftprof_attach then
 *   1. sets the recording up from its arguments (file, buffer size, native stacks),
 *   2. opens the file (flagged FTP_FLAG_ATTACHED: it covers a window, from attach to detach),
 *   3. rewrites the GOT slots of every loaded object (got.c),
 *   4. starts a watchdog thread, a plain pthread that Python never sees, which detaches when the CLI
 *      asks (FTP_CONTROL_DETACH in the header) or when the CLI process is gone (killed mid-attach), so
 *      detaching never waits for the target's eval loop, which a deadlocked process never reaches.
 * Detach restores the GOT, stops recording, finishes the file and replaces its mapping with
 * anonymous memory of the same range (MAP_FIXED): a thread that was blocked inside a hook comes back
 * later and writes its wait there, harmlessly, and the next attach maps its file over the same range,
 * so mappings never accumulate. Such a thread is stale (the generation moved on): the hooks drop what
 * it saw instead of writing it into the next recording. The library itself stays loaded, inert (it is
 * linked -z nodelete; dlclose would unmap code that a thread may still be running).
 *
 * Exported: ftprof_attach, ftprof_detach, ftprof_attach_got (for the tests). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "got.h"
#include "native.h"
#include "python.h"
#include "session.h"
#include "thread.h"
#include "thread_end.h"
#include "intern.h"

#define EXPORT __attribute__((visibility("default")))

static pthread_mutex_t attach_lock = PTHREAD_MUTEX_INITIALIZER;
static bool attached;        /* between a successful attach and its detach */
static bool set_up;          /* the once-per-process parts are done */
static pthread_t watchdog;
static bool watchdog_running;
static _Atomic int watchdog_stop;
static int cli_pid;
static unsigned long long cli_start; /* field 22 of /proc/CLI/stat: the CLI, not a reused pid */
static void *reserve;        /* the range of the last detached recording, now anonymous memory */
static size_t reserve_size;

static void set_err(char *err, size_t cap, const char *msg, int e)
{
    if (!err || !cap)
        return;
    if (e)
        snprintf(err, cap, "%s: %s", msg, strerror(e));
    else
        snprintf(err, cap, "%s", msg);
}

static unsigned long long proc_start_ticks(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    /* after ")": field 3 is the state; the start time is field 22 */
    int field = 2;
    for (p++; *p && field < 22; p++)
        if (*p == ' ')
            field++;
    return strtoull(p, NULL, 10);
}

static bool cli_alive(void)
{
    if (cli_pid <= 0)
        return true;
    if (kill(cli_pid, 0) != 0 && errno == ESRCH)
        return false;
    unsigned long long st = proc_start_ticks(cli_pid);
    return st == 0 || st == cli_start; /* 0: cannot tell (another pid namespace's /proc) */
}

/* Where a new recording is mapped (ftp_session_open): the range of the last detached one, when it fits. */
static void *map_at_reserve(size_t size) { return reserve && size == reserve_size ? reserve : NULL; }

static int detach_locked(void);

static void *watchdog_main(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    while (!atomic_load(&watchdog_stop)) {
        nanosleep(&ts, NULL);
        _Atomic uint32_t *c = atomic_load_explicit(&ftp_state.control, memory_order_relaxed);
        bool asked = c && (atomic_load(c) & FTP_CONTROL_DETACH);
        if (asked || !cli_alive() || !atomic_load(&ftp_state.recording)) {
            ftp_real.real_pthread_mutex_lock(&attach_lock);
            if (attached && !atomic_load(&watchdog_stop)) {
                watchdog_running = false; /* we are the one leaving: detach does not join us */
                pthread_detach(pthread_self());
                detach_locked();
            }
            ftp_real.real_pthread_mutex_unlock(&attach_lock);
            return NULL;
        }
    }
    return NULL;
}

static void child_after_fork(void)
{
    /* A forked child of an attached process gets a copy of the patched GOT and the parent's shared
     * mapping, but no watchdog and no CLI: it stops, puts its GOT back and stays inert. Writing one
     * more byte into the mapping would corrupt the parent's recording. */
    if (!attached)
        return;
    ftp_session_leave_parent();
    atomic_fetch_add(&ftp_state.generation, 1);
    ftp_got_after_fork_in_child();
    attach_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    attached = false;
    watchdog_running = false;
    reserve = NULL;
}

/* flags: FTPROF_ATTACH_NATIVE (1) native stacks; FTPROF_ATTACH_ANY (2) record a process without a
 * CPython interpreter too (the unit tests' plain pthread programs); FTPROF_ATTACH_TEST_PREEMPT (4) for
 * the tests: a hook stops for 40 ms before it writes every 64th wait, as a preempted one would. cli: the CLI's pid, watched by the
 * watchdog (0: none; the caller detaches with ftprof_detach). err: a line saying what went wrong, or
 * on success how many call sites were rewritten. 0 or -errno. */
#define FTPROF_ATTACH_NATIVE 1
#define FTPROF_ATTACH_ANY 2
#define FTPROF_ATTACH_TEST_PREEMPT 4

/* The once-per-process parts (with attach_lock held): the tables, the thread-exit key, the fork handler.
 * 0 or -ENOMEM. */
static int set_up_once(char *err, size_t errcap)
{
    if (ftp_tables_init() != 0) {
        set_err(err, errcap, "cannot allocate the recorder's tables", ENOMEM);
        return -ENOMEM;
    }
    ftp_thread_setup_key(ftp_thread_end_at_exit);
    pthread_atfork(NULL, NULL, child_after_fork);
    set_up = true;
    return 0;
}

/* With attach_lock held: the settings from the arguments, the interpreter found, a new session's clean
 * slate, and its file open and flagged as an attach's. 0 or -errno (err says what went wrong). */
static int open_session(const char *path, unsigned long long buffer, int flags, char *err, size_t errcap)
{
    ftp_attach_settings(path, buffer ? (size_t)buffer : (size_t)64 << 20, (flags & FTPROF_ATTACH_NATIVE) != 0);
    ftp_state.pid = (uint32_t)getpid(); /* ftp_safe_read reads through it, the header names it */
    ftp_native_init();
    ftp_python_detect();
    ftp_state.record_all = (flags & FTPROF_ATTACH_ANY) != 0;
    ftp_state.test_preempt = (flags & FTPROF_ATTACH_TEST_PREEMPT) != 0;
    if (!ftp_state.py.present && !ftp_state.record_all) {
        set_err(err, errcap, "no CPython interpreter found in the process", 0);
        return -ENOENT;
    }
    (void)ftp_python_ready();
    /* A new session: every id, waiter and chunk of the previous one is forgotten; threads still
     * inside a hook from it are stale from now on. */
    ftp_session_forget();
    atomic_store(&ftp_state.events, 0);
    atomic_store(&ftp_state.ring_next, 0);
    int rc = ftp_session_open(false, map_at_reserve);
    if (rc != 0 || !ftp_state.hdr) {
        set_err(err, errcap, "cannot create the recording file", rc < 0 ? -rc : EIO);
        atomic_store(&ftp_state.recording, 0);
        /* A failed open may have unmapped the reserved range: keep stragglers off a hole. */
        if (reserve && mmap(reserve, reserve_size, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE, -1, 0) != reserve)
            reserve = NULL;
        return rc ? rc : -EIO;
    }
    if ((void *)ftp_state.map == reserve)
        reserve = NULL; /* in use again */
    atomic_fetch_or((_Atomic uint32_t *)&ftp_state.hdr->flags, FTP_FLAG_ATTACHED);
    return 0;
}

/* The watchdog thread (watchdog_running says whether it started). */
static void start_watchdog(void)
{
    atomic_store(&watchdog_stop, 0);
    /* The watchdog takes no signal the program might expect to get on one of its own threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 << 10);
    watchdog_running = pthread_create(&watchdog, &attr, watchdog_main, NULL) == 0;
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* The entry point the CLI calls (flags and arguments: above, with FTPROF_ATTACH_NATIVE). */
EXPORT int ftprof_attach(const char *path, unsigned long long buffer, int flags, int cli, char *err, size_t errcap);
int ftprof_attach(const char *path, unsigned long long buffer, int flags, int cli, char *err, size_t errcap)
{
#if !defined(__x86_64__)
    set_err(err, errcap, "attach is only implemented on x86-64", 0);
    return -ENOSYS;
#else
    if (!ftp_real.real_pthread_mutex_lock)
        ftp_resolve_real();
    if (!ftp_real.real_pthread_mutex_lock || !ftp_real.real_sem_wait) {
        set_err(err, errcap, "the recorder cannot find libc's functions", 0);
        return -ENOENT;
    }
    if (!ftp_loaded_late) {
        set_err(err, errcap, "the recorder is preloaded in this process: it records already", 0);
        return -EBUSY;
    }
    if (!path || !*path || strlen(path) >= sizeof ftp_state.output_pattern - 1 || strchr(path, '%')) {
        set_err(err, errcap, "bad recording file name", 0);
        return -EINVAL;
    }
    struct ftp_thread *t = &ftp_tls;
    t->guard++;
    ftp_real.real_pthread_mutex_lock(&attach_lock);
    int rc = 0;
    if (attached) {
        set_err(err, errcap, "a recorder is attached already", 0);
        rc = -EALREADY;
        goto out;
    }
    if (!set_up && (rc = set_up_once(err, errcap)) != 0)
        goto out;
    if ((rc = open_session(path, buffer, flags, err, errcap)) != 0)
        goto out;
    size_t patched = 0;
    rc = ftp_got_install(&patched);
    if (rc != 0 || patched == 0) {
        set_err(err, errcap, rc ? "cannot rewrite the call sites" : "no call site of a lock function found",
                rc ? -rc : 0);
        ftp_got_restore(NULL);
        attached = true; /* so detach_locked tears the file down */
        detach_locked();
        if (!rc)
            rc = -ENOENT;
        goto out;
    }
    attached = true;
    cli_pid = cli;
    cli_start = cli > 0 ? proc_start_ticks(cli) : 0;
    start_watchdog();
    if (!watchdog_running && cli > 0) {
        set_err(err, errcap, "cannot start the watchdog thread", EAGAIN);
        detach_locked();
        rc = -EAGAIN;
        goto out;
    }
    if (err && errcap)
        snprintf(err, errcap, "%zu call sites", patched);
out:
    ftp_real.real_pthread_mutex_unlock(&attach_lock);
    t->guard--;
    return rc;
#endif
}

/* With attach_lock held. */
static int detach_locked(void)
{
    if (!attached)
        return -ENOENT;
    int rc = ftp_got_restore(NULL);
    atomic_store(&ftp_state.recording, 0);
    /* Threads blocked in a hook are stale from here: what they saw is not written. */
    atomic_fetch_add(&ftp_state.generation, 1);
    /* Threads still running recorder code of this session finish it first, however long they were
     * preempted in it; any thread that enters from now on finds itself stale and touches nothing. */
    ftp_busy_quiesce();
    ftp_session_finish();
    void *map = ftp_state.map;
    size_t size = ftp_state.map_size;
    if (map) {
        /* msync is not needed for MAP_SHARED. The pages are replaced, not unmapped: hdr, map, control
         * and the in-flight slots keep pointing at readable memory, so no hook ever finds them NULL. */
        void *p = mmap(map, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
                       -1, 0);
        if (p == map) {
            reserve = map;
            reserve_size = size;
        } else {
            /* Cannot happen short of running out of mappings; the file stays mapped (and finished). */
            ftp_warn("detach: the recording's range could not be replaced; it stays mapped", NULL, NULL);
        }
    }
    attached = false;
    return rc;
}

EXPORT int ftprof_detach(void);
int ftprof_detach(void)
{
    if (!ftp_real.real_pthread_mutex_lock)
        return -ENOENT;
    struct ftp_thread *t = &ftp_tls;
    t->guard++;
    ftp_real.real_pthread_mutex_lock(&attach_lock);
    bool join = watchdog_running;
    atomic_store(&watchdog_stop, 1);
    int rc = detach_locked();
    watchdog_running = false;
    ftp_real.real_pthread_mutex_unlock(&attach_lock);
    if (join)
        pthread_join(watchdog, NULL);
    t->guard--;
    return rc;
}

/* For the tests: the patched slots, as (slot, old value, hook) triples; returns how many. */
EXPORT size_t ftprof_attach_got(uint64_t *out, size_t cap_triples);
size_t ftprof_attach_got(uint64_t *out, size_t cap_triples)
{
    struct ftp_got_entry e[256];
    size_t n = ftp_got_list(e, cap_triples < 256 ? cap_triples : 256);
    for (size_t i = 0; i < n; i++) {
        out[3 * i] = e[i].slot;
        out[3 * i + 1] = e[i].old;
        out[3 * i + 2] = e[i].hook;
    }
    return n;
}
