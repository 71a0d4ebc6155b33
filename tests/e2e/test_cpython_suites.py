"""CPython's own threading suites from the free-threaded build's `test` package, run with and without
the recorder: the outcome must not change, and every recording the suites' processes leave behind must
be readable. About a minute per run on two cores; FTPROF_SKIP_SUITES=1 leaves it out of quick runs."""
import json
import os
import re
import subprocess

import pytest

from conftest import clean_env

SUITES = ["test_free_threading", "test_threading", "test_thread", "test_queue", "test_concurrent_futures",
          "test_threading_local"]

_PROGRESS = re.compile(r"\[\s*\d+/\d+\]\s+(?:\S+\s+)?(test_[\w.]+)\s+(passed|failed|skipped|"
                       r"resource denied|env changed|crashed|timed out|interrupted|"
                       r"skipped \(resource denied\)|run no tests)")
_RESULT = re.compile(r"^Result:\s*(.+)$", re.M)


def parse_regrtest(output):
    outcomes = {}
    for m in _PROGRESS.finditer(output):
        outcomes[m.group(1)] = m.group(2)
    results = _RESULT.findall(output)
    return (results[-1].strip() if results else None), outcomes


def run_suites(python, env, cwd, timeout):
    # --timeout turns a hang into a per-test failure instead of eating the whole CI budget.
    cmd = [str(python), "-m", "test", "-j2", "--timeout", "600", *SUITES]
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.support_row("CPython's own threading suites")
@pytest.mark.skipif(os.environ.get("FTPROF_SKIP_SUITES") == "1", reason="FTPROF_SKIP_SUITES=1")
def test_cpython_threading_suites(runner, results, tmp_path):
    plain_dir = tmp_path / "plain"
    prof_dir = tmp_path / "profiled"
    plain_dir.mkdir()
    prof_dir.mkdir()
    plain = run_suites(runner.python, clean_env(), plain_dir, timeout=1200)
    plain_result, plain_outcomes = parse_regrtest(plain.stdout + plain.stderr)
    assert plain_result, f"no Result: line without the recorder\n{plain.stdout[-3000:]}{plain.stderr[-2000:]}"
    assert plain_outcomes, f"no per-test lines parsed\n{plain.stdout[-3000:]}"

    env = runner.env(output=runner.out_dir / "%p.ftp")
    prof = run_suites(runner.python, env, prof_dir, timeout=1800)
    prof_result, prof_outcomes = parse_regrtest(prof.stdout + prof.stderr)

    files = sorted(runner.out_dir.iterdir())
    unreadable = []
    total_locks = 0
    for f in files:
        r = runner.cli_run("report", f, "--json", timeout=120)
        if r.returncode != 0:
            with open(f, "rb") as fh:
                blank = not any(fh.read(4096))
            hint = " (header all zeros: never written, the process died while creating its file)" if blank else ""
            unreadable.append(f"{f.name}: exit {r.returncode}: {r.stderr.strip()[:300]}{hint}")
        else:
            total_locks += len(json.loads(r.stdout)["locks"])
    results.add("cpython suites", result_plain=plain_result, result_profiled=prof_result,
                tests=len(plain_outcomes), recordings=len(files), unreadable=len(unreadable),
                locks_in_all_reports=total_locks)

    assert prof_result == plain_result, (
        f"suite result changed under the recorder: {plain_result!r} -> {prof_result!r}\n"
        f"{prof.stdout[-4000:]}\n{prof.stderr[-2000:]}")
    changed = {t: (plain_outcomes.get(t), prof_outcomes.get(t))
               for t in set(plain_outcomes) | set(prof_outcomes)
               if plain_outcomes.get(t) != prof_outcomes.get(t)}
    assert not changed, f"per-test outcomes changed under the recorder (without, with): {changed}"
    assert files, "the profiled suites left no recording at all"
    assert not unreadable, f"{len(unreadable)} of {len(files)} recordings unreadable:\n" + "\n".join(unreadable[:20])
