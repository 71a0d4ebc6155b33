"""Allocation-heavy threads while the main thread forces collections: every gc.collect() stops the
world, so each allocating thread parks until the collection ends.

Ground truth: the main thread times each gc.collect() (automatic collections are off); while it runs, each of the allocating threads is
stopped, so the expected parked time is about threads x total collection time (an upper bound: a thread
that is between allocations when the world stops still waits, one that is just starting does not).
"""
import gc
import json
import sys
import threading
import time

from _common import options

perf_ns = time.perf_counter_ns


def allocate(stop, keep):
    while not stop.is_set():
        junk = [{"i": i, "s": [i, i + 1]} for i in range(200)]  # @allocate
        keep.append(junk)
        if len(keep) > 50:
            keep.clear()


def collect_loop(rounds):
    total = 0
    for _ in range(rounds):
        t0 = perf_ns()
        gc.collect()  # @collect
        total += perf_ns() - t0
        time.sleep(0.002)
    return total


def main():
    a = options(threads=2, rounds=40)
    # Only the collections timed below: an automatic one, started by an allocating thread's own
    # allocations, would stop the other threads for time the main thread never measured.
    gc.disable()
    stop = threading.Event()
    # A heap worth walking, so each collection lasts long enough to be waited on.
    ballast = [[{"k": i}] for i in range(100_000)]
    threads = [threading.Thread(target=allocate, args=(stop, []), name=f"alloc-{i}") for i in range(a.threads)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    gc_ns = collect_loop(a.rounds)
    stop.set()
    for t in threads:
        t.join()
    print(json.dumps({"threads": a.threads, "rounds": a.rounds, "gc_ns": gc_ns, "ballast": len(ballast)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
