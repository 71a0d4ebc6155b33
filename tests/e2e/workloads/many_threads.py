"""Many short-lived threads, each taking one shared lock a few times, in waves of a few dozen."""
import json
import sys
import threading


def bump(lock, counter):
    for _ in range(3):
        with lock:  # @bump
            counter[0] += 1


def main():
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    wave = 50
    lock = threading.Lock()
    counter = [0]
    started = 0
    while started < total:
        n = min(wave, total - started)
        ts = [threading.Thread(target=bump, args=(lock, counter)) for _ in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        started += n
    assert counter[0] == 3 * total
    print(json.dumps({"threads": started, "counter": counter[0]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
