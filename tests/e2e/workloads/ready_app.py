"""A program for `ftprof ready`: imports compiled modules of installed distributions and of its own at
start-up, and one more (declaring nothing) late, from a worker thread.

usage: ready_app.py EXT_DIR [--packages a,b,c] [--no-legacy]
"""
import argparse
import importlib
import sys
import threading

ap = argparse.ArgumentParser()
ap.add_argument("ext_dir")
ap.add_argument("--packages", default="")
ap.add_argument("--no-legacy", action="store_true")
args = ap.parse_args()
sys.path.insert(0, args.ext_dir)

for name in filter(None, args.packages.split(",")):
    importlib.import_module(name)  # @packages

import ftprof_ready_multi  # @multi
import ftprof_ready_single  # @single

assert ftprof_ready_multi.square(7) == 49 and ftprof_ready_single.twice(21) == 42


def worker(started, go):
    started.set()
    go.wait()
    import ftprof_gilmod  # @legacy
    assert ftprof_gilmod.add(2, 3) == 5


if not args.no_legacy:
    started, go = threading.Event(), threading.Event()
    t = threading.Thread(target=worker, args=(started, go), name="late-importer")
    t.start()
    started.wait()
    go.set()
    t.join()
import json  # noqa: E402
import os  # noqa: E402

# What the program loaded, as the interpreter itself knows it: every module whose file is a shared object.
loaded = sorted({os.path.realpath(m.__file__) for m in list(sys.modules.values())
                 if getattr(m, "__file__", None) and m.__file__.endswith(".so")})
print("LOADED " + json.dumps(loaded))
print("gil enabled at exit:", getattr(sys, "_is_gil_enabled", lambda: True)())
