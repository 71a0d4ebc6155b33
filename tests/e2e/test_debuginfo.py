"""Interpreter locks named on an interpreter built the way distributions ship one: shared libpython, its
DWARF split out into a separate file named by build-id, the binaries stripped (tools/ft-python --shared).

One recording of the weakref-lock workload is analyzed four ways:
  - with nowhere to look (FTPROF_DEBUG_DIRS names an empty directory): the lock is an offset into
    _PyRuntime, which shows the interpreter really carries no DWARF of its own;
  - as installed, PREFIX/lib/debug/.build-id/NN/REST.debug: found without being told;
  - from a debug directory named in FTPROF_DEBUG_DIRS (as /usr/lib/debug is searched by default);
  - from elfutils' own debuginfod server, started here on 127.0.0.1 over the debug files.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import WORKLOADS, Runner, clean_env

FIELD = r"PyMutex interp->weakref_locks\[\d+\]"
OFFSET = r"PyMutex _PyRuntime\+0x[0-9a-f]+"


def _shared_python():
    value = os.environ.get("FTPROF_SHARED_PYTHON")
    if value:
        if not Path(value).exists():
            pytest.fail(f"FTPROF_SHARED_PYTHON={value} was promised by the harness but does not exist")
        return Path(value)
    cached = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ftprof" / \
        "cpython-3.14-ft-shared" / "bin" / "python3.14t"
    if not cached.exists():
        pytest.skip("no stripped shared-libpython interpreter (tools/ft-python --shared 3.14)")
    return cached


def _libpython(python):
    code = ("import os, sysconfig; print(os.path.join(sysconfig.get_config_var('LIBDIR'), "
            "sysconfig.get_config_var('INSTSONAME')))")
    return Path(subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=clean_env(),
                               check=True).stdout.strip())


def _build_id(path):
    notes = subprocess.run(["readelf", "-n", str(path)], capture_output=True, text=True, check=True).stdout
    return re.search(r"Build ID: ([0-9a-f]+)", notes).group(1)


@pytest.fixture(scope="module")
def recording(ftprof_lib, ftprof_cli, tmp_path_factory):
    python = _shared_python()
    lib = _libpython(python)
    sections = subprocess.run(["readelf", "-SW", str(lib)], capture_output=True, text=True, check=True).stdout
    assert ".debug_info" not in sections, f"{lib} is not stripped"
    assert ".gnu_debuglink" not in sections, f"{lib} has a debuglink: only its build-id should lead to DWARF"
    build_id = _build_id(lib)
    debug_root = lib.parent / "debug"
    debug_file = debug_root / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug"
    assert debug_file.is_file(), f"tools/ft-python --shared left no debug file {debug_file}"
    tmp = tmp_path_factory.mktemp("debuginfo")
    runner = Runner(ftprof_lib, ftprof_cli, python, tmp)
    run = runner.run([WORKLOADS / "weakref_lock.py", "--threads", 4, "--rounds", 400_000])
    return runner, run.files, debug_root, build_id, tmp


def _weakref_lock_names(runner, files, env):
    proc = subprocess.run([str(runner.cli), "report", *map(str, files), "--json"], capture_output=True, text=True,
                          env=clean_env(env), timeout=300)
    assert proc.returncode == 0, proc.stderr
    locks = json.loads(proc.stdout)["locks"]
    names = [lk["name"] for lk in locks if lk["kind"] == "pymutex" and
             any("take_refs" in (f["function"] or "") for w in lk["waiters"] for f in w["stack"])]
    assert names, f"no PyMutex wait in take_refs():\n{[(l['kind'], l['name']) for l in locks]}"
    return names


def test_stripped_interpreter_names_locks_only_with_its_debug_file(recording):
    runner, files, _, _, tmp = recording
    empty = tmp / "no-debug-here"
    empty.mkdir(exist_ok=True)
    names = _weakref_lock_names(runner, files, {"FTPROF_DEBUG_DIRS": str(empty)})
    assert all(re.fullmatch(OFFSET, n) for n in names), names


def test_debug_file_found_by_build_id_under_the_prefix(recording):
    runner, files, *_ = recording
    names = _weakref_lock_names(runner, files, {})
    assert all(re.fullmatch(FIELD, n) for n in names), names


def test_debug_file_found_by_build_id_in_a_named_directory(recording):
    runner, files, debug_root, build_id, tmp = recording
    elsewhere = tmp / "usr-lib-debug"
    target = elsewhere / ".build-id" / build_id[:2]
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(debug_root / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug", target)
    names = _weakref_lock_names(runner, files, {"FTPROF_DEBUG_DIRS": str(elsewhere)})
    assert all(re.fullmatch(FIELD, n) for n in names), names


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_debug_file_served_by_debuginfod(recording):
    runner, files, debug_root, build_id, tmp = recording
    debuginfod = shutil.which("debuginfod")
    if not debuginfod:
        pytest.fail("no debuginfod (make deps installs elfutils' server)")
    served = tmp / "served"
    served.mkdir(exist_ok=True)
    shutil.copy(debug_root / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug", served / "libpython.debug")
    port = _free_port()
    log = open(tmp / "debuginfod.log", "w")
    server = subprocess.Popen([debuginfod, "-F", str(served), "-p", str(port), "-d", str(tmp / "db.sqlite"),
                               "-t", "1", "-v"], stdout=log, stderr=subprocess.STDOUT, env=clean_env(),
                              start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/buildid/{build_id}/debuginfo"
        deadline = time.monotonic() + 120
        while True:  # until its scan has indexed the file (seconds; longer on a loaded machine)
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (tmp / "debuginfod.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "debuginfod never served the debug file:\n" + \
                (tmp / "debuginfod.log").read_text()[-2000:]
            time.sleep(0.5)
        empty = tmp / "nothing-local"
        empty.mkdir(exist_ok=True)
        cache = tmp / "client-cache"
        names = _weakref_lock_names(runner, files, {
            "FTPROF_DEBUG_DIRS": str(empty), "DEBUGINFOD_URLS": f"http://127.0.0.1:{port}",
            "DEBUGINFOD_CACHE_PATH": str(cache)})
        assert all(re.fullmatch(FIELD, n) for n in names), names
        assert list(cache.rglob("debuginfo")), f"the client cached nothing under {cache}"
    finally:
        os.killpg(server.pid, 9)
        server.wait()
        log.close()


def test_unreachable_debuginfod_does_not_hold_the_report(recording):
    """A server that never answers (a listening socket that accepts nothing) costs at most the time limit
    the analyzer sets, and the report still comes, with offsets."""
    runner, files, _, _, tmp = recording
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(0)
        port = silent.getsockname()[1]
        empty = tmp / "nothing-local-2"
        empty.mkdir(exist_ok=True)
        start = time.monotonic()
        names = _weakref_lock_names(runner, files, {
            "FTPROF_DEBUG_DIRS": str(empty), "DEBUGINFOD_URLS": f"http://127.0.0.1:{port}",
            "DEBUGINFOD_CACHE_PATH": str(tmp / "client-cache-2")})
        took = time.monotonic() - start
    assert all(re.fullmatch(OFFSET, n) for n in names), names
    assert took < 60, f"the report waited {took:.0f} s for a silent debuginfod server"
