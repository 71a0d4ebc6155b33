/* An extension module that declares free-threading support with multi-phase init
 * (Py_mod_gil = Py_MOD_GIL_NOT_USED): the readiness report must show it as not using the GIL. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *ready_multi_square(PyObject *self, PyObject *arg)
{
    (void)self;
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred())
        return NULL;
    return PyLong_FromLong(v * v);
}

static PyMethodDef ready_multi_methods[] = {
    {"square", ready_multi_square, METH_O, "Squares an integer."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot ready_multi_slots[] = {
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef ready_multi_def = {
    PyModuleDef_HEAD_INIT, "ftprof_ready_multi", "Declares Py_MOD_GIL_NOT_USED.", 0, ready_multi_methods,
    ready_multi_slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_ftprof_ready_multi(void) { return PyModuleDef_Init(&ready_multi_def); }
