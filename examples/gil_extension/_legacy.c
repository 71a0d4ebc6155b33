/* A small extension module written before free-threaded CPython existed.
 *
 * It keeps its call count in a plain C global, which is only safe while the GIL serializes all
 * callers. It also declares nothing about the GIL, so a free-threaded 3.13 interpreter that imports
 * it turns the GIL back on for the whole process (and warns once on stderr).
 *
 * Built twice by build.py from this one file:
 *   _legacy       as it was: no Py_mod_gil slot, plain counter.
 *   _threadsafe   with -DLEGACY_THREAD_SAFE: the counter becomes an atomic and the module declares
 *                 Py_mod_gil = Py_MOD_GIL_NOT_USED, so importing it leaves the GIL off.
 * The order matters: declare Py_MOD_GIL_NOT_USED only once the module is safe without the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#ifdef LEGACY_THREAD_SAFE
#include <stdatomic.h>
#define MODULE_NAME "_threadsafe"
#define MODULE_INIT PyInit__threadsafe
static atomic_ullong calls;
static unsigned long long calls_add_one(void) { return atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed) + 1; }
static unsigned long long calls_read(void) { return atomic_load_explicit(&calls, memory_order_relaxed); }
#else
#define MODULE_NAME "_legacy"
#define MODULE_INIT PyInit__legacy
static unsigned long long calls;
static unsigned long long calls_add_one(void) { return ++calls; }
static unsigned long long calls_read(void) { return calls; }
#endif

/* FNV-1a over the buffer, `rounds` times: CPU work with no Python objects touched. */
static PyObject *legacy_checksum(PyObject *module, PyObject *args)
{
    (void)module;
    Py_buffer buf;
    int rounds = 1;
    if (!PyArg_ParseTuple(args, "y*|i:checksum", &buf, &rounds))
        return NULL;
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = buf.buf;
    for (int r = 0; r < rounds; r++)
        for (Py_ssize_t i = 0; i < buf.len; i++)
            h = (h ^ p[i]) * 1099511628211ull;
    PyBuffer_Release(&buf);
    calls_add_one();
    return PyLong_FromUnsignedLongLong(h);
}

static PyObject *legacy_calls(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyLong_FromUnsignedLongLong(calls_read());
}

static PyMethodDef legacy_methods[] = {
    {"checksum", legacy_checksum, METH_VARARGS, "checksum(data, rounds=1) -> int: FNV-1a of data, repeated."},
    {"calls", legacy_calls, METH_NOARGS, "calls() -> int: how many times checksum() ran."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot legacy_slots[] = {
#ifdef LEGACY_THREAD_SAFE
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef legacy_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = MODULE_NAME,
    .m_doc = "Checksums; an ftprof example of an extension that re-enables the GIL.",
    .m_size = 0,
    .m_methods = legacy_methods,
    .m_slots = legacy_slots,
};

PyMODINIT_FUNC MODULE_INIT(void)
{
    return PyModuleDef_Init(&legacy_module);
}
