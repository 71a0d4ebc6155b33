/* Stress for the recorder's hooks under ThreadSanitizer: many threads hammering a few mutexes, an
 * rwlock, condition variables and sem_post/sem_wait ping-pong pairs, with invariants checked at the end.
 *
 *   stress [threads] [iterations]
 *
 * Built with -DSTRESS_EMBED_PYTHON and linked against libpython (exported with -rdynamic, so the
 * recorder sees a Python process and records), the same threads also attach to the interpreter and
 * contend on threading.Lock objects and a shared dict between native rounds, so every recorder path
 * (native waits, PyMutex parks, holders, chunk hand-over between exiting threads) runs concurrently.
 * Exit status 0 when every invariant holds. */
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
    long iterations;
    struct stress_pair *pair;
    bool pinger;
};

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

/* Producer/consumer on one condition variable: even threads put tokens, odd ones take them. */
static void stress_cond_round(int index, long i)
{
    (void)i;
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
    for (long i = 0; i < a->iterations; i++) {
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

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 8;
    long iterations = argc > 2 ? atol(argv[2]) : 2000;
    if (threads < 2 || threads % 2 || iterations < 1) {
        fprintf(stderr, "usage: stress [even threads >= 2] [iterations >= 1]\n");
        return 2;
    }
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
    for (int i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);

    int bad = 0;
    long sum = 0;
    for (int m = 0; m < STRESS_MUTEXES; m++)
        sum += stress_counter[m];
    if (sum != (long)threads * iterations) {
        fprintf(stderr, "stress: mutex counters sum to %ld, expected %ld\n", sum, (long)threads * iterations);
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
