"""The main thread joins workers that sleep: Thread.join is waiting for work, not contention.
Ground truth: perf_counter_ns() around each join(); prints one JSON line."""
import json
import threading
import time


def nap(seconds):
    time.sleep(seconds)


def main():
    threads = [threading.Thread(target=nap, args=(0.3 + 0.1 * i,), name=f"napper-{i}") for i in range(3)]
    for t in threads:
        t.start()
    joined_ns = 0
    for t in threads:
        t0 = time.perf_counter_ns()
        t.join()  # @join
        joined_ns += time.perf_counter_ns() - t0
    print(json.dumps({"join_ns": joined_ns}))


if __name__ == "__main__":
    main()
