/* An extension module with single-phase init that declares free-threading support the way such modules
 * can: PyUnstable_Module_SetGIL(module, Py_MOD_GIL_NOT_USED) from its init function. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *ready_single_twice(PyObject *self, PyObject *arg)
{
    (void)self;
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred())
        return NULL;
    return PyLong_FromLong(2 * v);
}

static PyMethodDef ready_single_methods[] = {
    {"twice", ready_single_twice, METH_O, "Doubles an integer."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef ready_single_def = {
    PyModuleDef_HEAD_INIT, "ftprof_ready_single", "Single-phase, declares support.", -1, ready_single_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_ftprof_ready_single(void)
{
    PyObject *m = PyModule_Create(&ready_single_def);
#ifdef Py_GIL_DISABLED
    if (m && PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED) < 0) {
        Py_DECREF(m);
        return NULL;
    }
#endif
    return m;
}
