"""Time accounting and hold times of `ftprof report` on recordings written here, record by record, with
the layouts of include/ftprof/format.h: every expected figure follows from the times written.

FTPROF names the binary (set by meson).
"""
import json
import os
import struct
import subprocess

import jsonschema
import pytest

FTPROF = os.environ.get("FTPROF", "build/analyzer/ftprof")
HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA = json.load(open(os.path.join(HERE, "report.schema.json")))
MS = 1_000_000
S = 1_000_000_000

REC_THREAD, REC_CODE, REC_STACK, REC_WAIT, REC_HOLDER, REC_THREAD_END = 1, 2, 3, 5, 6, 9
KIND_LOCK, KIND_CONDITION, KIND_SPIN = 1, 7, 13
FLAG_PYTHON, FLAG_FREE_THREADED, FLAG_FINISHED = 1, 2, 8
WAIT_CONTINUATION = 1 << 3
CHUNK = 64 * 1024


def pad8(b):
    return b + b"\0" * (-len(b) % 8)


def record(rtype, body, flags=0):
    body = pad8(body)
    return struct.pack("<IHH", 8 + len(body), rtype, flags) + body


class Recording:
    """One recording: a header page and one chunk per thread (each starting with its THREAD record)."""

    def __init__(self, start=1 * S, end=2 * S, finished=True, version=3, process_cpu=0):
        self.start, self.end, self.finished, self.version, self.process_cpu = start, end, finished, version, process_cpu
        self.defs = []  # code and stack records, in a chunk of their own
        self.chunks = {}
        self.seq = {}
        self.next_id = 1
        self.dropped = self.dropped_wait = 0

    def code(self, qualname, filename="/app/work.py"):
        cid = self.next_id
        self.next_id += 1
        f, q = filename.encode(), qualname.encode()
        self.defs.append(record(REC_CODE, struct.pack("<IiHHIQ", cid, 1, len(f), len(q), 0, 0) + f + q))
        sid = self.next_id
        self.next_id += 1
        self.defs.append(record(REC_STACK, struct.pack("<IHHQ", sid, 1, 0, sid) + struct.pack("<II", cid, 0)))
        return sid

    def thread(self, tid, name, first_seen):
        n = name.encode()
        self.chunks[tid] = [record(REC_THREAD, struct.pack("<IIQ16s", tid, len(n), first_seen, b"") + n)]
        self.seq[tid] = 0

    def end_thread(self, tid, start, start_cpu, end, cpu, created=None, tick=10 * MS, run_delay=None):
        """A THREAD_END record; with `created` or `run_delay`, the longer one of format 8."""
        body = struct.pack("<IIQQQQ", tid, 0, start, start_cpu, end, cpu)
        if created is not None or run_delay is not None:
            body += struct.pack("<QIIQ", created or 0, tick if created else 0, 0 if run_delay is None else 1,
                                run_delay or 0)
        self.chunks[tid].append(record(REC_THREAD_END, body))

    def wait(self, tid, kind, addr, start, end, park=None, stack=0, acq=None, flags=0):
        """A WAIT record; `acq` (an earlier wait's event id) and flags=WAIT_CONTINUATION make it a later
        park of that wait's acquisition."""
        self.seq[tid] += 1
        event = tid << 32 | self.seq[tid]
        park = start if park is None else park
        self.chunks[tid].append(record(REC_WAIT, struct.pack("<IBBHQQQQQQIIII", tid, kind, 0, 0, event,
                                                             event if acq is None else acq, start, park, end, addr,
                                                             stack, 0, 0, 0), flags))
        return event

    def holder(self, tid, event, time_ns, addr, stack=0):
        self.chunks[tid].append(record(REC_HOLDER, struct.pack("<IIQQQ", tid, stack, event, time_ns, addr)))

    def write(self, path):
        chunks = [self.defs] + list(self.chunks.values())
        flags = FLAG_PYTHON | FLAG_FREE_THREADED | (FLAG_FINISHED if self.finished else 0)
        hdr = bytearray(4096)
        struct.pack_into("<8sHHIIIIIIIII", hdr, 0, b"FTPROF\x01\n", self.version, 1, 4096, 0, flags, CHUNK,
                         len(chunks), len(chunks), 4242, 1, 0)
        struct.pack_into("<QQQQQ", hdr, 48, self.start, 0, self.end if self.finished else 0, 0, 0x030E00F0)
        struct.pack_into("<Q", hdr, 2184, self.process_cpu)
        struct.pack_into("<Q", hdr, 72, self.dropped)
        struct.pack_into("<Q", hdr, 4056, self.dropped_wait)
        body = b""
        for recs in chunks:
            data = b"".join(recs)
            assert len(data) <= CHUNK
            body += data + b"\0" * (CHUNK - len(data))
        with open(path, "wb") as f:
            f.write(bytes(hdr) + body)
        return path


def report(path, *args):
    r = subprocess.run([FTPROF, "report", str(path), "--json", *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    return doc


def text(path, *args):
    r = subprocess.run([FTPROF, "report", str(path), *args], capture_output=True, text=True,
                       env=dict(os.environ, NO_COLOR="1", COLUMNS="120"))
    assert r.returncode == 0, r.stderr
    return r.stdout


def close(a, b, rel=0.035):
    """Percentiles come from a log-linear histogram: within 3.2 % of the value."""
    return abs(a - b) <= rel * b


@pytest.fixture
def split(tmp_path):
    """A second of wall time: a worker that waits 400 ms on a lock and uses 300 ms of CPU, having used
    100 ms before it first called the recorder; an idle thread that waits 900 ms for work; a thread that
    only computes (500 ms of its 500 ms life); 900 ms of process CPU time."""
    rec = Recording(process_cpu=900 * MS)
    lock = rec.code("Worker.run")
    rec.thread(101, "worker-a", 1100 * MS)
    for i in range(4):
        rec.wait(101, KIND_LOCK, 0x1000, 1100 * MS + i * 200 * MS, 1200 * MS + i * 200 * MS, stack=lock)
    rec.end_thread(101, 1100 * MS, 100 * MS, 2000 * MS, 300 * MS)
    rec.thread(102, "idle", 1000 * MS)
    rec.wait(102, KIND_CONDITION, 0x2000, 1050 * MS, 1950 * MS, stack=rec.code("Pool.get"))
    rec.end_thread(102, 1000 * MS, 0, 2000 * MS, 10 * MS)
    rec.thread(103, "computer", 1200 * MS)
    rec.end_thread(103, 1200 * MS, 0, 1700 * MS, 500 * MS)
    return rec.write(tmp_path / "split.ftp")


def test_time_split(split):
    doc = report(split)
    t = doc["time"]
    assert t["wall_ns"] == 1 * S
    assert t["thread_ns"] == (1000 + 1000 + 500) * MS  # the worker's life starts 100 ms before its first call
    assert t["threads_cpu_ns"] == 810 * MS and t["cpu_ns"] == 900 * MS  # the process clock covers more
    assert t["contention_ns"] == 400 * MS and t["waiting_for_work_ns"] == 900 * MS
    assert t["other_ns"] == (2500 - 810 - 400 - 900) * MS
    assert t["cores_busy"] == pytest.approx(0.9)
    assert t["contention_share"] == pytest.approx(0.4 / 2.5)
    assert t["threads_not_ended"] == 0 and t["files_killed"] == 0 and t["known"]
    th = {x["name"]: x for x in doc["threads"]}
    assert th["worker-a"]["lifetime_ns"] == 1 * S and th["worker-a"]["cpu_ns"] == 300 * MS
    assert th["worker-a"]["contention_ns"] == 400 * MS and th["worker-a"]["waiting_for_work_ns"] == 0
    assert th["idle"]["waiting_for_work_ns"] == 900 * MS and th["idle"]["contention_ns"] == 0
    assert th["computer"]["lifetime_ns"] == 500 * MS and th["computer"]["cpu_ns"] == 500 * MS
    assert all(x["ended"] for x in th.values())
    lock = next(l for l in doc["locks"] if l["kind"] == "lock")
    assert lock["threads_waiting_avg"] == pytest.approx(0.4)


def test_time_text(split):
    out = text(split)
    lines = out.splitlines()
    head = lines.index(next(l for l in lines if l.startswith("Where the threads' time went")))
    assert "3 threads, 2.50 s of thread time in 1.00 s of wall time" in lines[head]
    cpu, cont, wfw, rest = lines[head + 1:head + 5]
    assert cpu.split()[:3] == ["CPU", "810.00", "ms"] and "32.4%" in cpu and "0.90 cores busy" in cpu
    assert "lock contention" in cont and "16.0%" in cont
    assert "waiting for work" in wfw and "36.0%" in wfw
    assert "the rest (I/O, sleep)" in rest and "15.6%" in rest
    # 16% contention: not the main cost; the lock is named by its share of it
    verdict = next(l for l in lines if l.strip().startswith("=>"))
    assert "contention is 16% of thread time" in verdict and "100% of it" in verdict
    # threads, by contention first
    table = lines[lines.index(next(l for l in lines if l.startswith("Threads"))) + 2:]
    assert table[0].split()[0] == "worker-a" and "40.0%" in table[0] and "30.0%" in table[0]
    assert out.index("Where the threads' time went") < out.index("Lock contention")


def test_threads_top_and_all(tmp_path):
    rec = Recording()
    for i in range(14):
        tid = 300 + i
        rec.thread(tid, f"t{i:02d}", 1000 * MS)
        rec.wait(tid, KIND_LOCK, 0x1000, 1100 * MS, 1100 * MS + (i + 1) * MS)
        rec.end_thread(tid, 1000 * MS, 0, 2000 * MS, 1 * MS)
    path = rec.write(tmp_path / "many.ftp")
    out = text(path)
    assert "(top 10 of 14; --threads shows all)" in out
    assert "t13" in out and "t04" in out and "t03" not in out  # by contention: t13 waited longest
    out = text(path, "--threads")
    assert all(f"t{i:02d}" in out for i in range(14)) and "--threads shows all" not in out


@pytest.fixture
def holds(tmp_path):
    """Lock 0x1000: R took it after its own wait (at 20 ms) while W waited (since 15 ms) and woke W at
    48 ms: a 28 ms hold. R2 never waited for it (an acquisition nobody records) and woke W2 at 80 ms, W2
    having waited since 60 ms: a hold of at least 20 ms, the part the records show. W3 spun 10 ms and
    took the lock without parking: nobody woke it, its holder is unknown."""
    rec = Recording(start=1 * MS, end=1 * S)
    r_site, r2_site, w_site = rec.code("Cache.refresh"), rec.code("Cache.evict"), rec.code("Cache.get")
    for tid, name in ((201, "R"), (202, "W"), (203, "W2"), (204, "R2"), (205, "W3")):
        rec.thread(tid, name, 1 * MS)
    rec.wait(201, KIND_LOCK, 0x1000, 10 * MS, 20 * MS, park=11 * MS, stack=r_site)
    w = rec.wait(202, KIND_LOCK, 0x1000, 15 * MS, 50 * MS, park=16 * MS, stack=w_site)
    rec.holder(201, w, 48 * MS, 0x1000, stack=r_site)
    w2 = rec.wait(203, KIND_LOCK, 0x1000, 60 * MS, 90 * MS, park=61 * MS, stack=w_site)
    rec.holder(204, w2, 80 * MS, 0x1000, stack=r2_site)
    rec.wait(205, KIND_LOCK, 0x1000, 100 * MS, 110 * MS, park=0, stack=w_site)
    return rec.write(tmp_path / "holds.ftp")


def test_hold_times_per_lock_and_site(holds):
    lock = report(holds)["locks"][0]
    assert lock["kind"] == "lock" and lock["contentions"] == 4 and lock["wait_ns"] == (10 + 35 + 30 + 10) * MS
    assert lock["holds"] == 2
    assert lock["hold_max_ns"] == 28 * MS
    assert close(lock["hold_p99_ns"], 28 * MS) and lock["hold_p50_ns"] in range(20 * MS - MS, 28 * MS + 1)
    sites = {h["stack"][0]["function"]: h for h in lock["holders"]}
    assert sites["Cache.refresh"]["holds"] == 1 and sites["Cache.refresh"]["hold_max_ns"] == 28 * MS
    assert close(sites["Cache.refresh"]["hold_p50_ns"], 28 * MS)
    assert sites["Cache.evict"]["hold_max_ns"] == 20 * MS and close(sites["Cache.evict"]["hold_p50_ns"], 20 * MS)
    # R's hold is timed from its own acquisition, R2's from W2's start (R2's was never recorded)
    assert lock["holds_from_acquisition"] == 1
    assert sites["Cache.refresh"]["holds_from_acquisition"] == 1 and sites["Cache.evict"]["holds_from_acquisition"] == 0
    # 65 of the 85 ms of waiting ended with a known releaser: R's own wait and the spin have none
    assert lock["holder_known_share"] == pytest.approx(65 / 85)
    assert sum(h["wait_ns"] for h in lock["holders"]) == 65 * MS


def test_hold_of_an_acquisition_nobody_saw(tmp_path):
    """R waited for the lock at 200 ms and got it at 210 ms; it woke W, who had waited since 280 ms, at
    300 ms. R may have let the lock go and taken it back uncontended in between (nothing records that), so
    the hold is counted from W's start (20 ms), the part the records show, not from 210 ms (90 ms)."""
    def handoff():
        """R waits 200-210 ms; W waits from 280 ms until R wakes it at 300 ms."""
        rec = Recording(start=1 * MS, end=1 * S)
        site = rec.code("Job.run")
        rec.thread(701, "R", 1 * MS)
        rec.thread(702, "W", 1 * MS)
        rec.wait(701, KIND_LOCK, 0x3000, 200 * MS, 210 * MS, stack=site)
        w = rec.wait(702, KIND_LOCK, 0x3000, 280 * MS, 305 * MS, stack=site)
        rec.holder(701, w, 300 * MS, 0x3000, stack=site)
        return rec, site

    rec, site = handoff()
    # and R's next release, at 400 ms, of a hold that began after its release at 300 ms
    w2 = rec.wait(702, KIND_LOCK, 0x3000, 310 * MS, 402 * MS, stack=site)
    rec.holder(701, w2, 400 * MS, 0x3000, stack=site)
    lock = report(rec.write(tmp_path / "unseen.ftp"))["locks"][0]
    assert lock["holds"] == 2 and lock["hold_max_ns"] == 90 * MS  # 310..400: W2 waited from 310 ms
    assert lock["holds_from_acquisition"] == 0  # from a wait's start both times (then after a release)
    rec2, _ = handoff()
    lock = report(rec2.write(tmp_path / "unseen1.ftp"))["locks"][0]
    assert lock["holds"] == 1 and lock["hold_max_ns"] == 20 * MS


def test_holder_shares_never_exceed_the_wait(holds):
    """Holders are shares of the lock's whole wait (it was 100% of the wake-ups before)."""
    out = text(holds)
    holders = out[out.index("holders"):].splitlines()
    assert "41.2%" in holders[0] and "Cache.get" not in holders[0]  # R ended 35 of 85 ms
    assert "35.3%" in holders[1]  # R2 ended 30 of them
    assert "holder known for 76% of the wait" in holders[2] and "max 28.0ms" in holders[2]
    assert "(1 of 2 holds from the holder's own acquisition, the rest from the wait's start)" in holders[3]
    assert "100.0%" not in "".join(holders[:2])


@pytest.mark.parametrize("holders_first", [False, True])
def test_a_waiter_woken_to_lose_the_lock_counts_one_wait(tmp_path, holders_first):
    """A waiter parks, is woken by R1's release, loses the lock to another thread and parks again in the
    same acquisition until R2's release: one wait. R1 and R2 each held it during a part (10 and 20 ms),
    but only R2 ended the wait: holder counts never add up to more than the lock's waits."""
    rec = Recording()
    r1, r2 = rec.code("Cache.put"), rec.code("Cache.flush")
    waiter = rec.code("Cache.get")
    order = [(501, "r1"), (502, "r2")] if holders_first else []
    for tid, name in order + [(500, "waiter")] + ([] if holders_first else [(501, "r1"), (502, "r2")]):
        rec.thread(tid, name, 1000 * MS)
    first = rec.wait(500, KIND_LOCK, 0x1000, 1100 * MS, 1110 * MS, stack=waiter)
    second = rec.wait(500, KIND_LOCK, 0x1000, 1110 * MS, 1130 * MS, stack=waiter, acq=first, flags=WAIT_CONTINUATION)
    rec.holder(501, first, 1110 * MS, 0x1000, stack=r1)
    rec.holder(502, second, 1130 * MS, 0x1000, stack=r2)
    lock = next(l for l in report(rec.write(tmp_path / "repark.ftp"))["locks"] if l["kind"] == "lock")
    assert lock["contentions"] == 1 and lock["wait_ns"] == 30 * MS
    by_site = {h["stack"][0]["function"]: h for h in lock["holders"]}
    assert by_site["Cache.flush"]["count"] == 1 and by_site["Cache.flush"]["wait_ns"] == 20 * MS
    assert by_site.get("Cache.put", {"count": 0})["count"] == 0
    assert by_site["Cache.put"]["wait_ns"] == 10 * MS  # R1's part of the wait is still its share
    assert sum(h["count"] for h in lock["holders"]) <= lock["contentions"]
    assert sum(h["wait_ns"] for h in lock["holders"]) <= lock["wait_ns"]


def test_killed_process(tmp_path):
    """No end in the header and no thread ends: threads end at the last event, CPU time is unknown."""
    rec = Recording(finished=False)
    rec.thread(401, "worker", 1100 * MS)
    rec.wait(401, KIND_LOCK, 0x1000, 1200 * MS, 1500 * MS)
    rec.thread(402, "main", 1000 * MS)
    rec.wait(402, KIND_CONDITION, 0x2000, 1000 * MS, 1700 * MS)
    path = rec.write(tmp_path / "killed.ftp")
    t = report(path)["time"]
    assert t["files_killed"] == 1 and t["threads_not_ended"] == 2 and t["known"]
    assert t["wall_ns"] == 700 * MS and t["thread_ns"] == (600 + 700) * MS and t["cpu_ns"] == 0
    out = text(path)
    assert "the process was killed" in out and "unknown" in out.split("lock contention")[0]


def test_recording_without_thread_ends(tmp_path):
    """A version 2 recording (written before thread ends): no time accounting, and it says why."""
    rec = Recording(version=2)
    rec.thread(501, "worker", 1100 * MS)
    rec.wait(501, KIND_LOCK, 0x1000, 1200 * MS, 1500 * MS)
    path = rec.write(tmp_path / "v2.ftp")
    assert not report(path)["time"]["known"]
    out = text(path)
    assert "no time accounting" in out and "Where the threads' time went" not in out


def test_spins_count_for_their_thread(tmp_path):
    """A spin that never parked (no address) is charged to its thread once its lock is known."""
    rec = Recording()
    site = rec.code("Worker.run")
    rec.thread(601, "a", 1000 * MS)
    rec.wait(601, KIND_LOCK, 0x1000, 1100 * MS, 1150 * MS, stack=site)
    rec.thread(602, "b", 1000 * MS)
    rec.wait(602, KIND_SPIN, 0, 1200 * MS, 1210 * MS, park=0, stack=site)
    rec.end_thread(601, 1000 * MS, 0, 2000 * MS, 5 * MS)
    rec.end_thread(602, 1000 * MS, 0, 2000 * MS, 5 * MS)
    doc = report(rec.write(tmp_path / "spin.ftp"))
    th = {x["name"]: x for x in doc["threads"]}
    assert th["a"]["contention_ns"] == 50 * MS and th["b"]["contention_ns"] == 10 * MS
    assert doc["time"]["contention_ns"] == doc["contention_wait_ns"] == 60 * MS


# --- the timeline: ftprof export --format trace -------------------------------------------------------

REC_GIL = 8
KIND_STW = 5


def export_trace(tmp_path, path):
    out = tmp_path / "trace.json"
    r = subprocess.run([FTPROF, "export", str(path), "--format", "trace", "-o", str(out)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    doc = json.load(open(out))
    assert doc["displayTimeUnit"] == "ms"
    return doc["traceEvents"]


def test_trace_tracks_slices_and_flows(holds, tmp_path):
    ev = export_trace(tmp_path, holds)
    names = {e["tid"]: e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
    assert sorted(names.values()) == ["R", "R2", "W", "W2", "W3"]
    procs = [e for e in ev if e["ph"] == "M" and e["name"] == "process_name"]
    # The viewers add the pid to the name themselves: it is the trace's own pid, not in the name.
    assert len(procs) == 1 and procs[0]["pid"] == 4242 and "pid" not in procs[0]["args"]["name"]
    slices = [e for e in ev if e["ph"] == "X" and e["cat"] == "lock"]
    by = {names[e["tid"]]: e for e in slices if names[e["tid"]] != "R"}
    w = by["W"]
    # times in µs from the recording's start (1 ms)
    assert w["name"] == "lock Lock @\u202600001000" and w["ts"] == 14000 and w["dur"] == 35000
    assert w["args"]["waiter"][0] == "Cache.get" and w["args"]["parked"] and w["args"]["spin_ns"] == 1 * MS
    assert not by["W3"]["args"]["parked"] and by["W3"]["args"]["spin_ns"] == 10 * MS
    assert sum(e["dur"] for e in slices) == 85000  # every wait once
    # a flow from each releaser to the waiter it woke, ending inside the woken wait's slice
    starts = {e["id"]: e for e in ev if e["ph"] == "s"}
    ends = {e["id"]: e for e in ev if e["ph"] == "f"}
    assert len(starts) == 2 and starts.keys() == ends.keys()
    for fid, s in starts.items():
        f = ends[fid]
        assert f["bp"] == "e" and s["ts"] == f["ts"]
        woken = [x for x in slices if x["tid"] == f["tid"] and x["ts"] <= f["ts"] <= x["ts"] + x["dur"]]
        assert len(woken) == 1, (f, woken)
        release = [x for x in ev if x["ph"] == "X" and x["cat"] == "wake" and x["tid"] == s["tid"] and x["ts"] == s["ts"]]
        assert len(release) == 1
    assert {names[s["tid"]] + ">" + names[ends[i]["tid"]] for i, s in starts.items()} == {"R>W", "R2>W2"}
    release = next(x for x in ev if x["ph"] == "X" and x["cat"] == "wake" and names[x["tid"]] == "R")
    assert release["args"]["holder"] == ["Cache.refresh"]


def test_trace_pauses_and_gil(tmp_path):
    """Stop-the-world waits are slices of their threads and also async events on the process's own
    track; the GIL coming back is an instant over the whole process."""
    rec = Recording()
    rec.thread(801, "a", 1000 * MS)
    rec.thread(802, "b", 1000 * MS)
    rec.wait(801, KIND_STW, 0x5000, 1100 * MS, 1102 * MS)
    rec.wait(802, KIND_STW, 0x5100, 1100 * MS, 1103 * MS)
    path = b"/opt/ext/_ext.cpython-313t-x86_64-linux-gnu.so"
    rec.chunks[801].append(record(REC_GIL, struct.pack("<QII", 1500 * MS, len(path), 801) + path))
    ev = export_trace(tmp_path, rec.write(tmp_path / "stw.ftp"))
    stw = [e for e in ev if e["ph"] == "X" and e["cat"] == "stop_the_world"]
    assert len(stw) == 2 and {e["dur"] for e in stw} == {2000, 3000}
    begins = [e for e in ev if e["ph"] == "b" and e["name"] == "stop-the-world"]
    ends = [e for e in ev if e["ph"] == "e" and e["name"] == "stop-the-world"]
    assert len(begins) == len(ends) == 2 and {e["id"] for e in begins} == {e["id"] for e in ends}
    assert all(e["ts"] == 100000 for e in begins) and sorted(e["ts"] for e in ends) == [102000, 103000]
    gil = [e for e in ev if e["ph"] == "i"]
    assert len(gil) == 1 and gil[0]["name"] == "GIL re-enabled by _ext" and gil[0]["ts"] == 500000
    assert gil[0]["s"] == "p"


def test_trace_never_overwrites(holds, tmp_path):
    out = tmp_path / "exists.json"
    out.write_text("keep")
    r = subprocess.run([FTPROF, "export", str(holds), "--format", "trace", "-o", str(out)], capture_output=True,
                       text=True)
    assert r.returncode == 6 and out.read_text() == "keep"
    r = subprocess.run([FTPROF, "export", str(holds), "--format", "chrome", "-o", str(tmp_path / "x")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "supported: pprof, trace" in r.stderr


# --- ftprof diff -----------------------------------------------------------------------------------


def diff(*args):
    r = subprocess.run([FTPROF, "diff", *map(str, args)], capture_output=True, text=True,
                       env=dict(os.environ, NO_COLOR="1"))
    return r


def two_runs(tmp_path):
    """The same program twice: the lock at another address each time (as in any two runs); in the new
    run the hot lock's waits are a tenth as long, a lock appears and one is gone."""
    runs = []
    for k, (hold, extra) in enumerate(((100, "gone"), (10, "new"))):
        rec = Recording(process_cpu=(200 + 100 * k) * MS)
        hot, other = rec.code("Cache.get"), rec.code("Stats.add" if extra == "gone" else "Log.emit")
        for tid in (901, 902):
            rec.thread(tid, f"w{tid}", 1000 * MS)
            for i in range(4):
                rec.wait(tid, KIND_LOCK, 0x1000 + k * 0x777000, 1100 * MS + i * 200 * MS,
                         1100 * MS + i * 200 * MS + hold * MS, stack=hot)
            rec.wait(tid, KIND_LOCK, 0x9000 + k * 0x10, 1950 * MS, 1960 * MS, stack=other)
            rec.end_thread(tid, 1000 * MS, 0, 2000 * MS, (100 + 50 * k) * MS)
        runs.append(rec.write(tmp_path / f"run{k}.ftp"))
    return runs


def test_diff_matches_locks_not_addresses(tmp_path):
    base, new = two_runs(tmp_path)
    r = diff(base, new, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["base"]["wall_ns"] == doc["new"]["wall_ns"] == 1 * S
    assert doc["base"]["cores_busy"] == pytest.approx(0.2) and doc["new"]["cores_busy"] == pytest.approx(0.3)
    assert doc["base"]["contention_share"] == pytest.approx((800 + 20) / 2000)
    locks = {(l["name"], l["site"]): l for l in doc["locks"]}
    hot = locks[("Lock", "Cache.get")]
    assert hot["kind"] == "lock" and hot["status"] == "both"
    assert hot["base"]["contentions"] == hot["new"]["contentions"] == 8
    assert hot["base"]["wait_ns"] == 800 * MS and hot["new"]["wait_ns"] == 80 * MS
    assert close(hot["base"]["p99_wait_ns"], 100 * MS) and close(hot["new"]["p99_wait_ns"], 10 * MS)
    assert locks[("Lock", "Stats.add")]["status"] == "gone" and locks[("Lock", "Stats.add")]["new"] is None
    assert locks[("Lock", "Log.emit")]["status"] == "new" and locks[("Lock", "Log.emit")]["base"] is None
    assert doc["locks"][0] is hot or doc["locks"][0] == hot  # by the larger total wait


def test_diff_text(tmp_path):
    base, new = two_runs(tmp_path)
    r = diff(base, new)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "cores busy" in out and "0.20" in out and "0.30" in out and "+0.10" in out
    row = out.splitlines().index(next(l for l in out.splitlines() if "Cache.get" in l))
    assert "total 800.00 ms -> 80.00 ms (-90%)" in out.splitlines()[row + 1]
    assert any("GONE" in l and "Stats.add" in l for l in out.splitlines())
    assert any("NEW" in l and "Log.emit" in l for l in out.splitlines())


def test_diff_usage(tmp_path):
    base, _ = two_runs(tmp_path)
    assert diff(base).returncode == 2
    assert diff(base, tmp_path / "missing.ftp").returncode == 3


def test_image_ended_by_exec_is_not_killed(tmp_path):
    """An image replaced by exec has no end of its own (its successor marks it): not a kill."""
    rec = Recording(finished=False)
    rec.thread(1001, "main", 1000 * MS)
    rec.wait(1001, KIND_LOCK, 0x1000, 1100 * MS, 1200 * MS)
    path = rec.write(tmp_path / "exec.ftp")
    data = bytearray(open(path, "rb").read())
    flags = struct.unpack_from("<I", data, 20)[0] | (1 << 7)  # FTP_FLAG_ENDED_BY_EXEC
    struct.pack_into("<I", data, 20, flags)
    open(path, "wb").write(data)
    t = report(path)["time"]
    assert t["files_killed"] == 0 and t["threads_not_ended"] == 1
    out = text(path)
    assert "killed" not in out and "still running at exit or exec" in out


# --- format 8: creation time, run delay, dropped waits' time, waits in flight -------------------------

def test_lifetime_from_creation_and_run_delay(tmp_path):
    """A thread created at +100 ms (to a 10 ms tick) that slept until its first call at +600 ms, having used
    no CPU: its lifetime starts in the middle of its creation tick, not at its first call. Its 200 ms in
    the run queue is a line of its own."""
    rec = Recording(version=8, process_cpu=300 * MS)
    rec.thread(101, "sleeper", 1600 * MS)
    rec.end_thread(101, 1600 * MS, 0, 2000 * MS, 100 * MS, created=1100 * MS, run_delay=200 * MS)
    rec.thread(102, "old-format", 1500 * MS)
    rec.end_thread(102, 1500 * MS, 50 * MS, 1900 * MS, 100 * MS)
    doc = report(rec.write(tmp_path / "v7.ftp"))
    th = {t["name"]: t for t in doc["threads"]}
    assert th["sleeper"]["lifetime_ns"] == 900 * MS - 5 * MS
    assert th["sleeper"]["run_delay_ns"] == 200 * MS
    assert th["old-format"]["lifetime_ns"] == 450 * MS and th["old-format"]["run_delay_ns"] is None
    t = doc["time"]
    assert t["run_delay_ns"] == 200 * MS and t["run_delay_threads"] == 1
    out = text(tmp_path / "v7.ftp")
    assert "waiting for a CPU" in out and "1 of 2 threads" in out, out


def test_creation_later_than_first_call_is_not_believed(tmp_path):
    """A kernel start time after the latest the thread can have started (clocks that disagree): the
    recorder's own bound is kept."""
    rec = Recording(version=8)
    rec.thread(101, "t", 1500 * MS)
    rec.end_thread(101, 1500 * MS, 100 * MS, 2000 * MS, 200 * MS, created=1700 * MS)
    doc = report(rec.write(tmp_path / "late.ftp"))
    assert doc["threads"][0]["lifetime_ns"] == 600 * MS


def dropped_run(tmp_path, dropped_wait, version=8):
    """A second of one worker's life with 100 ms of recorded lock waits (10%) and 50 dropped waits."""
    rec = Recording(version=version, process_cpu=500 * MS)
    stack = rec.code("Worker.run")
    rec.thread(101, "w", 1000 * MS)
    rec.wait(101, KIND_LOCK, 0x1000, 1100 * MS, 1200 * MS, stack=stack)
    rec.end_thread(101, 1000 * MS, 0, 2000 * MS, 500 * MS)
    rec.dropped, rec.dropped_wait = 50, dropped_wait
    return rec.write(tmp_path / f"d{dropped_wait}-{version}.ftp")


@pytest.mark.parametrize("dropped_wait, verdict", [
    (0, "some_contention"),          # dropped waits that took no time change nothing
    (500 * MS, "withheld"),          # 10% to 60%: two verdicts are possible
])
def test_dropped_waits_hedge_the_verdict(tmp_path, dropped_wait, verdict):
    path = dropped_run(tmp_path, dropped_wait)
    doc = report(path)
    assert doc["dropped_wait_ns"] == dropped_wait
    t = doc["time"]
    assert t["verdict"] == verdict, t
    assert t["contention_share_max"] == pytest.approx((100 * MS + dropped_wait) / S)
    out = " ".join(text(path).split())  # the verdict wraps at the width
    if verdict == "withheld":
        assert "no verdict: 50 of 51 waits (500.00 ms) were dropped" in out and "between 10% and 60%" in out, out
    else:
        assert "contention is at least 10% of thread time" in out, out
    assert "not above: 50 dropped waits" in out, out


def test_dropped_waits_of_an_older_file_withhold_the_verdict(tmp_path):
    """A file older than format 8 does not say how long its dropped waits were: no verdict."""
    doc = report(dropped_run(tmp_path, 0, version=7))
    assert doc["dropped_wait_ns"] is None and doc["time"]["verdict"] == "withheld"
    assert "does not say how long they waited" in text(tmp_path / "d0-7.ftp")


def test_killed_with_some_threads_ended_has_cpu_unknown(tmp_path):
    """Killed (no end, no process CPU clock) after one of two threads ended: CPU is unknown, not the ended
    thread's share of it."""
    rec = Recording(finished=False, version=8)
    stack = rec.code("Worker.run")
    rec.thread(101, "ended", 1000 * MS)
    rec.end_thread(101, 1000 * MS, 0, 1400 * MS, 300 * MS)
    rec.thread(102, "running", 1000 * MS)
    rec.wait(102, KIND_LOCK, 0x1000, 1100 * MS, 1800 * MS, stack=stack)
    path = rec.write(tmp_path / "killed.ftp")
    t = report(path)["time"]
    assert not t["cpu_known"]
    out = text(path)
    assert "  CPU                       unknown" in out and "cores busy" not in out, out
