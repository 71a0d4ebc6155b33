"""Threads storing into one shared dict in a tight loop: each store takes the dict's per-object lock for
a moment, so a thread that finds it taken spins (sched_yield) and seldom parks: the spins are most of
the contention, at the one call site where critical sections spin. The threads store for a fixed time,
not a fixed count, so that on a loaded machine they still overlap long enough to meet at the lock.
Prints one JSON line."""
import argparse
import json
import threading
import time

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=4)
parser.add_argument("--seconds", type=float, default=1.0)
args = parser.parse_args()

shared = {}
start = threading.Barrier(args.threads)


def write_shared(wid):
    start.wait()
    end = time.monotonic() + args.seconds
    stores = 0
    while time.monotonic() < end:
        for n in range(1000):
            shared[n % 64] = wid  # @dict-store
        stores += 1000
    counts[wid] = stores


counts = [0] * args.threads

threads = [threading.Thread(target=write_shared, args=(i,)) for i in range(args.threads)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"threads": args.threads, "stores": sum(counts), "keys": len(shared)}), flush=True)
