"""Live recordings: `ftprof top` on a running program (what is blocked right now, deadlocks), in a real
terminal through tmux, pause and resume, FTPROF_MIN_WAIT and FTPROF_MODE=ring with exact accounting.

Every workload forces the state a test looks at (a thread blocks because another holds the lock on
purpose) and says when it is reached; the test waits for that line, then asserts against the
workload's own measurement: names, lines, times since each thread blocked, counts.
"""
import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import WORKLOADS, marker_line


class Workload:
    """A workload running under the recorder, with its stdin and stdout as pipes."""

    def __init__(self, runner, argv, extra_env=None):
        self.runner = runner
        argv = [str(a) for a in argv]
        argv[0] = str(WORKLOADS / argv[0])
        self.before = set(runner.out_dir.iterdir())
        self.proc = subprocess.Popen([str(runner.python), *argv], env=runner.env(extra=extra_env), cwd=runner.tmp,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = []
        self.buf = ""
        self.t0 = {}

    def wait_for(self, pattern, timeout=120):
        """Lines up to the first matching one (conftest.wait_for_line would drop what follows it in the
        same read; the workloads here print several lines at once)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        got = []
        while True:
            while "\n" in self.buf:
                line, self.buf = self.buf.split("\n", 1)
                got.append(line)
                self.lines.append(line)
                if line.startswith("{") and '"blocked"' in line:
                    d = json.loads(line)
                    self.t0[d["blocked"]] = d["t0"]
                if rx.search(line):
                    return got
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0, left))
            chunk = os.read(self.proc.stdout.fileno(), 65536).decode(errors="replace") if ready else ""
            if not chunk:
                raise AssertionError(f"no line matching {pattern!r} within {timeout}s; got {self.lines[-5:]}; "
                                     f"exit {self.proc.poll()}")
            self.buf += chunk

    def wait_blocked(self, names, timeout=120):
        """Reads lines until every name in `names` said it is about to block."""
        deadline = time.monotonic() + timeout
        while not set(names) <= set(self.t0):
            assert time.monotonic() < deadline, f"only {sorted(self.t0)} of {names} blocked; lines {self.lines[-5:]}"
            self.wait_for(r'"blocked"|READY', timeout=max(1, deadline - time.monotonic()))

    @property
    def file(self):
        files = sorted(set(self.runner.out_dir.iterdir()) - self.before)
        assert len(files) == 1, f"expected one recording, found {files}"
        return files[0]

    def send(self, text="go\n"):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def finish(self, timeout=120):
        out, err = self.proc.communicate(timeout=timeout)
        self.lines += (self.buf + out.decode()).splitlines()
        self.buf = ""
        assert self.proc.returncode == 0, f"workload exited {self.proc.returncode}:\n{err.decode()[-3000:]}"
        return json.loads(self.lines[-1])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def workloads():
    started = []

    def start(runner, argv, extra_env=None):
        w = Workload(runner, argv, extra_env)
        started.append(w)
        return w

    yield start
    for w in started:
        w.kill()


def top_json(runner, target, *extra):
    proc = runner.cli_run("top", target, "--once", "--json", *extra)
    assert proc.returncode == 0, f"ftprof top exited {proc.returncode}: {proc.stderr}"
    return json.loads(proc.stdout)


def poll_top(runner, target, ready, timeout=120):
    """`top --once --json` until ready(frame) holds: a loaded machine may take a while to park them."""
    deadline = time.monotonic() + timeout
    while True:
        frame = top_json(runner, target)
        if ready(frame):
            return frame
        assert time.monotonic() < deadline, f"state not reached within {timeout}s: {json.dumps(frame)[:3000]}"
        time.sleep(0.2)


def blocked_by_name(frame):
    return {b["thread"]: b for b in frame["blocked"] if b["thread"]}


# --------------------------------------------------------------------------------------------------
# (1) What is blocked right now, against the workload's own ground truth.

@pytest.mark.support_row("ftprof top --once --json")
@pytest.mark.parametrize("kind", ["lock", "rlock"])
def test_top_json_blocked_now(any_runner, workloads, kind):
    """On every build, free-threaded and GIL: the waits in flight do not depend on the GIL."""
    runner = any_runner
    n = 3
    w = workloads(runner, ["live_blocked.py", "--threads", n, "--kind", kind])
    names = [f"waiter-{i}" for i in range(n)]
    w.wait_blocked(names)
    line = marker_line(WORKLOADS / "live_blocked.py", "blocked")

    def all_parked(frame):
        b = blocked_by_name(frame)
        return all(name in b and b[name]["waiter"] and b[name]["waiter"]["line"] == line for name in names)

    poll_top(runner, w.file, all_parked)
    time.sleep(3.0)  # blocked for seconds: ±10% leaves room for a loaded machine's delays
    frame = top_json(runner, str(w.proc.pid))  # by process id: /proc/PID/maps finds the recording
    assert frame["state"] == "running"
    assert Path(frame["file"]).resolve() == w.file.resolve()
    blocked = blocked_by_name(frame)
    for name in names:
        b = blocked[name]
        assert b["kind"] == kind, b
        assert b["waiter"]["function"] == "waiter" and b["waiter"]["file"].endswith("live_blocked.py"), b
        assert b["waiter"]["line"] == line and "with lock:" in b["waiter"]["source"], b
        truth = frame["now_ns"] - w.t0[name]
        assert abs(b["blocked_ns"] - truth) <= 0.10 * truth, (name, b["blocked_ns"], truth)
        if kind == "rlock" and runner.python.version >= (3, 14):
            # 3.14+ RLocks know their owner: the holder is named
            assert b["holder"] and b["holder"]["thread"] == "holder" and b["holder"]["known_by"] == "owner", b
    # The holder itself waits for its release event: waiting for work, not on a lock.
    assert blocked["holder"]["kind"] == "condition", blocked["holder"]
    # The lock they queue on heads the table: all three blocked on it, their wait in flight counted.
    top = frame["locks"][0]
    assert top["blocked_now"] == n and top["waiter"]["line"] == line, frame["locks"]
    assert top["interval_wait_ns"] >= 0.9 * n * frame["interval_ns"], top
    assert not frame["deadlocks"], frame["deadlocks"]  # one lock: a queue, not a deadlock

    w.send()
    w.finish()
    after = top_json(runner, w.file)
    assert after["state"] == "finished"
    assert not [b for b in after["blocked"] if b["thread"] in names], after["blocked"]


# --------------------------------------------------------------------------------------------------
# (3) Deadlocks: a cycle through owners where the recorder sees them, "no progress" where it cannot.

@pytest.mark.support_row("ftprof top live (tmux)")
def test_deadlock_cycle_and_no_progress(runner, workloads):
    for kind in ("rlock", "lock"):
        w = workloads(runner, ["deadlock.py", "--kind", kind])
        w.wait_blocked(["left", "right"])
        lines = {"left": marker_line(WORKLOADS / "deadlock.py", "left_waits"),
                 "right": marker_line(WORKLOADS / "deadlock.py", "right_waits")}

        def both_stuck(frame):
            b = blocked_by_name(frame)
            return (all(n in b and b[n]["waiter"] and b[n]["waiter"]["line"] == lines[n] for n in lines)
                    and min(b[n]["blocked_ns"] for n in lines) > 1.2e9 and frame["deadlocks"])

        frame = poll_top(runner, w.file, both_stuck)
        found = frame["deadlocks"]
        assert len(found) == 1, found
        text = found[0]["text"]
        if kind == "rlock" and runner.python.version >= (3, 14):
            assert found[0]["kind"] == "deadlock", found
            # the cycle, from whichever of them blocked first
            a, b = ("left", "right") if text.startswith("deadlock: left") else ("right", "left")
            assert text.startswith(f"deadlock: {a} waits for RLock") and f"held by {b}, which waits for RLock" in text \
                and text.count(f"held by {a}") == 1, text
        else:
            # threading.Lock (and 3.13's RLock) keep no owner: say what is seen, not a guessed cycle
            assert found[0]["kind"] == "no_progress", found
            assert "left and right: both blocked for" in text and "no progress" in text, text
        # both waiters' lines are given
        joined = "\n".join(found[0]["lines"])
        assert f"deadlock.py:{lines['left']}" in joined and f"deadlock.py:{lines['right']}" in joined, joined
        # `report` says so too, about the state the recording ended in
        w.send()
        w.finish()
        rep = runner.cli_run("report", w.file)
        assert rep.returncode == 0, rep.stderr
        assert text.split(" (for ")[0].split(": both blocked")[0] in rep.stdout, rep.stdout[-3000:]
        assert "Blocked when the recording ended" in rep.stdout, rep.stdout[-3000:]
        js = runner.report(w.file)
        assert [d["kind"] for d in js["deadlocks"]] == [found[0]["kind"]], js["deadlocks"]
        ended = {b["thread"]: b for b in js["blocked_at_end"]}
        assert all(ended[n]["waiter"]["line"] == lines[n] for n in lines), js["blocked_at_end"]


# --------------------------------------------------------------------------------------------------
# (2) The live view in a real terminal: tmux runs `ftprof top`, the test reads the screen.

class Tmux:
    def __init__(self, tmp):
        if not shutil.which("tmux"):
            pytest.skip("tmux is not installed (make deps)")
        self.sock = f"ftprof-test-{os.getpid()}-{id(self)}"
        self.tmp = tmp

    def tmux(self, *args, check=True):
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True, check=check)

    def start(self, cmd):
        # remain-on-exit: a command that ends leaves its last screen to read
        self.tmux("-f", "/dev/null", "new-session", "-d", "-x", "160", "-y", "48", "-s", "top", cmd)
        self.tmux("set-option", "-t", "top", "remain-on-exit", "on")

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "top").stdout

    def wait_screen(self, ok, timeout=90, what="the expected screen"):
        deadline = time.monotonic() + timeout
        while True:
            s = self.screen()
            if ok(s):
                return s
            assert time.monotonic() < deadline, f"{what} did not appear within {timeout}s; screen:\n{s}"
            time.sleep(0.25)

    def dead(self):
        r = self.tmux("list-panes", "-t", "top", "-F", "#{pane_dead}", check=False)
        return r.returncode != 0 or r.stdout.strip() == "1"

    def close(self):
        self.tmux("kill-server", check=False)


@pytest.fixture
def tmux(tmp_path):
    t = Tmux(tmp_path)
    yield t
    t.close()


_UNITS = {"ns": 1e-9, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1.0}


def running_for(screen):
    """Seconds in the status line's "running for 1.23 s" (or ms...), -1 if absent."""
    m = re.search(r"running for ([0-9.]+) (ns|\u00b5s|ms|s)\b", screen)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else -1


def lock_row(screen, where):
    return next((ln for ln in screen.splitlines() if where in ln and "@" in ln.split(where)[0]), None)


@pytest.mark.support_row("ftprof top live (tmux)")
def test_top_live_deadlock(runner, workloads, tmux):
    w = workloads(runner, ["deadlock.py", "--kind", "rlock"])
    w.wait_blocked(["left", "right"])
    tmux.start(f"{runner.cli} top {w.proc.pid} --interval 0.5")
    cycle = runner.python.version >= (3, 14)
    expect = ("deadlock: left waits for RLock", "deadlock: right waits for RLock") if cycle else \
        ("left and right: both blocked for",)
    s = tmux.wait_screen(lambda s: any(e in s for e in expect), what=" or ".join(expect))
    assert "BLOCKED NOW (2 threads)" in s, s
    for name, marker in (("left", "left_waits"), ("right", "right_waits")):
        site = f"deadlock.py:{marker_line(WORKLOADS / 'deadlock.py', marker)}"
        assert f"{name} waits at {site}" in s, s  # both lines, under the finding
    if cycle:
        assert ("held by right, which waits for RLock" in s and "held by left" in s) or \
            ("held by left, which waits for RLock" in s and "held by right" in s), s
        # the holder's line: each one's holder now, read from the process, is the other, blocked itself
        # (shown once a thread has waited 100 ms)
        s = tmux.wait_screen(lambda s: s.count(" now: blocked itself") >= 2, what="the holders' lines")
        for name, other in (("left", "right"), ("right", "left")):
            site = f"{other} (deadlock.py:{marker_line(WORKLOADS / 'deadlock.py', other + '_waits')})"
            assert re.search(rf"holder {other} \(tid \d+, owner\) now: blocked itself, on RLock @\S+, at {re.escape(site)}",
                             s), s
    # q quits and gives the terminal back
    tmux.tmux("send-keys", "-t", "top", "q")
    tmux.wait_screen(lambda s: tmux.dead(), timeout=30, what="top quitting on q")
    w.send()
    w.finish()


@pytest.mark.support_row("ftprof top live (tmux)")
def test_top_live_convoy(runner, workloads, tmux):
    w = workloads(runner, ["convoy.py", "--threads", "4", "--hold", "5", "--seconds", "0"])
    w.wait_for("RUNNING")
    tmux.start(f"{runner.cli} top {w.file} --interval 0.5")
    site = f"convoy.py:{marker_line(WORKLOADS / 'convoy.py', 'convoy')}"
    s = tmux.wait_screen(lambda s: lock_row(s, site) is not None and "worker-" in s, what=f"the convoy at {site}")
    first = s.split("LOCK", 1)[1].splitlines()[1]
    assert site in first, f"the convoy's lock is not the first row:\n{s}"
    assert first.startswith("Lock @"), s
    # the view refreshes: the elapsed time moves on
    t1 = running_for(s)
    s2 = tmux.wait_screen(lambda x: running_for(x) > t1 + 1, what="a later frame")
    rows = [ln for ln in s2.split("BLOCKED NOW", 1)[1].splitlines() if ln.startswith("worker-")]
    assert rows and all(site in r for r in rows), s2  # blocked now: workers, at the convoy line
    tmux.tmux("send-keys", "-t", "top", "q")
    w.send()
    truth = w.finish()
    assert truth["acquisitions"] > 0


def test_top_live_program_ends_while_watched(runner, workloads, tmux):
    w = workloads(runner, ["convoy.py", "--threads", "3", "--hold", "5", "--seconds", "4"])
    w.wait_for("RUNNING")
    tmux.start(f"{runner.cli} top {w.proc.pid} --interval 0.5")
    site = f"convoy.py:{marker_line(WORKLOADS / 'convoy.py', 'convoy')}"
    tmux.wait_screen(lambda s: "running for" in s and lock_row(s, site), what="the running program")
    truth = w.finish()
    s = tmux.wait_screen(lambda s: "ENDED: the process exited after" in s, what="the end of the program")
    # how it ended: the lock's totals stay, and no thread is left blocked
    assert lock_row(s, site), s
    assert "BLOCKED NOW (0 threads, when it ended)" in s, s
    assert not tmux.dead(), "top should keep showing the ended recording until q"
    tmux.tmux("send-keys", "-t", "top", "q")
    tmux.wait_screen(lambda s: tmux.dead(), timeout=30, what="top quitting on q")
    assert truth["acquisitions"] > 0


# --------------------------------------------------------------------------------------------------
# (4) Recording a window: ftprof pause / resume, FTPROF_START=paused.

def locks_at(rep, line):
    """Locks of the report whose main waiter is at `line` of windows.py."""
    out = []
    for lk in rep.locks:
        for wt in lk["waiters"]:
            fr = next((f for f in wt["stack"] if not f["native"]), None)
            if fr and fr["file"] and fr["file"].endswith("windows.py") and fr["line"] == line:
                out.append((lk, wt))
    return out


@pytest.mark.support_row("ftprof top live (tmux)")
@pytest.mark.parametrize("start", ["running", "paused"])
def test_pause_resume_windows(runner, workloads, start):
    w = workloads(runner, ["windows.py"], extra_env={"FTPROF_START": "paused"} if start == "paused" else None)
    first, second = ("pause", "resume") if start == "running" else ("resume", "pause")
    w.wait_for("PHASE A DONE")
    r = runner.cli_run(first, w.proc.pid)  # by process id
    assert r.returncode == 0 and f"{first}d at +" in r.stdout, (r.stdout, r.stderr)
    again = runner.cli_run(first, w.file)
    assert again.returncode == 0 and "already" in again.stdout, (again.stdout, again.stderr)
    w.send()
    w.wait_for("PHASE B DONE")
    r = runner.cli_run(second, w.file)  # by file
    assert r.returncode == 0 and f"{second}d at +" in r.stdout, (r.stdout, r.stderr)
    w.send()
    truth = w.finish()
    rep = runner.report(w.file)
    recorded = ["a", "c"] if start == "running" else ["b"]
    for ph in "abc":
        line = marker_line(WORKLOADS / "windows.py", f"phase_{ph}")
        found = locks_at(rep, line)
        if ph not in recorded:
            assert not found, f"phase {ph} ran while paused but its waits are in the report:\n{rep.summary()}"
            continue
        assert len(found) == 1, f"phase {ph}: {found}\n{rep.summary()}"
        lk, wt = found[0]
        want = truth[ph]["wait_s"] * 1e9
        assert abs(lk["wait_ns"] - want) <= 0.10 * want, (ph, lk["wait_ns"], want)
    f = rep["files"][0]
    assert f["windowed"] and len(f["windows"]) == len(recorded), f
    assert f["recorded_ns"] < rep["duration_ns"], f
    # Time accounting counts only the recorded windows: the wall time is what was recorded, no thread
    # lived longer than that, and the contention in it is the recorded phases' own.
    tm = rep["time"]
    assert tm["windowed"] and tm["wall_ns"] == f["recorded_ns"], (tm, f["recorded_ns"])
    assert all(t["lifetime_ns"] <= f["recorded_ns"] for t in rep["threads"] if "lifetime_ns" in t), rep["threads"]
    recorded_wait = sum(truth[ph]["wait_s"] for ph in recorded) * 1e9
    assert abs(tm["contention_ns"] - recorded_wait) <= 0.15 * recorded_wait, (tm["contention_ns"], recorded_wait)
    text = runner.cli_run("report", w.file)
    assert text.returncode == 0 and "Recorded windows only" in text.stdout and "waits while paused" in text.stdout, text.stdout[:2000]
    assert "(recorded windows only; CPU prorated to them)" in text.stdout, text.stdout[:2000]
    # a finished recording cannot be paused any more
    late = runner.cli_run("pause", w.file)
    assert late.returncode == 9 and "already ended" in late.stderr, (late.returncode, late.stderr)


def test_pause_refusals(runner, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a recording\n" * 400)
    r = runner.cli_run("pause", text)
    assert r.returncode == 4 and "not an ftprof recording" in r.stderr, (r.returncode, r.stderr)
    link = tmp_path / "link.ftp"
    link.symlink_to(text)
    r = runner.cli_run("resume", link)
    assert r.returncode == 3 and "symbolic link" in r.stderr, (r.returncode, r.stderr)
    # a process id that is not running: no such process
    dead = subprocess.Popen(["true"])
    dead.wait()
    r = runner.cli_run("pause", dead.pid)
    assert r.returncode == 8 and "no such process" in r.stderr, (r.returncode, r.stderr)
    # a live process without the recorder: nothing mapped
    r = runner.cli_run("top", os.getpid(), "--once")
    assert r.returncode == 8 and "no ftprof recording mapped" in r.stderr, (r.returncode, r.stderr)


# --------------------------------------------------------------------------------------------------
# (5, 6) Long runs: FTPROF_MIN_WAIT and FTPROF_MODE=ring, with exact accounting against the
# workload's own count (the handshake extension makes exactly N contended pthread_mutex_lock calls).

def handshake(runner, tmp_path, n, env):
    from test_recorder import build_extension
    so = build_extension(runner.python, tmp_path, "handshake.c", "ftprof_handshake")
    run = runner.run([WORKLOADS / "handshake.py", so.parent, n], extra_env=env)
    assert run.truth()["contended"] == n
    assert len(run.files) == 1, run.files
    rep = runner.report(run.files)
    return run, rep, rep["files"][0]


@pytest.mark.support_row("ftprof top live (tmux)")
def test_min_wait_counts_short_waits_exactly(runner, tmp_path):
    n = 4000
    # The threshold: a median handshake wait on this machine, so that both sides of it are populated.
    # A loaded machine may move the waits between runs: a run with one side empty still has to add up
    # exactly, and is then repeated with the median of what it wrote (or under what it counted).
    _, plain, _ = handshake(runner, tmp_path, n, None)
    lk = plain.of_kind("pthread_mutex")[0]
    assert lk["contentions"] == n
    threshold = max(1, lk["p50_wait_ns"])
    for attempt in range(4):
        run, rep, f = handshake(runner, tmp_path, n, {"FTPROF_MIN_WAIT": f"{threshold}ns"})
        kept = rep.of_kind("pthread_mutex")
        written = rep.total("contentions", kept)
        below = f["below_min_events"]
        assert f["min_wait_ns"] == threshold
        assert written + below + rep["dropped_events"] == n, (written, below, rep["dropped_events"], n)
        if below and written:
            break
        threshold = max(1, kept[0]["p50_wait_ns"]) if written else max(1, f["below_min_ns"] // below // 2)
    assert below > 0 and written > 0, f"no threshold split the waits in {attempt + 1} runs: {below} below, {written} written"
    # the short ones' summed time is below threshold x count; the written ones are at least the threshold
    assert 0 < f["below_min_ns"] < below * threshold
    assert kept[0]["p50_wait_ns"] >= threshold * 0.9
    text = runner.cli_run("report", run.files[0]).stdout
    assert f"{below} waits under " in text and "not itemised" in text, text[:1500]


@pytest.mark.support_row("ftprof top live (tmux)")
@pytest.mark.parametrize("min_wait", [None, "median"])
def test_ring_mode_keeps_the_latest_and_counts_the_rest(runner, tmp_path, min_wait):
    n = 20_000
    env = {"FTPROF_MODE": "ring", "FTPROF_BUFFER": "256K"}
    if min_wait:
        _, plain, _ = handshake(runner, tmp_path, 2000, None)
        env["FTPROF_MIN_WAIT"] = f"{max(1, plain.of_kind('pthread_mutex')[0]['p50_wait_ns'])}ns"
    run, rep, f = handshake(runner, tmp_path, n, env)
    assert f["ring"] is True
    written = rep.total("contentions", rep.of_kind("pthread_mutex"))
    over, dropped, below = f["overwritten_events"], rep["dropped_events"], f["below_min_events"]
    assert over > 0, f"a 256 KiB ring cannot hold {n} waits, yet nothing was overwritten ({written} kept)"
    assert written + over + dropped + below == n, (written, over, dropped, below, n)
    # bounded: the file never grows past its buffer
    assert run.files[0].stat().st_size <= 256 * 1024 + 4096
    # the kept waits still name their caller (definitions overwritten with their chunks are written again)
    found = rep.with_waiter_function("contend", kinds=("pthread_mutex",))
    assert found and found[0]["contentions"] == written, rep.summary()
    # the span lost is said exactly: how many, and up to when
    assert rep["files"][0]["start_ns"] < f["overwritten_until_ns"]
    text = runner.cli_run("report", run.files[0]).stdout
    assert f"Ring buffer: {over} earlier waits were overwritten" in text, text[:1500]


def test_top_on_a_killed_recording_shows_how_it_ended(runner, workloads):
    """kill -9 in the middle of a deadlock: the file has no end, and top still says who was blocked
    where, and that the process is gone."""
    w = workloads(runner, ["deadlock.py", "--kind", "lock"])
    w.wait_blocked(["left", "right"])
    lines = {"left": marker_line(WORKLOADS / "deadlock.py", "left_waits"),
             "right": marker_line(WORKLOADS / "deadlock.py", "right_waits")}
    poll_top(runner, w.file, lambda f: all(n in blocked_by_name(f) and blocked_by_name(f)[n]["waiter"]
                                           and blocked_by_name(f)[n]["waiter"]["line"] == lines[n] for n in lines))
    w.kill()
    frame = top_json(runner, w.file)
    assert frame["state"] == "killed", frame["state"]
    b = blocked_by_name(frame)
    for n, line in lines.items():
        assert b[n]["waiter"]["line"] == line and b[n]["kind"] == "lock", b[n]
    text = runner.cli_run("top", w.file, "--once")
    assert text.returncode == 0 and "ENDED: the process is gone without finishing its recording" in text.stdout, text.stdout
    assert "BLOCKED NOW (2 threads, when it ended)" in text.stdout, text.stdout


@pytest.mark.parametrize("var,value", [("FTPROF_MIN_WAIT", "fast"), ("FTPROF_MODE", "circular"),
                                       ("FTPROF_START", "later")])
def test_bad_live_settings_warn_once_and_run(runner, var, value):
    run = runner.run(["live_blocked.py", "--threads", "1"], extra_env={var: value}, input="go\n")
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith("ftprof:")]
    assert len(lines) == 1 and f"{var}={value}" in lines[0], run.stderr
    assert run.files, "the program should still be recorded, with the default"
    f = runner.report(run.files)["files"][0]
    assert not f["windowed"] and not f["ring"] and f["min_wait_ns"] == 0, f
