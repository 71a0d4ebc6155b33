/* The slots that the test extensions needing no GIL share (handshake.c, soak.c): multi-phase init with
 * Py_mod_gil = Py_MOD_GIL_NOT_USED wherever the interpreter knows that slot, so that importing one leaves
 * a free-threaded CPython's GIL off. ready_multi.c spells its own declaration out: that declaration is
 * what test_ready.py checks. */
#ifndef FTPROF_TEST_NOGIL_MODULE_H
#define FTPROF_TEST_NOGIL_MODULE_H

#include <Python.h>

static PyModuleDef_Slot nogil_module_slots[] = {
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

#endif
