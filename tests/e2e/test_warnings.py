"""What the recorder has to say never harms the program: a warning goes to descriptor 2 only while that is
still the stream the program started with and only if the write cannot block; every warning also goes
into the recording (header.notes), and the analyzer prints it. And on a small disk the recorder leaves
the program the room for its own files.

Each test mounts a small tmpfs (root only) where a disk has to fill up."""
import fcntl
import os
import subprocess

import pytest

from conftest import WORKLOADS, clean_env, small_tmpfs, stack_functions

DAEMON_FILES = ("in.dat", "out.log", "err.log")
BAD_BUFFER = "FTPROF_BUFFER=junk is not a size (a number with K, M, G or T, like 64M); using 64M"


def ftprof_lines(stderr):
    return [ln for ln in stderr.splitlines() if ln.startswith("ftprof:")]


def notes_of(rep):
    return [(n["text"], n["shown_on_stderr"]) for n in rep["notes"]]


def daemon_run(runner, out, mode, rec_dir, preload, extra=None):
    out.mkdir()
    argv = ["daemon_fds.py", out, mode] + ([rec_dir] if mode == "moved" else [])
    return runner.run(argv, preload=preload, extra_env=extra, timeout=120)


@pytest.mark.parametrize("mode", ["disk-full", "moved"])
def test_daemon_descriptors_never_get_a_warning(runner, tmp_path, mode):
    """daemon_fds.py closes 0-2, opens its own files as 0, 1 and 2 and writes to them, then meets a
    warning raised inside a hook: the disk of the recording fills up (disk-full), or the recorder
    cannot find its file again and stops (moved). FTPROF_BUFFER=junk adds a warning at start-up, when
    fd 2 is still the stream the program was given. Before, the hook's warning went to the daemon's
    err.log."""
    with small_tmpfs(tmp_path / "small", "256k") as small:
        rec_dir = small if mode == "disk-full" else tmp_path / "rec"
        rec_dir.mkdir(exist_ok=True)
        (tmp_path / "empty").mkdir()
        plain = daemon_run(runner, tmp_path / "plain", mode, tmp_path / "empty", preload=False)
        extra = {"FTPROF_BUFFER": "junk", "FTPROF_OUTPUT": rec_dir / "%p.ftp"}
        if mode == "moved":
            extra["FTPROF_TEST_NO_POPULATE"] = "1"  # chunks are reserved through the file's name
        prof = daemon_run(runner, tmp_path / "prof", mode, rec_dir, preload=True, extra=extra)
        assert prof.returncode == plain.returncode == 0
        for name in DAEMON_FILES:
            got, want = (tmp_path / "prof" / name).read_bytes(), (tmp_path / "plain" / name).read_bytes()
            assert got == want, f"{name} differs under the recorder:\n--- without\n{want!r}\n--- with\n{got!r}"
        # The stream the program was started with got the start-up warning, and nothing else.
        assert ftprof_lines(prof.stderr) == [f"ftprof: {BAD_BUFFER}"], prof.stderr
        (rec,) = list(rec_dir.iterdir())
        rep = runner.report(rec)
        notes = notes_of(rep)
        assert notes[0] == (BAD_BUFFER, True), notes
        assert len(notes) == 2 and notes[1][1] is False, f"the hook's warning, not shown on stderr: {notes}"
        (info,) = rep["files"]
        if mode == "disk-full":
            assert "disk is full" in notes[1][0] and info["disk_full"], notes
            assert "daemon_wait" in {f for lk in rep.locks for w in lk["waiters"] for f in stack_functions(w)}
        else:
            assert notes[1][0].startswith("recording stopped: the recording's file cannot be opened again"), notes
            assert info["stopped_early"] and not info["disk_full"]
        text = runner.cli_run("report", rec)
        assert text.returncode == 0, text.stderr
        assert "Recorder notes" in text.stdout and BAD_BUFFER in text.stdout, text.stdout[:1500]
        assert f"{notes[1][0]} (not shown on the program's stderr)" in text.stdout, text.stdout[:1500]


def test_ftprof_run_shows_what_stderr_did_not(ftprof_cli, ftprof_lib, ft_python, tmp_path):
    """`ftprof run` prints, after the program's own output, the notes the program's stderr did not get,
    and only those: the start-up warning is on stderr once, the disk-full one (fd 2 was the daemon's
    file by then) comes from the summary."""
    with small_tmpfs(tmp_path / "small", "256k") as small:
        (tmp_path / "out").mkdir()
        env = clean_env({"FTPROF_LIBRARY": str(ftprof_lib), "NO_COLOR": "1", "FTPROF_BUFFER": "junk"})
        proc = subprocess.run([str(ftprof_cli), "run", "-o", str(small / "%p.ftp"), "--", str(ft_python),
                               str(WORKLOADS / "daemon_fds.py"), str(tmp_path / "out"), "disk-full"],
                              capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.count(BAD_BUFFER) == 1, proc.stderr
        assert "Recorder notes the program's stderr did not show" in proc.stderr, proc.stderr
        assert "the disk is full for this recording" in proc.stderr, proc.stderr
        assert b"ftprof" not in (tmp_path / "out" / "err.log").read_bytes()


def full_pipe():
    """A pipe of one page, filled: nobody will read it while the program runs."""
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)
    size = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
    os.set_blocking(w, False)
    filled = 0
    try:
        while True:
            filled += os.write(w, b"x" * size)
    except BlockingIOError:
        pass
    try:
        os.write(w, b"x")
        raise AssertionError("the pipe is not full")
    except BlockingIOError:
        pass
    os.set_blocking(w, True)  # as the program was given it
    return r, w, filled


def test_full_stderr_pipe_does_not_block(runner, tmp_path):
    """The program's stderr is a full pipe nobody reads. The recorder warns twice: at start-up (a bad
    setting, before main) and from a hook (the disk of the recording fills up while 16 threads
    contend). Before, the first warning blocked the process before its first line of Python."""
    with small_tmpfs(tmp_path / "small", "256k") as small:
        plain = runner.run(["wide_burst.py", 16], preload=False)
        r, w, filled = full_pipe()
        env = runner.env(extra={"FTPROF_BUFFER": "junk", "FTPROF_OUTPUT": small / "%p.ftp"})
        proc = subprocess.Popen([str(runner.python), str(WORKLOADS / "wide_burst.py"), "16"], stdout=subprocess.PIPE,
                                stderr=w, env=env, cwd=tmp_path, text=True)
        os.close(w)
        try:
            out, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail("the program blocked: a warning was written to its full stderr pipe")
        finally:
            os.set_blocking(r, False)
            try:
                queued = os.read(r, 1 << 20)
            except BlockingIOError:
                queued = b""
            os.close(r)
        assert proc.returncode == 0 and out == plain.stdout
        assert queued == b"x" * filled, f"the pipe got {len(queued) - filled} more bytes: {queued[filled:][:200]!r}"
        (rec,) = list(small.iterdir())
        rep = runner.report(rec)
        notes = notes_of(rep)
        assert len(notes) == 2 and notes[0] == (BAD_BUFFER, False), notes
        assert "disk is full" in notes[1][0] and notes[1][1] is False, notes


def test_program_keeps_its_blocks_on_a_small_disk(runner, tmp_path):
    """Eight threads contend, then the program writes 50,000 bytes to a 200 KiB file system that also
    holds the recording. Before, the recording took all 200,704 bytes in reserved chunks and the
    program's write failed with ENOSPC, leaving an empty file. Now the recorder keeps half of a file
    system this small free for the program, and says the recording was cut short."""
    size = 50000
    with small_tmpfs(tmp_path / "plain", "200k") as plain_fs, small_tmpfs(tmp_path / "prof", "200k") as prof_fs:
        plain = runner.run(["write_after_contention.py", plain_fs / "own.bin", size], preload=False)
        prof = runner.run(["write_after_contention.py", prof_fs / "own.bin", size], check=False,
                          extra_env={"FTPROF_OUTPUT": prof_fs / "%p.ftp"})
        assert prof.returncode == plain.returncode == 0, prof.stderr
        assert prof.stdout == plain.stdout == f"wrote {size} bytes\n"
        want = (plain_fs / "own.bin").read_bytes()
        assert len(want) == size and (prof_fs / "own.bin").read_bytes() == want
        (rec,) = [p for p in prof_fs.iterdir() if p.name != "own.bin"]
        held = rec.stat().st_blocks * 512
        assert held <= 100 * 1024, f"the recording holds {held} bytes of a 200 KiB file system"
        lines = ftprof_lines(prof.stderr)
        assert len(lines) == 1 and "disk is full for this recording" in lines[0], prof.stderr
        rep = runner.report(rec)
        (info,) = rep["files"]
        assert info["disk_full"] and info["disk_full_events"] > 0, info
        assert "contend_wait" in {f for lk in rep.locks for w in lk["waiters"] for f in stack_functions(w)}, (
            "the recording keeps the waits it stored before the disk ran short")
        text = runner.cli_run("report", rec)
        assert "ends early because the disk was full" in text.stdout, text.stdout[:800]
