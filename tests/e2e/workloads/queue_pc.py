"""queue.Queue producer/consumer: consumers mostly wait in get() for a slow producer, which is waiting
for work (a condition), not lock contention."""
import argparse
import json
import queue
import sys
import threading
import time


def produce(q, items, consumers, interval):
    for i in range(items):
        time.sleep(interval)
        q.put(i)
    for _ in range(consumers):
        q.put(None)


def consume(q, got):
    while True:
        item = q.get()  # @get
        if item is None:
            return
        got.append(item)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--consumers", type=int, default=3)
    ap.add_argument("--items", type=int, default=200)
    # The consumers' wait for work grows with the interval; their contention on the queue's mutex after a
    # notify does not (it grows with how loaded the machine is: 5 ms keeps the first well ahead).
    ap.add_argument("--interval", type=float, default=0.005)
    a = ap.parse_args()
    q = queue.Queue()
    got = []
    cons = [threading.Thread(target=consume, args=(q, got), name=f"consumer-{i}") for i in range(a.consumers)]
    for c in cons:
        c.start()
    prod = threading.Thread(target=produce, args=(q, a.items, a.consumers, a.interval), name="producer")
    prod.start()
    prod.join()
    for c in cons:
        c.join()
    assert sorted(got) == list(range(a.items))
    print(json.dumps({"items": len(got)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
