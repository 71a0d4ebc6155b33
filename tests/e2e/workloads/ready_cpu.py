"""CPU-bound threads for `ftprof ready --gil-python`: each thread computes, and part of each step holds
RENDER_LOCK. The workload measures itself (wall and CPU time of its whole run, from its first line) and
appends one JSON line to OUT, so a test can hold the comparison against it.

usage: ready_cpu.py OUT [--threads N] [--steps S] [--locked FRACTION]
"""
import time

T0 = time.perf_counter()
C0 = time.process_time()

import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

from _common import options, run_threads  # noqa: E402

args = options("out", threads=2, steps=2500, locked=0.3)

RENDER_LOCK = threading.Lock()
UNIT = 4000


def spin(n):
    x = 0
    for i in range(n):
        x += i * i % 7
    return x


def worker(barrier):
    barrier.wait()
    locked = int(UNIT * args.locked)
    for _ in range(args.steps):
        spin(UNIT - locked)
        with RENDER_LOCK:  # @render
            spin(locked)


barrier = threading.Barrier(args.threads)
run_threads([threading.Thread(target=worker, args=(barrier,)) for _ in range(args.threads)])
wall = time.perf_counter() - T0
cpu = time.process_time() - C0
gil = getattr(sys, "_is_gil_enabled", lambda: True)()
with open(args.out, "a") as f:
    f.write(json.dumps({"wall_s": wall, "cpu_s": cpu, "gil": gil}) + "\n")
