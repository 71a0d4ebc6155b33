"""Threads taking turns on one threading.Lock, holding it for a known time.

Ground truth: an acquisition counts as contended when a non-blocking attempt fails first; its wait is
perf_counter_ns() around the blocking acquire() that follows. Prints one JSON line at the end.
Optional --marker N prints "MARK <count>" (flushed) once N contended acquisitions have completed, and
--forever keeps going until killed, for the kill -9 test.
"""
import argparse
import json
import sys
import threading
import time

perf_ns = time.perf_counter_ns


class Tally:
    def __init__(self):
        self.wait_ns = 0
        self.contended = 0
        self.acquisitions = 0


# With a GIL, a holder that spins keeps it too, and no waiter even gets to try the lock: holders sleep,
# unless --busy-hold asks for the GIL to be kept (threads then queue for the GIL instead).
SLEEP_SHORT_HOLDS = getattr(sys, "_is_gil_enabled", lambda: True)() and "--busy-hold" not in sys.argv


def hold_and_release(lock, hold_s):
    end = time.perf_counter() + hold_s
    if hold_s >= 0.001 or SLEEP_SHORT_HOLDS:
        time.sleep(hold_s)
    while time.perf_counter() < end:
        pass
    lock.release()  # @release


def take(lock, tally):
    tally.acquisitions += 1
    if lock.acquire(blocking=False):
        return False
    t0 = perf_ns()
    lock.acquire()  # @acquire
    tally.wait_ns += perf_ns() - t0
    tally.contended += 1
    return True


def outside(gap_s):
    time.sleep(gap_s)


def worker(lock, hold_s, gap_s, iters, tally, progress, enough):
    done = 0
    while done < iters or not enough():
        done += 1
        if take(lock, tally) and progress is not None:
            progress()
        hold_and_release(lock, hold_s)
        # A short sleep outside the lock, so the releasing thread does not take it straight back while
        # the woken waiter is still being scheduled (on a busy machine two threads would otherwise run
        # one after the other and hardly ever meet).
        outside(gap_s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--hold-ms", type=float, default=1.0)
    ap.add_argument("--iters", type=int, default=0, help="per thread; 0: from --seconds")
    ap.add_argument("--seconds", type=float, default=0.6, help="target total lock-held time")
    ap.add_argument("--gap-ms", type=float, default=None, help="work outside the lock (default hold/4)")
    ap.add_argument("--marker", type=int, default=0)
    ap.add_argument("--forever", action="store_true")
    ap.add_argument("--rlock", action="store_true", help="a threading.RLock instead of a Lock")
    ap.add_argument("--busy-hold", action="store_true", help="spin through holds under 1 ms, even with a GIL")
    ap.add_argument("--min-contended", type=int, default=0,
                    help="go on past --iters until this many acquisitions were contended (at most 20 s): on a "
                         "loaded machine two threads can take turns without ever meeting")
    a = ap.parse_args()

    hold_s = a.hold_ms / 1000.0
    gap_s = (a.hold_ms / 4 if a.gap_ms is None else a.gap_ms) / 1000.0
    iters = a.iters or max(10, int(a.seconds / hold_s / a.threads))
    if a.forever:
        iters = 10 ** 9
    lock = threading.RLock() if a.rlock else threading.Lock()
    tallies = [Tally() for _ in range(a.threads)]

    progress = None
    if a.marker:
        count_lock = threading.Lock()
        seen = [0]

        def progress():
            with count_lock:
                seen[0] += 1
                if seen[0] == a.marker:
                    print(f"MARK {seen[0]}", flush=True)

    t0 = perf_ns()
    deadline = t0 + 20 * 10 ** 9

    def enough():
        return sum(t.contended for t in tallies) >= a.min_contended or perf_ns() > deadline

    threads = [threading.Thread(target=worker, args=(lock, hold_s, gap_s, iters, t, progress, enough),
                                name=f"worker-{i}") for i, t in enumerate(tallies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = perf_ns() - t0
    print(json.dumps({
        "threads": a.threads, "hold_ms": a.hold_ms, "iters": iters,
        "wait_ns": sum(t.wait_ns for t in tallies),
        "contended": sum(t.contended for t in tallies),
        "acquisitions": sum(t.acquisitions for t in tallies),
        "elapsed_ns": elapsed,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
