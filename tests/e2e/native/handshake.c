/* ftprof_handshake.run(n): exactly n contended pthread_mutex_lock calls by the calling thread.
 *
 * A helper thread takes the mutex, lets the caller try it, and releases it only once the mutex word
 * says a waiter sleeps in the kernel (glibc's normal mutex goes 0 -> 1 -> 2 when someone waits). So
 * every one of the caller's n locks blocks, and none of the helper's does: tests can check that the
 * recorder's recorded plus dropped events add up to exactly n. The two threads signal each other
 * through eventfds, which no recorder hook sees, so the handshake adds no other waits of its own.
 * ftprof_handshake.caller_cpu_ns() gives the calling thread's CPU time in the last run: apart from
 * two eventfd syscalls and the futex, that is the recorder's waiter-side cost, free of scheduling noise. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <sched.h>
#include <link.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "nogil_module.h"

struct handshake_state {
    pthread_mutex_t mutex;
    long rounds;
    int held_fd;  /* helper -> caller: I hold the mutex */
    int taken_fd; /* caller -> helper: I got it and let it go */
};

static long long handshake_caller_cpu_ns;

static int handshake_signal(int fd)
{
    uint64_t one = 1;
    return write(fd, &one, sizeof one) == sizeof one ? 0 : -1;
}

static int handshake_wait(int fd)
{
    uint64_t v;
    for (;;) {
        ssize_t r = read(fd, &v, sizeof v);
        if (r == sizeof v)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

static void *handshake_helper(void *arg)
{
    struct handshake_state *st = arg;
    for (long i = 1; i <= st->rounds; i++) {
        pthread_mutex_lock(&st->mutex);
        handshake_signal(st->held_fd);
        while (__atomic_load_n(&st->mutex.__data.__lock, __ATOMIC_ACQUIRE) != 2)
            sched_yield();
        pthread_mutex_unlock(&st->mutex);
        handshake_wait(st->taken_fd);
    }
    return NULL;
}

static long long handshake_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void handshake_caller(struct handshake_state *st)
{
    long long t0 = handshake_thread_cpu_ns();
    for (long i = 1; i <= st->rounds; i++) {
        handshake_wait(st->held_fd);
        pthread_mutex_lock(&st->mutex);
        pthread_mutex_unlock(&st->mutex);
        handshake_signal(st->taken_fd);
    }
    handshake_caller_cpu_ns = handshake_thread_cpu_ns() - t0;
}

static PyObject *handshake_run(PyObject *self, PyObject *args)
{
    (void)self;
    long n;
    if (!PyArg_ParseTuple(args, "l", &n))
        return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "n must be >= 0");
        return NULL;
    }
    struct handshake_state st = {.mutex = PTHREAD_MUTEX_INITIALIZER, .rounds = n,
                                 .held_fd = eventfd(0, EFD_CLOEXEC), .taken_fd = eventfd(0, EFD_CLOEXEC)};
    if (st.held_fd < 0 || st.taken_fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto fail;
    }
    pthread_t helper;
    int err = pthread_create(&helper, NULL, handshake_helper, &st);
    if (err) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        goto fail;
    }
    /* Detached like any extension that blocks in native code (sqlite3 does the same). */
    Py_BEGIN_ALLOW_THREADS
    handshake_caller(&st);
    pthread_join(helper, NULL);
    Py_END_ALLOW_THREADS
    pthread_mutex_destroy(&st.mutex);
    close(st.held_fd);
    close(st.taken_fd);
    return PyLong_FromLong(n);
fail:
    if (st.held_fd >= 0)
        close(st.held_fd);
    if (st.taken_fd >= 0)
        close(st.taken_fd);
    return NULL;
}

static PyObject *handshake_caller_cpu(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyLong_FromLongLong(handshake_caller_cpu_ns);
}

/* relock(n): n pthread_mutex_lock calls on an error-checking mutex the caller already holds. Each one
 * fails the recorder's trylock and returns EDEADLK at once, so it goes through the recorder's whole
 * contended path without ever sleeping: the per-event cost free of wake-up latency. Returns the
 * nanoseconds per call. */
static PyObject *handshake_relock(PyObject *self, PyObject *args)
{
    (void)self;
    long n;
    if (!PyArg_ParseTuple(args, "l", &n))
        return NULL;
    pthread_mutexattr_t attr;
    pthread_mutex_t m;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&m, &attr);
    pthread_mutexattr_destroy(&attr);
    pthread_mutex_lock(&m);
    struct timespec a, b;
    long deadlocks = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++)
        deadlocks += pthread_mutex_lock(&m) == EDEADLK;
    clock_gettime(CLOCK_MONOTONIC, &b);
    pthread_mutex_unlock(&m);
    pthread_mutex_destroy(&m);
    if (deadlocks != n) {
        PyErr_SetString(PyExc_RuntimeError, "relocking an error-checking mutex did not fail with EDEADLK");
        return NULL;
    }
    double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / (double)(n ? n : 1);
    return PyFloat_FromDouble(ns);
}

/* uncontended(n, parked): n rounds of uncontended releases with `parked` other threads blocked for the
 * whole run (each in pthread_cond_wait on a condition nobody signals until the end). One round is a
 * pthread_mutex lock/unlock, a sem_post/sem_wait pair on a heap semaphore and a pthread_cond_signal of a
 * condition nobody waits on: the release paths a recorder looks its waiters up on, finding nobody.
 * Returns the nanoseconds per round. */
struct handshake_parked {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int release;
    int asleep;
};

static void *handshake_park(void *arg)
{
    struct handshake_parked *p = arg;
    pthread_mutex_lock(&p->mutex);
    p->asleep++;
    while (!p->release)
        pthread_cond_wait(&p->cond, &p->mutex);
    pthread_mutex_unlock(&p->mutex);
    return NULL;
}

static PyObject *handshake_uncontended(PyObject *self, PyObject *args)
{
    (void)self;
    long n;
    int parked;
    if (!PyArg_ParseTuple(args, "li", &n, &parked) || parked < 0 || parked > 1024)
        return PyErr_Occurred() ? NULL : (PyErr_SetString(PyExc_ValueError, "0 <= parked <= 1024"), NULL);
    struct handshake_parked p = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    pthread_t *threads = calloc((size_t)parked + 1, sizeof *threads);
    if (!threads)
        return PyErr_NoMemory();
    int started = 0;
    for (; started < parked; started++)
        if (pthread_create(&threads[started], NULL, handshake_park, &p) != 0)
            break;
    /* Every parked thread is in pthread_cond_wait once it counted itself and let go of the mutex. */
    for (;;) {
        pthread_mutex_lock(&p.mutex);
        int asleep = p.asleep;
        pthread_mutex_unlock(&p.mutex);
        if (asleep == started)
            break;
        usleep(1000);
    }
    usleep(20000);
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t idle = PTHREAD_COND_INITIALIZER;
    sem_t sem;
    sem_init(&sem, 0, 0);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        pthread_mutex_lock(&m);
        pthread_mutex_unlock(&m);
        sem_post(&sem);
        sem_wait(&sem);
        pthread_cond_signal(&idle);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    sem_destroy(&sem);
    pthread_mutex_lock(&p.mutex);
    p.release = 1;
    pthread_cond_broadcast(&p.cond);
    pthread_mutex_unlock(&p.mutex);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    if (started < parked) {
        PyErr_SetString(PyExc_RuntimeError, "could not start the parked threads");
        return NULL;
    }
    double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / (double)(n ? n : 1);
    return PyFloat_FromDouble(ns);
}

/* hold_loader(seconds): holds glibc's dl_load_write_lock for that long, the way any dl_iterate_phdr
 * callback does while it runs (a C++ exception being thrown, an unwinder, a profiler): the callback
 * sleeps. loader_held() says whether it is being held now. */
static atomic_int handshake_loader_held;

static int handshake_hold_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)info;
    (void)size;
    double seconds = *(const double *)data;
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    atomic_store(&handshake_loader_held, 1);
    nanosleep(&ts, NULL);
    atomic_store(&handshake_loader_held, 0);
    return 1; /* one object is enough */
}

static PyObject *handshake_hold_loader(PyObject *self, PyObject *args)
{
    (void)self;
    double seconds;
    if (!PyArg_ParseTuple(args, "d", &seconds))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    dl_iterate_phdr(handshake_hold_cb, &seconds);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *handshake_loader_is_held(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyBool_FromLong(atomic_load(&handshake_loader_held));
}

static PyMethodDef handshake_methods[] = {
    {"hold_loader", handshake_hold_loader, METH_VARARGS, "hold_loader(seconds): hold the loader's lock."},
    {"loader_held", handshake_loader_is_held, METH_NOARGS, "Is hold_loader holding it now?"},
    {"uncontended", handshake_uncontended, METH_VARARGS,
     "uncontended(n, parked): ns per round of uncontended releases while `parked` threads block."},
    {"relock", handshake_relock, METH_VARARGS, "relock(n): n failing relocks; ns per call."},
    {"run", handshake_run, METH_VARARGS, "run(n): n contended pthread_mutex_lock calls; returns n."},
    {"caller_cpu_ns", handshake_caller_cpu, METH_NOARGS, "CPU time of the calling thread in the last run."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef handshake_def = {
    PyModuleDef_HEAD_INIT, "ftprof_handshake", "Exactly counted pthread mutex contention.", 0,
    handshake_methods, nogil_module_slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_ftprof_handshake(void)
{
    return PyModuleDef_Init(&handshake_def);
}
