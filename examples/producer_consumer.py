"""Producers and consumers over queue.Queue: telling "waiting for work" from contention.

Two producer threads receive orders (simulated arrivals: a burst every millisecond) and put
them on a bounded ``queue.Queue``; six consumer threads take them off, price them, and add
each result to shared totals under ``TOTALS_LOCK``. Most of the waiting in this program is
harmless: orders arrive more slowly than six threads can price them, so consumers sit in
``Queue.get`` waiting for the next one. How to read its report:

* ``condition`` entries are threads waiting for something to happen - here consumers parked
  in ``Condition.wait`` inside ``Queue.get``. They are listed in their own section: that
  time is idleness, not lost parallelism, and removing it would need more orders, not fewer
  locks.
* ``lock`` entries are real contention. Two locks show up here, in proportions that vary
  from run to run. The queue's own ``mutex`` is taken by every ``put`` and ``get``:
  waiters stand on ``with self.not_empty:`` /
  ``with self.not_full:`` in ``Queue.get`` / ``Queue.put``, and in
  ``Condition._acquire_restore``, where a consumer that was just notified must take the
  mutex back before ``wait()`` returns - eight threads share one lock for every order.
  And ``TOTALS_LOCK``, held while ``record_order`` updates the totals and ``publish_status``
  re-renders the JSON a status page would serve, for every order; its waiters stand on the
  ``with TOTALS_LOCK:`` line in ``consumer``.

The fix (``--fixed``): producers put batches of orders, so the queue's mutex is taken once
per batch instead of once per order, and each consumer keeps its own totals and merges them
once (and publishes the status) when it stops, so ``TOTALS_LOCK`` is taken six times instead
of once per order. The ``lock`` entries shrink; the ``condition`` section stays, since
consumers still wait for work, as they should. The run time hardly changes: it is set by
the arrival rate.

    ftprof run -o before.ftp -- python3.14t examples/producer_consumer.py
    ftprof run -o after.ftp  -- python3.14t examples/producer_consumer.py --fixed
"""

import argparse
import json
import queue
import threading
import time

PRODUCERS = 2
CONSUMERS = 6
BURST = 12          # orders arriving together, every ARRIVAL_S
ARRIVAL_S = 0.001
TOP = 20
DONE = None


def new_totals():
    return {"orders": 0, "revenue": 0, "by_region": {}, "top": []}


TOTALS_LOCK = threading.Lock()
TOTALS = new_totals()
STATUS = ""  # the JSON a status page would serve; replaced under TOTALS_LOCK


def make_order(n):
    items = [(f"sku-{(n * 7 + i) % 1000}", 1 + (n + i) % 5, 100 + (n * i) % 900) for i in range(8)]
    return {"id": n, "region": ("eu", "us", "apac")[n % 3], "items": items}


def price(order):
    total = 0
    for sku, qty, cents in order["items"]:
        discount = sum(ord(c) for c in sku) % 7
        total += qty * cents * (100 - discount) // 100
    return total


def record_order(totals, order, amount):
    totals["orders"] += 1
    totals["revenue"] += amount
    region = totals["by_region"].setdefault(order["region"], {"orders": 0, "revenue": 0})
    region["orders"] += 1
    region["revenue"] += amount
    top = totals["top"]
    top.append((amount, order["id"]))
    top.sort(reverse=True)
    del top[TOP:]


def publish_status(totals):
    global STATUS
    STATUS = json.dumps({"orders": totals["orders"], "revenue": totals["revenue"],
                         "by_region": totals["by_region"], "top": totals["top"][:5]}, sort_keys=True)


def merge(into, part):
    into["orders"] += part["orders"]
    into["revenue"] += part["revenue"]
    for name, r in part["by_region"].items():
        region = into["by_region"].setdefault(name, {"orders": 0, "revenue": 0})
        region["orders"] += r["orders"]
        region["revenue"] += r["revenue"]
    into["top"] = sorted(into["top"] + part["top"], reverse=True)[:TOP]


def arrivals(first, count):
    """Yields bursts of orders at the arrival rate, like a socket handing over requests."""
    for burst_start in range(first, first + count, BURST):
        time.sleep(ARRIVAL_S)
        yield [make_order(n) for n in range(burst_start, min(burst_start + BURST, first + count))]


def producer(q, first, count):
    for burst in arrivals(first, count):
        for order in burst:
            q.put(order)


def consumer(q):
    while True:
        order = q.get()
        if order is DONE:
            return
        amount = price(order)
        with TOTALS_LOCK:
            record_order(TOTALS, order, amount)
            publish_status(TOTALS)


def producer_fixed(q, first, count):
    for burst in arrivals(first, count):
        q.put(burst)


def consumer_fixed(q):
    mine = new_totals()
    while True:
        batch = q.get()
        if batch is DONE:
            break
        for order in batch:
            record_order(mine, order, price(order))
    with TOTALS_LOCK:
        merge(TOTALS, mine)
        publish_status(TOTALS)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixed", action="store_true", help="batch the queue traffic and keep per-thread totals")
    parser.add_argument("--orders", type=int, default=40000)
    args = parser.parse_args()

    produce, consume = (producer_fixed, consumer_fixed) if args.fixed else (producer, consumer)
    q = queue.Queue(maxsize=1000)
    start = time.perf_counter()
    consumers = [threading.Thread(target=consume, args=(q,), name=f"consumer-{i}") for i in range(CONSUMERS)]
    share = args.orders // PRODUCERS
    producers = [threading.Thread(target=produce, args=(q, i * share, share), name=f"producer-{i}")
                 for i in range(PRODUCERS)]
    for t in consumers + producers:
        t.start()
    for t in producers:
        t.join()
    for _ in consumers:
        q.put(DONE)
    for t in consumers:
        t.join()
    elapsed = time.perf_counter() - start

    expected = share * PRODUCERS
    assert TOTALS["orders"] == expected, f"{TOTALS['orders']} orders recorded, expected {expected}"
    assert json.loads(STATUS)["orders"] == expected, "the published status is stale"
    regions = ", ".join(f"{k} {v['orders']}" for k, v in sorted(TOTALS["by_region"].items()))
    print(f"producer_consumer: {TOTALS['orders']} orders ({regions}), revenue {TOTALS['revenue']}, "
          f"largest {TOTALS['top'][0][0]} "
          f"in {elapsed:.2f} s ({'batched' if args.fixed else 'one queue item per order'})")


if __name__ == "__main__":
    main()
