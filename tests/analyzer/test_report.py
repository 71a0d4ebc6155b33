"""Golden and damaged-input tests of `ftprof report`, `flamegraph` and `export` on synthetic recordings.

The recordings come from mkrec (tests/analyzer/mkrec.c), whose workload is fixtures/bank.py with line
tables made by a real CPython 3.13t. Assertions are about meaning: kinds, functions, lines, counts and
ratios, never addresses or thread ids. FTPROF and MKREC name the binaries (set by meson).
"""
import json
import os
import random
import signal
import subprocess

import jsonschema
import pytest

FTPROF = os.environ.get("FTPROF", "build/analyzer/ftprof")
MKREC = os.environ.get("MKREC", "build/tests/analyzer/mkrec")
HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA = json.load(open(os.path.join(HERE, "report.schema.json")))
MS = 1_000_000


def ftprof(*args, timeout=60):
    env = dict(os.environ, NO_COLOR="1", COLUMNS="120")
    r = subprocess.run([FTPROF, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)
    # under a sanitizer build (tools/sanitize, build-asan) any report is a failure, whatever the exit code
    assert "runtime error" not in r.stderr and "Sanitizer" not in r.stderr, r.stderr
    assert r.returncode >= 0, f"killed by signal {-r.returncode}"
    return r


def make(tmp_path, scenario, *extra):
    out = tmp_path / f"{scenario}.ftp"
    subprocess.run([MKREC, scenario, str(out), *map(str, extra)], check=True, capture_output=True)
    return out


def report(*files):
    r = ftprof("report", *files, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    return doc


def one_line_error(stderr, path):
    lines = [l for l in stderr.splitlines() if l.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"ftprof: {path}: "), stderr


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    return make(tmp_path_factory.mktemp("bank"), "bank")


@pytest.fixture(scope="module")
def bank_doc(bank):
    return report(bank)


def by_kind(doc, kind):
    return [l for l in doc["locks"] if l["kind"] == kind]


def frames(site):
    return [(f["function"], os.path.basename(f["file"] or ""), f["line"]) for f in site["stack"]]


# --- golden: the bank workload ---------------------------------------------------------------------

def test_hot_lock_ranked_first_with_its_sites(bank_doc):
    top = bank_doc["locks"][0]
    assert top["kind"] == "lock" and top["type"] == "_thread.lock"
    assert top["source"] == "with ACCOUNTS:"
    # 300 transfers of 1 ms, 50 audits of 2 ms (one parked twice), 100 spins of 10 µs on the same stack
    # and 10 on the same line under another caller, attributed to it
    assert top["contentions"] == 460
    assert top["wait_ns"] == 300 * MS + 100 * MS + 110 * 10_000
    assert top["max_wait_ns"] == 2 * MS
    assert abs(top["p50_wait_ns"] - 1 * MS) / MS < 0.035
    assert abs(top["p99_wait_ns"] - 2 * MS) / (2 * MS) < 0.035
    assert top["threads"] == 4
    assert top["handoffs"] == 150
    assert 0 < top["spin_ns"] < top["wait_ns"]
    waiters = top["waiters"]
    assert frames(waiters[0]) == [("Bank.transfer", "bank.py", 12), ("Worker.run", "bank.py", 40)]
    assert waiters[0]["count"] == 400 and waiters[0]["wait_ns"] == 301 * MS
    assert frames(waiters[1]) == [("Bank.audit", "bank.py", 17), ("Worker.run", "bank.py", 42)]
    assert waiters[1]["count"] == 50 and waiters[1]["wait_ns"] == 100 * MS
    assert frames(waiters[2]) == [("Bank.transfer", "bank.py", 12), ("main", "bank.py", 47)]
    assert waiters[2]["count"] == 10
    holders = top["holders"]
    assert [frames(h)[0] for h in holders] == [("Bank.transfer", "bank.py", 13), ("Bank.audit", "bank.py", 18)]
    assert holders[0]["count"] == 201 and holders[1]["count"] == 99
    # each holder carries the wait of the waiter it woke (1 ms each)
    assert holders[0]["wait_ns"] == 201 * MS and holders[1]["wait_ns"] == 99 * MS


def test_locks_sorted_contention_first_then_by_wait(bank_doc):
    """As the text does: contention by total wait, then waiting for work (the bank's Thread.join and
    Condition waits are longer than most of its locks', and still come after them)."""
    work = {"condition", "thread_join"}
    order = [(l["kind"] in work, -l["wait_ns"]) for l in bank_doc["locks"]]
    assert order == sorted(order)
    kinds = [l["kind"] for l in bank_doc["locks"]]
    first_work = min(i for i, k in enumerate(kinds) if k in work)
    assert all(k not in work for k in kinds[:first_work]) and all(k in work for k in kinds[first_work:])
    assert max(l["wait_ns"] for l in bank_doc["locks"] if l["kind"] in work) > bank_doc["locks"][first_work - 1]["wait_ns"]
    for l in bank_doc["locks"]:
        for key in ("waiters", "holders"):
            w = [s["wait_ns"] for s in l[key]]
            assert w == sorted(w, reverse=True)


def test_condition_wait_versus_reacquire(bank_doc):
    # Condition.wait parks on a fresh waiter lock each time: all those waits are one row
    (cond,) = by_kind(bank_doc, "condition")
    assert cond["name"] == "Condition" and cond["address"] == "0x0"
    assert cond["contentions"] == 10 and cond["wait_ns"] == 200 * MS
    assert frames(cond["waiters"][0])[:2] == [("Condition.wait", "threading.py", 19), ("consume", "bank.py", 32)]
    assert cond["source"] == "READY.wait()"  # the caller's line, not the library's
    # the re-acquire after the notify is contention on the condition's own lock
    rl = by_kind(bank_doc, "rlock")
    assert len(rl) == 1 and rl[0]["contentions"] == 5
    assert frames(rl[0]["waiters"][0])[0] == ("Condition.wait", "threading.py", 22)


def test_thread_join_and_pyevent(bank_doc):
    (join,) = by_kind(bank_doc, "thread_join")
    assert join["contentions"] == 4 and join["wait_ns"] == 400 * MS and join["source"] == "w.join()"
    assert [f[0] for f in frames(join["waiters"][0])] == ["Thread._wait_for_tstate_lock", "Thread.join", "main"]
    other = {l["name"].split(" @")[0]: l for l in by_kind(bank_doc, "other")}
    assert other["PyEvent"]["contentions"] == 3
    assert other["spin (unattributed)"]["contentions"] == 20
    assert other["spin (unattributed)"]["spin_ns"] == other["spin (unattributed)"]["wait_ns"] == 20 * 5000


def test_critical_section_names_its_type(bank_doc):
    (cs,) = by_kind(bank_doc, "critical_section")
    assert cs["type"] == "dict" and cs["name"].startswith("dict @")
    assert cs["contentions"] == 200 and cs["wait_ns"] == 200 * 50_000 and cs["threads"] == 4
    assert frames(cs["waiters"][0])[0] == ("Cache.get", "bank.py", 26)
    assert cs["source"] == "return self.data.get(key)"


def test_gil_reenabled(bank_doc):
    (g,) = bank_doc["gil_enabled"]
    assert g["module"] == "_ext" and g["path"].endswith("_ext.cpython-313t-x86_64-linux-gnu.so")
    assert g["gil_wait_after_ns"] == 10 * 100_000  # 10 of the 15 GIL waits came after it
    # On a free-threaded build the GIL was on before only while an import had it (transiently): those 5
    # waits make a row of their own, the 10 after the re-enable are the GIL's.
    gils = {l["name"].split(" ")[0] if l["address"] != "0x0" else l["name"]: l for l in by_kind(bank_doc, "gil")}
    assert {k: l["contentions"] for k, l in gils.items()} == {"GIL": 10, "GIL (on for an import)": 5}, gils
    # bank.py's waiters import nothing: the row cannot say which module
    assert gils["GIL (on for an import)"]["owner"] == "importing a module"


def test_runtime_mutex_and_native_wait(bank_doc):
    (pm,) = by_kind(bank_doc, "pymutex")
    assert "_PyRuntime+0x1a8" in pm["name"]
    (pt,) = by_kind(bank_doc, "pthread_mutex")
    assert pt["type"] is None
    assert frames(pt["waiters"][0]) == [("[no stack]", "", 0)]
    assert bank_doc["files"][0]["dangling_ids"] == {"stacks": 0, "codes": 0, "types": 0}


def test_dangling_ids_are_counted_and_reported(tmp_path):
    """Records that point at stack, code or type ids the file never defines: shown as [unknown], and
    counted in a warning and in the JSON, since such a wait may also land in the wrong section (a
    Condition.wait whose frames are unknown cannot be told from a lock wait)."""
    rec = make(tmp_path, "dangling")
    r = ftprof("report", rec)
    assert r.returncode == 0
    lines = [l for l in r.stderr.splitlines() if l]
    assert len(lines) == 1 and lines[0].startswith(f"ftprof: {rec}: warning: ") and "never defined" in lines[0], r.stderr
    assert "2 to stacks" in lines[0] and "1 to code objects" in lines[0] and "1 to types" in lines[0], lines[0]
    doc = report(rec)
    # one wait and one wake-up name undefined stacks, one wait a stack with an undefined code object,
    # one wait an undefined type
    assert doc["files"][0]["dangling_ids"] == {"stacks": 2, "codes": 1, "types": 1}
    unknown = [l for l in by_kind(doc, "pthread_mutex") if l["type"] == "[unknown]"]
    assert len(unknown) == 1 and frames(unknown[0]["waiters"][0]) == [("[unknown]", "", 0)]
    # everything the bank defines properly still reads as in the bank
    assert doc["locks"][0]["contentions"] == 460


def test_spins_without_a_stack_are_never_charged_to_a_lock(tmp_path):
    """Spins with neither a lock address nor a stack stay unattributed: neither the Lock nor the GIL, whose
    waits have no stack either, takes them (they used to pile onto the busiest lock: 6 threads on a lock
    only 4 use)."""
    doc = report(make(tmp_path, "stackless_spins"))
    lock = by_kind(doc, "lock")
    assert len(lock) == 1 and lock[0]["contentions"] == 40 and lock[0]["threads"] == 4, lock
    gil = by_kind(doc, "gil")
    assert len(gil) == 1 and gil[0]["contentions"] == 10 and gil[0]["threads"] == 2, gil
    other = [l for l in doc["locks"] if l["kind"] == "other"]
    assert sum(l["contentions"] for l in other) == 35, other
    # Nor is a stack of native frames only (FTPROF_NATIVE=1) ground to place a spin: the lock's kind would
    # then depend on --native.
    pm = by_kind(doc, "pymutex")
    assert len(pm) == 1 and pm[0]["contentions"] == 4, pm
    # A native condition variable waits for work, and is not called Python's Condition.
    cond = by_kind(doc, "condition")
    assert [(l["contentions"], l["name"].split()[0]) for l in cond] == [(3, "pthread_cond")], cond


def test_file_facts(bank_doc, bank):
    assert bank_doc["dropped_events"] == 0
    assert bank_doc["duration_ns"] == 1000 * MS
    assert sorted(t["name"] for t in bank_doc["threads"]) == ["Worker-1", "Worker-2", "Worker-3", "Worker-4",
                                                              "python3.13t"]
    (f,) = bank_doc["files"]
    assert f["path"] == str(bank) and f["finished"] and not f["truncated"]


def test_text_report_rows(bank):
    r = ftprof("report", bank)
    assert r.returncode == 0 and r.stderr == ""
    out = r.stdout
    assert "GIL was re-enabled by module _ext" in out
    assert "Lock contention" in out and "Waiting for work" in out
    assert out.index("Lock contention") < out.index("Waiting for work")
    row = next(l for l in out.splitlines() if "with ACCOUNTS:" in l)
    assert "460" in row and "lock" in row and "95." in row  # 401 of 420.67 ms of contention
    assert "Bank.transfer (bank.py:12)" in out and "Bank.transfer (bank.py:13)" in out
    assert "\033[" not in out
    assert max(len(l) for l in out.splitlines() if not l.startswith("!")) <= 120


def test_text_fits_narrow_terminal(bank):
    r = subprocess.run([FTPROF, "report", str(bank)], capture_output=True, text=True,
                       env=dict(os.environ, COLUMNS="80", NO_COLOR="1"))
    table = [l for l in r.stdout.splitlines() if l[:3].strip().isdigit() or l.startswith("    ")]
    assert len(table) > 10 and max(len(l) for l in table) <= 80
    assert any("with ACCOUNTS:" in l for l in table)


def test_top_limits_locks(bank):
    doc = json.loads(ftprof("report", bank, "--json", "--top", "3").stdout)
    assert len(doc["locks"]) == 3


def test_files_never_merge_locks(bank, tmp_path):
    other = make(tmp_path, "bank")
    doc = report(bank, other)
    accounts = [l for l in doc["locks"] if l["source"] == "with ACCOUNTS:"]
    assert len(accounts) == 2 and {l["file"] for l in accounts} == {str(bank), str(other)}
    assert all(l["contentions"] == 460 for l in accounts)
    assert len(doc["files"]) == 2 and len(doc["threads"]) == 10


def test_dropped_events_warn(tmp_path):
    rec = make(tmp_path, "dropped")
    r = ftprof("report", rec)
    assert r.returncode == 0
    assert "1,234 events were dropped" in r.stdout
    assert "warning" in r.stderr and "dropped" in r.stderr
    assert report(rec)["dropped_events"] == 1234


def test_full_disk_is_not_a_full_buffer(tmp_path):
    rec = make(tmp_path, "diskfull")
    r = ftprof("report", rec)
    assert r.returncode == 0
    assert f"! {rec} ends early because the disk was full: 37 later waits were not stored" in r.stdout, r.stdout
    assert "FTPROF_BUFFER" not in r.stdout + r.stderr
    lines = [l for l in r.stderr.splitlines() if l]
    assert len(lines) == 1 and lines[0].startswith(f"ftprof: {rec}: warning: ") and "disk was full" in lines[0]
    doc = report(rec)
    assert doc["files"][0]["disk_full"] and doc["files"][0]["disk_full_events"] == 37
    assert doc["disk_full_events"] == 37 and doc["dropped_events"] == 0
    assert not report(make(tmp_path, "bank"))["files"][0]["disk_full"]


def test_recorder_notes(tmp_path):
    """header.notes (format 6): every note with whether stderr showed it; a note still being written
    (zeros after it) is read as far as it goes, a damaged status byte or control character is text, and
    a header that could not hold them all says so. A format 5 file's same bytes are padding: no notes."""
    rec = make(tmp_path, "notes")
    doc = report(rec)
    assert [(n["text"], n["shown_on_stderr"]) for n in doc["notes"]] == [
        ("FTPROF_BUFFER=lots is not a size like 64M; using the default", True),
        ("/data/rec.ftp: the disk is full (no space left on device)", False),
        ("recording st", False),
        ("#odd?note", False),
    ], doc["notes"]
    assert all(n["file"] == str(rec) for n in doc["notes"])
    assert doc["files"][0]["notes_cut"]
    r = ftprof("report", rec)
    assert r.returncode == 0
    assert f"Recorder notes ({rec}, pid 4242):" in r.stdout, r.stdout
    assert "  FTPROF_BUFFER=lots is not a size like 64M; using the default\n" in r.stdout
    assert "  /data/rec.ftp: the disk is full (no space left on device) (not shown on the program's stderr)" in r.stdout
    assert "(more notes did not fit in the recording's header)" in r.stdout
    old = report(make(tmp_path, "notes_v5"))
    assert old["notes"] == [] and not old["files"][0]["notes_cut"]
    assert "Recorder notes" not in ftprof("report", tmp_path / "notes_v5.ftp").stdout


def test_ended_by_exec(tmp_path):
    doc = report(make(tmp_path, "exec"))
    (f,) = doc["files"]
    assert f["ended_by_exec"] and not f["finished"]
    assert doc["locks"][0]["contentions"] == 460


def test_native_frames_spliced_with_python(tmp_path):
    doc = report(make(tmp_path, "native"))
    assert doc["files"][0]["native_stacks"]
    by_count = {l["contentions"]: l for l in doc["locks"]}
    # the recorder's frames are gone, each eval-loop frame became the Python frames it ran
    spliced = [(f["function"], f["native"]) for f in by_count[5]["waiters"][0]["stack"]]
    assert spliced == [("mk_native_leaf", True), ("Bank.transfer", False), ("mk_native_mid", True),
                       ("Worker.run", False), ("main", False), ("mk_native_outer", True)]
    leaf = by_count[5]["waiters"][0]["stack"][0]
    assert leaf["file"].endswith("mkrec.c") and leaf["line"] > 0
    # without an eval-loop symbol the Python frames still appear, none lost
    plain = [(f["function"], f["native"]) for f in by_count[3]["waiters"][0]["stack"]]
    assert plain == [("mk_native_leaf", True), ("mk_native_mid", True), ("mk_native_outer", True),
                     ("Cache.get", False)]


RECORDINGS = sorted(p for p in (os.path.join(HERE, "recordings", n) for n in
                     (os.listdir(os.path.join(HERE, "recordings")) if os.path.isdir(os.path.join(HERE, "recordings"))
                      else [])) if p.endswith(".ftp"))


@pytest.mark.parametrize("path", RECORDINGS, ids=os.path.basename)
def test_checked_in_recordings(path):
    """Recordings made by the real recorder (tests/analyzer/recordings/NAME.ftp) must report cleanly.
    NAME.expect.json, when present, lists locks that must be there: objects with "kind" and optionally
    "type", "waiter_function", "waiter_line" and "min_share" (of contention, 0..1); every one must match
    some lock."""
    doc = report(path)
    expect_path = path[:-len(".ftp")] + ".expect.json"
    if not os.path.exists(expect_path):
        return
    base = doc["contention_wait_ns"] or 1
    for want in json.load(open(expect_path)):
        def matches(lock):
            if lock["kind"] != want["kind"] or ("type" in want and lock["type"] != want["type"]):
                return False
            if "min_share" in want and lock["wait_ns"] / base < want["min_share"]:
                return False
            if "waiter_function" in want or "waiter_line" in want:
                return any(f["function"] == want.get("waiter_function", f["function"]) and
                           f["line"] == want.get("waiter_line", f["line"])
                           for site in lock["waiters"] for f in site["stack"] if not f["native"])
            return True
        assert any(matches(l) for l in doc["locks"]), (want, [(l["kind"], l["name"]) for l in doc["locks"][:10]])


# --- the text report's sites and widths ----------------------------------------------------------

def text_report(*args, columns=400):
    r = subprocess.run([FTPROF, "report", *map(str, args)], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, NO_COLOR="1", COLUMNS=str(columns)))
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_sites_on_one_line_with_different_callers_are_told_apart(bank):
    """The bank's transfer() waits at bank.py:12 when Worker.run calls it and when main does: two waiter
    sites that would print the same line show the first caller where their stacks part."""
    lines = [l for l in text_report(bank).splitlines() if "Bank.transfer (bank.py:12)" in l]
    assert len(lines) == 2, lines
    callers = {l.split("\u2190", 1)[1].strip() if "\u2190" in l else None for l in lines}
    assert callers == {"Worker.run (bank.py:40)", "main (bank.py:47)"}, lines
    # Sites that differ already at their own line stay one frame.
    assert all("\u2190" not in l for l in text_report(bank).splitlines() if "Bank.audit (bank.py:17)" in l)


def test_depth_shows_callers(bank):
    text = text_report(bank, "--depth", 2)
    audit = [l for l in text.splitlines() if "Bank.audit (bank.py:17)" in l]
    assert audit and all(l.rstrip().endswith("Bank.audit (bank.py:17) \u2190 Worker.run (bank.py:42)") for l in audit), audit
    for bad in ("0", "x", "65"):
        r = ftprof("report", bank, "--depth", bad)
        assert r.returncode == 2 and "--depth" in r.stderr and r.stderr.count("\n") == 1, r.stderr


@pytest.mark.parametrize("columns", [56, 60, 66, 72])
def test_narrow_reports_cut_between_words(bank, columns):
    """A name, source line or site cut to fit the terminal ends at a word's end (or after a bracket, dot
    or comma), never inside a word; the verdict and the notes under a lock wrap instead of being cut."""
    wide = text_report(bank)
    narrow = text_report(bank, columns=columns)
    cut = [l for l in narrow.splitlines() if l.endswith("\u2026")]
    assert cut, f"nothing needed cutting at {columns} columns:\n{narrow}"
    for line in cut:
        part = line[:-1].split("  ")[-1]  # the text after the last column gap: a name or a site
        at = wide.find(part)
        assert at >= 0, (line, part)
        nxt = wide[at + len(part)]
        assert nxt in " \n" or part[-1] in "([{.,", f"cut inside a word at {columns} columns: {line!r}"
    def verdict(text):
        lines = text.splitlines()
        i = next(k for k, l in enumerate(lines) if l.lstrip().startswith("=>"))
        out = [lines[i].strip()[3:]]
        while i + 1 < len(lines) and lines[i + 1].startswith("     ") and lines[i + 1].strip():
            i += 1
            out.append(lines[i].strip())
        return " ".join(out)
    assert verdict(narrow) == verdict(wide)
    assert all(len(l) <= columns for l in narrow.splitlines() if l.lstrip().startswith(("=>", "holder known")))


# --- flame graphs and pprof ------------------------------------------------------------------------

def test_flamegraph_folded(bank, tmp_path):
    out = tmp_path / "w.folded"
    old = os.umask(0o022)  # the child inherits it: outputs meant to be shared follow it
    try:
        r = ftprof("flamegraph", bank, "-o", out)
        private = tmp_path / "p.folded"
        os.umask(0o077)
        assert ftprof("flamegraph", bank, "-o", private).returncode == 0
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    assert oct(out.stat().st_mode & 0o777) == "0o644"
    assert oct(private.stat().st_mode & 0o777) == "0o600"
    lines = out.read_text().splitlines()
    hot = [l for l in lines if "Bank.transfer (" in l and l.startswith("lock ")]
    assert hot, lines[:5]
    # outermost first after the lock, innermost last
    assert hot[0].split(";")[1].startswith("Worker.run")


def test_flamegraph_holders_and_count(bank, tmp_path):
    out = tmp_path / "h.folded"
    assert ftprof("flamegraph", bank, "-o", out, "--holders", "--weight", "count").returncode == 0
    text = out.read_text()
    assert "Bank.audit (" in text and "bank.py:18" in text


def test_flamegraph_is_contention_unless_all(bank, tmp_path):
    """The bank's main thread waits for work in Condition.wait: that tower is left out by default (it
    would be time nobody can win back), drawn with --all; the contended locks' towers are the same."""
    kinds = {}
    for args in ((), ("--all",)):
        out = tmp_path / f"f{len(args)}.folded"
        r = ftprof("flamegraph", bank, "-o", out, *args)
        assert r.returncode == 0, r.stderr
        lines = out.read_text().splitlines()
        kinds[args] = {l.split(" ", 1)[0] for l in lines}
        contention = sorted(l for l in lines if not l.startswith(("condition ", "thread_join ")))
        kinds[args, "contention"] = contention
    assert "condition" not in kinds[()] and "condition" in kinds[("--all",)], kinds
    assert {"lock", "critical_section"} <= kinds[()], kinds
    assert kinds[(), "contention"] == kinds[("--all",), "contention"]
    svg = tmp_path / "f.svg"
    assert ftprof("flamegraph", bank, "-o", svg).returncode == 0
    assert "contention only (--all adds waiting for work)" in svg.read_text()


@pytest.mark.parametrize("ext", ["svg", "html"])
def test_flamegraph_formats(bank, tmp_path, ext):
    out = tmp_path / f"f.{ext}"
    r = ftprof("flamegraph", bank, "-o", out)
    assert r.returncode == 0, r.stderr
    assert "Bank.transfer" in out.read_text()


def test_export_pprof(bank, tmp_path):
    out = tmp_path / "p.pb.gz"
    r = ftprof("export", bank, "--format", "pprof", "-o", out)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:2] == b"\x1f\x8b"


def test_existing_output_is_never_overwritten(bank, tmp_path):
    out = tmp_path / "x.svg"
    out.write_text("keep")
    r = ftprof("flamegraph", bank, "-o", out)
    assert r.returncode == 6
    one_line_error(r.stderr, out)
    assert out.read_text() == "keep"
    link = tmp_path / "l.folded"
    link.symlink_to(tmp_path / "target")
    assert ftprof("flamegraph", bank, "-o", link).returncode == 6
    assert not (tmp_path / "target").exists()
    r = ftprof("export", bank, "--format", "pprof", "-o", tmp_path / "no" / "such" / "dir.pb.gz")
    assert r.returncode == 6


def test_failed_write_leaves_no_partial_file(bank, tmp_path):
    import resource

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    for out in (tmp_path / "big.html", tmp_path / "big.pb.gz"):
        args = ["flamegraph", bank, "-o", out] if out.suffix == ".html" else \
            ["export", bank, "--format", "pprof", "-o", out]
        r = subprocess.run([FTPROF, *map(str, args)], capture_output=True, text=True, preexec_fn=small_files)
        if out.suffix == ".gz" and r.returncode == 0:
            assert out.stat().st_size <= 2048  # small enough to fit: nothing to test
            continue
        assert r.returncode == 6, r.stderr
        assert not out.exists()
        one_line_error(r.stderr, out)


# --- usage and exit codes --------------------------------------------------------------------------

@pytest.mark.parametrize("args", [[], ["bogus"], ["report"], ["report", "--top", "0", "x"], ["report", "--nope", "x"],
                                  ["flamegraph", "x.ftp"], ["flamegraph", "x.ftp", "-o", "out.png"],
                                  ["export", "x.ftp", "-o", "o.pb.gz"], ["export", "x", "--format", "jfr", "-o", "o"],
                                  ["flamegraph", "x", "-o", "a.svg", "--weight", "heavy"],
                                  ["report", "x", "--top"], ["flamegraph", "x", "-o", "a.svg", "--holders=yes"],
                                  ["export", "x", "-o", "o.pb.gz", "--format"]])
def test_usage_errors(args):
    r = ftprof(*args)
    assert r.returncode == 2
    if args:  # (without any, the whole usage is printed)
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("ftprof"), r.stderr


@pytest.mark.parametrize("args", [["run"], ["run", "--nope", "--", "true"], ["run", "-o"], ["run", "-o", "", "true"]])
def test_run_usage_errors_keep_clear_of_the_commands_codes(args):
    """ftprof run exits with its command's status, so its own failures are 125 (as env(1)'s are), never
    a code the command could have returned itself."""
    r = ftprof(*args)
    assert r.returncode == 125, (r.returncode, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("ftprof"), r.stderr


def test_option_spellings_agree(bank, tmp_path):
    """"--top N" and "--top=N", options before or after the files, and "--" before a file all mean
    the same; "-h" prints the usage and exits 0."""
    runs = [ftprof("report", "--json", "--top", "2", bank), ftprof("report", bank, "--top=2", "--json"),
            ftprof("report", "--json", "--top=2", "--", bank)]
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    assert runs[0].stdout == runs[1].stdout == runs[2].stdout
    assert len(json.loads(runs[0].stdout)["locks"]) == 2
    for cmd in ("report", "flamegraph", "export"):
        r = ftprof(cmd, "-h")
        assert r.returncode == 0 and r.stdout.startswith("usage: ftprof " + cmd), r.stdout
    out = tmp_path / "f.folded"
    assert ftprof("flamegraph", bank, "--weight=count", "--output", out).returncode == 0 and out.stat().st_size


def test_help_lists_exit_codes():
    r = ftprof("--help")
    assert r.returncode == 0
    for code in range(2, 8):
        assert f"  {code}  " in r.stdout


def test_run_cannot_start(tmp_path):
    r = subprocess.run([FTPROF, "run", "-o", str(tmp_path / "r-%p.ftp"), "--", str(tmp_path / "no-such-command")],
                       capture_output=True, text=True, env=dict(os.environ, FTPROF_LIBRARY="/bin/true"))
    assert r.returncode == 127  # not found, as a shell says it
    not_runnable = tmp_path / "not-runnable"
    not_runnable.write_text("data")
    r = subprocess.run([FTPROF, "run", "-o", str(tmp_path / "r-%p.ftp"), "--", str(not_runnable)],
                       capture_output=True, text=True, env=dict(os.environ, FTPROF_LIBRARY="/bin/true"))
    assert r.returncode == 126
    r = subprocess.run([FTPROF, "run", "--", "true"], capture_output=True, text=True,
                       env=dict(os.environ, FTPROF_LIBRARY=str(tmp_path / "missing.so")))
    assert r.returncode == 125 and "FTPROF_LIBRARY" in r.stderr


# --- damaged input ---------------------------------------------------------------------------------

def chunks_used(data):
    import struct
    chunk_size, _, used = struct.unpack_from("<III", data, 24)
    assert chunk_size == 4096
    return used


def run_damaged(path):
    r = ftprof("report", path, "--json", timeout=30)
    assert r.returncode in (0, 4), (r.returncode, r.stderr)
    if r.returncode == 0:
        jsonschema.validate(json.loads(r.stdout), SCHEMA)
    else:
        one_line_error(r.stderr, path)
    return r


def test_truncated_at_many_offsets(bank, tmp_path):
    data = bank.read_bytes()
    used = 4096 + chunks_used(data) * 4096
    offsets = sorted(set(list(range(0, 4200, 97)) + list(range(4096, used + 1, 4096)) +
                         list(range(4096 + 13, used, 1531)) + [8, 4095, 4097]))
    partial = 0
    for off in offsets:
        path = tmp_path / f"t{off}.ftp"
        path.write_bytes(data[:off])
        r = run_damaged(path)
        if off < 4096:
            assert r.returncode == 4
        else:
            assert r.returncode == 0
            if off < used:
                assert "truncated" in r.stderr
                partial += 1
        path.unlink()
    assert partial > 10


def test_cut_inside_the_eighth_chunk(tmp_path):
    """The reader gives back the pages of every 8 chunks; a file cut short inside the 8th once had the
    advice run past the end of its mapping and zero the analyzer's own memory mapped next to it (a
    SIGSEGV in report, flamegraph and export at every such length)."""
    rec = make(tmp_path, "bench", 20000)  # 1 MiB chunks, 8 of them
    data = rec.read_bytes()
    import struct
    chunk, _, used = struct.unpack_from("<III", data, 24)
    assert chunk == 1 << 20 and used >= 8
    for part in (0.01, 0.1, 0.33, 0.5, 0.9):
        off = 4096 + 7 * chunk + int(part * chunk)
        path = tmp_path / f"cut{off}.ftp"
        path.write_bytes(data[:off])
        for args in (["report", path], ["report", "--json", path], ["flamegraph", path, "-o", tmp_path / "o.folded"],
                     ["export", path, "--format", "pprof", "-o", tmp_path / "o.pb.gz"]):
            r = ftprof(*args)
            assert r.returncode == 0, (off, args, r.returncode, r.stderr)
            assert "truncated" in r.stderr
            for out in tmp_path.glob("o.*"):
                out.unlink()
        path.unlink()


def test_random_byte_flips(bank, tmp_path):
    data = bank.read_bytes()
    data = data[:4096 + chunks_used(data) * 4096]
    rng = random.Random(1234)
    path = tmp_path / "flip.ftp"
    for i in range(150):
        buf = bytearray(data)
        for _ in range(rng.choice([1, 4, 32])):
            pos = rng.randrange(8, len(buf)) if rng.random() < 0.9 else rng.randrange(8, 96)
            buf[pos] = rng.randrange(256)
        path.write_bytes(bytes(buf))
        r = ftprof("report", path, "--json", timeout=30)
        assert r.returncode in (0, 4, 5), (i, r.returncode, r.stderr)
        path.unlink()


def test_empty_file(tmp_path):
    p = tmp_path / "empty.ftp"
    p.write_bytes(b"")
    r = ftprof("report", p)
    assert r.returncode == 4
    one_line_error(r.stderr, p)


def test_zero_chunk_table(tmp_path):
    rec = make(tmp_path, "empty")
    r = ftprof("report", rec)
    assert r.returncode == 0 and "No contended waits" in r.stdout
    assert report(rec)["locks"] == []


def test_newer_recording(tmp_path):
    rec = make(tmp_path, "newer")
    r = ftprof("report", rec)
    assert r.returncode == 5
    one_line_error(r.stderr, rec)
    assert "newer" in r.stderr or "version" in r.stderr


def test_not_a_recording():
    r = ftprof("report", "/bin/ls")
    assert r.returncode == 4
    one_line_error(r.stderr, "/bin/ls")


def test_version_0_is_refused(tmp_path):
    rec = make(tmp_path, "version0")
    r = ftprof("report", rec)
    assert r.returncode == 4
    one_line_error(r.stderr, rec)
    assert "corrupted header" in r.stderr and "version 0" in r.stderr, r.stderr


@pytest.mark.parametrize("cmd", ["report", "flamegraph", "export"])
def test_fifo_is_refused_at_once(tmp_path, cmd):
    """A FIFO (a process substitution, a named pipe left in a directory of recordings) used to block
    the analyzer in open() forever: it is refused before it is opened, within a second."""
    import time
    fifo = tmp_path / "rec.ftp"
    os.mkfifo(fifo)
    args = {"report": [], "flamegraph": ["-o", tmp_path / "f.svg"],
            "export": ["--format", "pprof", "-o", tmp_path / "p.pb.gz"]}[cmd]
    t0 = time.monotonic()
    r = ftprof(cmd, fifo, *args, timeout=10)
    assert time.monotonic() - t0 < 1.0
    assert r.returncode == 3, (r.returncode, r.stderr)
    one_line_error(r.stderr, fifo)
    assert "FIFO" in r.stderr, r.stderr
    assert not (tmp_path / "f.svg").exists() and not (tmp_path / "p.pb.gz").exists()


def test_devices_and_sockets_are_refused(tmp_path):
    import socket
    r = ftprof("report", "/dev/null")
    assert r.returncode == 3
    one_line_error(r.stderr, "/dev/null")
    assert "device" in r.stderr
    path = tmp_path / "s.ftp"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    try:
        r = ftprof("report", path, timeout=10)
    finally:
        s.close()
    assert r.returncode == 3
    one_line_error(r.stderr, path)
    assert "socket" in r.stderr


def test_same_file_twice_is_read_once(bank, tmp_path):
    link = tmp_path / "other-name.ftp"
    os.link(bank, link)
    once = report(bank)
    for args in ([bank, bank], [bank, link]):
        r = ftprof("report", *args, "--json")
        assert r.returncode == 0
        lines = [l for l in r.stderr.splitlines() if l]
        assert len(lines) == 1 and lines[0].startswith(f"ftprof: {args[1]}: warning: ") and \
            f"the same file as {bank}" in lines[0], r.stderr
        doc = json.loads(r.stdout)
        jsonschema.validate(doc, SCHEMA)
        assert len(doc["files"]) == 1 and doc["events"] == once["events"]
        assert [l["contentions"] for l in doc["locks"]] == [l["contentions"] for l in once["locks"]]


def test_directory_and_missing(tmp_path):
    r = ftprof("report", tmp_path)
    assert r.returncode == 3
    one_line_error(r.stderr, tmp_path)
    missing = tmp_path / "missing.ftp"
    r = ftprof("report", missing)
    assert r.returncode == 3
    one_line_error(r.stderr, missing)


def test_bad_header_fields(bank, tmp_path):
    import struct
    data = bytearray(bank.read_bytes())
    cases = {
        "header_size_small": (12, struct.pack("<I", 100)),
        "header_size_huge": (12, struct.pack("<I", 1 << 31)),
        "chunk_size_odd": (24, struct.pack("<I", 4097)),
        "chunk_size_zero": (24, struct.pack("<I", 0)),
        "chunk_size_huge": (24, struct.pack("<I", 0xFFFFFFF8)),
    }
    for name, (off, value) in cases.items():
        buf = bytearray(data)
        buf[off:off + len(value)] = value
        p = tmp_path / f"{name}.ftp"
        p.write_bytes(bytes(buf))
        r = ftprof("report", p)
        assert r.returncode == 4, name
        one_line_error(r.stderr, p)
    # more chunks announced than the file holds: a partial report
    buf = bytearray(data)
    buf[28:36] = struct.pack("<II", 1 << 20, 1 << 20)
    p = tmp_path / "many_chunks.ftp"
    p.write_bytes(bytes(buf))
    r = ftprof("report", p)
    assert r.returncode == 0 and "truncated" in r.stderr


# --- golden: names a user recognises (recordings/names.ftp, workloads/names.py on 3.14t) ------------

def test_names_golden():
    """The thread table gives every thread its whole `threading` name in one column; a package's
    __init__.py frame keeps its package; import-time GIL waits of a free-threaded build have their own
    row, explained. (The owners read from source lines, CACHE and queue.Queue.mutex, are checked on real
    runs by tests/e2e/test_names.py: this recording's workload file is not where it was recorded.)"""
    path = os.path.join(HERE, "recordings", "names.ftp")
    text = text_report(path, "--threads", columns=160)
    threads = text.split("Threads, by lock contention", 1)[1].split("\n\n", 1)[0].splitlines()
    header, rows = threads[1], threads[2:]
    for name in [f"ThreadPoolExecutor-0_{i}" for i in range(4)] + [f"Thread-{i} (fill)" for i in (1, 2, 3)]:
        assert sum(r.startswith(f"  {name} ") for r in rows) == 1, (name, rows)
    end = header.index("LIFETIME") + len("LIFETIME") - 1
    assert all(r[end] == "s" for r in rows), threads  # every row's numbers in the header's columns
    assert "waiters  100.0%  Handler.handle (logging/__init__.py:1026)" in text, text
    gil = [l for l in text.splitlines() if "  gil GIL (on for an import) importing " in l]
    assert len(gil) == 1, text
    assert "turns the GIL on while it imports an extension module" in text
    # Narrow: the pool's names are cut, each still its own.
    narrow = text_report(path, "--threads", columns=60)
    pool = [r for r in narrow.split("Threads, by lock contention", 1)[1].splitlines() if r.startswith("  ThreadPool")]
    assert len(pool) == 4 and len({r.split(" ")[2] for r in pool}) == 4, pool
    assert all(len(r) <= 60 for r in pool), pool


def test_small_rows_fold_into_one_line(bank):
    """Rows under 0.1% of their section are summed by kind in one line; --top N and --all list them."""
    folded = text_report(bank)
    line = [l for l in folded.splitlines() if "each under 0.1% of contention" in l]
    everything = text_report(bank, "--all")
    listed = [l for l in everything.splitlines() if l[:4].strip().isdigit()]
    doc = report(bank)
    small = [l for l in doc["locks"] if l["kind"] not in ("condition", "thread_join")
             and l["wait_ns"] < 0.001 * doc["contention_wait_ns"]]
    assert small, "the bank has rows under 0.1% of contention"
    assert len(line) == 1 and f"({len(small)} more row" in line[0], folded
    assert all(l["name"] not in folded.split("Lock contention", 1)[1].split("Waiting for work")[0]
               for l in small if "@" in l["name"]), folded
    assert len(listed) == len(doc["locks"]) and "each under" not in everything
    assert "each under" not in text_report(bank, "--top", 50)
    r = ftprof("report", bank, "--top", "3", "--all")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr


def test_threaded_loads_give_the_same_bytes(tmp_path):
    """A large recording loaded in one thread (FTPROF_ANALYZER_THREADS=1), with pass 2's joins in a
    thread of their own (the default for a large file, and =2), and with its close stage in a third
    (FTPROF_ANALYZER_SPLIT=1) gives the same report, JSON, diff and flame graph, byte for byte, and the
    report counts every wait written."""
    n = 300_000  # over 16 chunks of 1 MiB: large enough to be split
    rec, base = make(tmp_path, "bench", n), tmp_path / "base.ftp"
    subprocess.run([MKREC, "bench", str(base), "50000"], check=True, capture_output=True)
    assert rec.stat().st_size > 17 << 20  # the analyzer splits files of 16 chunks (1 MiB here) or more
    ways = {"one": {"FTPROF_ANALYZER_THREADS": "1"}, "default": {}, "joins": {"FTPROF_ANALYZER_THREADS": "2"},
            "split": {"FTPROF_ANALYZER_SPLIT": "1"}}
    outs = {}
    for way, env in ways.items():
        os.environ.update(env)
        try:
            runs = [ftprof("report", rec), ftprof("report", "--json", rec), ftprof("diff", base, rec),
                    ftprof("flamegraph", rec, "-o", tmp_path / f"f{way}.folded")]
        finally:
            for k in env:
                del os.environ[k]
        assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
        outs[way] = [r.stdout for r in runs] + [(tmp_path / f"f{way}.folded").read_text()]
    assert all(outs[way] == outs["one"] for way in ways), [w for w in ways if outs[w] != outs["one"]]
    doc = json.loads(outs["default"][1])
    jsonschema.validate(doc, SCHEMA)
    assert sum(l["contentions"] for l in doc["locks"]) == n
    # The bench recording has holders for the joins to find: the comparison covers them.
    assert sum(h["count"] for l in doc["locks"] for h in l.get("holders", [])) > 0


def peak_rss_mib(*args):
    """The peak resident memory of one ftprof run, in MiB (its output discarded)."""
    proc = subprocess.Popen([FTPROF, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, proc.stderr.read()
    proc.stderr.close()
    return usage.ru_maxrss / 1024


def test_memory_grows_with_locks_and_stacks_not_with_the_file(tmp_path):
    """The same locks and stacks in a recording eight times longer: `report` (two threads, each with its
    own mapping of the file) and `diff` keep the same peak memory within the window of chunks each walk
    keeps mapped, while the file grows by over 100 MiB."""
    (tmp_path / "small").mkdir()
    (tmp_path / "large").mkdir()
    small, large = make(tmp_path / "small", "bench", 200_000), make(tmp_path / "large", "bench", 1_600_000)
    assert large.stat().st_size - small.stat().st_size > 100 << 20
    for args in (("report",), ("report", "--json"), ("diff", small)):
        rss_small, rss_large = peak_rss_mib(*args, small), peak_rss_mib(*args, large)
        assert rss_large < rss_small + 24, (args, rss_small, rss_large)


def test_extensions_joined_with_their_declarations(tmp_path):
    """EXTENSION records (format 7): a module's LOADED record joined with its DECLARED ones by load
    address (the last declaration counts, an init-less SetGIL keeps the init kind), the GIL record's
    module is the re-enabler, a module loaded before the start has no stack, and a declaration for an
    object never loaded is dropped."""
    rec = make(tmp_path, "extensions")
    doc = report(rec)
    exts = {e["module"]: e for e in doc["extensions"]}
    assert list(exts) == ["_json", "pkg.fast", "single", "legacy"], list(exts)
    assert exts["_json"]["loaded_before_start"] and exts["_json"]["gil"] == "unknown"
    assert exts["_json"]["import_stack"] == [] and exts["_json"]["origin"] == "stdlib"
    fast = exts["pkg.fast"]
    assert (fast["gil"], fast["init"], fast["imported_ns"]) == ("not_used", "multi-phase", 10_000_000)
    assert fast["import_line"]["function"] == "main" and fast["import_line"]["line"] == 46
    assert (exts["single"]["gil"], exts["single"]["init"]) == ("not_used", "single-phase")
    legacy = exts["legacy"]
    assert legacy["gil"] == "used" and legacy["reenabled_gil"] and legacy["import_line"]["function"] == "Worker.run"
    assert [e["module"] for e in doc["extensions"] if e["reenabled_gil"]] == ["legacy"]
    assert all(e["distribution"] is None and e["wheel_tag"] is None for e in doc["extensions"])
    text = ftprof("report", rec).stdout
    assert "Extension modules: 4 loaded; 2 declare free-threading support, 1 do not, 1 unknown" in text
    assert "! legacy (not installed), imported at bank.py:40; re-enabled the GIL" in text


def test_extensions_resolved_to_their_distributions(tmp_path):
    """A site-packages laid out by hand: the RECORD that lists a module's file (a quoted path too) gives
    its distribution, METADATA's name and version, WHEEL's tags as a wheel's file name writes them; a
    distribution without WHEEL has no tag; a file no RECORD lists belongs to none; the import name comes from the file's place under site-packages."""
    site = tmp_path / "site-packages"
    (site / "pkg").mkdir(parents=True)

    def dist(dirname, name, version, files, tags=None):
        d = site / dirname
        d.mkdir()
        (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nbody\n")
        (d / "RECORD").write_text("".join(f"{f},sha256=x,1\n" for f in files) + f"{dirname}/RECORD,,\n")
        if tags:
            (d / "WHEEL").write_text("Wheel-Version: 1.0\nRoot-Is-Purelib: false\n" + "".join(f"Tag: {t}\n" for t in tags))

    dist("fastpkg-2.0.dist-info", "FastPkg", "2.0", ['"pkg/fast.cpython-314t-x86_64-linux-gnu.so"', "pkg/__init__.py"],
         ["cp314-cp314t-manylinux_2_17_x86_64", "cp314-cp314t-manylinux2014_x86_64"])
    dist("single-0.1.dist-info", "single", "0.1", ["single.cpython-314t-x86_64-linux-gnu.so"])
    doc = report(make(tmp_path, "extensions", site))
    exts = {e["module"]: e for e in doc["extensions"]}
    fast = exts["pkg.fast"]
    assert (fast["distribution"], fast["version"], fast["origin"]) == ("FastPkg", "2.0", "wheel")
    assert fast["wheel_tag"] == "cp314-cp314t-manylinux_2_17_x86_64.manylinux2014_x86_64"
    single = exts["single"]
    assert (single["distribution"], single["version"], single["wheel_tag"], single["origin"]) == \
        ("single", "0.1", None, "no wheel")
    assert exts["legacy"]["distribution"] is None and exts["legacy"]["origin"] == "not installed"
    text = ftprof("report", tmp_path / "extensions.ftp").stdout
    assert "! legacy (not installed), imported at bank.py:40; re-enabled the GIL" in text
