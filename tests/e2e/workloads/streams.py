"""Deterministic output on both streams from a threaded program, including a warning, for comparing
runs with and without the recorder byte for byte."""
import sys
import threading
import warnings


def main():
    results = {}
    lock = threading.Lock()

    def work(i):
        s = sum(j * j for j in range(20_000 + i))
        with lock:
            results[i] = s

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for i in sorted(results):
        print(f"result {i}: {results[i]}")
    warnings.warn("a user warning", UserWarning)
    print("done on stderr", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
