"""A deadlock on purpose: thread "left" takes FIRST then wants SECOND, thread "right" takes SECOND then
wants FIRST. Both hold their first lock before either asks for the second (a barrier), so they block
for good at the lines marked @left_waits and @right_waits. Each notes the CLOCK_MONOTONIC time right
before it blocks; the main thread prints them as {"blocked": NAME, "t0": NS} and "READY", then waits on
stdin and exits (the two daemon threads never return).

  deadlock.py [--kind lock|rlock]
"""
import argparse
import json
import sys
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--kind", choices=["lock", "rlock"], default="rlock")
a = ap.parse_args()

make = threading.Lock if a.kind == "lock" else threading.RLock
first, second = make(), make()
both_hold = threading.Barrier(3)


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


t0 = {}


def left():
    with first:
        both_hold.wait()
        t0["left"] = time.monotonic_ns()
        with second:  # @left_waits
            pass


def right():
    with second:
        both_hold.wait()
        t0["right"] = time.monotonic_ns()
        with first:  # @right_waits
            pass


for fn in (left, right):
    threading.Thread(target=fn, name=fn.__name__, daemon=True).start()
both_hold.wait()
while len(t0) < 2:
    time.sleep(0.01)
for name, ns in sorted(t0.items()):
    say(json.dumps({"blocked": name, "t0": ns}))
say("READY")
sys.stdin.readline()
say(json.dumps({"kind": a.kind}))
# A normal exit: the two daemon threads stay blocked, and the recording is finished with them so.
