"""The recorder under abuse: killed processes, forks, children that are not Python, odd exits, many
threads, a full buffer, and output paths it must refuse. In every case the program behaves exactly as it
does without the recorder, and whatever file is left can be read."""
import os
import signal
import subprocess
import time

import pytest

from conftest import (FLAG_FINISHED, FLAG_FORKED_CHILD, WORKLOADS, clean_env, marker_line, mounted_tmpfs,
                      read_header, stack_functions, top_frame)
from test_recorder import build_extension


def assert_same_behaviour(plain, profiled, what):
    assert profiled.returncode == plain.returncode, (
        f"{what}: exit status {profiled.returncode} under the recorder, {plain.returncode} without")
    assert profiled.stdout == plain.stdout, (
        f"{what}: stdout differs under the recorder\n--- without\n{plain.stdout}\n--- with\n{profiled.stdout}")
    assert profiled.stderr == plain.stderr, (
        f"{what}: stderr differs under the recorder\n--- without\n{plain.stderr}\n--- with\n{profiled.stderr}")


def waiter_functions(rep):
    return {f for lk in rep.locks for w in lk["waiters"] for f in stack_functions(w)}


@pytest.mark.support_row("faults (kill -9, fork, exec, close-all, full disk, …), CLI, packaging")
def test_kill_9_keeps_published_events(runner):
    marker = 60
    runner.kill_at_mark(marker, ["--threads", 3, "--hold-ms", 0.5])
    files = sorted(runner.out_dir.iterdir())
    assert len(files) == 1, f"expected the killed process's recording, got {files}"
    assert not read_header(files[0])["flags"] & FLAG_FINISHED, "a killed process cannot have finished"
    rep = runner.report(files)
    taken = rep.with_waiter_function("take", kinds=("lock",))
    assert taken, f"the killed process's recording has no waits in take():\n{rep.summary()}"
    n = sum(lk["contentions"] for lk in taken)
    # Each marker count was printed after take() returned, so its wait was published before the kill;
    # at least 80% of them must be in the recording.
    assert n >= marker * 0.8, f"only {n} contended acquisitions survived kill -9, {marker} were made before it"


@pytest.mark.support_row("faults (kill -9, fork, exec, close-all, full disk, …), CLI, packaging")
def test_fork_child_gets_its_own_file(runner):
    run = runner.run([WORKLOADS / "fork_child.py"])
    truth = run.truth()
    assert truth["child_status"] == 0
    by_pid = {}
    for f in run.files:
        rep = runner.report(f)
        pids = {t["pid"] for t in rep["threads"]}
        assert len(pids) <= 1, f"{f.name} mixes processes: {pids}"
        by_pid[f.name] = (pids, rep)
    names = {f.name for f in run.files}
    assert names == {f"{truth['parent']}.ftp", f"{truth['child']}.ftp"}, (
        f"expected one file per process ({truth}), got {sorted(names)}")
    hp = read_header(runner.out_dir / f"{truth['parent']}.ftp")
    hc = read_header(runner.out_dir / f"{truth['child']}.ftp")
    assert hp["pid"] == truth["parent"] and not hp["flags"] & FLAG_FORKED_CHILD, hp
    assert hc["pid"] == truth["child"] and hc["flags"] & FLAG_FORKED_CHILD, hc
    assert hp["flags"] & FLAG_FINISHED, "the parent exited normally: its file must say so"
    parent = by_pid[f"{truth['parent']}.ftp"][1]
    child = by_pid[f"{truth['child']}.ftp"][1]
    pf, cf = waiter_functions(parent), waiter_functions(child)
    assert {"parent_before", "parent_after"} <= pf, f"parent's waits before/after the fork missing: {pf}"
    assert "child_wait" not in pf, "the child's waits leaked into the parent's recording"
    assert "child_wait" in cf, f"the child's recording lacks its own waits: {cf}"
    assert "parent_after" not in cf, "the parent's later waits leaked into the child's recording"


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing(runner, method):
    plain = runner.run([WORKLOADS / "mp_pool.py", method], preload=False, timeout=120)
    prof = runner.run([WORKLOADS / "mp_pool.py", method], timeout=120)
    assert_same_behaviour(plain.proc, prof.proc, f"multiprocessing {method}")
    assert len(prof.files) >= 3, f"parent and two workers should each leave a file: {prof.files}"
    seen = set()
    for f in prof.files:
        seen |= waiter_functions(runner.report(f))
    assert "mp_wait" in seen, f"the workers' waits are missing from all recordings: {seen}"


def test_non_python_children_write_nothing(runner):
    plain = runner.run([WORKLOADS / "subproc.py"], preload=False)
    prof = runner.run([WORKLOADS / "subproc.py"])
    assert_same_behaviour(plain.proc, prof.proc, "sh/gcc children")
    assert len(prof.files) == 1, f"only the Python process may write a recording: {prof.files}"
    runner.report(prof.files)


@pytest.mark.parametrize("how,status", [("os_exit", 7), ("sigint", -signal.SIGINT), ("raise", 1),
                                        ("sys_exit", 5)])
def test_exit_paths(runner, how, status):
    plain = runner.run([WORKLOADS / "exit_paths.py", how], preload=False, check=False)
    prof = runner.run([WORKLOADS / "exit_paths.py", how], check=False)
    assert plain.returncode == status, f"the workload itself misbehaves: {plain.returncode}\n{plain.stderr}"
    assert_same_behaviour(plain.proc, prof.proc, how)
    assert len(prof.files) == 1, prof.files
    rep = runner.report(prof.files)
    assert "exit_wait" in waiter_functions(rep), f"{how}: waits before the exit are missing:\n{rep.summary()}"


def test_ten_thousand_short_threads(runner, results):
    t0 = time.monotonic()
    plain = runner.run([WORKLOADS / "many_threads.py", 10_000], preload=False, timeout=300)
    t1 = time.monotonic()
    prof = runner.run([WORKLOADS / "many_threads.py", 10_000], timeout=300)
    t2 = time.monotonic()
    assert prof.stdout == plain.stdout
    rep = runner.report(prof.files)
    results.add("10000 threads", seconds_plain=t1 - t0, seconds_profiled=t2 - t1,
                threads_seen=len(rep["threads"]), contentions=rep.total("contentions"),
                dropped=rep["dropped_events"])
    for lk in rep.with_waiter_function("bump", kinds=("lock",)):
        top = top_frame(lk["waiters"][0])
        assert top["function"] == "bump" and top["line"] == marker_line(WORKLOADS / "many_threads.py", "bump")
    assert t2 - t1 < max(30.0, 5 * (t1 - t0)), "10,000 threads are more than 5x slower under the recorder"


def test_tiny_buffer_counts_every_dropped_event(runner, tmp_path):
    so = build_extension(runner.python, tmp_path, "handshake.c", "ftprof_handshake")
    n = 20_000
    plain = runner.run([WORKLOADS / "handshake.py", so.parent, n], preload=False)
    prof = runner.run([WORKLOADS / "handshake.py", so.parent, n], extra_env={"FTPROF_BUFFER": "256K"})
    assert prof.truth()["contended"] == plain.truth()["contended"] == n
    assert prof.stderr == plain.stderr == "", f"stderr: {prof.stderr!r}"
    rep = runner.report(prof.files)
    recorded = rep.total("contentions", rep.of_kind("pthread_mutex"))
    dropped = rep["dropped_events"]
    assert dropped == read_header(prof.files[0])["dropped_events"], "report and header disagree on drops"
    assert dropped > 0, f"a 256 KiB buffer cannot hold {n} waits, yet nothing was dropped ({recorded} kept)"
    assert recorded + dropped == n, (
        f"{recorded} recorded + {dropped} dropped != {n} contended pthread_mutex_lock calls made")
    found = rep.with_waiter_function("contend", kinds=("pthread_mutex",))
    assert found, f"the kept waits do not name the Python caller contend():\n{rep.summary()}"


def test_exact_count_with_room(runner, tmp_path):
    """The same handshake with a buffer large enough: every contended lock recorded, none dropped."""
    so = build_extension(runner.python, tmp_path, "handshake.c", "ftprof_handshake")
    n = 2_000
    prof = runner.run([WORKLOADS / "handshake.py", so.parent, n])
    rep = runner.report(prof.files)
    assert rep["dropped_events"] == 0
    assert rep.total("contentions", rep.of_kind("pthread_mutex")) == n, rep.summary()


def test_failed_lock_calls_are_not_waits(runner, tmp_path):
    """pthread_mutex_lock on an error-checking mutex the caller holds fails at once with EDEADLK: the
    recorder goes through its contended path (the benchmark times that), but the report must not
    count those calls as contended acquisitions."""
    so = build_extension(runner.python, tmp_path, "handshake.c", "ftprof_handshake")
    n = 5_000
    prof = runner.run([WORKLOADS / "handshake.py", so.parent, n, "relock"])
    rep = runner.report(prof.files)
    assert rep["events"] >= n, f"the {n} failed calls were not written ({rep['events']} events)"
    assert not rep.of_kind("pthread_mutex"), f"failed lock calls reported as waits:\n{rep.summary()}"


def test_spins_at_two_call_sites_in_turn(runner):
    """A spin at one yield call site right after a spin at another: each site keeps its PyMutex in a
    register of its own, so what one site has taught the recorder must never be read at the other (a
    stale register read in place crashed the host). Repeated, since the registers' contents vary."""
    waits = 0
    for attempt in range(5):
        run = runner.run(["spin_sites.py", "--threads", 3, "--seconds", 2], check=False)
        assert run.returncode == 0 and run.stdout.startswith("rounds "), (
            f"run {attempt + 1} exited {run.returncode} under the recorder\n{run.stderr[-3000:]}")
        rep = runner.report(run.files)
        waits += sum(lk["contentions"] for lk in rep.with_waiter_function("work"))
    assert waits, "five runs of three threads taking the same two locks recorded no wait in work()"


def run_refused(runner, output, what):
    plain = runner.run([WORKLOADS / "streams.py"], preload=False)
    env = {"FTPROF_OUTPUT": str(output)}
    prof = runner.run([WORKLOADS / "streams.py"], extra_env=env)
    assert prof.returncode == 0
    assert prof.stdout == plain.stdout, f"{what}: stdout changed"
    extra = prof.stderr.replace(plain.stderr, "", 1) if plain.stderr in prof.stderr else prof.stderr
    lines = [ln for ln in extra.splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("ftprof: cannot create"), (
        f"{what}: expected exactly one 'ftprof: cannot create' warning, stderr was:\n{prof.stderr}")
    assert "running unprofiled" in lines[0], lines[0]
    return prof


def test_unwritable_output_directory(runner, tmp_path):
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("x")
    run_refused(runner, not_a_dir / "sub" / "%p.ftp", "output under a regular file")


def test_read_only_output_directory(runner, tmp_path):
    """A directory the program cannot write to: mode 0500 binds an ordinary user; root writes through
    mode bits, so as root (CI) the directory is a file system mounted read-only."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o500)
        try:
            run_refused(runner, ro / "%p.ftp", "read-only directory")
            assert list(ro.iterdir()) == []
        finally:
            ro.chmod(0o700)
        return
    with mounted_tmpfs(ro, "ro,size=64k"):
        run_refused(runner, ro / "%p.ftp", "read-only file system")
        assert list(ro.iterdir()) == []


def test_planted_symlink_is_refused(runner, tmp_path):
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    target.chmod(0o644)
    out = tmp_path / "trap"
    out.mkdir()
    # The shell plants the link at the exact name the recorder will use ($$ is the pid python gets from
    # exec), so the %p name itself is taken and there is no fallback to try.
    script = f'ln -s {target} {out}/rec.$$.ftp && exec "$0" "$@"'
    env = runner.env(extra={"FTPROF_OUTPUT": str(out / "rec.%p.ftp")})
    plain = subprocess.run([str(runner.python), str(WORKLOADS / "streams.py")], capture_output=True, text=True,
                           env=clean_env(), cwd=tmp_path)
    prof = subprocess.run(["sh", "-c", script, str(runner.python), str(WORKLOADS / "streams.py")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert prof.returncode == 0 and prof.stdout == plain.stdout
    lines = [ln for ln in prof.stderr.replace(plain.stderr, "", 1).splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("ftprof: cannot create"), (
        f"expected one refusal warning, stderr:\n{prof.stderr}")
    assert target.read_text() == "keep me\n" and (target.stat().st_mode & 0o777) == 0o644, "target touched"
    links = list(out.iterdir())
    assert len(links) == 1 and links[0].is_symlink(), f"the trap directory changed: {links}"


@pytest.mark.parametrize("taken_by", ["file", "symlink"])
def test_existing_name_without_pid_falls_back(runner, tmp_path, taken_by):
    """FTPROF_OUTPUT without %p names a file that exists: `<name>.<pid>` is tried (README). A symbolic
    link there is a planted trap, not a name in use: refused, no fallback, its target untouched."""
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    out = tmp_path / "fixed.ftp"
    if taken_by == "symlink":
        out.symlink_to(target)
    else:
        out.write_text("keep me\n")
    prof = runner.run([WORKLOADS / "streams.py"], extra_env={"FTPROF_OUTPUT": str(out)})
    assert target.read_text() == "keep me\n", "the symlink's target was written through"
    assert out.is_symlink() == (taken_by == "symlink") and out.read_text() == "keep me\n"
    fallback = [p for p in tmp_path.iterdir() if p.name.startswith("fixed.ftp.")]
    if taken_by == "symlink":
        assert fallback == [] and "ftprof: cannot create" in prof.stderr and "symbolic link" in prof.stderr, (
            fallback, prof.stderr)
        return
    assert len(fallback) == 1 and fallback[0].name.split(".")[-1].isdigit(), (fallback, prof.stderr)
    assert not fallback[0].is_symlink() and (fallback[0].stat().st_mode & 0o777) == 0o600
    runner.report(fallback)


def test_output_identical_with_and_without_recorder(runner):
    plain = runner.run([WORKLOADS / "streams.py"], preload=False)
    prof = runner.run([WORKLOADS / "streams.py"])
    assert_same_behaviour(plain.proc, prof.proc, "streams")
    assert len(prof.files) == 1
    st = prof.files[0].stat()
    assert (st.st_mode & 0o777) == 0o600, f"recording mode {oct(st.st_mode & 0o777)}, expected 0600"


def test_disable_and_bad_settings(runner):
    plain = runner.run([WORKLOADS / "streams.py"], preload=False)
    off = runner.run([WORKLOADS / "streams.py"], extra_env={"FTPROF_DISABLE": "1"})
    assert_same_behaviour(plain.proc, off.proc, "FTPROF_DISABLE=1")
    assert off.files == [], "FTPROF_DISABLE=1 still wrote a recording"
    bad = runner.run([WORKLOADS / "streams.py"], extra_env={"FTPROF_BUFFER": "lots"})
    assert bad.stdout == plain.stdout and bad.returncode == 0
    extra = [ln for ln in bad.stderr.replace(plain.stderr, "", 1).splitlines() if ln]
    assert len(extra) == 1 and "FTPROF_BUFFER" in extra[0], f"expected one warning line, got {extra}"
    assert len(bad.files) == 1, "a bad setting must fall back to defaults and still record"
    verbose = runner.run([WORKLOADS / "streams.py"], extra_env={"FTPROF_VERBOSE": "1"})
    extra = [ln for ln in verbose.stderr.replace(plain.stderr, "", 1).splitlines() if ln]
    assert len(extra) == 1, f"FTPROF_VERBOSE=1 prints one summary line, got {extra}"


def test_children_killed_at_birth_leave_readable_files(runner):
    """A child killed while it creates its recording must leave either no file or a readable one: a
    pool tearing down fresh workers does this (CPython's concurrent.futures tests hit it)."""
    run = runner.run([WORKLOADS / "kill_children.py", 200])
    blank = []
    for f in run.files:
        with open(f, "rb") as fh:
            if not any(fh.read(4096)):
                blank.append(f.name)
    assert not blank, (
        f"{len(blank)} of {len(run.files)} recordings have an all-zero header (the file was created and "
        f"sized before its header was written, and the kill landed in between); ftprof report refuses "
        f"them as 'not an ftprof recording': {blank[:5]}")
    for f in run.files:
        r = runner.cli_run("report", f, "--json")
        assert r.returncode == 0, f"{f.name}: exit {r.returncode}: {r.stderr.strip()[:300]}"
