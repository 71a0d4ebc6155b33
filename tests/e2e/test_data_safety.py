"""The recorder never touches what the program owns: its descriptors after a close-all, its files, its
name under exec, its stderr in children that are not recorded; and what the recorder cannot keep (a
full disk, an output name that is a device or a directory) is said in one clear line.

The last test is the guard for the future: every workload of the e2e set runs in a sandbox with and
without the recorder, and every file it writes must come out byte for byte the same."""
import hashlib
import json
import os
import struct
import subprocess

import pytest

from conftest import FLAG_FINISHED, FLAG_FORKED_CHILD, WORKLOADS, read_header, small_tmpfs, stack_functions

FLAG_DISK_FULL = 1 << 6
FLAG_ENDED_BY_EXEC = 1 << 7


def waiter_functions(rep):
    return {f for lk in rep.locks for w in lk["waiters"] for f in stack_functions(w)}


def ftprof_lines(stderr):
    return [ln for ln in stderr.splitlines() if ln.startswith("ftprof:")]


def tree_digest(root, skip=()):
    """{relative path: sha256} of every regular file under root."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(dirpath, d) not in skip]
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def chunk_facts(path):
    with open(path, "rb") as f:
        raw = f.read(36)
    chunk_size, chunk_count, chunks_used = struct.unpack_from("<III", raw, 24)
    return chunk_size, chunk_count, chunks_used


# --------------------------------------------------------------------------------------------------
# Descriptors: a program that closes everything and reuses the numbers.

@pytest.mark.support_row("faults (kill -9, fork, exec, close-all, full disk, …), CLI, packaging")
@pytest.mark.parametrize("reserve", ["mapping", "by-name"])
def test_close_all_then_open_keeps_program_files(runner, tmp_path, reserve):
    """close_all.py closes every descriptor above 2, opens its log (which gets the number the recorder
    had), makes threads contend (new chunks), forks a child that writes to the log and to a file of its
    own, and both exit normally with their files open. Before, chunk reservations fallocated the log
    to hundreds of KiB of zeros, the exit trim truncated it, and the child's recording got the log's
    lines in its header ("not an ftprof recording"). `by-name` is the path of kernels without
    MADV_POPULATE_WRITE: the file is opened again by name for each reservation."""
    plain_dir, prof_dir = tmp_path / "plain", tmp_path / "prof"
    plain_dir.mkdir()
    prof_dir.mkdir()
    plain = runner.run(["close_all.py", plain_dir], preload=False)
    extra = {"FTPROF_TEST_NO_POPULATE": "1"} if reserve == "by-name" else None
    prof = runner.run(["close_all.py", prof_dir], extra_env=extra)
    assert prof.returncode == plain.returncode == 0
    assert ftprof_lines(prof.stderr) == [], prof.stderr
    want = tree_digest(plain_dir)
    assert set(want) == {"parent.log", "child.log"}
    for name in want:
        got, exp = (prof_dir / name).read_bytes(), (plain_dir / name).read_bytes()
        assert got == exp, (f"{name} differs under the recorder: {len(got)} bytes instead of {len(exp)}\n"
                            f"--- without\n{exp[:300]!r}\n--- with\n{got[:300]!r}")
    assert len(prof.files) == 2, f"expected the parent's and the child's recording: {prof.files}"
    by_role = {}
    for f in prof.files:
        h = read_header(f)
        by_role["child" if h["flags"] & FLAG_FORKED_CHILD else "parent"] = (f, h)
    assert set(by_role) == {"parent", "child"}, by_role
    for role, (f, h) in by_role.items():
        assert h["flags"] & FLAG_FINISHED, f"the {role} exited normally: its recording must say so"
        rep = runner.report(f)
        assert f"{role}_wait" in waiter_functions(rep), f"{role}'s waits missing from {f.name}:\n{rep.summary()}"
        # trimmed at exit to what it used: the trim reached the recording, not the program's file
        chunk_size, chunk_count, used = chunk_facts(f)
        assert f.stat().st_size == 4096 + used * chunk_size < 4096 + chunk_count * chunk_size, (
            f"{f.name}: {f.stat().st_size} bytes, {used} of {chunk_count} chunks of {chunk_size} used")


# --------------------------------------------------------------------------------------------------
# exec into the same interpreter, same pid.

@pytest.mark.support_row("faults (kill -9, fork, exec, close-all, full disk, …), CLI, packaging")
@pytest.mark.parametrize("pattern", ["%p.ftp", "fixed.ftp"])
def test_exec_into_self_gets_a_recording_per_image(runner, pattern):
    out = runner.out_dir / pattern
    prof = runner.run(["exec_self.py", 1, 3], extra_env={"FTPROF_OUTPUT": out})
    lines = prof.stdout.splitlines()
    assert len(lines) == 3 and len({ln.split()[-1] for ln in lines}) == 1, lines
    pid = int(lines[0].split()[-1])
    assert ftprof_lines(prof.stderr) == [], f"the later images could not record:\n{prof.stderr}"
    if pattern == "%p.ftp":
        names = [f"{pid}.ftp", f"{pid}.exec1.ftp", f"{pid}.exec2.ftp"]
    else:
        names = ["fixed.ftp", f"fixed.ftp.{pid}", f"fixed.ftp.{pid}.exec1"]
    assert sorted(f.name for f in prof.files) == sorted(names), prof.files
    for stage, name in enumerate(names, 1):
        path = runner.out_dir / name
        h = read_header(path)
        assert h["pid"] == pid
        rep = runner.report(path)
        (info,) = rep["files"]
        assert info["argv"].endswith(f"exec_self.py {stage} 3"), (name, info["argv"])
        funcs = waiter_functions(rep)
        if stage < 3:
            assert h["flags"] & FLAG_ENDED_BY_EXEC and info["ended_by_exec"] and not info["finished"], (name, h)
            assert "before_exec" in funcs and "after_exec" not in funcs, (name, funcs)
            chunk_size, _, used = chunk_facts(path)
            assert path.stat().st_size == 4096 + used * chunk_size, f"{name} was not trimmed"
        else:
            assert h["flags"] & FLAG_FINISHED and not info["ended_by_exec"], (name, h)
            assert "after_exec" in funcs and "before_exec" not in funcs, (name, funcs)


def test_exec_into_a_non_python_program_ends_the_recording(runner):
    """The new image (a shell) records nothing and prints nothing, but it can still see the recording
    its process wrote before the exec: it marks it ended by exec and trims it."""
    code = ("import os, sys; sys.path.insert(0, sys.argv[1]); from gated import gated_burst; "
            "gated_burst(lambda lock: lock.acquire()); print(os.getpid(), flush=True); "
            "os.execv('/bin/sh', ['sh', '-c', 'echo shell $$'])")
    prof = runner.run(["-c", code, WORKLOADS])
    pid, shell = prof.stdout.splitlines()
    assert shell == f"shell {pid}", prof.stdout
    assert prof.stderr == "", prof.stderr
    (rec,) = prof.files
    assert rec.name == f"{pid}.ftp"
    h = read_header(rec)
    assert h["flags"] & FLAG_ENDED_BY_EXEC and not h["flags"] & FLAG_FINISHED, h
    chunk_size, _, used = chunk_facts(rec)
    assert rec.stat().st_size == 4096 + used * chunk_size, "the recording was not trimmed"
    rep = runner.report(rec)
    assert rep["files"][0]["ended_by_exec"] and rep.locks, rep.summary()


# --------------------------------------------------------------------------------------------------
# Processes that are not recorded say nothing; the ones that are name the variable and its value.

def test_non_python_children_silent_with_bad_settings(runner):
    bad = {"FTPROF_NATIVE": "maybe", "FTPROF_BUFFER": "lots", "FTPROF_BUFER": "1M"}
    plain = runner.run(["subproc.py"], preload=False)
    prof = runner.run(["subproc.py"], extra_env=bad)
    # subproc.py prints what sh and gcc wrote on their stderr: the recorder in them must not add a word
    assert prof.stdout == plain.stdout, f"--- without\n{plain.stdout}\n--- with\n{prof.stdout}"
    assert prof.returncode == plain.returncode == 0
    lines = ftprof_lines(prof.stderr)
    assert len(lines) == 3, f"the Python process warns once per bad setting:\n{prof.stderr}"
    for name, value in bad.items():
        assert any(f"{name}={value}" in ln for ln in lines), f"no warning names {name}={value}: {lines}"
    assert len(prof.files) == 1


# --------------------------------------------------------------------------------------------------
# A full disk.

@pytest.fixture
def small_disk(tmp_path):
    with small_tmpfs(tmp_path / "small", "256k") as mnt:
        yield mnt


@pytest.mark.support_row("faults (kill -9, fork, exec, close-all, full disk, …), CLI, packaging")
def test_full_disk_is_reported_as_a_full_disk(runner, small_disk):
    """16 threads contending at once need 16 chunks (of 16 KiB, the smallest, on a file system this
    small): more than the half of a 256 KiB tmpfs the recorder may take. The one line
    says the disk is full (not "raise FTPROF_BUFFER"), names the file and how much was kept; the file is
    trimmed to what was written; the report reads and says why the recording ends early."""
    plain = runner.run(["wide_burst.py", 16], preload=False)
    prof = runner.run(["wide_burst.py", 16], extra_env={"FTPROF_OUTPUT": small_disk / "%p.ftp"})
    assert prof.returncode == 0 and prof.stdout == plain.stdout
    files = list(small_disk.iterdir())
    assert len(files) == 1, files
    rec = files[0]
    lines = ftprof_lines(prof.stderr)
    assert len(lines) == 1, f"expected one line about the full disk:\n{prof.stderr}"
    assert str(rec) in lines[0] and "disk is full" in lines[0] and "KiB" in lines[0], lines[0]
    assert "FTPROF_BUFFER" not in lines[0]
    h = read_header(rec)
    assert h["flags"] & FLAG_DISK_FULL and h["flags"] & FLAG_FINISHED, h
    chunk_size, chunk_count, used = chunk_facts(rec)
    size = rec.stat().st_size
    assert size == 4096 + used * chunk_size <= 256 * 1024 < 4096 + chunk_count * chunk_size, (
        f"not trimmed to what was written: {size} bytes, {used} chunks of {chunk_size} used")
    rep = runner.report(rec)
    (info,) = rep["files"]
    assert info["disk_full"] and info["disk_full_events"] > 0 and rep["disk_full_events"] == info["disk_full_events"]
    assert rep["dropped_events"] == 0, "waits lost to a full disk are not buffer drops"
    assert "wide_wait" in waiter_functions(rep)
    text = runner.cli_run("report", rec)
    assert text.returncode == 0
    assert "ends early because the disk was full" in text.stdout, text.stdout[:800]
    assert "FTPROF_BUFFER" not in text.stdout + text.stderr


# --------------------------------------------------------------------------------------------------
# Output names that are not files.

def test_output_device_is_refused(runner):
    before = set(os.listdir("/dev"))
    plain = runner.run(["streams.py"], preload=False)
    prof = runner.run(["streams.py"], extra_env={"FTPROF_OUTPUT": "/dev/null"})
    created = set(os.listdir("/dev")) - before
    for name in created:  # a recorder that gets this wrong leaves /dev/null.<pid>: do not keep it
        path = os.path.join("/dev", name)
        if name.startswith("null.") and os.path.isfile(path) and not os.path.islink(path):
            with open(path, "rb") as f:
                if f.read(8) == b"FTPROF\x01\n":
                    os.unlink(path)
    assert not created, f"a recording was created in /dev: {sorted(created)}"
    assert prof.stdout == plain.stdout and prof.returncode == 0
    lines = ftprof_lines(prof.stderr)
    assert len(lines) == 1 and lines[0].startswith("ftprof: cannot create /dev/null") and "device" in lines[0] \
        and "FTPROF_OUTPUT=/dev/null" in lines[0] and "running unprofiled" in lines[0], prof.stderr


@pytest.mark.parametrize("spelling", ["dir/", "dir"])
def test_output_directory_holds_ftprof_pid_files(runner, tmp_path, spelling):
    d = tmp_path / "dir"
    d.mkdir()
    value = str(d) + ("/" if spelling.endswith("/") else "")
    prof = runner.run(["streams.py"], extra_env={"FTPROF_OUTPUT": value})
    assert ftprof_lines(prof.stderr) == [], prof.stderr
    names = os.listdir(d)
    assert len(names) == 1 and names[0].startswith("ftprof-") and names[0].endswith(".ftp"), names
    assert names[0][len("ftprof-"):-len(".ftp")].isdigit(), names
    runner.report(d / names[0])
    assert not [n for n in os.listdir(tmp_path) if n.startswith("dir") and n != "dir"], os.listdir(tmp_path)


# --------------------------------------------------------------------------------------------------
# The guard: every workload's files, with and without the recorder.

# Small arguments for the workloads that take some; a workload not listed runs with its defaults.
WORKLOAD_ARGS = {
    "abc_isinstance.py": ["--rounds", "20000"],
    "attach_deadlock.py": [".", "."],  # its GO and END files exist from the start: it deadlocks and ends
    "attach_gate.py": [str(os.getuid()), str(os.getgid()), "."],  # its own ids; the stop file exists: it ends
    "close_all.py": ["."],
    "cpu_threads.py": ["--work", "300000"],
    "critical_section.py": ["--scale", "0.3"],
    "daemon_fds.py": [".", "disk-full"],
    "exec_self.py": ["1", "3"],
    "exit_paths.py": ["raise"],
    "kill_children.py": ["20"],
    "lock_contention.py": ["--seconds", "0.2"],
    "many_threads.py": ["300"],
    "mp_pool.py": ["fork"],
    "queue_pc.py": ["--items", "50"],
    "ready_cpu.py": ["/dev/null", "--steps", "100"],  # its timings would differ from run to run
    "sqlite_shared.py": ["--rows", "20000", "--rounds", "3"],
    "stop_the_world.py": ["--rounds", "10"],
    "type_lock.py": ["--rounds", "20000"],
    "uncontended.py": ["30000"],
    "verdicts.py": ["hang", "--threads", "4", "--hang-ms", "100"],
    "weakref_lock.py": ["--rounds", "50000"],
    "wide_burst.py": ["8"],
    "write_after_contention.py": ["own.bin", "50000"],
}
# Workloads whose own exit status is not 0.
WORKLOAD_STATUS = {"exit_paths.py": 1}
# Workloads that need something built first, with the reason.
NEEDS_BUILD = {"handshake.py": "a C extension (test_faults.py runs it)",
               "loader_lock.py": "the same C extension (test_hook_contract.py runs it)",
               "ready_app.py": "C extensions of its own (test_ready.py runs it)",
               "ready_late.py": "a C extension of its own (test_ready.py runs it)",
               "native_owner.py": "a C library of its own, or numpy in a venv (test_native_owner.py runs it)"}
# A name starting with "_" is a module the workloads import, not one of them.
ALL_WORKLOADS = sorted(p.name for p in WORKLOADS.glob("*.py")
                       if p.name not in NEEDS_BUILD and not p.name.startswith("_"))


@pytest.mark.parametrize("workload", ALL_WORKLOADS)
def test_workload_files_unchanged(runner, tmp_path, workload):
    """Runs the workload in an empty sandbox (its working directory and TMPDIR), once without and once
    with the recorder, and compares every file left in the sandbox byte for byte, and the exit status."""
    results = {}
    for mode in ("plain", "profiled"):
        box = tmp_path / mode
        (box / "tmp").mkdir(parents=True)
        run = runner.run([workload, *WORKLOAD_ARGS.get(workload, [])], preload=(mode == "profiled"),
                         extra_env={"TMPDIR": box / "tmp"}, cwd=box, check=False, timeout=240)
        results[mode] = (run, tree_digest(box))
    (plain, want), (prof, got) = results["plain"], results["profiled"]
    assert plain.returncode == WORKLOAD_STATUS.get(workload, 0), (
        f"{workload} itself failed (exit {plain.returncode}); fix its arguments in WORKLOAD_ARGS\n"
        f"{plain.stderr[-2000:]}")
    assert prof.returncode == plain.returncode, (
        f"{workload}: exit {prof.returncode} under the recorder, {plain.returncode} without\n{prof.stderr[-2000:]}")
    changed = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    assert not changed, (f"{workload}: files differ under the recorder: {changed}\n"
                         f"without: {json.dumps(want, indent=0)[:800]}\nwith: {json.dumps(got, indent=0)[:800]}")
