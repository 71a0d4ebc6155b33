"""CPU-bound threads after importing an extension that brings the GIL back.

The program builds and imports ``_legacy`` (see ``_legacy.c``), a C module that does not
declare ``Py_mod_gil``. A free-threaded 3.13 interpreter therefore re-enables the GIL at
import, for the whole process, and prints a ``RuntimeWarning`` naming the module. Four
threads then do pure Python work plus a ``_legacy.checksum`` call per task: with the GIL
back they take turns on one core instead of running side by side.

Under the profiler the report opens with a GIL notice naming ``_legacy`` (the module, its
file, and when it was loaded), and its largest entry is of kind ``gil``: every thread's
waits for the GIL, from wherever its Python code happened to be.

The fix (``--fixed``): the same source built with ``-DLEGACY_THREAD_SAFE`` (module
``_threadsafe``). Its shared call counter is made atomic first - the change that makes the
module safe without the GIL - and only then does it declare
``{Py_mod_gil, Py_MOD_GIL_NOT_USED}``. Importing it leaves the GIL off, the notice and the
``gil`` entry disappear, and the threads use every core.

    ftprof run -o before.ftp -- python3.14t examples/gil_extension/cpu_threads.py
    ftprof run -o after.ftp  -- python3.14t examples/gil_extension/cpu_threads.py --fixed
"""

import argparse
import importlib
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build  # noqa: E402  (the sibling build.py)

THREADS = 4


def score(word, rounds):
    total = 0
    for r in range(rounds):
        for i, c in enumerate(word):
            total = (total * 33 + ord(c) * (i + r)) % 1_000_000_007
    return total


def worker(mod, tasks, results, slot):
    acc = 0
    for t in range(tasks):
        word = f"task-{slot}-{t}-" * 8
        acc ^= score(word, 6)
        acc ^= mod.checksum(word.encode(), 50)
    results[slot] = acc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixed", action="store_true", help="import the thread-safe build that keeps the GIL off")
    parser.add_argument("--tasks", type=int, default=10000, help="tasks per thread")
    args = parser.parse_args()

    if not hasattr(sys, "_is_gil_enabled"):
        sys.exit("cpu_threads.py: needs Python 3.13 or newer")
    free_threaded_build = bool(__import__("sysconfig").get_config_var("Py_GIL_DISABLED"))
    try:
        sys.path.insert(0, build.build())
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"cpu_threads.py: cannot build the example extension: {e}")
    gil_before = sys._is_gil_enabled()
    mod = importlib.import_module("_threadsafe" if args.fixed else "_legacy")
    gil_after = sys._is_gil_enabled()

    results = [0] * THREADS
    threads = [threading.Thread(target=worker, args=(mod, args.tasks, results, i), name=f"cpu-{i}")
               for i in range(THREADS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start

    assert mod.calls() == THREADS * args.tasks
    state = "on" if gil_after else "off"
    change = "" if gil_before == gil_after else f" (turned {state} by importing {mod.__name__})"
    build_kind = "free-threaded" if free_threaded_build else "default (GIL)"
    print(f"cpu_threads: {THREADS} threads x {args.tasks} tasks in {elapsed:.2f} s with {mod.__name__}; "
          f"GIL {state}{change}; {build_kind} build")


if __name__ == "__main__":
    main()
