"""Threads looking attributes up on many classes through getattr(): more (type, name) pairs than the
interpreter's type cache has entries, so lookups keep replacing each other's entries. In free-threaded
builds each entry is guarded by a seqlock (_PySeqLock_*): a reader that finds an entry being written,
or rewritten under it, yields (sched_yield) and retries. Those yields are no PyMutex spin. Prints one
JSON line: how many lookups ran.
"""
import json
import threading

from _common import options, run_threads

NAMES = ("alpha", "beta", "gamma", "delta")


def look_up(classes, rounds, barrier):
    barrier.wait()
    total = 0
    for _ in range(rounds):
        for cls in classes:
            for name in NAMES:
                total += getattr(cls, name)  # @lookup
    return total


def main():
    args = options(threads=8, classes=8000, rounds=8)
    classes = [type(f"C{i}", (), dict.fromkeys(NAMES, i)) for i in range(args.classes)]
    # Each thread walks the classes in its own order: entries are written by one while read by another.
    orders = [[classes[(i * 7919 + k) % len(classes)] for i in range(len(classes))] for k in range(args.threads)]
    barrier = threading.Barrier(args.threads)
    run_threads([threading.Thread(target=look_up, args=(orders[k], args.rounds, barrier)) for k in range(args.threads)])
    print(json.dumps({"lookups": args.threads * args.rounds * args.classes * len(NAMES)}))


if __name__ == "__main__":
    main()
