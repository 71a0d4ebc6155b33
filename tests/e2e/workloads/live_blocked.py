"""Threads blocked on purpose, for `ftprof top`: a thread named "holder" takes a lock and keeps it
while N threads ("waiter-0"...) block on it at the line marked @blocked. Each waiter notes the
CLOCK_MONOTONIC time (ns) right before it blocks (nothing else between the clock and the lock: printing
it there would count the print as blocked time); the main thread prints them as {"blocked": NAME,
"t0": NS} once all are noted, then "READY". The holder releases when a line arrives on stdin (read by the main thread) (or stdin closes), and the
last line is the workload's JSON result.

  live_blocked.py [--threads N] [--kind lock|rlock]
"""
import argparse
import json
import sys
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=3)
ap.add_argument("--kind", choices=["lock", "rlock"], default="lock")
a = ap.parse_args()

lock = threading.Lock() if a.kind == "lock" else threading.RLock()
at_lock = threading.Barrier(a.threads + 1)  # the waiters and the holder
out = threading.Lock()  # keeps lines whole; never contended while the waiters block


def say(line):
    with out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


t0 = {}


def waiter():
    name = threading.current_thread().name
    at_lock.wait()
    t0[name] = time.monotonic_ns()
    with lock:  # @blocked
        pass


release = threading.Event()


def holder():
    with lock:
        at_lock.wait()
        release.wait()


threads = [threading.Thread(target=holder, name="holder")]
threads += [threading.Thread(target=waiter, name=f"waiter-{i}") for i in range(a.threads)]
for t in threads:
    t.start()
# The waiters are released from the barrier at the same time as the holder, who already has the lock.
while len(t0) < a.threads:
    time.sleep(0.01)
for name, ns in sorted(t0.items()):
    say(json.dumps({"blocked": name, "t0": ns}))
say("READY")
sys.stdin.readline()
release.set()
for t in threads:
    t.join()
say(json.dumps({"threads": a.threads, "kind": a.kind}))
