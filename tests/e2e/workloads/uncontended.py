"""A single-threaded program that takes locks and mutates containers but never waits on anything:
a profile of it must hold no contention."""
import json
import sys
import threading


def work(n):
    lock = threading.Lock()
    rlock = threading.RLock()
    d = {}
    lst = []
    acc = 0
    for i in range(n):
        with lock:
            d[i % 1000] = i
        with rlock:
            lst.append(i)
        if len(lst) > 1000:
            lst.clear()
        acc += i * i % 7
    return acc


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    print(json.dumps({"result": work(n)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
