"""Names a report must give as the program knows them. Each part forces its waits:

queue    four ThreadPoolExecutor workers pass items through one queue.Queue; a holder takes the queue's
         own mutex (`with q.mutex:`) for HOLD_S while they are blocked in put/get, so they wait on it.
cache    Thread-N (fill) threads write `CACHE[k] = v` while a holder merges a big dict into CACHE
         (dict.update keeps CACHE's per-object lock through the merge).
logging  threads log through one handler whose stream is slow: they wait on the handler's lock, taken
         in logging/__init__.py.
imports  threads import extension modules at once (each import turns the GIL on for a moment on a
         free-threaded build) while others run Python code.
Prints one JSON line with what each part did.
"""
import argparse
import concurrent.futures
import json
import logging
import queue
import sys
import threading
import time

HOLD_S = 0.004
CACHE = {}
BIG = {("big", i): i for i in range(200_000)}


def queue_worker(q, rounds, go):
    go.wait()
    for i in range(rounds):
        q.put(i)  # @queue-put
        q.get()  # @queue-get
    return rounds


def part_queue(rounds):
    q = queue.Queue()
    go = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futs = [pool.submit(queue_worker, q, rounds, go) for _ in range(4)]
        go.set()
        held = 0
        while not all(f.done() for f in futs):
            with q.mutex:  # @queue-holder: the workers are kept out of put/get meanwhile
                time.sleep(HOLD_S)
            held += 1
            time.sleep(HOLD_S / 4)
        done = sum(f.result() for f in futs)
    return {"items": done, "holds": held}


def fill(stop, wid, counts):
    n = 0
    while not stop.is_set():
        CACHE[(wid, n % 64)] = n  # @cache-write
        n += 1
    counts[wid] = n


def part_cache(rounds):
    stop = threading.Event()
    counts = {}
    threads = [threading.Thread(target=fill, args=(stop, w, counts)) for w in range(3)]
    for t in threads:
        t.start()
    for _ in range(rounds):
        CACHE.update(BIG)  # @cache-holder
        time.sleep(0.002)
    stop.set()
    for t in threads:
        t.join()
    return {"writes": sum(counts.values()), "threads": [t.name for t in threads]}


class SlowStream:
    def write(self, text):
        time.sleep(HOLD_S / 4)

    def flush(self):
        pass


def log_some(log, rounds):
    for i in range(rounds):
        log.info("round %d", i)  # @log


def part_logging(rounds):
    log = logging.getLogger("ftprof-names")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(logging.StreamHandler(SlowStream()))
    threads = [threading.Thread(target=log_some, args=(log, rounds), name=f"logger-{i}") for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"records": 3 * rounds}


def import_0():
    import _decimal  # @import-0
    import _codecs_jp


def import_1():
    import _elementtree  # @import-1
    import _codecs_cn


def import_2():
    import _pickle  # @import-2
    import _sqlite3


def import_3():
    import _ctypes  # @import-3
    import _hashlib


IMPORTS = [import_0, import_1, import_2, import_3]
MODULES = ["_decimal", "_codecs_jp", "_elementtree", "_codecs_cn", "_pickle", "_sqlite3", "_ctypes", "_hashlib"]


def spin(stop):
    n = 0
    while not stop.is_set():
        n += 1
    return n


def importer(imp, barrier):
    barrier.wait()
    try:
        imp()
    except ImportError:
        pass


def part_imports():
    before = {m for m in MODULES if m in sys.modules}
    stop = threading.Event()
    spinners = [threading.Thread(target=spin, args=(stop,), name=f"spin-{i}") for i in range(2)]
    barrier = threading.Barrier(4)
    importers = [threading.Thread(target=importer, args=(imp, barrier), name=f"import-{i}")
                 for i, imp in enumerate(IMPORTS)]
    for t in spinners + importers:
        t.start()
    for t in importers:
        t.join()
    stop.set()
    for t in spinners:
        t.join()
    return {"imported": sorted(m for m in MODULES if m in sys.modules and m not in before),
            "gil": sys._is_gil_enabled() if hasattr(sys, "_is_gil_enabled") else True}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="queue,cache,logging,imports")
    ap.add_argument("--rounds", type=int, default=300)
    a = ap.parse_args()
    out = {}
    for part in a.parts.split(","):
        if part == "queue":
            out[part] = part_queue(a.rounds)
        elif part == "cache":
            out[part] = part_cache(max(1, a.rounds // 30))
        elif part == "logging":
            out[part] = part_logging(max(1, a.rounds // 10))
        elif part == "imports":
            out[part] = part_imports()
        else:
            ap.error(f"unknown part {part}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
