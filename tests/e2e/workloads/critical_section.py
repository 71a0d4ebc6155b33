"""One thread holds a shared container's per-object lock through a long operation while others write.

--container dict: the holder runs d.update(big) (dict_merge locks d for the whole merge).
--container list: the holder runs lst.sort(key=slow_key) (list.sort locks the list; the key function
                  is pure Python, so the thread never detaches and keeps the lock).
Writers time each store; a store that took longer than BLOCKED_NS counts as a contended one and its
duration as its wait (an uncontended store takes well under a microsecond). Prints one JSON line.
"""
import argparse
import json
import sys
import threading
import time

perf_ns = time.perf_counter_ns
BLOCKED_NS = 200_000


KEY_COST = 60


def slow_key(x):
    s = 0
    for i in range(KEY_COST):
        s += i
    return -x


def hold_dict(d, big, rounds, started):
    for _ in range(rounds):
        started.set()
        d.update(big)  # @dict-holder
        time.sleep(0.005)


def hold_list(lst, rounds, started):
    for _ in range(rounds):
        started.set()
        lst.sort(key=slow_key)  # @list-holder
        time.sleep(0.005)


def write_dict(d, stop, tally, wid):
    k = ("w", wid)
    n = 0
    while not stop.is_set():
        t0 = perf_ns()
        d[k] = n  # @dict-writer
        count_blocked(tally, perf_ns() - t0)
        n += 1
        time.sleep(0.0005)


def write_list(lst, stop, tally, wid):
    n = 0
    while not stop.is_set():
        t0 = perf_ns()
        lst.append(n)  # @list-writer
        count_blocked(tally, perf_ns() - t0)
        n += 1
        time.sleep(0.0005)


def count_blocked(tally, dt):
    """A store that took dt ns: if it was blocked, one more contended store and dt more waiting."""
    if dt > BLOCKED_NS:
        tally[0] += dt
        tally[1] += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--container", choices=["dict", "list"], default="dict")
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--size", type=int, default=0)
    ap.add_argument("--scale", type=float, default=1.0,
                    help="stretch each long operation (dict size or sort key cost) by this factor")
    a = ap.parse_args()
    global KEY_COST
    KEY_COST = int(60 * a.scale)

    stop = threading.Event()
    started = threading.Event()
    tallies = [[0, 0] for _ in range(a.writers)]
    if a.container == "dict":
        size = a.size or int(400_000 * a.scale)
        big = {i: i for i in range(size)}
        shared = {}
        holder = threading.Thread(target=hold_dict, args=(shared, big, a.rounds, started), name="holder")
        writer = write_dict
    else:
        size = a.size or 20_000
        shared = list(range(size))
        holder = threading.Thread(target=hold_list, args=(shared, a.rounds, started), name="holder")
        writer = write_list
    writers = [threading.Thread(target=writer, args=(shared, stop, tallies[i], i), name=f"writer-{i}")
               for i in range(a.writers)]
    t0 = perf_ns()
    for w in writers:
        w.start()
    holder.start()
    holder.join()
    stop.set()
    for w in writers:
        w.join()
    print(json.dumps({
        "container": a.container, "writers": a.writers,
        "wait_ns": sum(t[0] for t in tallies), "contended": sum(t[1] for t in tallies),
        "elapsed_ns": perf_ns() - t0,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
