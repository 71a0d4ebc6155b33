"""Shared machinery for the end-to-end tests: locating the recorder, the analyzer and the interpreters,
running a workload under the recorder, reading its report, and keeping the measured ratios.

Paths come from the environment (tools/run-tests sets them all to absolute paths):
  FTPROF_LIB      the recorder, build/preload/libftprof.so
  FTPROF_CLI      the analyzer, build/analyzer/ftprof
  FTPROF_PYTHONS  the interpreter matrix, "3.13t=PATH 3.14t=PATH 3.15t=PATH 3.13=PATH ..." (tools/ft-python
                  builds each): tests of the `ft_python` / `runner` fixtures run once per free-threaded
                  interpreter in it, tests of `gil_python` / `gil_runner` once per default (GIL) build
  FTPROF_PY       (without FTPROF_PYTHONS) one free-threaded CPython, FTPROF_GIL_PY one default build
  FTPROF_SHARED_PYTHON  a stripped shared-libpython free-threaded CPython (tools/ft-python --shared):
                  test_debuginfo.py
  FTPROF_RESULTS  file the measured ratios are appended to (optional)
  FTPROF_TEST_PRELOAD_PREFIX  libraries preloaded before the recorder (the ASan runtime, tools/sanitize)
When a variable is set, a missing file is a test failure, because the harness promised it; when it is
unset (pytest run by hand), the usual build directories are searched and the test is skipped if
nothing is found.
"""
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKLOADS = Path(__file__).resolve().parent / "workloads"
NATIVE = Path(__file__).resolve().parent / "native"

WAITING_FOR_WORK = {"condition", "thread_join"}
KINDS = {"lock", "rlock", "critical_section", "pymutex", "stop_the_world", "gil", "condition",
         "thread_join", "pthread_mutex", "pthread_rwlock", "other"}

# The promised shape of `ftprof report --json`; every report a test reads is validated against it.
_FRAME = {
    "type": "object",
    "required": ["function", "file", "line", "native"],
    "properties": {
        "function": {"type": ["string", "null"]},
        "file": {"type": ["string", "null"]},
        "line": {"type": ["integer", "null"]},
        "native": {"type": "boolean"},
    },
}
_STACK_ENTRY = {
    "type": "object",
    "required": ["wait_ns", "count", "stack"],
    "properties": {
        "wait_ns": {"type": "integer", "minimum": 0},
        "count": {"type": "integer", "minimum": 0},
        "stack": {"type": "array", "items": _FRAME},
    },
}
_COUNT = {"type": "integer", "minimum": 0}
# A native lock's owner: the object that called pthread_*lock and its installed distribution.
_NATIVE_OWNER = {
    "type": "object",
    "required": ["object", "other_object", "distribution", "version", "wheel_tag"],
    "additionalProperties": False,
    "properties": {
        "object": {"type": "string", "minLength": 1},
        "other_object": {"type": ["string", "null"]},
        "distribution": {"type": ["string", "null"]},
        "version": {"type": ["string", "null"]},
        "wheel_tag": {"type": ["string", "null"]},
    },
}
REPORT_SCHEMA = {
    "type": "object",
    "required": ["locks", "gil_enabled", "extensions", "notes", "dropped_events", "duration_ns", "threads", "files"],
    "properties": {
        "locks": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["kind", "type", "address", "name", "contentions", "wait_ns", "max_wait_ns",
                             "p50_wait_ns", "p99_wait_ns", "spin_ns", "threads", "handoffs", "parked", "waiters",
                             "holders"],
                "properties": {
                    "kind": {"enum": sorted(KINDS)},
                    "type": {"type": ["string", "null"]},
                    "contentions": _COUNT, "wait_ns": _COUNT, "max_wait_ns": _COUNT,
                    "p50_wait_ns": _COUNT, "p99_wait_ns": _COUNT, "spin_ns": _COUNT,
                    "handoffs": _COUNT,
                    "native_owner": {"oneOf": [{"type": "null"}, _NATIVE_OWNER]},
                    "waiters": {"type": "array", "items": _STACK_ENTRY},
                    "holders": {"type": "array", "items": _STACK_ENTRY},
                },
            },
        },
        "gil_enabled": {
            "type": "array",
            "items": {"type": "object", "required": ["module", "path", "time_ns"]},
        },
        "extensions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["module", "path", "gil", "reenabled_gil", "distribution", "version", "wheel_tag",
                             "imported_ns", "import_stack"],
                "properties": {
                    "module": {"type": "string"}, "path": {"type": "string"},
                    "gil": {"enum": ["not_used", "used", "unknown"]},
                    "reenabled_gil": {"type": "boolean"},
                    "distribution": {"type": ["string", "null"]}, "version": {"type": ["string", "null"]},
                    "wheel_tag": {"type": ["string", "null"]},
                    "imported_ns": _COUNT,
                    "import_stack": {"type": "array", "items": _FRAME},
                },
            },
        },
        "notes": {
            "type": "array",
            "items": {"type": "object", "required": ["file", "text", "shown_on_stderr"],
                      "additionalProperties": False,
                      "properties": {"file": {"type": "string"}, "text": {"type": "string", "minLength": 1},
                                     "shown_on_stderr": {"type": "boolean"}}},
        },
        "dropped_events": _COUNT,
        "duration_ns": _COUNT,
        "threads": {"type": "array", "items": {"type": "object", "required": ["tid", "name", "pid"]}},
        "files": {"type": "array"},
    },
}


def _artifact(var, candidates, what):
    value = os.environ.get(var)
    if value:
        path = Path(value)
        if not path.exists():
            pytest.fail(f"{var}={value}: {what} was promised by the harness but does not exist")
        return path.resolve()
    for cand in candidates:
        if cand.exists():
            return cand.resolve()
    pytest.skip(f"{what} not found (set {var} or build it with meson)")


_BUILD_DIRS = ["build", "build-d"]


@pytest.fixture(scope="session")
def ftprof_lib():
    return _artifact("FTPROF_LIB", [ROOT / d / "preload" / "libftprof.so" for d in _BUILD_DIRS],
                     "the recorder (libftprof.so)")


@pytest.fixture(scope="session")
def ftprof_cli():
    return _artifact("FTPROF_CLI", [ROOT / d / "analyzer" / "ftprof" for d in _BUILD_DIRS],
                     "the analyzer (ftprof)")


# --------------------------------------------------------------------------------------------------
# Interpreters: a matrix of versions and builds. "3.14t" is free-threaded, "3.14" the default (GIL) build.

VERSIONS = ("3.13", "3.14", "3.15")


def _identify(path):
    """'3.14t' or '3.14' for a CPython, asked from the interpreter itself."""
    code = ("import sys, sysconfig; print('%d.%d%s' % (*sys.version_info[:2], "
            "'t' if sysconfig.get_config_var('Py_GIL_DISABLED') else ''))")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FTPROF_", "PYTHON")) and k != "LD_PRELOAD"}
    out = subprocess.run([str(path), "-c", code], capture_output=True, text=True, env=env)
    return out.stdout.strip() if out.returncode == 0 else None


def _interpreter_matrix():
    """{label: path or None}: every label the harness promised (FTPROF_PYTHONS), else what FTPROF_PY /
    FTPROF_GIL_PY name, else whatever tools/ft-python cached (a pytest run by hand)."""
    spec = os.environ.get("FTPROF_PYTHONS")
    if spec:
        out = {}
        for item in spec.split():
            label, _, path = item.partition("=")
            out[label] = Path(path) if path else None
        return out
    out = {}
    for var in ("FTPROF_PY", "FTPROF_GIL_PY"):
        if os.environ.get(var):
            path = Path(os.environ[var])
            out[_identify(path) or ("3.13" + ("t" if var == "FTPROF_PY" else ""))] = path
    if out:
        return out
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ftprof"
    for v in VERSIONS:
        for label, exe in ((f"{v}t", cache / f"cpython-{v}-ft" / "bin" / f"python{v}t"),
                           (v, cache / f"cpython-{v}-gil" / "bin" / f"python{v}")):
            out[label] = exe if exe.exists() else None
    return out


INTERPRETERS = _interpreter_matrix()
FT_LABELS = [k for k in INTERPRETERS if k.endswith("t")] or ["3.14t"]
GIL_LABELS = [k for k in INTERPRETERS if not k.endswith("t")] or ["3.14"]


class Python(type(Path())):
    """An interpreter's path that also knows what it is: .label '3.14t', .version (3, 14), .free_threaded."""

    def __new__(cls, path, label):
        self = super().__new__(cls, path)
        self.label = label
        self.version = tuple(int(x) for x in label.rstrip("t").split("."))
        self.free_threaded = label.endswith("t")
        return self

    def with_segments(self, *segments):  # derived paths are plain paths
        return Path(*segments)


def _python(label):
    path = INTERPRETERS.get(label)
    if path is None:
        if os.environ.get("FTPROF_PYTHONS"):
            pytest.fail(f"FTPROF_PYTHONS names {label} without a path")
        pytest.skip(f"CPython {label} not found (tools/ft-python {'--gil ' if not label.endswith('t') else ''}"
                    f"{label.rstrip('t')})")
    if not path.exists():
        pytest.fail(f"CPython {label}: {path} was promised by the harness but does not exist")
    return Python(path, label)


@pytest.fixture(scope="session", params=FT_LABELS)
def ft_python(request):
    return _python(request.param)


@pytest.fixture(scope="session", params=GIL_LABELS)
def gil_python(request):
    return _python(request.param)


@pytest.fixture(scope="session", params=FT_LABELS + GIL_LABELS)
def any_python(request):
    """Every interpreter of the matrix, free-threaded and default builds: for tests whose meaning does
    not depend on the build (the accuracy grid)."""
    return _python(request.param)


# --------------------------------------------------------------------------------------------------
# Results: every measured ratio is printed (visible with -s) and appended to FTPROF_RESULTS.

class Results:
    def __init__(self, path):
        self.path = Path(path) if path else None

    def add(self, test, **values):
        parts = []
        for k, v in values.items():
            parts.append(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}")
        line = f"{test}: " + " ".join(parts)
        print("\n  [ftprof-e2e] " + line)
        if self.path:
            with open(self.path, "a") as f:
                f.write(line + "\n")


@pytest.fixture(scope="session")
def results():
    return Results(os.environ.get("FTPROF_RESULTS"))


# --------------------------------------------------------------------------------------------------
# Running programs under the recorder.

def clean_env(extra=None):
    """The environment a workload runs in: ours, minus anything that would change the interpreter's or
    the recorder's behaviour behind a test's back."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FTPROF_", "PYTHON")) and k not in ("LD_PRELOAD",)}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if extra:
        env.update({k: str(v) for k, v in extra.items() if v is not None})
    return env


@dataclass
class Run:
    proc: subprocess.CompletedProcess
    files: list = field(default_factory=list)

    @property
    def stdout(self):
        return self.proc.stdout

    @property
    def stderr(self):
        return self.proc.stderr

    @property
    def returncode(self):
        return self.proc.returncode

    def truth(self):
        """The workload's own measurement: the last stdout line that is a JSON object."""
        for line in reversed(self.proc.stdout.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)
        raise AssertionError(f"workload printed no JSON result\nstdout:\n{self.proc.stdout}\n"
                             f"stderr:\n{self.proc.stderr}")


class Runner:
    def __init__(self, lib, cli, python, tmp_path):
        self.lib = lib
        self.cli = cli
        self.python = python
        self.tmp = tmp_path
        self.out_dir = tmp_path / "rec"
        self.out_dir.mkdir(exist_ok=True)

    def env(self, preload=True, extra=None, output=None):
        env = clean_env(extra)
        if preload:
            # tools/sanitize puts the sanitizer runtime first: it must be loaded before anything else.
            prefix = os.environ.get("FTPROF_TEST_PRELOAD_PREFIX")
            env["LD_PRELOAD"] = f"{prefix}:{self.lib}" if prefix else str(self.lib)
            env.setdefault("FTPROF_OUTPUT", str(output or (self.out_dir / "%p.ftp")))
        return env

    def run(self, argv, preload=True, extra_env=None, timeout=300, python=None, check=True, cwd=None,
            input=None):
        """Runs `python argv...` (argv[0] may name a file in workloads/) and collects new recordings."""
        python = python or self.python
        argv = [str(a) for a in argv]
        if argv and not argv[0].startswith("-") and (WORKLOADS / argv[0]).exists():
            argv[0] = str(WORKLOADS / argv[0])
        return self.run_cmd([str(python), *argv], preload=preload, extra_env=extra_env, timeout=timeout,
                            check=check, cwd=cwd, input=input)

    def run_cmd(self, cmd, preload=True, extra_env=None, timeout=300, check=True, cwd=None, input=None):
        before = set(self.out_dir.iterdir())
        proc = subprocess.run([str(c) for c in cmd], env=self.env(preload, extra_env), cwd=cwd or self.tmp,
                              capture_output=True, text=True, timeout=timeout, input=input)
        files = sorted(set(self.out_dir.iterdir()) - before)
        run = Run(proc, files)
        if check:
            assert proc.returncode == 0, (f"{cmd} exited {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}"
                                          f"\nstderr:\n{proc.stderr[-4000:]}")
        return run

    def kill_at_mark(self, marker, args, extra_env=None, output=None, timeout=60):
        """Runs workloads/lock_contention.py ARGS --forever under the recorder until it has made `marker`
        contended acquisitions (it prints MARK N), then kills it with SIGKILL, as a crash would."""
        proc = subprocess.Popen([str(self.python), str(WORKLOADS / "lock_contention.py"), *map(str, args), "--forever",
                                 "--marker", str(marker)],
                                env=self.env(extra=extra_env, output=output), cwd=self.tmp,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for_line(proc, rf"^MARK {marker}$", timeout=timeout)
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL

    def cli_run(self, *args, timeout=300):
        return subprocess.run([str(self.cli), *[str(a) for a in args]], capture_output=True, text=True,
                              timeout=timeout, env=clean_env())

    def report(self, files, extra_args=(), expect_rc=0):
        files = [files] if isinstance(files, (str, Path)) else list(files)
        assert files, "the recorder wrote no file"
        proc = self.cli_run("report", *files, "--json", *extra_args)
        assert proc.returncode == expect_rc, (f"ftprof report exited {proc.returncode} (expected {expect_rc})"
                                              f"\nstderr:\n{proc.stderr[-4000:]}")
        try:
            rep = json.loads(proc.stdout)
        except json.JSONDecodeError as e:
            raise AssertionError(f"ftprof report --json printed no JSON ({e}):\n{proc.stdout[:2000]}")
        validate_report(rep)
        return Report(rep)


def validate_report(rep):
    import jsonschema
    try:
        jsonschema.validate(rep, REPORT_SCHEMA)
    except jsonschema.ValidationError as e:
        raise AssertionError(f"report does not follow the JSON contract: {e.message} at "
                             f"{list(e.absolute_path)}")
    # Contention first, then waiting for work, each by total wait: the order of the text report.
    order = [(lk["kind"] in WAITING_FOR_WORK, -lk["wait_ns"]) for lk in rep["locks"]]
    assert order == sorted(order), "locks are not contention first, then waiting for work, each by wait_ns"
    for lk in rep["locks"]:
        ended = sum(h["count"] for h in lk["holders"])
        assert ended <= lk["contentions"], f"{lk['name']}: holders ended {ended} waits of {lk['contentions']}"
        assert sum(h["wait_ns"] for h in lk["holders"]) <= lk["wait_ns"], f"{lk['name']}: holders' wait > the lock's"


@pytest.fixture
def runner(ftprof_lib, ftprof_cli, ft_python, tmp_path):
    return Runner(ftprof_lib, ftprof_cli, ft_python, tmp_path)


@pytest.fixture
def gil_runner(ftprof_lib, ftprof_cli, gil_python, tmp_path):
    return Runner(ftprof_lib, ftprof_cli, gil_python, tmp_path)


@pytest.fixture
def any_runner(ftprof_lib, ftprof_cli, any_python, tmp_path):
    return Runner(ftprof_lib, ftprof_cli, any_python, tmp_path)


# --------------------------------------------------------------------------------------------------
# Reading reports.

def top_function(entry):
    """Innermost Python frame's function of a waiters/holders entry (native frames skipped)."""
    for fr in entry["stack"]:
        if not fr.get("native"):
            return fr.get("function")
    return None


def top_frame(entry):
    for fr in entry["stack"]:
        if not fr.get("native"):
            return fr
    return None


def stack_functions(entry):
    return [fr.get("function") for fr in entry["stack"] if not fr.get("native")]


class Report(dict):
    @property
    def locks(self):
        return self["locks"]

    def of_kind(self, *kinds):
        return [lk for lk in self["locks"] if lk["kind"] in kinds]

    def with_waiter_function(self, func, kinds=None):
        """Locks some waiter stack of which has `func` anywhere in its Python frames."""
        out = []
        for lk in self["locks"]:
            if kinds and lk["kind"] not in kinds:
                continue
            if any(func in stack_functions(w) for w in lk["waiters"]):
                out.append(lk)
        return out

    def total(self, key, locks=None):
        return sum(lk[key] for lk in (self["locks"] if locks is None else locks))

    def summary(self, n=8):
        """A short human view for assertion messages."""
        lines = []
        for lk in self["locks"][:n]:
            w = lk["waiters"][0] if lk["waiters"] else None
            h = lk["holders"][0] if lk["holders"] else None
            lines.append(f"  {lk['kind']:<16} type={lk['type']} n={lk['contentions']} "
                         f"wait={lk['wait_ns'] / 1e6:.1f}ms waiter={w and top_frame(w)} "
                         f"holder={h and top_frame(h)}")
        if len(self["locks"]) > n:
            lines.append(f"  ... {len(self['locks']) - n} more")
        return "\n".join(lines) or "  (no locks)"


# Header flags of include/ftprof/format.h, for the few facts the tests check below the analyzer.
FLAG_PYTHON = 1 << 0
FLAG_FREE_THREADED = 1 << 1
FLAG_FINISHED = 1 << 3
FLAG_FORKED_CHILD = 1 << 4


def read_header(path):
    """The fixed fields of a recording's header (format.h: ftp_file_header), straight from the file."""
    import struct
    with open(path, "rb") as f:
        raw = f.read(96)
    assert len(raw) == 96 and raw[:8] == b"FTPROF\x01\n", f"{path} is not an ftprof recording"
    (version, min_reader, header_size, features, flags, chunk_size, chunk_count, chunks_used, pid, ppid,
     _res, start_ns, start_rt, end_ns, dropped, py_version, argc, argv_len) = struct.unpack_from(
        "<HHIIIIIIIIIQQQQQII", raw, 8)
    return {"version": version, "flags": flags, "pid": pid, "ppid": ppid, "start_ns": start_ns, "end_ns": end_ns,
            "dropped_events": dropped, "python_version": py_version, "chunks_used": chunks_used,
            "chunk_size": chunk_size, "chunk_count": chunk_count}


@contextlib.contextmanager
def small_tmpfs(path, size):
    """A tmpfs of `size` ("256k") mounted at `path` (created) for the block: a disk that fills up. Needs
    root; skips otherwise."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def marker_line(path, marker):
    """Line number of the source line carrying `# @marker` in a workload file."""
    tag = f"# @{marker}"
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.rstrip().endswith(tag):
            return n
    raise AssertionError(f"no line marked {tag} in {path}")


def ratio(measured, expected):
    return measured / expected if expected else float("inf")


# --------------------------------------------------------------------------------------------------
# Native helpers built by the tests.

def python_build_flags(python):
    """Compiler flags for an extension of `python`, asked from that interpreter itself."""
    code = ("import sysconfig, json; print(json.dumps([sysconfig.get_paths()['include'], "
            "sysconfig.get_config_var('EXT_SUFFIX')]))")
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=clean_env(),
                         check=True).stdout
    include, suffix = json.loads(out)
    return include, suffix


def compile_c(sources, output, flags=(), libs=()):
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        pytest.skip("no C compiler")
    cmd = [cc, "-std=c11", "-D_GNU_SOURCE", "-O1", "-g", "-Wall", *flags, "-o", str(output),
           *[str(s) for s in sources], *libs]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
    return Path(output)


@contextmanager
def mounted_tmpfs(path, options):
    """A tmpfs mounted on `path` with mount(8) options ("ro,size=64k") for the block; needs root. A
    refused mount (an unprivileged container) skips the test, which under CI=true is a failure."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
    try:
        yield Path(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def wait_for_line(proc, pattern, timeout):
    """Reads proc.stdout until a line matches; returns the lines read so far."""
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    lines = []
    buf = ""
    rx = re.compile(pattern)
    while time.monotonic() < deadline:
        if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
            break
        chunk = os.read(proc.stdout.fileno(), 4096).decode(errors="replace")
        if not chunk:
            break
        buf += chunk
        while "\n" in buf:
            line, buf = buf.split("\n", 1)
            lines.append(line)
            if rx.search(line):
                return lines
    raise AssertionError(f"no line matching {pattern!r} within {timeout}s; got {lines[-5:]}")
