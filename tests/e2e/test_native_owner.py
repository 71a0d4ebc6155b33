"""A native lock is named by the shared object whose code took it and by that object's distribution.

The recorder keeps the return address of every contended pthread_mutex_lock call (format 7) and
describes the objects loaded since it last looked, also without FTPROF_NATIVE; the analyzer maps the
address to its object and the object to the *.dist-info/RECORD that lists it.

  - ftlockdemo, a tiny wheel of the tests' own built here: a package that loads its vendored
    ftlockdemo.libs/libftlockdemo_shared-HASH.so with ctypes, as a wheel repaired by auditwheel vendors
    its libraries. N threads wait on that library's one mutex while a holder keeps it, released only
    once every waiter sleeps in the kernel on that very mutex: exactly N contended waits, named by
    the library, the distribution and the version pip reports for it in the venv; then the same
    with its rwlock (a writer holds it, N readers wait).
  - the same library file loaded from outside any installed distribution: named by the file, with
    no distribution (unknown, not guessed).
  - numpy's matrix products in 8 threads: OpenBLAS, vendored in numpy's wheel as
    numpy.libs/libscipy_openblas…so, serialises its callers on a pthread mutex; the row is named by
    that library and numpy's version. (Asserted: such a row exists and is named so; how much it waits
    depends on the machine's load.)

The venvs (one per free-threaded interpreter, numpy from the package index as a binary wheel, never
built) live under ~/.cache/ftprof/venvs/ and are reused: each is created and filled once, under a lock.
"""
import base64
import fcntl
import hashlib
import os
import subprocess
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import NATIVE, clean_env, compile_c

DEMO = "ftlockdemo"
DEMO_VERSION = "1.4.2"
DEMO_TAG = "py3-none-linux_x86_64"
WAITERS = 4
VENVS = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ftprof" / "venvs"

DEMO_INIT = '''"""Test package: a vendored native library with one shared pthread mutex (ftprof's tests)."""
import ctypes
import os

LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ftlockdemo.libs", {lib!r})
_lib = ctypes.CDLL(LIB)
'''


def _run(cmd, timeout=600, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                          env=clean_env(), **kw)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@contextmanager
def _locked(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _venv(python):
    """The cached venv of this interpreter, with numpy installed from its binary wheel."""
    key = hashlib.sha256(str(Path(python).resolve()).encode()).hexdigest()[:12]
    venv = VENVS / f"native-owner-{python.label}-{key}"
    with _locked(venv):
        vpy = venv / "bin" / "python"
        if not vpy.exists():
            _run([python, "-m", "venv", venv])
        if subprocess.run([vpy, "-c", "import numpy"], capture_output=True, env=clean_env()).returncode != 0:
            _run([vpy, "-m", "pip", "install", "--disable-pip-version-check", "--only-binary=:all:", "numpy"])
    return venv


def _pip_version(venv, dist):
    """The version the venv's pip reports for `dist`."""
    out = _run([venv / "bin" / "python", "-m", "pip", "show", "--disable-pip-version-check", dist])
    return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Version:"))


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _demo_library(tmp_path):
    """The vendored library, named as auditwheel names what it vendors (NAME-HASH.so)."""
    built = compile_c([NATIVE / "shared_lock.c"], tmp_path / "shared_lock.so", flags=("-shared", "-fPIC"),
                      libs=("-lpthread",))
    data = built.read_bytes()
    return f"libftlockdemo_shared-{hashlib.sha256(data).hexdigest()[:8]}.so", data


def _demo_wheel(tmp_path):
    lib_name, lib_data = _demo_library(tmp_path)
    info = f"{DEMO}-{DEMO_VERSION}.dist-info"
    files = {
        f"{DEMO}/__init__.py": DEMO_INIT.format(lib=lib_name).encode(),
        f"{DEMO}.libs/{lib_name}": lib_data,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {DEMO}\nVersion: {DEMO_VERSION}\n".encode(),
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: ftprof-tests\nRoot-Is-Purelib: false\nTag: {DEMO_TAG}\n".encode(),
    }
    record = [_record_line(n, d) for n, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = tmp_path / f"{DEMO}-{DEMO_VERSION}-{DEMO_TAG}.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return wheel, lib_name, lib_data


def _install_demo(venv, tmp_path):
    wheel, lib_name, lib_data = _demo_wheel(tmp_path)
    with _locked(venv):
        _run([venv / "bin" / "python", "-m", "pip", "install", "--disable-pip-version-check", "--no-index",
              "--no-deps", "--force-reinstall", wheel])
    return lib_name, lib_data


def _the_lock(rep, address, kind="pthread_mutex"):
    rows = [lk for lk in rep.locks if lk["kind"] == kind and int(lk["address"], 16) == address]
    assert len(rows) == 1, f"one {kind} row at {address:#x} expected:\n{rep.summary()}"
    return rows[0]


def _text_report(runner, files):
    proc = runner.cli_run("report", *files)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.support_row("pthread_mutex named by the library that took it")
def test_vendored_library_mutex_named_by_library_and_distribution(runner, ft_python, tmp_path):
    venv = _venv(ft_python)
    lib_name, _ = _install_demo(venv, tmp_path)
    version = _pip_version(venv, DEMO)
    assert version == DEMO_VERSION
    run = runner.run(["native_owner.py", "shared", DEMO, WAITERS], python=venv / "bin" / "python")
    truth = run.truth()
    rep = runner.report(run.files)
    # Rows are cut to the terminal's width; the note under each names object and distribution in full.
    report_text = " ".join(_text_report(runner, run.files).split())
    for kind, address in (("pthread_mutex", truth["address"]), ("pthread_rwlock", truth["rwlock_address"])):
        lk = _the_lock(rep, address, kind)
        assert lk["contentions"] == WAITERS and lk["threads"] == WAITERS, lk
        owner = lk["native_owner"]
        assert owner, f"no native owner for {lk['name']}"
        assert os.path.realpath(owner["object"]) == os.path.realpath(truth["lib"]), owner
        assert Path(owner["object"]).name == lib_name and owner["other_object"] is None, owner
        assert (owner["distribution"], owner["version"], owner["wheel_tag"]) == (DEMO, version, DEMO_TAG), owner
        assert lk["name"].startswith(f"{kind} in {lib_name} ({DEMO} {version}) @"), lk["name"]
        note = f"(taken by code in {owner['object']}, installed by {DEMO} {version} from a wheel tagged {DEMO_TAG})"
        assert report_text.count(note) == 2, report_text  # under the mutex's row and the rwlock's


@pytest.mark.support_row("pthread_mutex named by the library that took it")
def test_library_outside_any_distribution_named_by_its_file_only(runner, tmp_path):
    lib_name, lib_data = _demo_library(tmp_path)
    lib = tmp_path / "plain" / lib_name
    lib.parent.mkdir()
    lib.write_bytes(lib_data)
    run = runner.run(["native_owner.py", "shared", lib, WAITERS])
    truth = run.truth()
    lk = _the_lock(runner.report(run.files), truth["address"])
    assert lk["contentions"] == WAITERS, lk
    owner = lk["native_owner"]
    assert owner and os.path.realpath(owner["object"]) == os.path.realpath(lib), owner
    assert owner["distribution"] is None and owner["version"] is None, owner
    assert lk["name"].startswith(f"pthread_mutex in {lib_name} @"), lk["name"]


@pytest.mark.support_row("pthread_mutex named by the library that took it")
def test_numpy_openblas_mutex_named_by_numpy(runner, ft_python):
    venv = _venv(ft_python)
    version = _pip_version(venv, "numpy")
    # Two OpenBLAS threads whatever the machine has: its server lock then serialises the 8 callers.
    run = runner.run(["native_owner.py", "numpy"], python=venv / "bin" / "python",
                     extra_env={"OPENBLAS_NUM_THREADS": "2"})
    assert run.truth()["numpy"] == version
    rep = runner.report(run.files)
    mutexes = rep.of_kind("pthread_mutex")
    assert mutexes, f"no pthread_mutex waits in numpy's matrix products:\n{rep.summary()}"
    openblas = [lk for lk in mutexes if lk["native_owner"] and
                Path(lk["native_owner"]["object"]).parent.name == "numpy.libs"]
    assert openblas, f"no pthread_mutex taken by numpy's vendored libraries:\n{rep.summary()}"
    top = max(mutexes, key=lambda lk: lk["wait_ns"])
    assert top in openblas, f"the most waited-on pthread_mutex is not OpenBLAS's: {top['name']}"
    for lk in openblas:
        owner = lk["native_owner"]
        lib = Path(owner["object"]).name
        assert lib.startswith("libscipy_openblas"), owner
        assert (owner["distribution"], owner["version"]) == ("numpy", version), owner
        assert lk["name"].startswith(f"pthread_mutex in {lib} (numpy {version}) @"), lk["name"]
