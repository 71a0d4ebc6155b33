"""The recorder's layout layer (preload/layout.c) against each interpreter of the matrix: its word table
applied to the interpreter's own _Py_DebugOffsets must give the sizes that interpreter shows from Python
(object headers, type objects, strings, bytes, code objects), and a version it does not know gets no
layout at all rather than a guessed one."""
import json
import subprocess
import sys

import pytest

from conftest import NATIVE, ROOT, clean_env, compile_c

# Dumps _Py_DebugOffsets (the start of _PyRuntime) as u64 words, and the sizes Python itself reports.
DUMP = r"""
import ctypes, json, sys, sysconfig
base = ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, "_PyRuntime"))
words = (ctypes.c_uint64 * 160).from_address(base)
print(" ".join(str(w) for w in words))
def f(): pass
print(json.dumps({
    "object": object().__sizeof__(),                # sizeof(PyObject)
    "heaptype": type.__basicsize__,                 # sizeof(PyHeapTypeObject)
    "ascii": sys.getsizeof("") - 1,                 # sizeof(PyASCIIObject), plus its NUL
    "compact": sys.getsizeof("\u0100") - 2 * 2,     # sizeof(PyCompactUnicodeObject), one UCS-2 char and NUL
    "bytes": bytes.__basicsize__ - 1,               # offsetof(PyBytesObject, ob_sval): the size counts its NUL
    "code": type(f.__code__).__basicsize__,         # offsetof(PyCodeObject, co_code_adaptive)
    "version": list(sys.version_info[:2]),
    "ft": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
}))
"""


@pytest.fixture(scope="module")
def layout_dump(tmp_path_factory):
    out = tmp_path_factory.mktemp("layout") / "layout_dump"
    return compile_c([NATIVE / "layout_dump.c", ROOT / "preload" / "layout.c"], out,
                     flags=[f"-I{ROOT / 'preload'}", f"-I{ROOT / 'include'}"])


def run_dump(tool, words):
    p = subprocess.run([str(tool)], input="\n".join(str(w) for w in words), capture_output=True, text=True,
                       check=True)
    return json.loads(p.stdout)


def test_layout_matches_the_interpreter(any_python, layout_dump):
    p = subprocess.run([str(any_python), "-c", DUMP], capture_output=True, text=True, env=clean_env(), check=True)
    lines = p.stdout.splitlines()
    words = [int(w) for w in lines[0].split()]
    py = json.loads(lines[1])
    assert bytes(words[0].to_bytes(8, "little")) == b"xdebugpy"
    lay = run_dump(layout_dump, words)
    assert lay["known"], f"no layout for {any_python.label}"
    assert lay["minor"] == py["version"][1]
    assert lay["ob_size"] == py["object"], lay
    assert lay["ob_type"] == lay["ob_size"] - 8, lay
    assert lay["str_ascii_size"] == py["ascii"], lay
    assert lay["str_compact_size"] == py["compact"], lay
    assert lay["bytes_sval"] == py["bytes"], lay
    assert lay["co_code_adaptive"] == py["code"], lay
    assert lay["ob_size"] < lay["ht_cached_keys"] < py["heaptype"], lay
    assert lay["tp_basicsize"] == lay["tp_name"] + 8, lay
    assert (lay["co_tlbc"] > 0) == (py["ft"] and py["version"] >= [3, 14]), lay
    assert (lay["ob_mutex"] == 10) == py["ft"], lay
    assert (lay["spin_max"] == 40) == py["ft"], lay
    assert lay["str_kind_shift"] == (8 if py["ft"] and py["version"] >= [3, 14] else 2), lay


@pytest.mark.parametrize("version", [0x030C0AF0, 0x03100000, 0x04000000])
def test_unknown_version_gets_no_layout(any_python, layout_dump, version):
    """3.12, a future 3.16 and a 4.0 with this interpreter's offsets: no layout, never a guess."""
    p = subprocess.run([str(any_python), "-c", DUMP], capture_output=True, text=True, env=clean_env(), check=True)
    words = [int(w) for w in p.stdout.splitlines()[0].split()]
    words[1] = version
    assert run_dump(layout_dump, words) == {"known": False}


def test_offsets_that_do_not_add_up_get_no_layout(any_python, layout_dump):
    """A known version whose offsets do not add up (a patched build: fields past their struct's end) gets
    no layout either."""
    p = subprocess.run([str(any_python), "-c", DUMP], capture_output=True, text=True, env=clean_env(), check=True)
    words = [int(w) for w in p.stdout.splitlines()[0].split()]
    bad = list(words)
    bad[5] = 0  # runtime_state.interpreters_head: harmless; the struct sizes below are what is checked
    for i in range(6, 40):
        bad[i] = 1 << 40  # every offset far outside its struct
    assert run_dump(layout_dump, bad) == {"known": False}
