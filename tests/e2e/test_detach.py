"""Detach under load: the recorder attached to and detached from a Python process 1,000 times while its
8 threads contend continuously and two other processes keep both cores busy.

The cycles are driven inside the target through the recorder's attach entry points (what `ftprof
attach`'s script calls), with the test flag that makes some hooks stop for 40 ms before writing, as a
thread preempted there would. The workload checks each finished recording itself
(workloads/detach_cycles.py): every record inside its own window, nothing past a chunk's last record.
The program must print exactly what it prints without the recorder, and exit normally.
"""
import subprocess
import sys
import time

from conftest import FT_LABELS, WORKLOADS, _python, clean_env

WL = WORKLOADS / "detach_cycles.py"
CYCLES = 1000


def busy_processes(n=2):
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def test_thousand_detaches_under_load(ftprof_lib, tmp_path, results):
    """1,000 attach/detach cycles with 8 threads contending and both cores busy: no crash, the same
    output as without the recorder, and no record written into a recording it does not belong to.
    One free-threaded interpreter (3.14t where the matrix has it): the mechanism does not depend on the
    version, and tests/unit runs it without Python as well."""
    ft_python = _python("3.14t" if "3.14t" in FT_LABELS else FT_LABELS[0])
    plain = subprocess.run([str(ft_python), str(WL)], capture_output=True, text=True, env=clean_env(),
                           cwd=tmp_path, timeout=120)
    assert plain.returncode == 0, plain.stderr
    busy = busy_processes()
    start = time.monotonic()
    try:
        cycled = subprocess.run([str(ft_python), str(WL), "--lib", str(ftprof_lib), "--out", str(tmp_path),
                                 "--cycles", str(CYCLES)], capture_output=True, text=True, env=clean_env(),
                                cwd=tmp_path, timeout=900)
    finally:
        for p in busy:
            p.kill()
            p.wait()
    elapsed = time.monotonic() - start
    assert cycled.returncode == 0, cycled.stderr[-2000:]
    assert cycled.stdout == plain.stdout
    assert "True" in plain.stdout and "False" not in plain.stdout, plain.stdout
    cycles_line = [l for l in cycled.stderr.splitlines() if l.startswith("CYCLES ")]
    assert cycles_line, cycled.stderr[-2000:]
    _, n, _, waits = cycles_line[-1].split()
    assert int(n) == CYCLES
    assert int(waits) > CYCLES // 10, f"only {waits} waits recorded in {CYCLES} windows"
    results.add("detach under load", cycles=int(n), waits=int(waits), seconds=elapsed)
