/* ftprof_handshake.run(n): exactly n contended pthread_mutex_lock calls by the calling thread.
 *
 * A helper thread takes the mutex, lets the caller try it, and releases it only once the mutex word
 * says a waiter sleeps in the kernel (glibc's normal mutex goes 0 -> 1 -> 2 when someone waits). So
 * every one of the caller's n locks blocks, and none of the helper's does: tests can check that the
 * recorder's recorded plus dropped events add up to exactly n. The flags are plain atomics polled with
 * sched_yield, so the handshake itself adds no other lock, condition or semaphore waits. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

struct handshake_state {
    pthread_mutex_t mutex;
    long rounds;
    atomic_long held;   /* round the helper holds the mutex for */
    atomic_long taken;  /* last round the caller got the mutex in */
};

static void handshake_wait_for(atomic_long *v, long want)
{
    while (atomic_load_explicit(v, memory_order_acquire) != want)
        sched_yield();
}

static void *handshake_helper(void *arg)
{
    struct handshake_state *st = arg;
    for (long i = 1; i <= st->rounds; i++) {
        pthread_mutex_lock(&st->mutex);
        atomic_store_explicit(&st->held, i, memory_order_release);
        while (__atomic_load_n(&st->mutex.__data.__lock, __ATOMIC_ACQUIRE) != 2)
            sched_yield();
        pthread_mutex_unlock(&st->mutex);
        handshake_wait_for(&st->taken, i);
    }
    return NULL;
}

static void handshake_caller(struct handshake_state *st)
{
    for (long i = 1; i <= st->rounds; i++) {
        handshake_wait_for(&st->held, i);
        pthread_mutex_lock(&st->mutex);
        pthread_mutex_unlock(&st->mutex);
        atomic_store_explicit(&st->taken, i, memory_order_release);
    }
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
    struct handshake_state st = {.mutex = PTHREAD_MUTEX_INITIALIZER, .rounds = n};
    atomic_init(&st.held, 0);
    atomic_init(&st.taken, 0);
    pthread_t helper;
    int err = pthread_create(&helper, NULL, handshake_helper, &st);
    if (err) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    /* Detached like any extension that blocks in native code (sqlite3 does the same). */
    Py_BEGIN_ALLOW_THREADS
    handshake_caller(&st);
    pthread_join(helper, NULL);
    Py_END_ALLOW_THREADS
    pthread_mutex_destroy(&st.mutex);
    return PyLong_FromLong(n);
}

static PyMethodDef handshake_methods[] = {
    {"run", handshake_run, METH_VARARGS, "run(n): n contended pthread_mutex_lock calls; returns n."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot handshake_slots[] = {
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef handshake_def = {
    PyModuleDef_HEAD_INIT, "ftprof_handshake", "Exactly counted pthread mutex contention.", 0,
    handshake_methods, handshake_slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_ftprof_handshake(void)
{
    return PyModuleDef_Init(&handshake_def);
}
