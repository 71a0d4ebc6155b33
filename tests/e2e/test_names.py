"""Names a user recognises, on real runs (workloads/names.py): a lock or object by what the program
calls it (queue.Queue.mutex, CACHE, logging.Handler.lock), package-relative file names, threads by
their full `threading` names, and import-time GIL waits of a free-threaded build in a row of their own
that names the modules imported."""
import os
import subprocess

from conftest import WORKLOADS, clean_env, marker_line

NAMES = WORKLOADS / "names.py"


def text_report(runner, files, columns=160, *extra):
    env = dict(clean_env(), COLUMNS=str(columns), NO_COLOR="1")
    r = subprocess.run([str(runner.cli), "report", *map(str, files), "--threads", *extra], capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


def lock_rows(text):
    return [l for l in text.splitlines() if l[:4].strip().isdigit() and "  " in l[60:]]


def assert_columns_kept(text):
    """Every row of the thread table ends its LIFETIME ("12.3 ms", "1.02 s") under the header's."""
    table = text.split("Threads, by lock contention", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    end = table[0].index("LIFETIME") + len("LIFETIME") - 1
    assert all(len(r) > end and r[end] == "s" for r in table[1:]), table


def test_names_of_locks_objects_and_threads(runner):
    run = runner.run([NAMES, "--parts", "queue,cache,logging"])
    truth = run.truth()
    rep = runner.report(run.files)
    by_owner = {lk["owner"]: lk for lk in rep.locks if lk.get("owner")}
    # queue.Queue's own lock, entered through its conditions in put/get, by the workers (and the holder).
    q = by_owner.get("queue.Queue.mutex")
    assert q and q["kind"] == "lock", rep.summary(12)
    assert q["source"].startswith("with self.not_"), q["source"]
    # The dict the fill threads write as CACHE[k] = v.
    cache = by_owner.get("CACHE")
    assert cache and cache["kind"] == "critical_section" and cache["type"] == "dict", rep.summary(12)
    assert any(f["line"] == marker_line(NAMES, "cache-write") for w in cache["waiters"] for f in w["stack"])
    # The logging handler's lock, taken in logging/__init__.py.
    handler = by_owner.get("logging.Handler.lock")
    assert handler and handler["kind"] == "rlock", rep.summary(12)

    text = text_report(runner, run.files)
    assert any("Lock queue.Queue.mutex @\u2026" in l for l in lock_rows(text)), text
    assert any("dict CACHE @\u2026" in l and "CACHE[(wid, n % 64)] = n" in l for l in lock_rows(text)), text
    assert "Handler.handle (logging/__init__.py:" in text, text
    # Every thread's full name, each on its own line, the numbers in the same columns on every row.
    rows = text.split("Threads, by lock contention", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    names = [f"ThreadPoolExecutor-0_{i}" for i in range(4)] + truth["cache"]["threads"]
    for name in names:
        assert sum(1 for r in rows if r.startswith(f"  {name} ")) == 1, (name, rows)
    assert_columns_kept(text)


def test_thread_names_cut_stay_distinct(runner):
    """At 60 columns the name column cannot hold `ThreadPoolExecutor-0_N` whole: the four still print
    differently, and every row keeps its columns."""
    run = runner.run([NAMES, "--parts", "queue"])
    text = text_report(runner, run.files, 60)
    rows = text.split("Threads, by lock contention", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    pool = [r for r in rows if r.startswith("  ThreadPool")]
    assert len(pool) == 4, rows
    shown = {r[2:].split(" ")[0] for r in pool}
    assert len(shown) == 4, pool
    assert all(len(r) <= 60 for r in rows), rows
    assert_columns_kept(text)


def test_import_time_gil_waits_in_their_own_row(runner):
    run = runner.run([NAMES, "--parts", "imports"])
    truth = run.truth()["imports"]
    assert truth["imported"] and not truth["gil"], truth  # every module declares support: the GIL stays off
    rep = runner.report(run.files)
    transient = [lk for lk in rep.of_kind("gil") if lk["name"] == "GIL (on for an import)"]
    assert transient, rep.summary(12)
    assert not [lk for lk in rep.of_kind("gil") if lk["name"] != "GIL (on for an import)"], rep.summary(12)
    owner = transient[0]["owner"]
    assert owner.startswith("importing ") and any(m in owner for m in truth["imported"]), owner
    text = text_report(runner, run.files)
    assert "GIL (on for an import) importing " in text and "turns the GIL on while it imports" in text, text
