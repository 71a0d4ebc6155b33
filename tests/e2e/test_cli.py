"""`ftprof run` and the analyzer's commands on recordings the real recorder made.

Checks what a user sees: the command's exit status passed through, the recordings the run made (its
own and its forked children's), the hotspot summary, and reports whose kinds, functions and lines point
at the marked source lines of the workloads (tests/e2e/workloads).
"""
import json
import os
import shutil
import signal
import subprocess

import pytest

from conftest import WORKLOADS, clean_env, marker_line, top_frame, validate_report


def ftprof_run(cli, lib, tmp_path, argv, *options, timeout=300):
    env = clean_env({"FTPROF_LIBRARY": str(lib), "NO_COLOR": "1"})
    pattern = tmp_path / "run-%p.ftp"
    proc = subprocess.run([str(cli), "run", "-o", str(pattern), *options, "--", *map(str, argv)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path)
    files = sorted(tmp_path.glob("run-*.ftp"))
    return proc, files


def report(cli, files):
    proc = subprocess.run([str(cli), "report", *map(str, files), "--json"], capture_output=True, text=True,
                          env=clean_env())
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    validate_report(rep)
    return rep


@pytest.mark.support_row("faults (kill -9, fork, exec, close-all, full disk, …), CLI, packaging")
def test_run_reports_hotspots_and_file(ftprof_cli, ftprof_lib, ft_python, tmp_path):
    proc, files = ftprof_run(ftprof_cli, ftprof_lib, tmp_path, [ft_python, WORKLOADS / "lock_contention.py"])
    assert proc.returncode == 0, proc.stderr
    assert len(files) == 1
    assert f"recording: {files[0]}" in proc.stderr
    assert "Lock contention" in proc.stderr and " lock " in proc.stderr
    # the workload's own output stays on stdout, untouched
    truth = json.loads(proc.stdout.strip().splitlines()[-1])
    rep = report(ftprof_cli, files)
    top = rep["locks"][0]
    assert top["kind"] == "lock"
    frame = top_frame(top["waiters"][0])
    assert frame["function"] == "take"
    assert frame["line"] == marker_line(WORKLOADS / "lock_contention.py", "acquire")
    assert top["source"] == "lock.acquire()  # @acquire"
    assert 0.9 <= top["contentions"] / truth["contended"] <= 1.1
    assert 0.8 <= top["wait_ns"] / truth["wait_ns"] <= 1.2


def test_run_passes_exit_status(ftprof_cli, ftprof_lib, ft_python, tmp_path):
    proc, _ = ftprof_run(ftprof_cli, ftprof_lib, tmp_path, [ft_python, "-c", "import sys; sys.exit(3)"])
    assert proc.returncode == 3
    proc, _ = ftprof_run(ftprof_cli, ftprof_lib, tmp_path,
                         [ft_python, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"])
    assert proc.returncode == 128 + signal.SIGTERM


def test_run_non_python_writes_nothing(ftprof_cli, ftprof_lib, tmp_path):
    proc, files = ftprof_run(ftprof_cli, ftprof_lib, tmp_path, ["true"])
    assert proc.returncode == 0 and files == []
    assert "no recording was written" in proc.stderr


def test_run_collects_forked_children(ftprof_cli, ftprof_lib, ft_python, tmp_path):
    proc, files = ftprof_run(ftprof_cli, ftprof_lib, tmp_path, [ft_python, WORKLOADS / "fork_child.py"])
    assert proc.returncode == 0, proc.stderr
    assert len(files) == 2
    assert all(str(f) in proc.stderr for f in files)
    rep = report(ftprof_cli, files)
    assert len({f["pid"] for f in rep["files"]}) == 2


def test_native_stacks_merge_python_frames(ftprof_cli, ftprof_lib, ft_python, tmp_path):
    # The writers collide on the dict most runs, not all: a few attempts make the test about stacks.
    for attempt in range(4):
        run_dir = tmp_path / f"a{attempt}"
        run_dir.mkdir()
        proc, files = ftprof_run(ftprof_cli, ftprof_lib, run_dir, [ft_python, WORKLOADS / "critical_section.py"],
                                 "--native")
        assert proc.returncode == 0, proc.stderr
        rep = report(ftprof_cli, files)
        assert rep["files"][0]["native_stacks"]
        cs = [l for l in rep["locks"] if l["kind"] == "critical_section" and l["type"] == "dict"]
        if cs:
            break
    assert cs, [(l["kind"], l["name"]) for l in rep["locks"]]
    writer_line = marker_line(WORKLOADS / "critical_section.py", "dict-writer")
    stack = cs[0]["waiters"][0]["stack"]
    names = [f["function"] for f in stack]
    py = [i for i, f in enumerate(stack) if not f["native"]]
    assert py and stack[py[0]]["function"] == "write_dict" and stack[py[0]]["line"] == writer_line
    # Python frames sit between the interpreter's native frames, in place of the eval loop
    assert stack[0]["native"] and stack[-1]["native"]
    assert "_PyEval_EvalFrameDefault" not in names
    assert not any("ftprof" in (f["file"] or "") for f in stack if f["native"])


def test_flamegraph_and_pprof_of_a_real_run(ftprof_cli, ftprof_lib, ft_python, tmp_path):
    _, files = ftprof_run(ftprof_cli, ftprof_lib, tmp_path, [ft_python, WORKLOADS / "lock_contention.py"])
    html = tmp_path / "out.html"
    r = subprocess.run([str(ftprof_cli), "flamegraph", *map(str, files), "-o", str(html)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert "take" in html.read_text()
    folded = tmp_path / "out.folded"
    subprocess.run([str(ftprof_cli), "flamegraph", *map(str, files), "-o", str(folded)], check=True)
    heaviest = max(folded.read_text().splitlines(), key=lambda l: int(l.rsplit(" ", 1)[1]))
    assert heaviest.startswith("lock ") and heaviest.split(";")[-1].split(" ")[0] == "take"
    # The main thread joining the workers is waiting for work: drawn only with --all.
    assert not any(l.startswith(("thread_join ", "condition ")) for l in folded.read_text().splitlines())
    everything = tmp_path / "all.folded"
    subprocess.run([str(ftprof_cli), "flamegraph", *map(str, files), "-o", str(everything), "--all"], check=True)
    joins = [l for l in everything.read_text().splitlines() if l.startswith("thread_join ")]
    assert joins and any("Thread.join" in l for l in joins), everything.read_text()[:2000]
    pb = tmp_path / "out.pb.gz"
    r = subprocess.run([str(ftprof_cli), "export", *map(str, files), "--format", "pprof", "-o", str(pb)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    if not shutil.which("go"):
        pytest.skip("go is not installed (make deps): the pprof export was not read back with go tool pprof")
    top = subprocess.run(["go", "tool", "pprof", "-top", str(pb)], capture_output=True, text=True, timeout=120)
    assert top.returncode == 0 and "take" in top.stdout, top.stdout + top.stderr


def test_run_summary_cuts_source_lines_between_words(ftprof_cli, ftprof_lib, ft_python, tmp_path):
    """`ftprof run`'s one-line-per-lock summary fits a 100-column terminal: the warm-up Lock's long
    source line is cut at the end of a word, never inside one."""
    wl = WORKLOADS / "first_rlocks.py"
    env = clean_env({"FTPROF_LIBRARY": str(ftprof_lib), "NO_COLOR": "1", "COLUMNS": "100"})
    proc = subprocess.run([str(ftprof_cli), "run", "-o", str(tmp_path / "run-%p.ftp"), "--", str(ft_python), str(wl)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    source = next(l.strip() for l in wl.read_text().splitlines() if l.strip().startswith("warmer = "))
    rows = [l for l in proc.stderr.splitlines() if " lock Lock " in l and "warmer" in l]
    assert rows, proc.stderr
    for row in rows:
        assert len(row) <= 100 and row.endswith("\u2026"), row
        shown = row[:-1].split("  ")[-1]
        assert source.startswith(shown) and source[len(shown)] == " ", f"cut inside a word: {row!r}"


def test_run_forwards_terminate_and_still_reports(ftprof_cli, ftprof_lib, ft_python, tmp_path):
    env = clean_env({"FTPROF_LIBRARY": str(ftprof_lib), "NO_COLOR": "1"})
    script = "import sys, time; print('ready', flush=True); time.sleep(60)"
    proc = subprocess.Popen([str(ftprof_cli), "run", "-o", str(tmp_path / "t-%p.ftp"), "--", str(ft_python), "-c",
                             script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    files = list(tmp_path.glob("t-*.ftp"))
    assert len(files) == 1 and str(files[0]) in err
