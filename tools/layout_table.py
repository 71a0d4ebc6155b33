"""Prints the _Py_DebugOffsets table of the interpreter that runs it, for the recorder's layout layer
(preload/layout.c) as tests/e2e/native/layout_dump.c reads it: line 1 the table's first 160 u64 words
(more than any version's table), line 2 the address of PyType_Type and the bytes of the static type
objects the recorder checks its layout against (type, code, str, bytes) in hex.
Run by tools/layout-fingerprint and tests/e2e/test_layout.py; needs only ctypes."""
import ctypes

base = ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, "_PyRuntime"))
print(" ".join(str(w) for w in (ctypes.c_uint64 * 160).from_address(base)))
types = (type, type(compile("", "", "exec")), str, bytes)
# type.__sizeof__ of a static type is sizeof(PyTypeObject): exactly the object, nothing past it.
print(id(type), *(ctypes.string_at(id(t), type.__sizeof__(t)).hex() for t in types))
