"""Holders doing different things while others block on their locks, for `ftprof top`'s "holder now":

  sleeper   holds lock A and sleeps in slow_io()            (line @slow_io)
  cruncher  holds lock B and computes in crunch()           (line @crunch)
  chained   holds lock C and waits on A in wait_second()    (line @second)
  wa-0, wa-1 block on A, wb-0, wb-1 on B, wc-0 on C        (line @blocked)

Nothing is deadlocked: the sleeper and the cruncher make progress, and all let go when a line arrives on
stdin (or it closes). Each holder takes its lock after a wait (a "gate" thread holds it first and lets
go only once the kernel shows the holder in a futex wait), so the recorder sees who acquired it; with
--uncontended they take it straight away, and only a lock that names its owner (a 3.14+ RLock) says who
holds it. With --go FILE nothing starts before FILE exists (an attach comes first). Prints "READY" once
every waiter is parked (the kernel shows each in a futex wait), after {"tid": {NAME: native id}}.

  holder_now.py [--kind lock|rlock] [--uncontended] [--go FILE]
"""
import argparse
import json
import os
import sys
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--kind", choices=["lock", "rlock"], default="rlock")
ap.add_argument("--uncontended", action="store_true")
ap.add_argument("--go")
a = ap.parse_args()

make = threading.RLock if a.kind == "rlock" else threading.Lock
A, B, C = make(), make(), make()
release = threading.Event()
holding = {name: threading.Event() for name in ("sleeper", "cruncher", "chained")}
tids = {}


def parked(tid):
    """The kernel has thread `tid` in a futex wait (x86-64 SYS_futex 202, futex_waitv 449)."""
    try:
        with open(f"/proc/self/task/{tid}/syscall") as f:
            return f.read().split()[0] in ("202", "449")
    except (OSError, IndexError):
        return False


def until_parked(name):
    while name not in tids or not parked(tids[name]):
        time.sleep(0.001)


def gate(lock, name, held):
    """Holds `lock` until `name` waits for it, so that `name` takes it after a wait."""
    with lock:
        held.set()
        until_parked(name)


def take(lock, name):
    tids[name] = threading.get_native_id()
    if not a.uncontended:
        held = threading.Event()
        threading.Thread(target=gate, args=(lock, name, held), name="gate-" + name).start()
        held.wait()
    lock.acquire()
    holding[name].set()


def slow_io():
    while not release.is_set():
        time.sleep(0.02)  # @slow_io


def crunch():
    x = 1
    while not release.is_set(): x = (x * 3 + 1) % 1000003  # @crunch
    return x


def wait_second():
    with A:  # @second
        pass


def sleeper():
    take(A, "sleeper")
    try:
        slow_io()
    finally:
        A.release()


def cruncher():
    take(B, "cruncher")
    try:
        crunch()
    finally:
        B.release()


def chained():
    holding["sleeper"].wait()
    take(C, "chained")
    try:
        wait_second()
    finally:
        C.release()


def waiter(lock):
    tids[threading.current_thread().name] = threading.get_native_id()
    with lock:  # @blocked
        pass


def main():
    if a.go:
        while not os.path.exists(a.go):
            time.sleep(0.005)
    holders = [threading.Thread(target=f, name=f.__name__) for f in (sleeper, cruncher, chained)]
    for t in holders:
        t.start()
    for e in holding.values():
        e.wait()
    waiters = [threading.Thread(target=waiter, args=(lk,), name=name)
               for lk, name in ((A, "wa-0"), (A, "wa-1"), (B, "wb-0"), (B, "wb-1"), (C, "wc-0"))]
    for t in waiters:
        t.start()
    for t in waiters:
        until_parked(t.name)
    until_parked("chained")
    print(json.dumps({"tid": tids}), flush=True)
    print("READY", flush=True)
    sys.stdin.readline()
    release.set()
    for t in holders + waiters:
        t.join()
    print(json.dumps({"done": True}), flush=True)


main()
