"""What a report names is what the program waited for: spins charged only to locks, threads under their
threading names.

1. The type cache's seqlock readers and writers yield (sched_yield) without any PyMutex: their waits are
   rows "type cache (seqlock)", never a PyMutex named after whatever pointer a register held (a string
   constant's ob_tid, a cache entry's value), and any PyMutex named by a runtime/interpreter field is
   one whose field is a lock.
2. Threads whose first wait comes before `threading` has a frame still end up with their threading name.
"""
import re
import subprocess
import sys

import pytest

from conftest import WORKLOADS, marker_line, stack_functions

TYPE_CACHE_WL = WORKLOADS / "type_cache.py"
# The last member of a PyMutex's field path: a lock's own name (mutex, lock, weakref_locks[3]...).
LOCK_FIELD = re.compile(r"(mutex|lock|locks|_lock\w*|Lock\w*)(\[\d+\])?$")
FIELD_NAME = re.compile(r"(?:interp->|tstate->|_PyRuntime\.)[\w.\[\]>-]+")


def _field_names(text):
    return FIELD_NAME.findall(text)


@pytest.mark.support_row("spins charged only to locks")
def test_seqlock_spins_named_as_the_type_cache(runner):
    """Eight threads hammering type attribute lookups: the seqlock's yields appear as the type cache's
    seqlock (or stay unattributed), and no row or verdict names a field that is no lock."""
    run = runner.run([TYPE_CACHE_WL, "--threads", 8])
    assert run.truth()["lookups"] > 0
    rep = runner.report(run.files)
    seqlock = [lk for lk in rep.locks if lk["name"].startswith("type cache (seqlock)")]
    # 3.13 fills a missed entry under the type lock (interp->types.mutex): its readers rarely yield.
    if runner.python.label != "3.13t":
        assert seqlock, f"no type cache seqlock row:\n{rep.summary()}"
    for lk in seqlock:
        assert lk["kind"] == "other" and lk["parked"] == 0, lk
        assert lk["name"] == "type cache (seqlock)" or lk["name"].startswith("type cache (seqlock) for "), lk["name"]
    lookups = [lk for lk in seqlock if any("look_up" in stack_functions(w) for w in lk["waiters"])]
    assert lookups or not seqlock, f"no seqlock wait in look_up():\n{rep.summary()}"
    line = marker_line(TYPE_CACHE_WL, "lookup")
    assert not seqlock or any(f["function"] == "look_up" and f["line"] == line for lk in lookups
                              for w in lk["waiters"] for f in w["stack"]), "the seqlock's waits are not at getattr()"
    # Every field a row names is a lock; the text report (rows and verdict) names no other.
    for lk in rep.locks:
        for field in _field_names(lk["name"]):
            assert LOCK_FIELD.search(field), f"{lk['kind']} row named after a field that is no lock: {lk['name']}"
    text = runner.cli_run("report", *run.files)
    assert text.returncode == 0, text.stderr
    for field in _field_names(text.stdout):
        assert LOCK_FIELD.search(field), f"the text report names a field that is no lock: {field}\n{text.stdout}"
    assert "ob_tid" not in text.stdout and "hashtable[" not in text.stdout, text.stdout


THREAD_NAMES_WL = WORKLOADS / "thread_names.py"


def _busy_processes(n=2):
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


@pytest.mark.support_row("threading names for 200 threads started at once")
def test_threads_started_at_once_keep_their_threading_names(runner):
    """200 threads started at once while two other processes keep both cores busy: many first wait in
    their bootstrap, before `threading` has a frame on them, or spin with nothing recorded until their
    end. Every thread in the report still has its threading name, never the OS one (python3.1Xt)."""
    busy = _busy_processes()
    try:
        run = runner.run([THREAD_NAMES_WL, "--threads", 200])
    finally:
        for p in busy:
            p.kill()
            p.wait()
    given = set(run.truth()["names"])
    assert len(given) == 200
    rep = runner.report(run.files)
    workers = [th for th in rep["threads"] if th["name"] != "MainThread"]
    assert workers, "no thread of the workload waited"
    unnamed = [(th["tid"], th["name"]) for th in workers if th["name"] not in given]
    assert not unnamed, f"{len(unnamed)} of {len(workers)} threads without their threading name: {unnamed[:10]}"
