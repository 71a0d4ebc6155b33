/* ftprof_soak.run(threads, seconds, report_every[, inside, outside, timed_every]): `threads` native
 * threads take one pthread mutex in turn as fast as they can, `inside` and `outside` loop iterations of
 * work in and out of it, and every `timed_every`-th turn (0: never) also wait on a semaphore nobody
 * posts with a deadline already past (a wait the recorder sees every time, timing out at once), for `seconds`; every `report_every`
 * seconds the calling thread prints {"t": S, "ops": N} (acquisitions so far) on stdout. Returns the
 * total number of acquisitions. The soak benchmark (tools/soak) runs it for minutes at hundreds of
 * thousands of contended lock calls a second; throughput with and without the recorder gives the
 * overhead, and no Python frame is involved, so the recorder's cost is all there is to see. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "nogil_module.h"

static pthread_mutex_t soak_mutex = PTHREAD_MUTEX_INITIALIZER;
static _Atomic long soak_ops;
static _Atomic int soak_stop;
static volatile unsigned long soak_shared;
static int soak_inside = 50, soak_outside = 200, soak_timed_every = 0;
static sem_t soak_sem; /* stays 0: a timed wait on it with a deadline already past gives up at once */

static void *soak_worker(void *arg)
{
    (void)arg;
    unsigned long local = 0, k = 0;
    const struct timespec past = {0, 0};
    while (!atomic_load_explicit(&soak_stop, memory_order_relaxed)) {
        /* A wait that always happens, however the threads are scheduled: the semaphore is never posted,
         * so the try fails, the recorder records the wait, and it times out at once. */
        if (soak_timed_every && ++k % (unsigned long)soak_timed_every == 0)
            sem_timedwait(&soak_sem, &past);
        pthread_mutex_lock(&soak_mutex);
        for (int i = 0; i < soak_inside; i++)
            soak_shared += (unsigned long)i;
        pthread_mutex_unlock(&soak_mutex);
        for (int i = 0; i < soak_outside; i++)
            local += (unsigned long)i * 7;
        atomic_fetch_add_explicit(&soak_ops, 1, memory_order_relaxed);
    }
    return (void *)local;
}

static double soak_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static PyObject *soak_run(PyObject *self, PyObject *args)
{
    (void)self;
    int threads;
    double seconds, every;
    soak_inside = 50, soak_outside = 200, soak_timed_every = 0;
    if (!PyArg_ParseTuple(args, "idd|iii", &threads, &seconds, &every, &soak_inside, &soak_outside, &soak_timed_every))
        return NULL;
    if (threads < 1 || threads > 64)
        return PyErr_Format(PyExc_ValueError, "threads must be 1..64");
    pthread_t tid[64];
    sem_init(&soak_sem, 0, 0);
    atomic_store(&soak_stop, 0);
    atomic_store(&soak_ops, 0);
    int n = 0;
    Py_BEGIN_ALLOW_THREADS
    for (; n < threads; n++)
        if (pthread_create(&tid[n], NULL, soak_worker, NULL) != 0)
            break;
    double start = soak_now(), next = start + every;
    for (;;) {
        double now = soak_now();
        if (now - start >= seconds)
            break;
        double until = next < start + seconds ? next : start + seconds;
        struct timespec ts = {.tv_sec = (time_t)(until - now), .tv_nsec = (long)((until - now - (double)(time_t)(until - now)) * 1e9)};
        nanosleep(&ts, NULL);
        if (soak_now() >= next) {
            printf("{\"t\": %.3f, \"ops\": %ld}\n", soak_now() - start, atomic_load(&soak_ops));
            fflush(stdout);
            next += every;
        }
    }
    atomic_store(&soak_stop, 1);
    for (int i = 0; i < n; i++)
        pthread_join(tid[i], NULL);
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(atomic_load(&soak_ops));
}

static PyMethodDef soak_methods[] = {
    {"run", soak_run, METH_VARARGS, "run(threads, seconds, report_every[, inside, outside, timed_every]) -> acquisitions"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef soak_module = {PyModuleDef_HEAD_INIT, "ftprof_soak", NULL, 0, soak_methods, nogil_module_slots};

PyMODINIT_FUNC PyInit_ftprof_soak(void) { return PyModuleDef_Init(&soak_module); }
