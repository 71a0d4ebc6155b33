/* An extension module that does not declare Py_mod_gil: importing it into a free-threaded CPython
 * turns the GIL back on, which the recorder must notice and name. Single-phase init on purpose, the
 * form most unported extensions still use. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *gilmod_add(PyObject *self, PyObject *args)
{
    (void)self;
    long a, b;
    if (!PyArg_ParseTuple(args, "ll", &a, &b))
        return NULL;
    return PyLong_FromLong(a + b);
}

static PyMethodDef gilmod_methods[] = {
    {"add", gilmod_add, METH_VARARGS, "Adds two integers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef gilmod_def = {
    PyModuleDef_HEAD_INIT, "ftprof_gilmod", "Needs the GIL (declares nothing).", -1, gilmod_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_ftprof_gilmod(void)
{
    return PyModule_Create(&gilmod_def);
}
