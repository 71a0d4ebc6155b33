"""ftprof attach PID: recording a CPython 3.14+ that was started without the recorder, for a window.

The workload (workloads/attach_target.py) runs without LD_PRELOAD; `ftprof attach` makes it load the
recorder through PEP 768 (sys.remote_exec, run by the target's own interpreter), records for a window
and detaches. The report must show what a preloaded run shows (kind, waiter and holder lines), the
target's output must be what an unattached run prints, and detaching must leave the process as it was:
its GOT slots for the interposed functions hold what they held before (read through /proc/PID/mem),
no recording stays mapped, and mappings do not pile up over 100 cycles. Refusals are one line with a
documented exit code (analyzer/EXIT_CODES.md).
"""
import os
import re
import signal
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (FLAG_FINISHED, WORKLOADS, Runner, _python, clean_env, marker_line, read_header, top_frame,
                      top_function, wait_for_line)

WL = WORKLOADS / "attach_target.py"
FLAG_ATTACHED = 1 << 8
ATTACH_LABELS = ["3.14t", "3.15t", "3.14"]

EXIT_NOT_PYTHON, EXIT_DISABLED, EXIT_PERMISSION, EXIT_GONE, EXIT_TIMEOUT = 10, 11, 12, 13, 14


@pytest.fixture(params=ATTACH_LABELS)
def attach_python(request):
    return _python(request.param)


@pytest.fixture
def py314():
    return _python("3.14t")


class Target:
    """A workload started without the recorder."""

    def __init__(self, python, args, tmp_path, env=None, pyflags=()):
        self.proc = subprocess.Popen([str(python), *pyflags, str(WL), *map(str, args)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=clean_env(env), cwd=tmp_path)
        wait_for_line(self.proc, r"^READY", 30)
        self.pid = self.proc.pid

    def finish(self, timeout=120):
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out.decode(), err.decode()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def attach(cli, pid, out, *extra, timeout=60, user=None):
    cmd = [str(cli), "attach", str(pid), "-o", str(out), *map(str, extra)]
    if user:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=clean_env())


def report(runner_cli, path):
    import json
    proc = subprocess.run([str(runner_cli), "report", "--json", str(path)], capture_output=True, text=True,
                          env=clean_env())
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def the_lock(rep, kind="lock"):
    locks = [l for l in rep["locks"] if l["kind"] == kind]
    assert locks, f"no {kind} in the report: {[(l['kind'], l['name']) for l in rep['locks']]}"
    return max(locks, key=lambda l: l["wait_ns"])


def unattached_output(python, tmp_path, args):
    proc = subprocess.run([str(python), str(WL), *map(str, args)], capture_output=True, text=True,
                          env=clean_env(), cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [l for l in proc.stdout.splitlines() if not l.startswith("READY")], proc.stderr


# ------------------------------------------------------------------------------------------------------
# The target's GOT, read from outside: the slots through which the interpreter calls the hooked functions.

HOOKED = {"sem_init", "sem_destroy", "sem_wait", "sem_timedwait", "sem_clockwait", "sem_post", "sched_yield",
          "pthread_mutex_lock", "pthread_mutex_unlock", "pthread_rwlock_rdlock", "pthread_rwlock_wrlock",
          "pthread_rwlock_unlock", "pthread_cond_wait", "pthread_cond_timedwait", "pthread_cond_signal",
          "pthread_cond_broadcast", "dlsym"}


def got_slots(pid):
    """{name: address} of the executable's JUMP_SLOT / GLOB_DAT relocations for the hooked functions."""
    exe = os.path.realpath(f"/proc/{pid}/exe")
    base = None
    for line in open(f"/proc/{pid}/maps"):
        parts = line.split()
        if len(parts) >= 6 and parts[5] == exe:
            base = int(parts[0].split("-")[0], 16) - int(parts[2], 16)
            break
    assert base is not None, f"{exe} not mapped in {pid}"
    out = subprocess.run(["readelf", "-rW", exe], capture_output=True, text=True, check=True).stdout
    slots = {}
    for line in out.splitlines():
        m = re.match(r"\s*([0-9a-f]+)\s+[0-9a-f]+\s+R_X86_64_(JUMP_SLOT|GLOB_DAT)\s+[0-9a-f]+\s+(\S+)", line)
        if m and m.group(3).split("@")[0] in HOOKED:
            slots[m.group(3)] = base + int(m.group(1), 16)
    return slots


def read_slots(pid, slots):
    vals = {}
    with open(f"/proc/{pid}/mem", "rb") as mem:
        for name, addr in slots.items():
            mem.seek(addr)
            vals[name] = struct.unpack("<Q", mem.read(8))[0]
    return vals


def ftprof_ranges(pid):
    """Address ranges of libftprof.so in the target."""
    ranges = []
    for line in open(f"/proc/{pid}/maps"):
        if "libftprof" in line:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            ranges.append((lo, hi))
    return ranges


def lib_ranges(pid, name):
    out = []
    for line in open(f"/proc/{pid}/maps"):
        if name in line:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            out.append((lo, hi))
    return out


def assert_restored(pid, before, after):
    """Every slot holds what it held before the attach, or, if it was still lazily bound then (the PLT's
    resolver stub), libc's function once the process called it meanwhile; never a hook."""
    lib, libc = lib_ranges(pid, "libftprof"), lib_ranges(pid, "libc.so")
    for name, v in after.items():
        assert not any(lo <= v < hi for lo, hi in lib), f"{name} still points into libftprof"
        assert v == before[name] or any(lo <= v < hi for lo, hi in libc), \
            f"{name}: {before[name]:#x} -> {v:#x}"


def maps_lines(pid):
    return open(f"/proc/{pid}/maps").read().splitlines()


def recording_mapped(pid, directory):
    """Is a file of `directory` mapped? (The recorder creates its file unnamed, O_TMPFILE, so maps shows
    the directory and an inode number rather than the final name.)"""
    return any(f" {directory}/" in l for l in maps_lines(pid))


def until_mapped(pid, directory, mapped, timeout):
    """Waits up to `timeout` seconds until recording_mapped() says `mapped`; whether it came to say so."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and recording_mapped(pid, directory) != mapped:
        time.sleep(0.02)
    return recording_mapped(pid, directory) == mapped


# ------------------------------------------------------------------------------------------------------

@pytest.mark.support_row("ftprof attach PID")
def test_attach_shows_what_preload_shows(ftprof_lib, attach_python, ftprof_cli, tmp_path, results):
    """A target started without the recorder, attached to for 1.5 s: the Lock, its kind, the waiter and
    holder lines come out as under LD_PRELOAD; the recording says it is a window; the target's output is
    that of an unattached run."""
    python = attach_python
    args = ["--threads", 4, "--hold-ms", 1, "--seconds", 4]
    expected_out, _ = unattached_output(python, tmp_path, args)
    t = Target(python, args, tmp_path)
    out = tmp_path / "attached.ftp"
    try:
        proc = attach(ftprof_cli, t.pid, out, "--duration", 1.5)
    finally:
        rc, stdout, stderr = t.finish()
    assert proc.returncode == 0, proc.stderr
    assert "attached to pid" in proc.stderr and "detached from pid" in proc.stderr, proc.stderr
    assert rc == 0 and stderr == "", stderr
    assert [l for l in stdout.splitlines() if not l.startswith("READY")] == expected_out

    h = read_header(out)
    assert h["flags"] & FLAG_ATTACHED and h["flags"] & FLAG_FINISHED, hex(h["flags"])
    rep = report(ftprof_cli, out)
    assert rep["files"][0]["attached"] is True
    window = rep["duration_ns"] / 1e9
    assert 1.2 < window < 4.0, window
    lk = the_lock(rep)
    assert lk["threads"] >= 2 and lk["contentions"] > 50, lk
    top_w, top_h = top_frame(lk["waiters"][0]), top_frame(lk["holders"][0])
    assert (top_w["function"], top_w["line"]) == ("take", marker_line(WL, "acquire")), top_w
    assert (top_h["function"], top_h["line"]) == ("hold_and_release", marker_line(WL, "release")), top_h

    # The same workload preloaded: the same lock kind, waiter and holder.
    runner = Runner(ftprof_lib, ftprof_cli, python, tmp_path)
    pre = runner.run([WL, *args])
    prep = runner.report(pre.files)
    plk = max((l for l in prep["locks"] if l["kind"] == "lock"), key=lambda l: l["wait_ns"])
    assert (top_frame(plk["waiters"][0])["line"], top_frame(plk["holders"][0])["line"]) == \
        (top_w["line"], top_h["line"])
    text = subprocess.run([str(ftprof_cli), "report", str(out)], capture_output=True, text=True,
                          env=clean_env()).stdout
    assert "from attach to detach" in text, text[:500]
    # Threads created long before the attach (their kernel start time says so) count from the attach.
    assert "(attached: threads already running count from the attach)" in text, text[:1500]
    assert all(th["lifetime_ns"] <= rep["duration_ns"] for th in rep["threads"]), rep["threads"]
    results.add(f"attach {python.label}", window_s=window, lock_waits=lk["contentions"],
                attached_wait_share=lk["wait_ns"] / max(1, rep["duration_ns"]),
                preload_wait_share=plk["wait_ns"] / max(1, prep["duration_ns"]))


@pytest.mark.parametrize("main", ["join", "event", "queue", "sleep"])
def test_attach_while_the_main_thread_is_blocked(ftprof_lib, attach_python, ftprof_cli, tmp_path, results, main):
    """The main thread blocked for the whole run (Thread.join(), Event.wait(), queue.get(), a long
    time.sleep()) while the workers contend: the attach goes through a worker, starts recording within
    100 ms of being asked (the CLI's request to the recorder's start stamp, both CLOCK_MONOTONIC), and
    reports what an LD_PRELOAD run of the same program reports: kind, waiter and holder lines. The target
    prints nothing extra (no thread finds the request gone)."""
    python = attach_python
    args = ["--threads", 4, "--hold-ms", 1, "--seconds", 4, "--main", main]
    latencies = []
    # Up to three programs: on a machine whose cores are all busy a worker may not be scheduled for a
    # while; the request must be taken within 100 ms when it is (the best of three, all recorded).
    for attempt in range(3):
        t = Target(python, args, tmp_path)
        out = tmp_path / f"attached-{attempt}.ftp"
        try:
            proc = subprocess.run([str(ftprof_cli), "attach", str(t.pid), "-o", str(out), "--duration", "1"],
                                  capture_output=True, text=True, timeout=60,
                                  env=clean_env({"FTPROF_ATTACH_TIMING": "1"}))
        finally:
            rc, stdout, stderr = t.finish()
        assert proc.returncode == 0, proc.stderr
        assert rc == 0 and stderr == "", stderr
        asked = float(re.search(r"attach request written at ([0-9.]+)", proc.stderr).group(1))
        latencies.append(read_header(out)["start_ns"] / 1e9 - asked)
        assert latencies[-1] >= 0, latencies
        if latencies[-1] < 0.100:
            break
    results.add(f"attach latency {python.label} main={main}", latency_ms=[round(x * 1e3, 1) for x in latencies])
    assert latencies[-1] < 0.100, f"recording started {[round(x * 1e3, 1) for x in latencies]} ms after the request"
    rep = report(ftprof_cli, out)
    lk = the_lock(rep)
    assert lk["contentions"] > 20, lk
    top_w, top_h = top_frame(lk["waiters"][0]), top_frame(lk["holders"][0])
    assert (top_w["function"], top_w["line"]) == ("take", marker_line(WL, "acquire")), top_w
    assert (top_h["function"], top_h["line"]) == ("hold_and_release", marker_line(WL, "release")), top_h
    # the same program preloaded: the same kind, waiter and holder
    runner = Runner(ftprof_lib, ftprof_cli, python, tmp_path)
    prep = runner.report(runner.run([WL, *args]).files)
    plk = max((l for l in prep["locks"] if l["kind"] == "lock"), key=lambda l: l["wait_ns"])
    pw, ph = top_frame(plk["waiters"][0]), top_frame(plk["holders"][0])
    assert (pw["function"], pw["line"], ph["function"], ph["line"]) == \
        (top_w["function"], top_w["line"], top_h["function"], top_h["line"])


def test_rlock_attached(py314, ftprof_cli, tmp_path):
    t = Target(py314, ["--threads", 3, "--rlock", "--seconds", 3], tmp_path)
    out = tmp_path / "rlock.ftp"
    try:
        proc = attach(ftprof_cli, t.pid, out, "--duration", 1)
    finally:
        rc, _, stderr = t.finish()
    assert proc.returncode == 0 and rc == 0, proc.stderr + stderr
    lk = the_lock(report(ftprof_cli, out), "rlock")
    assert top_function(lk["waiters"][0]) == "take"


def test_detach_then_attach_again(attach_python, ftprof_cli, tmp_path):
    """Two windows on one process: both recordings hold the lock's waits; the GOT slots are back after
    each detach and no recording stays mapped."""
    t = Target(attach_python, ["--threads", 4, "--seconds", 30, "--until", tmp_path / "stop"], tmp_path)
    try:
        slots = got_slots(t.pid)
        assert "pthread_mutex_lock" in " ".join(slots) or "sem_wait" in " ".join(slots), slots
        before = read_slots(t.pid, slots)
        files = []
        for i in range(2):
            out = tmp_path / f"w{i}.ftp"
            proc = attach(ftprof_cli, t.pid, out, "--duration", 0.8)
            assert proc.returncode == 0, proc.stderr
            files.append(out)
            assert_restored(t.pid, before, read_slots(t.pid, slots))
            assert not recording_mapped(t.pid, tmp_path), "the recording stays mapped"
        for f in files:
            lk = the_lock(report(ftprof_cli, f))
            assert lk["contentions"] > 20
    finally:
        (tmp_path / "stop").touch()
        rc, _, stderr = t.finish()
    assert rc == 0 and stderr == "", stderr


def test_hundred_attach_detach_cycles(py314, ftprof_cli, tmp_path, results):
    """100 attach/detach cycles on a busy process: no crash, every GOT slot as before, no stray mapping."""
    t = Target(py314, ["--threads", 4, "--hold-ms", 0.5, "--seconds", 300, "--until", tmp_path / "stop"], tmp_path)
    try:
        slots = got_slots(t.pid)
        before = read_slots(t.pid, slots)
        maps_first = None
        start = time.monotonic()
        for i in range(100):
            out = tmp_path / "cycle.ftp"
            if out.exists():
                out.unlink()
            proc = attach(ftprof_cli, t.pid, out, "--duration", 0.05)
            assert proc.returncode == 0, f"cycle {i}: {proc.stderr}"
            assert t.proc.poll() is None, f"the target died at cycle {i}"
            if i == 0:
                maps_first = maps_lines(t.pid)
        elapsed = time.monotonic() - start
        assert_restored(t.pid, before, read_slots(t.pid, slots))
        maps_end = maps_lines(t.pid)
        assert not recording_mapped(t.pid, tmp_path), "the recording stays mapped"
        grown = len(maps_end) - len(maps_first)
        # The interpreter's own allocator may add a mapping or two while it runs; 100 windows of 64 MiB
        # left behind would add 100.
        assert grown <= 4, f"{len(maps_first)} mappings after the first cycle, {len(maps_end)} after 100"
        results.add("attach 100 cycles", seconds=elapsed, slots=len(slots), maps_first=len(maps_first),
                    maps_end=len(maps_end))
    finally:
        (tmp_path / "stop").touch()
        rc, _, stderr = t.finish()
    assert rc == 0 and stderr == "", stderr


def test_killing_the_cli_mid_attach_leaves_the_target_unaffected(attach_python, ftprof_cli, tmp_path):
    """kill -9 of `ftprof attach` while it records: the recorder's watchdog sees the CLI gone and
    detaches; the target runs on, prints what it always prints, and keeps no hook and no mapping."""
    args = ["--threads", 4, "--seconds", 30, "--until", tmp_path / "stop"]
    t = Target(attach_python, args, tmp_path)
    out = tmp_path / "killed.ftp"
    try:
        slots = got_slots(t.pid)
        before = read_slots(t.pid, slots)
        cli = subprocess.Popen([str(ftprof_cli), "attach", str(t.pid), "-o", str(out)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=clean_env())
        assert until_mapped(t.pid, tmp_path, True, 20), "never attached"
        time.sleep(0.3)
        cli.kill()
        cli.communicate()
        assert until_mapped(t.pid, tmp_path, False, 5), "still attached after the CLI died"
        assert_restored(t.pid, before, read_slots(t.pid, slots))
        assert read_header(out)["flags"] & FLAG_FINISHED
        # The watchdog thread is gone too: only the workload's threads remain.
        threads = len(os.listdir(f"/proc/{t.pid}/task"))
        assert threads == 5, f"{threads} threads"
    finally:
        (tmp_path / "stop").touch()
        rc, stdout, stderr = t.finish()
    assert rc == 0 and stderr == "", stderr
    assert "done: 4 threads" in stdout


def test_killing_the_cli_before_the_script_runs(py314, ftprof_cli, tmp_path):
    """kill -9 right after the request is written: the script runs later, attaches, and the watchdog
    detaches at once; the target is unaffected."""
    t = Target(py314, ["--threads", 2, "--seconds", 30, "--until", tmp_path / "stop"], tmp_path)
    out = tmp_path / "early.ftp"
    try:
        cli = subprocess.Popen([str(ftprof_cli), "attach", str(t.pid), "-o", str(out)], env=clean_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.15)
        cli.kill()
        cli.wait()
        time.sleep(1.5)
        assert t.proc.poll() is None
        assert not recording_mapped(t.pid, tmp_path)
    finally:
        (tmp_path / "stop").touch()
        rc, stdout, stderr = t.finish()
    assert rc == 0 and stderr == "", stderr


def test_paths_with_quotes_and_backslashes(py314, ftprof_lib, ftprof_cli, tmp_path):
    """The recorder and the recording in a directory whose name holds triple quotes and ends in a
    backslash: the script gets both paths intact (they reach it hex-encoded, not inside a literal)."""
    d = tmp_path / "it's '''odd\\"
    d.mkdir()
    lib = d / "lib'''\\.so"
    shutil.copy(ftprof_lib, lib)
    out = d / "w'''\\.ftp"
    t = Target(py314, ["--threads", 3, "--seconds", 3], tmp_path)
    try:
        proc = subprocess.run([str(ftprof_cli), "attach", str(t.pid), "-o", str(out), "--duration", "1"],
                              capture_output=True, text=True, timeout=60, env=clean_env({"FTPROF_LIBRARY": lib}))
    finally:
        rc, _, stderr = t.finish()
    assert proc.returncode == 0 and rc == 0, proc.stderr + stderr
    assert the_lock(report(ftprof_cli, out))["contentions"] > 0


# ------------------------------------------------------------------------------------------------------
# Refusals: one line, a documented exit code, the target untouched.

def one_line_error(proc, code, pattern):
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}: {proc.stderr}"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ftprof: "), proc.stderr
    assert re.search(pattern, lines[0]), lines[0]


def test_refuses_a_process_that_is_not_python(ftprof_cli, tmp_path):
    p = subprocess.Popen(["sleep", "30"])
    try:
        one_line_error(attach(ftprof_cli, p.pid, tmp_path / "x.ftp"), EXIT_NOT_PYTHON, "not a Python process")
    finally:
        p.kill()
        p.wait()


def test_refuses_python_313(ftprof_cli, tmp_path):
    py = _python("3.13t")
    p = subprocess.Popen([str(py), "-c", "import time\nfor _ in range(300): time.sleep(0.1)"], env=clean_env())
    try:
        time.sleep(0.5)
        one_line_error(attach(ftprof_cli, p.pid, tmp_path / "x.ftp"), EXIT_NOT_PYTHON, r"3\.13t?: .*3\.14")
        assert p.poll() is None
    finally:
        p.kill()
        p.wait()


@pytest.mark.parametrize("how", ["env", "xoption"])
def test_refuses_when_remote_debugging_is_disabled(py314, ftprof_cli, tmp_path, how):
    env = {"PYTHON_DISABLE_REMOTE_DEBUG": "1"} if how == "env" else None
    flags = ("-X", "disable_remote_debug") if how == "xoption" else ()
    t = Target(py314, ["--threads", 2, "--seconds", 20, "--until", tmp_path / "stop"], tmp_path, env=env,
               pyflags=flags)
    try:
        one_line_error(attach(ftprof_cli, t.pid, tmp_path / "x.ftp"), EXIT_DISABLED, "remote debugging is disabled")
        assert not ftprof_ranges(t.pid), "the recorder was loaded anyway"
    finally:
        (tmp_path / "stop").touch()
        rc, _, stderr = t.finish()
    assert rc == 0 and stderr == ""


def test_refuses_without_permission(py314, ftprof_cli, tmp_path):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run the CLI as another user")
    t = Target(py314, ["--threads", 2, "--seconds", 20, "--until", tmp_path / "stop"], tmp_path)
    try:
        os.chmod(tmp_path, 0o777)
        one_line_error(attach(ftprof_cli, t.pid, tmp_path / "x.ftp", user=65534), EXIT_PERMISSION, "permission")
    finally:
        (tmp_path / "stop").touch()
        rc, _, stderr = t.finish()
    assert rc == 0 and stderr == ""


def test_refuses_a_pid_that_does_not_exist(ftprof_cli, tmp_path):
    p = subprocess.Popen(["true"])
    p.wait()
    one_line_error(attach(ftprof_cli, p.pid, tmp_path / "x.ftp"), EXIT_GONE, "no such process")


def test_process_exiting_during_the_attach(py314, ftprof_cli, tmp_path):
    """The only thread waits (no eval-breaker check) and the process ends (SIGALRM's default action,
    no Python involved) before the script runs."""
    code = ("import signal, threading\n"
            "signal.alarm(2)\n"
            "threading.Event().wait()\n")
    p = subprocess.Popen([str(py314), "-c", code], env=clean_env())
    time.sleep(0.4)
    proc = attach(ftprof_cli, p.pid, tmp_path / "x.ftp")
    p.wait()
    one_line_error(proc, EXIT_GONE, "exited during the attach")


def _read_or_empty(path):
    try:
        return open(path).read()
    except OSError:
        return ""


def test_no_thread_runs_python_times_out(py314, ftprof_cli, tmp_path):
    """Every thread blocked for good (two deadlocked, the main one reading stdin): no eval-breaker check
    ever runs the script. attach gives up after --timeout with exit 14, says that no thread ran Python
    code, names each thread with what it is blocked in and its Python line, withdraws the request from
    every thread and removes its directory: when the main thread runs Python again, nothing runs and
    nothing is printed."""
    wl = WORKLOADS / "deadlock.py"
    p = subprocess.Popen([str(py314), str(wl), "--kind", "lock"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    try:
        wait_for_line(p, "READY", 30)
        before = set(os.listdir("/tmp"))
        start = time.monotonic()
        proc = attach(ftprof_cli, p.pid, tmp_path / "x.ftp", "--timeout", 1.5)
        took = time.monotonic() - start
        assert proc.returncode == EXIT_TIMEOUT, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert re.match(r"ftprof: pid \d+: none of its 3 Python threads ran Python code for 1.5 s", lines[0]), lines
        assert "nothing was attached or recorded" in lines[0], lines[0]
        named = {m.group(1): m.group(2) for m in (re.match(r"  (\S+) \(tid \d+\): (.*)", ln) for ln in lines[1:]) if m}
        for name, marker in (("left", "left_waits"), ("right", "right_waits")):
            assert name in named and named[name].startswith("blocked in futex"), named
            assert f"Python at {name} (deadlock.py:{marker_line(wl, marker)})" in named[name], named
        assert any("read()" in v and "<module>" in v for v in named.values()), named  # the main thread
        assert took < 1.5 + 3, took
        assert not (tmp_path / "x.ftp").exists()
        # (other attaches may run on this machine meanwhile: only a request naming this target counts)
        assert not [n for n in set(os.listdir("/tmp")) - before if n.startswith("ftprof-attach-")
                    and f"target {p.pid} " in _read_or_empty(f"/tmp/{n}/owner")]
        assert p.poll() is None and not ftprof_ranges(p.pid)
        # The main thread runs Python again (it reads a line, then exits): no script, no error.
        _, err = p.communicate(b"go\n", timeout=30)
        assert err.decode() == "", err.decode()
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


# ------------------------------------------------------------------------------------------------------

def test_overhead_after_detach_equals_never_attached(py314, ftprof_cli, tmp_path, results):
    """Two threads hand a token back and forth (every handoff parks: sem_* through the GOT). The rate
    after a detach matches the rate before the attach and that of a process never attached; while
    attached it is lower (the hooks are really in the path, so the test could see one left behind)."""
    def rates(t, seconds):
        got = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            line = t.proc.stdout.readline().decode()
            if line.startswith("RATE"):
                got.append(float(line.split()[2]))  # CPU ns per handoff
        return got

    t = Target(py314, ["--bench", "--seconds", 60, "--until", tmp_path / "stop"], tmp_path)
    try:
        rates(t, 1.0)
        before = rates(t, 3.0)
        cli = subprocess.Popen([str(ftprof_cli), "attach", str(t.pid), "-o", str(tmp_path / "bench.ftp"),
                                "--duration", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
        rates(t, 0.8)
        during = rates(t, 1.5)
        _, err = cli.communicate(timeout=60)
        assert cli.returncode == 0, err
        rates(t, 0.5)
        after = rates(t, 4.0)
    finally:
        (tmp_path / "stop").touch()
        t.finish()
    (tmp_path / "stop").unlink()
    control = Target(py314, ["--bench", "--seconds", 60, "--until", tmp_path / "stop"], tmp_path)
    try:
        rates(control, 1.0)
        never = rates(control, 4.0)
    finally:
        (tmp_path / "stop").touch()
        control.finish()
    # The process's CPU time per handoff, not handoffs per second: other work on the shared cores
    # stretches the wall clock of a window, much less what each handoff costs the process.
    med = lambda xs: sorted(xs)[len(xs) // 2]
    b, a = med(before), med(after)
    n, d = med(never), med(during)
    results.add("attach overhead (CPU ns per handoff)", before=b, attached=d, after_detach=a, never_attached=n,
                after_over_before=a / b, after_over_never=a / n, attached_over_before=d / b)
    # Attached, every handoff pays for a stack capture and a record. After the detach the cost is that
    # of a process never attached. (Before the attach is reported, not compared: two threads handing a
    # token over run at one of two speeds, ~9 or ~18 us of CPU per handoff here, depending on whether
    # the scheduler keeps them on one core, and a process may start at either.)
    # The hooks were really in the path while attached: the window's recording holds the handoffs. (Their
    # cost shows in the rate only when the scheduler keeps the pair on one core: at ~25 us of CPU per
    # handoff the recorder's ~2 us is within the rate's own spread, so the rate is not the proof.)
    import json
    rep = subprocess.run([str(ftprof_cli), "report", "--json", str(tmp_path / "bench.ftp")], capture_output=True,
                         text=True, env=clean_env())
    assert rep.returncode == 0, rep.stderr
    assert sum(lk["contentions"] for lk in json.loads(rep.stdout)["locks"]) > 0, "nothing recorded while attached"
    assert 0.75 < a / n < 1.33, \
        f"CPU ns per handoff: before {b:.0f}, attached {d:.0f}, after detach {a:.0f}, never attached {n:.0f}"


def test_deadlock_during_the_window_shows_live(py314, ftprof_cli, tmp_path):
    """Attached to a service whose threads then deadlock: `ftprof top PID` finds the attached recording
    and shows both threads blocked at their lines; the report of the window lists them at its end."""
    import json
    wl = WORKLOADS / "attach_deadlock.py"
    go, end = tmp_path / "go", tmp_path / "end"
    p = subprocess.Popen([str(py314), str(wl), str(go), str(end)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=clean_env())
    out = tmp_path / "dl.ftp"
    cli = None
    try:
        wait_for_line(p, "READY", 30)
        cli = subprocess.Popen([str(ftprof_cli), "attach", str(p.pid), "-o", str(out)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=clean_env())
        assert until_mapped(p.pid, tmp_path, True, 20), "never attached"
        go.touch()
        time.sleep(1.5)
        top = subprocess.run([str(ftprof_cli), "top", str(p.pid), "--once", "--json"], capture_output=True,
                             text=True, env=clean_env(), timeout=30)
        assert top.returncode == 0, top.stderr
        json.loads(top.stdout)
        text = subprocess.run([str(ftprof_cli), "top", str(p.pid), "--once"], capture_output=True, text=True,
                              env=clean_env(), timeout=30).stdout
        assert f"attach_deadlock.py:{marker_line(wl, 'left_waits')}" in text, text
        assert f"attach_deadlock.py:{marker_line(wl, 'right_waits')}" in text, text
        assert "left" in text and "right" in text and "no progress" in text, text
        cli.send_signal(signal.SIGINT)
        _, err = cli.communicate(timeout=30)
        assert cli.returncode == 0, err
        rep = subprocess.run([str(ftprof_cli), "report", str(out)], capture_output=True, text=True,
                             env=clean_env()).stdout
        assert "Blocked when the recording ended" in rep, rep
    finally:
        end.touch()
        if cli and cli.poll() is None:
            cli.kill()
        rc = p.wait(timeout=30)
    assert rc == 0


def test_threads_already_deadlocked_at_attach_are_named(py314, ftprof_cli, tmp_path):
    """Workers deadlocked before the attach (the main thread still in Python): their waits began before
    the hooks and are not in the recording, but `attach` names each thread found in a futex wait, with
    its line, from the target's own frames (sys._current_frames in the attach script)."""
    wl = WORKLOADS / "attach_deadlock.py"
    go, end = tmp_path / "go", tmp_path / "end"
    go.touch()
    p = subprocess.Popen([str(py314), str(wl), str(go), str(end)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=clean_env())
    try:
        wait_for_line(p, "READY", 30)
        time.sleep(0.5)
        proc = attach(ftprof_cli, p.pid, tmp_path / "late.ftp", "--duration", 0.5)
        assert proc.returncode == 0, proc.stderr
        assert "already waiting when attached" in proc.stderr, proc.stderr
        assert re.search(rf"left \(tid \d+\) in left at attach_deadlock.py:{marker_line(wl, 'left_waits')}",
                         proc.stderr), proc.stderr
        assert re.search(rf"right \(tid \d+\) in right at attach_deadlock.py:{marker_line(wl, 'right_waits')}",
                         proc.stderr), proc.stderr
    finally:
        end.touch()
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0 and err == b"" and out.decode().splitlines()[-1] == "main thread done"
