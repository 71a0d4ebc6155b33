"""A lock convoy: N threads ("worker-0"...) take one lock in turn, each holding it for --hold ms (a
sleep, so the holder does not spin) between short stretches of work, for --seconds seconds (or until
a line on stdin with --seconds 0). The last line is the workload's own measure: acquisitions and the
summed time spent waiting in acquire, per thread.

  convoy.py [--threads N] [--hold MS] [--seconds S]
"""
import argparse
import json
import sys
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=4)
ap.add_argument("--hold", type=float, default=5.0)
ap.add_argument("--seconds", type=float, default=10.0)
a = ap.parse_args()

lock = threading.Lock()
stop = threading.Event()
waited = {}
counts = {}


def worker():
    name = threading.current_thread().name
    w = n = 0
    while not stop.is_set():
        t0 = time.perf_counter()
        with lock:  # @convoy
            w += time.perf_counter() - t0
            n += 1
            time.sleep(a.hold / 1000)
        sum(range(200))
    waited[name], counts[name] = w, n


threads = [threading.Thread(target=worker, name=f"worker-{i}") for i in range(a.threads)]
for t in threads:
    t.start()
print("RUNNING", flush=True)
if a.seconds > 0:
    time.sleep(a.seconds)
else:
    sys.stdin.readline()
stop.set()
for t in threads:
    t.join()
print(json.dumps({"acquisitions": sum(counts.values()), "wait_s": sum(waited.values())}), flush=True)
