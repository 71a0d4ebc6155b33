"""The recorder's layout layer (preload/layout.c) against each interpreter of the matrix: its word table
applied to the interpreter's own _Py_DebugOffsets must give the sizes that interpreter shows from Python
(object headers, type objects, strings, bytes, code objects); only a table it knows (by fingerprint) is
accepted, so no one-word insertion or deletion passes; and a version or table it does not know gets no
layout at all rather than a guessed one, with waits still recorded and the report saying why."""
import json
import subprocess

import pytest

from conftest import NATIVE, ROOT, WORKLOADS, clean_env, compile_c, stack_functions

# The sizes Python itself reports, to hold the layout against.
SIZES = r"""
import json, sys, sysconfig
def f(): pass
print(json.dumps({
    "object": object().__sizeof__(),                # sizeof(PyObject)
    "heaptype": type.__basicsize__,                 # sizeof(PyHeapTypeObject)
    "ascii": sys.getsizeof("") - 1,                 # sizeof(PyASCIIObject), plus its NUL
    "compact": sys.getsizeof("\u0100") - 2 * 2,     # sizeof(PyCompactUnicodeObject), one UCS-2 char and NUL
    "bytes": bytes.__basicsize__ - 1,               # offsetof(PyBytesObject, ob_sval): the size counts its NUL
    "code": type(f.__code__).__basicsize__,         # offsetof(PyCodeObject, co_code_adaptive)
    "hexversion": sys.hexversion,
    "version": list(sys.version_info[:2]),
    "ft": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
}))
"""
LOCK_WL = WORKLOADS / "lock_contention.py"


@pytest.fixture(scope="module")
def layout_dump(tmp_path_factory):
    out = tmp_path_factory.mktemp("layout") / "layout_dump"
    return compile_c([NATIVE / "layout_dump.c", ROOT / "preload" / "layout.c"], out,
                     flags=[f"-I{ROOT / 'preload'}", f"-I{ROOT / 'include'}"])


def dump_table(python):
    """The interpreter's table (160 words from the cookie) and its type objects' line, as
    tools/layout_table.py prints them (the tool that adds a release uses the same script)."""
    p = subprocess.run([str(python), "-I", str(ROOT / "tools" / "layout_table.py")], capture_output=True,
                       text=True, env=clean_env(), check=True)
    table, types = p.stdout.splitlines()
    words = [int(w) for w in table.split()]
    assert words[0].to_bytes(8, "little") == b"xdebugpy"
    return words, types


def run_dump(tool, words, types=None):
    text = " ".join(str(w) for w in words) + "\n" + (types + "\n" if types else "")
    p = subprocess.run([str(tool)], input=text, capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def test_layout_matches_the_interpreter(any_python, layout_dump):
    words, types = dump_table(any_python)
    p = subprocess.run([str(any_python), "-c", SIZES], capture_output=True, text=True, env=clean_env(), check=True)
    py = json.loads(p.stdout)
    lay = run_dump(layout_dump, words, types)
    assert lay["known"], f"no layout for {any_python.label}: add its table with tools/layout-fingerprint ({lay})"
    assert lay["types_checked"], lay
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


def test_the_table_is_not_known_without_its_flavour(any_python, layout_dump):
    """The same table said to come from the other build (free-threaded or not) is not accepted."""
    words, _ = dump_table(any_python)
    words[2] = 0 if words[2] else 1
    assert run_dump(layout_dump, words)["known"] is False


def shifted_tables(words, length):
    """Every one-word insertion (a copy of the word before, and 0) and deletion at positions 2 to
    length - 1 of the table: (what, table) pairs."""
    for i in range(2, length):
        yield f"insert a copy of word {i - 1} at {i}", words[:i] + [words[i - 1]] + words[i:]
        yield f"insert 0 at {i}", words[:i] + [0] + words[i:]
        yield f"delete word {i}", words[:i] + words[i + 1:]


def test_every_shifted_table_is_refused(any_python, layout_dump):
    """A table with one word inserted or removed anywhere after the version word (a patched build, a
    release we have not seen) is refused, wherever it lies: before fingerprints, inserting a word at
    78-82 of 3.14.7t's table passed every plausibility check with wrong string and GC offsets."""
    words, _ = dump_table(any_python)
    real = run_dump(layout_dump, words)
    assert real["known"], real
    length = real["words"]
    accepted, same, tried = [], 0, 0
    for what, table in shifted_tables(words, length):
        if table[:length] == words[:length]:
            same += 1  # e.g. a copy inserted into a run of equal words: the very same table
            continue
        tried += 1
        if run_dump(layout_dump, table)["known"]:
            accepted.append(what)
    assert tried > 200 and same < 10, (tried, same)  # 3.13's table has 73 words: 213 variants
    assert not accepted, f"{len(accepted)} of {tried} shifted tables accepted: {accepted[:10]}"


@pytest.mark.parametrize("version", [0x030C0AF0, 0x03100000, 0x04000000])
def test_unknown_version_gets_no_layout(any_python, layout_dump, version):
    """3.12, a future 3.16 and a 4.0 with this interpreter's offsets: no layout, never a guess."""
    words, _ = dump_table(any_python)
    words[1] = version
    assert run_dump(layout_dump, words)["known"] is False


def test_a_later_release_with_the_same_table_is_known(any_python, layout_dump):
    """Only the table's contents identify it: the same table under another patch level or release level
    (3.N.99, 3.N.0rc1) keeps its layout."""
    words, types = dump_table(any_python)
    minor = words[1] & 0xFFFF0000
    for version in (minor | 0x63F0, minor | 0x00C1):
        words[1] = version
        assert run_dump(layout_dump, words, types)["known"], hex(version)


def test_offsets_that_do_not_add_up_get_no_layout(any_python, layout_dump):
    """A known version whose offsets do not add up (a patched build: fields past their struct's end) gets
    no layout either."""
    words, _ = dump_table(any_python)
    bad = list(words)
    for i in range(6, 40):
        bad[i] = 1 << 40  # every offset far outside its struct
    assert run_dump(layout_dump, bad)["known"] is False


def type_objects(types):
    addr, *objects = types.split()
    return int(addr), [bytearray.fromhex(o) for o in objects]


def types_line(addr, objects):
    return " ".join([str(addr), *(o.hex() for o in objects)])


# What each check of ftp_layout_check_types guards, and how to break it in a copy of the type objects:
# (object index: 0 type, 1 code, 2 str, 3 bytes; layout field whose offset is altered; delta).
TYPE_FAULTS = {
    "code basic size (tp_basicsize follows tp_name)": (1, "tp_basicsize", 8),
    "str basic size (the compact-unicode size)": (2, "tp_basicsize", 8),
    "bytes basic size": (3, "tp_basicsize", 1),
    "heap type size (ht_cached_keys)": (0, "tp_basicsize", 1024),
    "str flags": (2, "tp_flags", -(1 << 28)),
    "bytes's type": (3, "ob_type", 64),
}


@pytest.mark.parametrize("fault", sorted(TYPE_FAULTS))
def test_type_objects_that_disagree_get_no_layout(any_python, layout_dump, fault):
    """The facts the tables do not carry (tp_basicsize after tp_name, the compact-unicode and heap-type
    sizes, tp_flags, ob_type) are held against the interpreter's own type objects: one that disagrees
    takes the layout away."""
    words, types = dump_table(any_python)
    lay = run_dump(layout_dump, words, types)
    assert lay["known"] and lay["types_checked"], lay
    index, field, delta = TYPE_FAULTS[fault]
    addr, objects = type_objects(types)
    at = lay[field]
    value = int.from_bytes(objects[index][at:at + 8], "little") + delta
    objects[index][at:at + 8] = value.to_bytes(8, "little")
    assert run_dump(layout_dump, words, types_line(addr, objects))["known"] is False, fault


def test_unknown_table_records_waits_without_stacks(any_runner, layout_dump, tmp_path):
    """A real interpreter whose table has one word changed (its last, which no offset the recorder uses
    comes from): its waits are still recorded, with no Python frame anywhere, the recorder says so once
    on stderr with the full version, and the report says why the stacks are missing."""
    words, _ = dump_table(any_runner.python)
    length = run_dump(layout_dump, words)["words"]
    alter = compile_c([NATIVE / "alter_offsets.c"], tmp_path / "alter_offsets.so", flags=["-shared", "-fPIC"])
    p = subprocess.run([str(any_runner.python), "-c", SIZES], capture_output=True, text=True, env=clean_env(),
                       check=True)
    py = json.loads(p.stdout)
    argv = [LOCK_WL, "--threads", 4, "--hold-ms", 1]

    plain = any_runner.run(argv)
    assert "ftprof:" not in plain.stderr, plain.stderr
    rep = any_runner.report(plain.files)
    assert [f["python_layout_unknown"] for f in rep["files"]] == [False]
    assert any(stack_functions(w) for lk in rep.locks for w in lk["waiters"]), rep.summary()

    # The alteration must come before the recorder reads the table: the loader runs the constructors of
    # preloaded objects last to first.
    env = {"ALTER_OFFSETS_WORD": length - 1}
    before = set(any_runner.out_dir.iterdir())
    proc = subprocess.run([str(any_runner.python), str(LOCK_WL), *map(str, argv[1:])], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path,
                          env={**any_runner.env(extra=env), "LD_PRELOAD": f"{any_runner.lib}:{alter}"})
    assert proc.returncode == 0, proc.stderr
    files = sorted(set(any_runner.out_dir.iterdir()) - before)
    truth = json.loads(proc.stdout.strip().splitlines()[-1])
    notices = [line for line in proc.stderr.splitlines() if line.startswith("ftprof:")]
    v = py["hexversion"]
    release = f"{v >> 24}.{(v >> 16) & 0xFF}.{(v >> 8) & 0xFF}"
    assert len(notices) == 1 and f"CPython {release}" in notices[0] and "not known" in notices[0], proc.stderr
    assert ("free-threaded" in notices[0]) == py["ft"], notices

    rep = any_runner.report(files)
    (f,) = rep["files"]
    assert f["python_layout_unknown"] is True and f["python_version"] == v and f["free_threaded"] == py["ft"], f
    assert truth["contended"] > 0, truth
    assert rep.total("contentions") > 0, rep.summary()
    frames = [fn for lk in rep.locks for e in lk["waiters"] + lk["holders"] for fn in stack_functions(e)
              if fn and not fn.startswith("[")]
    assert not frames, f"Python frames without a known layout: {frames[:5]}"
    text = any_runner.cli_run("report", *files)
    assert text.returncode == 0, text.stderr
    assert f"! No Python stacks in {files[0]}" in text.stdout and f"CPython {release}" in text.stdout, text.stdout
