"""CPU-bound threads; with --import-gilmod DIR, first imports the test extension that re-enables the
GIL on a free-threaded build, so the threads then queue for the GIL inside spin()."""
import argparse
import json
import sys
import threading
import time
import warnings


def spin(n):
    s = 0
    for i in range(n):  # @spin
        s += i * i
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=3)
    ap.add_argument("--work", type=int, default=3_000_000)
    ap.add_argument("--import-gilmod", metavar="DIR")
    a = ap.parse_args()
    if a.import_gilmod:
        sys.path.insert(0, a.import_gilmod)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            import ftprof_gilmod
        assert ftprof_gilmod.add(2, 3) == 5
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    threads = [threading.Thread(target=spin, args=(a.work,), name=f"spin-{i}") for i in range(a.threads)]
    t0 = time.perf_counter_ns()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"gil_enabled": gil, "elapsed_ns": time.perf_counter_ns() - t0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
