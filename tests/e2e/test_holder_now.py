"""The holder now: for a thread blocked on a lock, what the thread holding that lock is doing at this
moment, read from the live process (its Python stack from its thread state, its state from the kernel).

workloads/holder_now.py has one holder sleep in slow_io(), one compute in crunch() and one wait on the
first holder's lock in wait_second(), each holding a lock others block on; nothing is deadlocked. `top
--once --json`, `top --once` and `report` must name each blocked thread's holder, its current function
and line, and its state, and must not hint at a deadlock. Under LD_PRELOAD on every free-threaded build,
and through `ftprof attach` on the builds attach supports. A recording whose process is gone (kill -9)
keeps the holders the recording knows, without a "now".
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import FLAG_FINISHED, FT_LABELS, WORKLOADS, Runner, _python, clean_env, marker_line, read_header, wait_for_line
from test_live import Tmux, blocked_by_name, poll_top, workloads  # noqa: F401 (a fixture)

WL = WORKLOADS / "holder_now.py"
OTHER_UID = 64973  # a user that is neither the workload's (root) nor anyone's on the machine
LINES = {m: marker_line(WL, m) for m in ("slow_io", "crunch", "second", "blocked")}
WAITERS = {"wa-0": "sleeper", "wa-1": "sleeper", "chained": "sleeper", "wb-0": "cruncher", "wb-1": "cruncher",
           "wc-0": "chained"}


def workload_frame(now):
    """The holder's innermost frame in the workload (a holder in crunch() may be inside Event.is_set)."""
    return next((f for f in now["stack"] if f["file"].endswith("holder_now.py")), None)


def all_long(frame):
    b = blocked_by_name(frame)
    return all(n in b and b[n]["blocked_ns"] > 2e8 and b[n]["holder"] and b[n]["holder"]["now"] for n in WAITERS)


def tids_of(lines):
    """The workload's {"tid": {NAME: native id}} line."""
    return next(json.loads(ln)["tid"] for ln in lines if ln.startswith('{"tid"'))


def check_frame(frame, known_by, tids, gil_build=False):
    """Holders by native id: a holder that never waited has only the kernel's name for it (3.14 gives
    threads their Python names there, 3.15 does not). On a GIL build the sleeper, back from a sleep,
    takes the GIL: a wait the recorder names ("gil") but also, now and then, a futex it has no record
    of at that instant (seen once in CI, attached to 3.14), which the view can only call "futex"."""
    b = blocked_by_name(frame)
    assert frame["process_read"] is True and frame["process_unreadable"] is None, frame
    lock_of = {n: b[n]["lock"] for n in b}
    for waiter, holder in WAITERS.items():
        h = b[waiter]["holder"]
        assert h["tid"] == tids[holder] and h["known_by"] in known_by, (waiter, h)
        now, top = h["now"], workload_frame(h["now"])
        assert top is not None, (waiter, now)
        if now["state"] == "gil":
            # a GIL build: the sleeper back from a sleep, or the cruncher at a switch, waits to run
            assert holder in ("sleeper", "cruncher") and now["blocked_on"].startswith("GIL"), (waiter, now)
            assert top["function"] in ("slow_io", "crunch"), now
        elif holder == "sleeper":
            # between two sleeps it runs a few bytecodes: mostly it sleeps
            states = ("sleeping", "running", "futex") if gil_build else ("sleeping", "running")
            assert now["state"] in states and (top["function"], top["line"]) == ("slow_io", LINES["slow_io"]), \
                (waiter, now)
        elif holder == "cruncher":
            assert now["state"] == "running" and (top["function"], top["line"]) == ("crunch", LINES["crunch"]), \
                (waiter, now)
        else:
            # blocked itself, on the sleeper's lock: the lock wa-0 waits on
            assert now["state"] == "blocked" and now["blocked_on"] == lock_of["wa-0"] and h["blocked"] is True, now
            assert (top["function"], top["line"]) == ("wait_second", LINES["second"]), now
    assert frame["deadlocks"] == [], frame["deadlocks"]


def let_end(proc):
    """Lets the workload end (a line on its stdin); kills it if it has not ended a minute later."""
    try:
        proc.communicate(b"go\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def check_text(text, tids):
    assert re.search(rf"holder \S+ \(tid {tids['sleeper']}, [a-z ]+\) now: (sleeping|running|waiting for the GIL to run on), at slow_io "
                     rf"\(holder_now.py:{LINES['slow_io']}\)", text), text
    assert re.search(rf"holder \S+ \(tid {tids['cruncher']}, [a-z ]+\) now: (running|waiting for the GIL to run on), at .*crunch "
                     rf"\(holder_now.py:{LINES['crunch']}\)", text), text
    assert re.search(rf"holder \S+ \(tid {tids['chained']}, [a-z ]+\) now: blocked itself, on R?Lock @\S+, at wait_second "
                     rf"\(holder_now.py:{LINES['second']}\)", text), text
    assert "deadlock" not in text, text


@pytest.mark.support_row("ftprof top: the holder now")
@pytest.mark.parametrize("kind", ["rlock", "lock"])
def test_holder_now_preloaded(runner, workloads, kind):
    """Every free-threaded build, LD_PRELOAD: the holders are known by the lock's owner (3.14+ RLock) or
    as the last thread seen taking it after a wait; each one's state and line now."""
    w = workloads(runner, ["holder_now.py", "--kind", kind])
    tids = tids_of(w.wait_for("READY"))
    frame = poll_top(runner, w.proc.pid, all_long)
    owner = kind == "rlock" and runner.python.version >= (3, 14)
    check_frame(frame, ("owner",) if owner else ("last acquirer",), tids)
    text = runner.cli_run("top", w.proc.pid, "--once")
    assert text.returncode == 0, text.stderr
    check_text(text.stdout, tids)
    # report on the live recording: "Blocked when the recording ended" names the holders and what they do
    rep = runner.cli_run("report", w.file)
    assert rep.returncode == 0 and "Blocked when the recording ended" in rep.stdout, rep.stdout[-3000:]
    check_text(rep.stdout, tids)
    js = runner.report(w.file)
    ended = {b["thread"]: b for b in js["blocked_at_end"]}
    assert ended["wb-0"]["holder_now"]["state"] == "running", ended["wb-0"]
    # killed: the process is gone, the recording's holders stay, nothing claims to be "now"
    w.proc.send_signal(signal.SIGKILL)
    w.proc.wait()
    rep = runner.cli_run("report", w.file)
    assert rep.returncode == 0, rep.stderr
    assert re.search(rf"holder \S+ \(tid {tids['sleeper']}, [a-z ]+\)\n", rep.stdout) and " now: " not in rep.stdout, \
        rep.stdout[-3000:]


@pytest.mark.support_row("ftprof top: the holder now")
def test_rlock_owner_taken_uncontended(runner, workloads):
    """A 3.14+ RLock names its owner however it was taken: holders that never waited are known too. 3.13's
    RLock names none: the holders are unknown, and since the sleeper and the cruncher run or sleep, the
    view says the threads are stuck without calling it a deadlock."""
    w = workloads(runner, ["holder_now.py", "--kind", "rlock", "--uncontended"])
    tids = tids_of(w.wait_for("READY"))
    if runner.python.version >= (3, 14):
        check_frame(poll_top(runner, w.proc.pid, all_long), ("owner",), tids)
        return

    def stuck(frame):
        b = blocked_by_name(frame)
        return all(n in b and b[n]["blocked_ns"] > 1.2e9 for n in WAITERS) and frame["deadlocks"]
    frame = poll_top(runner, w.proc.pid, stuck)
    assert all(b["holder"] is None for b in frame["blocked"]), frame["blocked"]
    [finding] = frame["deadlocks"]
    assert finding["kind"] == "no_progress" and "deadlock" not in finding["text"], finding
    assert re.search(r"and [1-9]\d* other threads? (is|are) running or sleeping now \(not all blocked\)",
                     finding["text"]), finding


@pytest.mark.support_row("ftprof top: the holder now")
def test_holder_line_in_tmux(runner, workloads):
    """`ftprof top PID` in a real terminal shows each holder's line under the blocked thread."""
    tmux = Tmux(runner.tmp)
    try:
        w = workloads(runner, ["holder_now.py", "--kind", "rlock"])
        tids = tids_of(w.wait_for("READY"))
        tmux.start(f"{runner.cli} top {w.proc.pid} --interval 0.5")
        s = tmux.wait_screen(lambda s: s.count(" now: ") >= 6, what="the holders' lines")
        check_text(s, tids)
        tmux.tmux("send-keys", "-t", "top", "q")
        tmux.wait_screen(lambda s: tmux.dead(), timeout=30, what="top quitting on q")
    finally:
        tmux.close()


ATTACH_LABELS = ["3.14t", "3.15t", "3.14"]


@pytest.mark.support_row("ftprof top: the holder now")
@pytest.mark.parametrize("label", ATTACH_LABELS)
def test_holder_now_through_attach(label, ftprof_cli, ftprof_lib, tmp_path):
    """Started without the recorder: attach, let the workload set up, then top on the attached
    recording shows the same holders, states and lines."""
    python = _python(label)
    go = tmp_path / "go"
    proc = subprocess.Popen([str(python), str(WL), "--kind", "rlock", "--go", str(go)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(), cwd=tmp_path)
    out = tmp_path / "attached.ftp"
    env = clean_env({"FTPROF_LIBRARY": str(ftprof_lib)})
    att = subprocess.Popen([str(ftprof_cli), "attach", str(proc.pid), "-o", str(out)], stderr=subprocess.PIPE,
                           stdout=subprocess.PIPE, env=env, text=True)
    try:
        wait_for_line(_Lines(att), r"attached to pid", 60)
        go.touch()
        tids = tids_of(wait_for_line(proc, r"^READY", 60))

        cli = _Cli(ftprof_cli)
        frame = poll_top(cli, out, all_long)
        check_frame(frame, ("owner", "last acquirer"), tids, gil_build=not label.endswith("t"))
        check_text(cli.cli_run("top", out, "--once").stdout, tids)
    finally:
        att.send_signal(signal.SIGINT)
        try:
            att.communicate(timeout=30)
        finally:
            go.touch()
            let_end(proc)
    assert proc.returncode == 0 and att.returncode == 0


class _Lines:
    """The attach CLI's stderr as wait_for_line reads a process's stdout."""

    def __init__(self, p):
        self.stdout = p.stderr


class _Cli:
    """What poll_top needs of a Runner: the CLI."""

    def __init__(self, cli):
        self.cli = cli

    def cli_run(self, *args):
        return subprocess.run([str(self.cli), *map(str, args)], capture_output=True, text=True, env=clean_env())


@pytest.mark.support_row("ftprof top: the holder now")
def test_top_offers_to_attach(ftprof_cli, ftprof_lib, tmp_path):
    """`ftprof top PID` on a CPython started without the recorder says so and offers --attach (exit 8);
    with --attach it attaches for as long as it runs and shows the threads that were already blocked
    (their lines, from the process itself), then detaches and keeps the recording."""
    python = _python("3.14t")
    proc = subprocess.Popen([str(python), str(WL), "--kind", "rlock"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(), cwd=tmp_path)
    try:
        tids = tids_of(wait_for_line(proc, r"^READY", 60))
        plain = subprocess.run([str(ftprof_cli), "top", str(proc.pid), "--once"], capture_output=True, text=True,
                               env=clean_env())
        assert plain.returncode == 8 and f"ftprof top {proc.pid} --attach" in plain.stderr, plain.stderr
        out = tmp_path / "top.ftp"
        att = subprocess.run([str(ftprof_cli), "top", str(proc.pid), "--once", "--json", "--attach", "-o", str(out)],
                             capture_output=True, text=True, env=clean_env({"FTPROF_LIBRARY": str(ftprof_lib)}),
                             timeout=60)
        assert att.returncode == 0, att.stderr
        frame = json.loads(att.stdout)
        waiting = {u["tid"]: u for u in frame["waiting_unrecorded"]}
        for name in ("wa-0", "wa-1", "wb-0", "wb-1", "wc-0"):
            u = waiting[tids[name]]
            assert (u["function"], u["line"]) == ("waiter", LINES["blocked"]), u
        assert (waiting[tids["chained"]]["function"], waiting[tids["chained"]]["line"]) == \
            ("wait_second", LINES["second"])
        assert "detached" in att.stderr, att.stderr
        assert read_header(out)["flags"] & FLAG_FINISHED, "the recording was not finished by the detach"
    finally:
        let_end(proc)
    assert proc.returncode == 0, proc.stderr


def test_holder_now_without_permission_to_read_the_process(ftprof_lib, ftprof_cli, workloads):
    """Reading another process needs what attaching needs. A user who may read the recording but not the
    process (another uid, no ptrace right over it) gets the holders the recording knows, no "now", and
    one line saying why."""
    if os.geteuid() != 0:
        pytest.skip("running the viewer as another user needs root")
    python = _python("3.14t") if "3.14t" in FT_LABELS else _python(FT_LABELS[0])
    # Everything the other user reads must be reachable: a directory of our own, not pytest's 0700 one.
    base = Path(tempfile.mkdtemp(prefix="ftprof-holder-perm-", dir="/tmp"))
    try:
        os.chmod(base, 0o711)
        runner = Runner(ftprof_lib, ftprof_cli, python, base)
        os.chmod(runner.out_dir, 0o711)
        w = workloads(runner, ["holder_now.py", "--kind", "lock"])
        tids = tids_of(w.wait_for("READY"))
        poll_top(runner, w.proc.pid, all_long)  # as root: every holder known and read now
        os.chmod(w.file, 0o644)
        as_other = ["setpriv", f"--reuid={OTHER_UID}", f"--regid={OTHER_UID}", "--clear-groups", str(ftprof_cli),
                    "top", str(w.file), "--once"]
        proc = subprocess.run([*as_other, "--json"], capture_output=True, text=True, timeout=120, env=clean_env())
        assert proc.returncode == 0, proc.stderr
        frame = json.loads(proc.stdout)
        assert frame["process_read"] is False and "no permission" in (frame["process_unreadable"] or ""), frame
        b = blocked_by_name(frame)
        for waiter, holder in WAITERS.items():
            h = b[waiter]["holder"]
            assert h and h["tid"] == tids[holder] and not h.get("now"), (waiter, h)
        text = subprocess.run(as_other, capture_output=True, text=True, timeout=120, env=clean_env())
        assert text.returncode == 0, text.stderr
        assert "no permission to read the process" in text.stdout and " now: " not in text.stdout, text.stdout
    finally:
        shutil.rmtree(base, ignore_errors=True)
