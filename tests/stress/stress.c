/* Stress for the recorder's hooks under ThreadSanitizer: many threads hammering a few mutexes, an
 * rwlock, condition variables and sem_post/sem_wait ping-pong pairs, with invariants checked at the end.
 *
 *   stress [threads] [iterations] [attach LIBFTPROF DIR|- CYCLES]
 *
 * Built with -DSTRESS_EMBED_PYTHON and linked against libpython (exported with -rdynamic, so the
 * recorder sees a Python process and records), the same threads also attach to the interpreter and
 * contend on threading.Lock objects and a shared dict between native rounds, so every recorder path
 * (native waits, PyMutex parks, holders, chunk hand-over between exiting threads) runs concurrently.
 *
 * With `attach`, the recorder is not preloaded: the main thread dlopen()s it and, while the workers run
 * on (until the cycles are done, then to the end of their current round of 64 iterations, all together),
 * attaches and detaches CYCLES times, each time into a new file in DIR, with windows of 0 to 2 ms.
 * After each detach the file must be finished and every record in it must lie inside its own window: a
 * thread that was preempted inside a hook across a detach must not write into the next recording, which
 * is mapped at the same address. Two child processes keep every core busy meanwhile, and the recorder
 * is asked (a test flag of ftprof_attach) to stop for 40 ms inside some hooks before writing, as a
 * preempted thread would. DIR `-`: a temporary directory, removed at the end.
 * Exit status 0 when every invariant holds. */
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ftprof/format.h"
#ifdef STRESS_EMBED_PYTHON
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#endif
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STRESS_MUTEXES 3

static pthread_mutex_t stress_mutex[STRESS_MUTEXES] = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
                                                       PTHREAD_MUTEX_INITIALIZER};
static long stress_counter[STRESS_MUTEXES];
static pthread_rwlock_t stress_rwlock = PTHREAD_RWLOCK_INITIALIZER;
static long stress_rw_value;
static pthread_mutex_t stress_cond_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stress_cond = PTHREAD_COND_INITIALIZER;
static long stress_tokens;
static atomic_long stress_rw_torn;

struct stress_pair {
    sem_t ping, pong;
    long rounds_done;
};

struct stress_args {
    int index;
    long iterations; /* attach mode: the iterations done, once the thread returns */
    struct stress_pair *pair;
    bool pinger;
};

/* Attach mode: the workers stop together at a round boundary once the cycles are over, so that every
 * pair (condition producer and consumer, semaphore pinger and ponger) has done the same number. */
#define STRESS_ROUND 64
static bool stress_until_stopped;
static atomic_int stress_stop;
static pthread_barrier_t stress_round_barrier;
static bool stress_round_verdict;

static void stress_mutex_round(int index, long i)
{
    int m = (int)((index + i) % STRESS_MUTEXES);
    pthread_mutex_lock(&stress_mutex[m]);
    stress_counter[m]++;
    pthread_mutex_unlock(&stress_mutex[m]);
}

static void stress_rwlock_round(long i)
{
    if (i % 8 == 0) {
        pthread_rwlock_wrlock(&stress_rwlock);
        stress_rw_value++;
        stress_rw_value++; /* readers must never see an odd value */
        pthread_rwlock_unlock(&stress_rwlock);
    } else {
        pthread_rwlock_rdlock(&stress_rwlock);
        if (stress_rw_value & 1)
            atomic_fetch_add(&stress_rw_torn, 1);
        pthread_rwlock_unlock(&stress_rwlock);
    }
}

/* Producer/consumer on one condition variable: even threads put tokens, odd ones take them.
 * STRESS_NO_COND=1 leaves it out: attached under TSan, the recorder's condition hooks call glibc's
 * versioned pthread_cond_wait (GLIBC_2.3.2) past TSan's interceptor, which then never sees the wait
 * release and retake the mutex and reports a double lock that is not there. */
static bool stress_no_cond;

static void stress_cond_round(int index, long i)
{
    (void)i;
    if (stress_no_cond)
        return;
    pthread_mutex_lock(&stress_cond_mutex);
    if (index % 2 == 0) {
        stress_tokens++;
        pthread_cond_signal(&stress_cond);
    } else {
        while (stress_tokens == 0)
            pthread_cond_wait(&stress_cond, &stress_cond_mutex);
        stress_tokens--;
    }
    pthread_mutex_unlock(&stress_cond_mutex);
}

static void stress_sem_round(struct stress_args *a)
{
    if (a->pinger) {
        sem_post(&a->pair->ping);
        while (sem_wait(&a->pair->pong) == -1 && errno == EINTR)
            ;
    } else {
        while (sem_wait(&a->pair->ping) == -1 && errno == EINTR)
            ;
        a->pair->rounds_done++;
        sem_post(&a->pair->pong);
    }
}

#ifdef STRESS_EMBED_PYTHON
static PyObject *stress_py_round;

static int stress_python_round(void)
{
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallNoArgs(stress_py_round);
    int ok = r != NULL;
    if (!ok)
        PyErr_Print();
    Py_XDECREF(r);
    PyGILState_Release(g);
    return ok ? 0 : -1;
}
#endif

#ifdef STRESS_EMBED_PYTHON
static atomic_int stress_python_failures;
#endif

static void *stress_thread(void *arg)
{
    struct stress_args *a = arg;
    for (long i = 0; stress_until_stopped || i < a->iterations; i++) {
        if (stress_until_stopped && i % STRESS_ROUND == 0) {
            /* One thread reads the flag between two barriers, so that all act on the same verdict. */
            if (pthread_barrier_wait(&stress_round_barrier) == PTHREAD_BARRIER_SERIAL_THREAD)
                stress_round_verdict = atomic_load(&stress_stop);
            pthread_barrier_wait(&stress_round_barrier);
            if (stress_round_verdict) {
                a->iterations = i;
                break;
            }
        }
        stress_mutex_round(a->index, i);
        stress_rwlock_round(i);
        stress_cond_round(a->index, i);
        stress_sem_round(a);
#ifdef STRESS_EMBED_PYTHON
        if (i % 16 == 0 && stress_python_round() != 0)
            atomic_fetch_add(&stress_python_failures, 1);
#endif
    }
    return NULL;
}

#ifdef STRESS_EMBED_PYTHON
static const char stress_py_source[] =
    "import threading, time\n"
    "shared_lock = threading.Lock()\n"
    "shared_dict = {}\n"
    "rounds = [0]\n"
    "def contend():\n"
    "    with shared_lock:\n"
    "        rounds[0] += 1\n"
    "        time.sleep(0.0001)\n"
    "    for k in range(50):\n"
    "        shared_dict[k] = shared_dict.get(k, 0) + 1\n";

static int stress_python_init(void)
{
    Py_Initialize();
    PyObject *main = PyImport_AddModule("__main__");
    PyObject *globals = PyModule_GetDict(main);
    PyObject *r = PyRun_String(stress_py_source, Py_file_input, globals, globals);
    if (!r) {
        PyErr_Print();
        return -1;
    }
    Py_DECREF(r);
    stress_py_round = PyDict_GetItemString(globals, "contend");
    Py_XINCREF(stress_py_round);
    /* Worker threads attach with PyGILState_Ensure; the main thread lets go of the interpreter. */
    PyEval_SaveThread();
    return stress_py_round ? 0 : -1;
}
#endif

typedef int (*stress_attach_fn)(const char *, unsigned long long, int, int, char *, size_t);
typedef int (*stress_detach_fn)(void);
/* ftprof_attach's flags: record a process without CPython too; and stop 40 ms inside some hooks before
 * writing, as a thread preempted there would */
#define STRESS_ATTACH_FLAGS (2 | 4)

/* Every record of a finished recording lies inside its window: waits and holders by their times, and
 * nothing claimed past what the header says was used. Returns the waits, or -1 (with a message). */
static long stress_check_window(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || (size_t)st.st_size < FTP_HEADER_SIZE) {
        fprintf(stderr, "stress: %s: cannot read the recording\n", path);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    uint8_t *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return -1;
    const struct ftp_file_header *h = (const void *)m;
    long waits = 0;
    const char *bad = NULL;
    if (!(h->flags & FTP_FLAG_FINISHED) || !(h->flags & FTP_FLAG_ATTACHED) || h->end_ns < h->start_ns)
        bad = "not finished as an attached window";
    for (uint32_t c = 0; !bad && c < h->chunks_used; c++) {
        size_t off = FTP_HEADER_SIZE + (size_t)c * h->chunk_size;
        if (off + h->chunk_size > (size_t)st.st_size) {
            bad = "chunks used past the file's end";
            break;
        }
        size_t o = 0;
        while (o + sizeof(struct ftp_record) <= h->chunk_size) {
            const struct ftp_record *r = (const void *)(m + off + o);
            if (r->size == 0 || r->size % 8 || o + r->size > h->chunk_size)
                break;
            if (r->type == FTP_REC_WAIT) {
                const struct ftp_rec_wait *w = (const void *)r;
                if (w->start_ns < h->start_ns || w->end_ns > h->end_ns || w->end_ns < w->start_ns)
                    bad = "a wait outside the recording's window";
                waits++;
            } else if (r->type == FTP_REC_HOLDER) {
                const struct ftp_rec_holder *hr = (const void *)r;
                if (hr->time_ns < h->start_ns || hr->time_ns > h->end_ns)
                    bad = "a holder outside the recording's window";
            }
            o += r->size;
        }
        /* Past a chunk's last record the file is as it was created, all zeros: a record written there
         * came from a thread that still believed it owned this chunk in an earlier recording. */
        for (; !bad && o < h->chunk_size; o++)
            if (m[off + o])
                bad = "bytes past a chunk's last record (a write from an earlier recording)";
    }
    munmap(m, (size_t)st.st_size);
    if (bad) {
        fprintf(stderr, "stress: %s: %s\n", path, bad);
        return -1;
    }
    return waits;
}

/* Another process spinning on each core while the cycles run: preemptions inside hooks are ordinary. */
#define STRESS_BUSY_PROCESSES 2
static pid_t stress_busy[STRESS_BUSY_PROCESSES];

static void stress_busy_start(void)
{
    pid_t parent = getpid();
    for (int i = 0; i < STRESS_BUSY_PROCESSES; i++)
        if ((stress_busy[i] = fork()) == 0) {
            /* Never outlive the test: killed with it (a sanitizer that halts it skips stress_busy_stop),
             * and in any case after 10 minutes. */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(0);
            alarm(600);
            for (volatile unsigned long spin = 0;; spin++)
                ;
        }
}

static void stress_busy_stop(void)
{
    for (int i = 0; i < STRESS_BUSY_PROCESSES; i++)
        if (stress_busy[i] > 0) {
            kill(stress_busy[i], SIGKILL);
            waitpid(stress_busy[i], NULL, 0);
        }
}

/* The attach/detach cycles, run by the main thread while the workers contend. */
static int stress_attach_cycles_in(const char *lib_path, const char *dir, long cycles)
{
    void *lib = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
    stress_attach_fn attach = lib ? (stress_attach_fn)dlsym(lib, "ftprof_attach") : NULL;
    stress_detach_fn detach = lib ? (stress_detach_fn)dlsym(lib, "ftprof_detach") : NULL;
    if (!attach || !detach) {
        fprintf(stderr, "stress: %s: %s\n", lib_path, lib ? "no ftprof_attach/ftprof_detach" : dlerror());
        return 1;
    }
    long waits = 0;
    for (long k = 0; k < cycles; k++) {
        char path[4200], err[256];
        snprintf(path, sizeof path, "%s/cycle-%ld.ftp", dir, k);
        int rc = attach(path, 1 << 20, STRESS_ATTACH_FLAGS, 0, err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "stress: attach %ld: %d (%s)\n", k, rc, err);
            return 1;
        }
        struct timespec window = {0, (k % 3) * 1000 * 1000};
        nanosleep(&window, NULL);
        if ((rc = detach()) != 0) {
            fprintf(stderr, "stress: detach %ld: %d\n", k, rc);
            return 1;
        }
        long n = stress_check_window(path);
        if (n < 0)
            return 1;
        waits += n;
        unlink(path);
    }
    if (waits == 0) {
        fprintf(stderr, "stress: %ld attached windows recorded no wait at all\n", cycles);
        return 1;
    }
    printf("stress: %ld attach/detach cycles, %ld waits, every record inside its own window\n", cycles, waits);
    return 0;
}

static int stress_attach_cycles(const char *lib_path, const char *dir_arg, long cycles)
{
    char dir[4096];
    bool own_dir = !strcmp(dir_arg, "-");
    if (own_dir) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/ftprof-stress-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            perror("stress: mkdtemp");
            return 1;
        }
    } else {
        snprintf(dir, sizeof dir, "%s", dir_arg);
    }
    int rc = stress_attach_cycles_in(lib_path, dir, cycles);
    if (own_dir)
        rmdir(dir); /* each recording was removed once checked; a failed one stays for a look */
    return rc;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 8;
    long iterations = argc > 2 ? atol(argv[2]) : 2000;
    bool attach_mode = argc == 7 && !strcmp(argv[3], "attach");
    if (threads < 2 || threads % 2 || iterations < 1 || (argc > 3 && !attach_mode)) {
        fprintf(stderr, "usage: stress [even threads >= 2] [iterations >= 1] [attach LIBFTPROF DIR CYCLES]\n");
        return 2;
    }
    stress_until_stopped = attach_mode;
    stress_no_cond = getenv("STRESS_NO_COND") && !strcmp(getenv("STRESS_NO_COND"), "1");
    if (attach_mode)
        pthread_barrier_init(&stress_round_barrier, NULL, (unsigned)threads);
#ifdef STRESS_EMBED_PYTHON
    if (stress_python_init() != 0)
        return 1;
#endif
    int pairs = threads / 2;
    struct stress_pair *pair = calloc((size_t)pairs, sizeof *pair);
    struct stress_args *args = calloc((size_t)threads, sizeof *args);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    if (!pair || !args || !tid)
        return 1;
    for (int p = 0; p < pairs; p++) {
        sem_init(&pair[p].ping, 0, 0);
        sem_init(&pair[p].pong, 0, 0);
    }
    for (int i = 0; i < threads; i++) {
        args[i] = (struct stress_args){.index = i, .iterations = iterations, .pair = &pair[i / 2],
                                       .pinger = i % 2 == 0};
        if (pthread_create(&tid[i], NULL, stress_thread, &args[i]) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    int bad = 0;
    if (attach_mode) {
        stress_busy_start();
        bad = stress_attach_cycles(argv[4], argv[5], atol(argv[6]));
        stress_busy_stop();
        atomic_store(&stress_stop, 1);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    if (attach_mode)
        iterations = args[0].iterations; /* all stopped at the same round */

    long sum = 0, expected = 0;
    for (int m = 0; m < STRESS_MUTEXES; m++)
        sum += stress_counter[m];
    for (int i = 0; i < threads; i++)
        expected += args[i].iterations;
    if (sum != expected) {
        fprintf(stderr, "stress: mutex counters sum to %ld, expected %ld\n", sum, expected);
        bad = 1;
    }
    if (atomic_load(&stress_rw_torn)) {
        fprintf(stderr, "stress: readers saw %ld torn writes\n", atomic_load(&stress_rw_torn));
        bad = 1;
    }
    if (stress_tokens != 0) {
        fprintf(stderr, "stress: %ld condition tokens left over\n", stress_tokens);
        bad = 1;
    }
    for (int p = 0; p < pairs; p++) {
        if (pair[p].rounds_done != iterations) {
            fprintf(stderr, "stress: semaphore pair %d did %ld rounds, expected %ld\n", p, pair[p].rounds_done,
                    iterations);
            bad = 1;
        }
        sem_destroy(&pair[p].ping);
        sem_destroy(&pair[p].pong);
    }
#ifdef STRESS_EMBED_PYTHON
    if (atomic_load(&stress_python_failures)) {
        fprintf(stderr, "stress: %d Python rounds failed\n", atomic_load(&stress_python_failures));
        bad = 1;
    }
    PyGILState_STATE g = PyGILState_Ensure();
    Py_XDECREF(stress_py_round);
    PyGILState_Release(g);
    /* No Py_Finalize: after PyEval_SaveThread the main thread would have to re-attach first, and a
     * clean interpreter shutdown is not what this test is about. */
#endif
    free(pair);
    free(args);
    free(tid);
    printf("stress: %d threads x %ld iterations: %s\n", threads, iterations, bad ? "FAILED" : "ok");
    return bad;
}
