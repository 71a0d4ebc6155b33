"""ftprof attach against a hostile neighbour: a second local user who tries to hijack the attach request.

The target (workloads/attach_gate.py) runs as an unprivileged uid A; `ftprof attach` runs as root, as an
administrator profiling a service would. The target's main thread sits in a blocking read (no eval-breaker
check, so PEP 768 cannot run the attach script yet) until the test opens its gate, which gives the
attacker, a third uid B, a window as long as it needs: it tries everything it could do to the request
directory of an older ftprof (replace script.py with its own, create files, forge `status`, remove
`token`, symbolic links on the names, rename or take over the directory). Every attempt must fail with
EACCES or EPERM, the target must run ftprof's script only (the attacker's would leave a marker file), and
the attach must succeed. Also: a recorder library changed after the CLI digested it is refused by the
target, a stale request of a `kill -9`ed CLI is removed by the next attach, and Ctrl-C/SIGTERM while the
attach waits (or a Ctrl-C to its process group while it writes the request) leaves nothing behind and
nothing pending in the target. And the target's own user, who owns the request directory, cannot make a
root `attach` read through a symbolic link or block on a FIFO named `status`.

The uids are numeric (no account needed) and taken with setresuid: the target drops to A itself, after
importing what the attach script needs, because the interpreter may lie where A cannot read (under
/root); the attacker is a forked child of the test. Needs root; skipped otherwise, and a failure under
CI=true.
"""
import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import (FLAG_FINISHED, WORKLOADS, _python, clean_env, marker_line, read_header, top_frame,
                      wait_for_line)

WL = WORKLOADS / "attach_gate.py"
# Two uids that no account uses: the target's, and the attacker's. Numeric ids need no /etc/passwd entry.
UID_A, UID_B = 64971, 64972
EXIT_TIMEOUT, EXIT_FAILED = 14, 15


@pytest.fixture(autouse=True)
def _needs_root():
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("test_attach_security needs root (to run the target and the attacker as other uids)")
        pytest.skip("needs root to run the target and the attacker as other uids")


@pytest.fixture(params=["3.14t", "3.15t"])
def python(request):
    return _python(request.param)


@pytest.fixture
def work():
    """A directory uid A can reach (pytest's tmp_path lies under root's 0700 directory): the recording
    goes to work/out, which A owns."""
    d = Path(tempfile.mkdtemp(prefix="ftprof-sec-"))
    os.chmod(d, 0o755)
    (d / "out").mkdir()
    os.chown(d / "out", UID_A, UID_A)
    yield d
    shutil.rmtree(d, ignore_errors=True)


class GatedTarget:
    def __init__(self, python, work):
        self.stop = work / "stop"
        self.proc = subprocess.Popen([str(python), str(WL), str(UID_A), str(UID_A), str(self.stop)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=clean_env(), cwd=work)
        wait_for_line(self.proc, r"^READY", 30)
        self.pid = self.proc.pid
        self.clis = []
        # Its main thread past the last bytecode before the gate: in read() (x86-64 syscall 0). Any thread
        # that runs Python takes an attach now, so one sent before it got there would run at once.
        deadline = time.monotonic() + 30
        while Path(f"/proc/{self.pid}/syscall").read_text().split()[0] != "0":
            assert time.monotonic() < deadline, "the target never blocked in read()"
            time.sleep(0.001)

    def open_gate(self, wait=False):
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()
        if wait:
            wait_for_line(self.proc, r"^OPEN", 30)

    def attach(self, cli, lib, out, *extra):
        """`ftprof attach` on this target in a session of its own, as on a terminal: a Ctrl-C reaches its
        whole group."""
        proc = subprocess.Popen([str(cli), "attach", str(self.pid), "-o", str(out), "--timeout", "60",
                                 *map(str, extra)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=clean_env({"FTPROF_LIBRARY": lib}), start_new_session=True)
        self.clis.append(proc)
        return proc

    def finish(self):
        """Kills any attach still running, then lets the target end: its exit status, stdout and stderr."""
        for cli in self.clis:
            if cli.poll() is None:
                cli.kill()
                cli.communicate()
        self.stop.touch()
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.open_gate()
            except BrokenPipeError:
                pass
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, out.decode(), err.decode()


@contextlib.contextmanager
def gated_target(python, work):
    """A GatedTarget for the block. After it, any attach still running is killed and the target must end
    by itself: exit 0 and nothing on its stderr."""
    target = GatedTarget(python, work)
    try:
        yield target
    finally:
        rc, _, stderr = target.finish()
    assert rc == 0 and stderr == "", stderr


def request_dir(cli, timeout=20):
    """The CLI's request directory, found through the descriptor it keeps open on it, once its script and
    token are written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert cli.poll() is None, f"the CLI exited ({cli.returncode}): {cli.communicate()[1]}"
        for fd in os.listdir(f"/proc/{cli.pid}/fd"):
            try:
                target = os.readlink(f"/proc/{cli.pid}/fd/{fd}")
            except OSError:
                continue
            d = Path(target)
            if d.name.startswith("ftprof-attach-") and (d / "script.py").exists() and (d / "token").exists():
                return d
        time.sleep(0.005)
    raise AssertionError("the CLI made no request directory")


def wait_helper_done(cli, timeout=20):
    """Waits until the CLI has written its request into the target's thread states: it does so right
    after it wrote the script and the token, without sleeping in between, and then sleeps while it
    waits for the status. So: its first sleep after the request directory appeared (x86-64 nanosleep
    35, clock_nanosleep 230, in /proc/CLI/syscall)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert cli.poll() is None, f"the CLI exited ({cli.returncode}): {cli.communicate()[1]}"
        try:
            call = Path(f"/proc/{cli.pid}/syscall").read_text().split()[0]
        except (OSError, IndexError):
            call = ""
        if call in ("35", "230"):
            return
        time.sleep(0.001)
    raise AssertionError("the CLI never went on to wait for its request")


def finished(recording):
    try:
        return bool(read_header(recording)["flags"] & FLAG_FINISHED)
    except (OSError, AssertionError):
        return False  # not there yet, or its header not yet written


def as_user(uid, fn):
    """Runs fn() in a forked child with uid/gid `uid` and no supplementary groups; returns what it
    returned (JSON through a pipe)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            res = fn()
            os.write(w, json.dumps(res).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    assert data, "the child running as another uid failed"
    return json.loads(data)


def attacks(d, evil_script, planted):
    """Everything uid B tries on the request directory d. {attempt: errno name or "succeeded"}."""
    def attempt(name, fn):
        try:
            fn()
            results[name] = "succeeded"
        except OSError as e:
            results[name] = errno.errorcode.get(e.errno, str(e.errno))

    results = {}
    s, tok, st = d / "script.py", d / "token", d / "status"
    attempt("list the directory", lambda: os.listdir(d))
    attempt("read script.py", lambda: s.read_bytes())
    attempt("unlink script.py", lambda: os.unlink(s))
    attempt("rename own script over script.py", lambda: os.rename(evil_script, s))
    attempt("open script.py for writing", lambda: os.open(s, os.O_WRONLY | os.O_TRUNC))
    attempt("create a file", lambda: os.open(d / "new.py", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    attempt("forge status", lambda: os.open(st, os.O_WRONLY | os.O_CREAT, 0o644))
    attempt("forge status.tmp", lambda: os.open(d / "status.tmp", os.O_WRONLY | os.O_CREAT, 0o644))
    attempt("symlink status to a file of B", lambda: os.symlink(evil_script, st))
    attempt("symlink claimed", lambda: os.symlink("/etc/passwd", d / "claimed"))
    attempt("remove token", lambda: os.unlink(tok))
    attempt("claim token", lambda: os.rename(tok, d / "claimed"))
    attempt("chmod the directory", lambda: os.chmod(d, 0o777))
    attempt("rename the directory away", lambda: os.rename(d, planted.parent / (d.name + "-moved")))
    attempt("remove the directory", lambda: os.rmdir(d))
    return results


def plant_decoy(victim):
    """uid B leaves /tmp/ftprof-attach-* of its own that looks stale (an `owner` mark naming a dead CLI)
    and whose names are symbolic links to a file of root: the next attach's sweep must leave it alone."""
    d = Path(tempfile.mkdtemp(prefix="ftprof-attach-", dir="/tmp"))
    os.chmod(d, 0o755)
    (d / "owner").write_text("ftprof-attach cli 999999999 1 target 999999999 1\n")
    for name in ("script.py", "token", "status", "claimed"):
        os.symlink(victim, d / name)
    return str(d)


@pytest.mark.support_row("ftprof attach PID")
def test_a_third_user_cannot_hijack_the_attach(python, ftprof_lib, ftprof_cli, work):
    victim = work / "victim"
    victim.write_text("root's file\n")
    marker = work / "out" / "attacker-was-here"
    target = GatedTarget(python, work)
    out = work / "out" / "rec.ftp"
    decoy = None
    try:
        decoy = Path(as_user(UID_B, lambda: plant_decoy(str(victim))))
        cli = target.attach(ftprof_cli, ftprof_lib, out, "--duration", 1.5)
        d = request_dir(cli)
        wait_helper_done(cli)

        # The directory: A's, 0700; what the target reads is A's; the CLI's mark is root's.
        st = os.lstat(d)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (UID_A, UID_A, 0o700), (st.st_uid, oct(st.st_mode))
        for name, uid in (("script.py", UID_A), ("token", UID_A), ("owner", 0)):
            fst = os.lstat(d / name)
            assert fst.st_uid == uid and fst.st_mode & 0o077 == 0, (name, fst.st_uid, oct(fst.st_mode))
        script_before = (d / "script.py").read_bytes()

        def attacker():
            own = Path(tempfile.mkdtemp(prefix="attacker-"))
            os.chmod(own, 0o755)
            evil = own / "evil.py"
            evil.write_text(f"open({str(marker)!r}, 'w').write('pwned')\n")
            os.chmod(evil, 0o644)
            try:
                return attacks(d, evil, Path(decoy))
            finally:
                shutil.rmtree(own, ignore_errors=True)

        results = as_user(UID_B, attacker)
        failed = {k: v for k, v in results.items() if v not in ("EACCES", "EPERM")}
        assert not failed, f"uid B got through: {failed} (all: {results})"
        assert (d / "script.py").read_bytes() == script_before
        assert sorted(os.listdir(d)) == ["owner", "script.py", "token"], os.listdir(d)

        target.open_gate()
        _, err = cli.communicate(timeout=60)
        assert cli.returncode == 0, err
        assert "attached to pid" in err and "detached from pid" in err, err
    finally:
        rc, stdout, stderr = target.finish()
        decoy_names = sorted(os.listdir(decoy)) if decoy else []
        if decoy:
            shutil.rmtree(decoy)
    assert rc == 0 and stderr == "" and stdout.splitlines()[-1] == "done", (rc, stderr)
    assert not marker.exists(), "the target ran the attacker's script"
    assert not d.exists(), f"{d} left behind"
    # The recording is ftprof's: the workers' Lock with its waits, at the workload's line.
    rep = subprocess.run([str(ftprof_cli), "report", "--json", str(out)], capture_output=True, text=True,
                         env=clean_env())
    assert rep.returncode == 0, rep.stderr
    locks = [l for l in json.loads(rep.stdout)["locks"] if l["kind"] == "lock"]
    assert locks and max(l["contentions"] for l in locks) > 20, locks
    lk = max(locks, key=lambda l: l["wait_ns"])
    assert top_frame(lk["waiters"][0])["line"] == marker_line(WL, "acquire"), lk["waiters"][0]
    # The decoy is untouched: the sweep neither removed it nor followed its links.
    assert victim.read_text() == "root's file\n"
    assert decoy_names == ["claimed", "owner", "script.py", "status", "token"], decoy_names


def test_a_changed_library_is_refused(python, ftprof_lib, ftprof_cli, work):
    """The library is changed in place after the CLI digested it, before the target loads it: the target
    refuses to load it, and the attach fails with exit 15 and a line saying why."""
    lib = work / "lib" / "libftprof.so"
    lib.parent.mkdir()
    shutil.copy(ftprof_lib, lib)
    os.chmod(lib, 0o644)
    with gated_target(python, work) as target:
        cli = target.attach(ftprof_cli, lib, work / "out" / "x.ftp")
        d = request_dir(cli)
        with open(lib, "r+b") as f:  # one byte in the middle: the same size, the same inode
            f.seek(lib.stat().st_size // 2)
            b = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([b[0] ^ 0xFF]))
        target.open_gate()
        _, err = cli.communicate(timeout=60)
        lines = err.strip().splitlines()
        assert cli.returncode == EXIT_FAILED and len(lines) == 1, err
        assert "is not the library ftprof attach checked" in lines[0] and "not loaded" in lines[0], lines[0]
        assert not any("libftprof" in l for l in open(f"/proc/{target.pid}/maps")), "the library was loaded"
        assert not d.exists()


@pytest.mark.parametrize("then", ["its script ran", "its request was replaced"])
def test_a_killed_cli_leaves_a_request_the_next_attach_removes(python, ftprof_lib, ftprof_cli, work, then):
    """kill -9 of the CLI while its request is pending leaves its directory. Either the target runs that
    script later (it attaches, and the recorder's watchdog detaches at once: the CLI is gone), or a
    second attach replaces the pending request with its own. The second attach removes the stale
    directory in both cases, and the target prints nothing (it never looks for a removed script)."""
    with gated_target(python, work) as target:
        killed = work / "out" / "killed.ftp"
        cli = target.attach(ftprof_cli, ftprof_lib, killed)
        stale = request_dir(cli)
        wait_helper_done(cli)
        cli.kill()
        cli.communicate()
        assert stale.exists()
        if then == "its script ran":
            target.open_gate()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not (stale / "status").exists():
                time.sleep(0.01)
            assert (stale / "claimed").exists() and (stale / "status").exists(), os.listdir(stale)
            # Its recorder detaches by itself (no CLI): the recording is finished, the next attach can begin.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not finished(killed):
                time.sleep(0.01)
            assert finished(killed), "the orphaned recorder did not detach"
        cli2 = target.attach(ftprof_cli, ftprof_lib, work / "out" / "next.ftp", "--duration", 0.5)
        if then == "its request was replaced":
            request_dir(cli2)
            wait_helper_done(cli2)
            target.open_gate()
        _, err = cli2.communicate(timeout=60)
        assert cli2.returncode == 0, err
        assert not stale.exists(), f"stale {stale} left: {os.listdir(stale)}"


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "Ctrl-C as the request is written"])
def test_interrupting_the_wait_leaves_nothing_behind(python, ftprof_lib, ftprof_cli, work, how):
    """Ctrl-C (or SIGTERM) while the attach waits for the target: exit 14, `attach cancelled`, no request
    directory left, and nothing left pending in the target: once its gate opens it runs Python on, without
    loading the recorder and without an error about a missing script on its stderr. Also a Ctrl-C at the
    terminal as the request is being written (SIGINT to the CLI's whole process group)."""
    with gated_target(python, work) as target:
        cli = target.attach(ftprof_cli, ftprof_lib, work / "out" / "x.ftp")
        d = request_dir(cli)
        if how == "Ctrl-C as the request is written":
            os.killpg(cli.pid, signal.SIGINT)  # the directory is there: the request goes out now
        else:
            wait_helper_done(cli)
            cli.send_signal(getattr(signal, how))
        _, err = cli.communicate(timeout=30)
        assert cli.returncode == EXIT_TIMEOUT and err.strip() == f"ftprof: pid {target.pid}: attach cancelled", err
        assert not d.exists(), os.listdir(d)
        target.open_gate(wait=True)
        assert not any("libftprof" in l for l in open(f"/proc/{target.pid}/maps"))


@pytest.mark.parametrize("plant", ["symlink", "fifo"])
def test_the_status_file_is_never_followed_or_blocked_on(python, ftprof_lib, ftprof_cli, work, plant):
    """Even the target's own user, who owns the request directory, cannot steer a root `attach` through
    it: a `status` that is a symbolic link to a file only root may read, or a FIFO (which would block a
    plain open), is refused with exit 15 and one line, without reading through it; the request is
    withdrawn and removed, and the target, once its gate opens, runs nothing."""
    with gated_target(python, work) as target:
        cli = target.attach(ftprof_cli, ftprof_lib, work / "out" / "x.ftp")
        d = request_dir(cli)
        wait_helper_done(cli)
        if plant == "symlink":
            as_user(UID_A, lambda: os.symlink("/etc/shadow", d / "status") or True)
        else:
            as_user(UID_A, lambda: os.mkfifo(d / "status", 0o600) or True)
        _, err = cli.communicate(timeout=30)
        lines = err.strip().splitlines()
        assert cli.returncode == EXIT_FAILED and len(lines) == 1, err
        reason = "a symbolic link" if plant == "symlink" else "not a regular file"
        assert lines[0] == f"ftprof: pid {target.pid}: refusing the attach's status file: {reason}", lines[0]
        assert not d.exists(), os.listdir(d)
        target.open_gate(wait=True)
        assert not any("libftprof" in l for l in open(f"/proc/{target.pid}/maps"))
