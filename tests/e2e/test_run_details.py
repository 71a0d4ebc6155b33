"""The smaller things a user meets around `ftprof run`: its closing summary carries the time split and
the verdict; a recording of a process that ended by os._exit or a signal is cut to what it used; the
recorder's messages name the file without "/./"; a missing FTPROF_LIBRARY file is named as missing; one
FTPROF_BUFFER parser with stated limits, in the recorder and in `ftprof attach` alike.
"""
import os
import re
import signal
import subprocess

import pytest

from conftest import WORKLOADS, clean_env, read_header, FLAG_FINISHED

WL = WORKLOADS / "verdicts.py"
HEADER = 4096


def run(cli, lib, cwd, argv, *options, env=None, timeout=300):
    e = clean_env({"FTPROF_LIBRARY": str(lib), "NO_COLOR": "1", "COLUMNS": "200", **(env or {})})
    return subprocess.run([str(cli), "run", *options, "--", *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, env=e, cwd=cwd)


def test_run_summary_has_time_split_and_verdict(ftprof_cli, ftprof_lib, ft_python, tmp_path):
    proc = run(ftprof_cli, ftprof_lib, tmp_path, [ft_python, WL, "contend", "--threads", 3, "--rounds", 60,
                                                  "--hold-ms", 2])
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert "Where the threads' time went" in err, err
    for row in ("CPU", "lock contention", "waiting for work", "the rest (I/O, sleep)"):
        assert re.search(rf"^  {re.escape(row)} ", err, re.M), (row, err)
    m = re.search(r"^  => (contention cost (\d+)% of thread time; .*)$", err, re.M)
    assert m, err
    # The same verdict as the full report of the same recording.
    files = sorted(tmp_path.glob("ftprof-*.ftp"))
    full = subprocess.run([str(ftprof_cli), "report", *map(str, files)], capture_output=True, text=True,
                          env=clean_env({"NO_COLOR": "1", "COLUMNS": "200"})).stdout
    assert m.group(1) in full, full
    assert "/./" not in err, err


@pytest.mark.parametrize("ending", ["os._exit", "SIGTERM"])
def test_unfinished_recording_cut_to_what_it_used(ftprof_cli, ftprof_lib, ft_python, tmp_path, ending):
    code = {"os._exit": "os._exit(3)", "SIGTERM": "os.kill(os.getpid(), signal.SIGTERM)"}[ending]
    prog = ("import os, signal, threading\n"
            "l = threading.Lock(); l.acquire()\n"
            "t = threading.Thread(target=lambda: l.acquire(timeout=0.05)); t.start(); t.join()\n" + code + "\n")
    proc = run(ftprof_cli, ftprof_lib, tmp_path, [ft_python, "-c", prog])
    assert proc.returncode == (3 if ending == "os._exit" else 128 + signal.SIGTERM), proc.stderr
    (rec,) = tmp_path.glob("ftprof-*.ftp")
    h = read_header(rec)
    assert not h["flags"] & FLAG_FINISHED
    size = rec.stat().st_size
    # Cut to the chunks used (64 MiB before): the header and a handful of chunks.
    assert size < 4 << 20, size
    assert (size - HEADER) % h["chunk_size"] == 0 and (size - HEADER) // h["chunk_size"] >= h["chunks_used"]
    rep = subprocess.run([str(ftprof_cli), "report", str(rec), "--json"], capture_output=True, text=True,
                         env=clean_env())
    assert rep.returncode == 0 and '"contentions": 1' in rep.stdout, rep.stdout[:2000] + rep.stderr


def test_missing_library_is_named(ftprof_cli, ft_python, tmp_path):
    missing = tmp_path / "nowhere" / "libftprof.so"
    proc = subprocess.run([str(ftprof_cli), "run", "--", str(ft_python), "-c", "pass"], capture_output=True,
                          text=True, env=clean_env({"FTPROF_LIBRARY": str(missing)}), cwd=tmp_path)
    # (The exit code is the one `ftprof run` gives for its own failures: analyzer/EXIT_CODES.md.)
    assert proc.returncode != 0, proc.stderr
    assert proc.stderr.strip() == f"ftprof: {missing}: the recorder FTPROF_LIBRARY names cannot be used: no such file"
    attach = subprocess.run([str(ftprof_cli), "attach", str(os.getpid())], capture_output=True, text=True,
                            env=clean_env({"FTPROF_LIBRARY": str(tmp_path)}), cwd=tmp_path)
    assert attach.returncode == 7, attach.stderr
    assert attach.stderr.strip().endswith(f"ftprof: {tmp_path}: the recorder FTPROF_LIBRARY names cannot be used: "
                                          "not a regular file"), attach.stderr


@pytest.mark.parametrize("value, said", [
    ("1T", None),
    ("100G", None),
    ("2T", "FTPROF_BUFFER=2T is above the maximum of 1T; using 1T"),
    ("8K", "FTPROF_BUFFER=8K is below the minimum of 16K; using 16K"),
    ("64X", "FTPROF_BUFFER=64X is not a size (a number with K, M, G or T, like 64M); using 64M"),
])
def test_buffer_sizes_and_limits(runner, value, said):
    """Sizes up to 1T in any unit are taken silently (the file is sparse: blocks are reserved as chunks
    are used); beyond the limits the recorder says which one and what it uses instead."""
    r = runner.run(["-c", "pass"], extra_env={"FTPROF_BUFFER": value})
    (rec,) = r.files
    h = read_header(rec)
    want = {"1T": 1 << 40, "100G": 100 << 30, "2T": 1 << 40, "8K": 16 << 10, "64X": 64 << 20}[value]
    assert HEADER + h["chunk_size"] * h["chunk_count"] <= want, h
    assert HEADER + h["chunk_size"] * (h["chunk_count"] + 1) > want, h
    if said:
        assert f"ftprof: {said}" in r.stderr, r.stderr
    else:
        assert "FTPROF_BUFFER" not in r.stderr, r.stderr


def test_attach_refuses_what_the_recorder_would(ftprof_cli, tmp_path):
    """`ftprof attach` parses FTPROF_BUFFER with the recorder's parser, and says so before attaching."""
    proc = subprocess.run([str(ftprof_cli), "attach", str(os.getpid()), "-o", str(tmp_path / "a.ftp")],
                          capture_output=True, text=True, env=clean_env({"FTPROF_BUFFER": "1.5G"}))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("ftprof: FTPROF_BUFFER: '1.5G' is not a size between 16K and 1T "
                                   "(a number with K, M, G or T, like 64M)"), proc.stderr
