"""Three phases of contention, each on its own lock at its own line (@phase_a, @phase_b, @phase_c), for
recording windows: between phases the workload prints "PHASE A DONE" (then B) and waits for a line on
stdin, so a test can pause or resume the recording in between. In each phase 3 threads take the lock in
turn, holding it for 3 ms (a sleep), for --seconds. The last line is its own measure per phase: the
summed time spent waiting in acquire, and the acquisitions.

  windows.py [--seconds S]
"""
import argparse
import json
import sys
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--seconds", type=float, default=1.5)
a = ap.parse_args()


def phase(name, work):
    lock = threading.Lock()
    stop = time.monotonic() + a.seconds
    waited, count = [], []

    def worker():
        w = n = 0
        while time.monotonic() < stop:
            w_, n_ = work(lock)
            w += w_
            n += n_
        waited.append(w)
        count.append(n)

    threads = [threading.Thread(target=worker, name=f"{name}-{i}") for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"wait_s": sum(waited), "acquisitions": sum(count)}


def in_a(lock):
    t0 = time.perf_counter()
    with lock:  # @phase_a
        w = time.perf_counter() - t0
        time.sleep(0.003)
    return w, 1


def in_b(lock):
    t0 = time.perf_counter()
    with lock:  # @phase_b
        w = time.perf_counter() - t0
        time.sleep(0.003)
    return w, 1


def in_c(lock):
    t0 = time.perf_counter()
    with lock:  # @phase_c
        w = time.perf_counter() - t0
        time.sleep(0.003)
    return w, 1


out = {}
for name, work in (("a", in_a), ("b", in_b), ("c", in_c)):
    out[name] = phase(name, work)
    if name != "c":
        print(f"PHASE {name.upper()} DONE", flush=True)
        sys.stdin.readline()
print(json.dumps(out), flush=True)
