"""Lock contention in threads started while another thread holds the dynamic loader's lock.

    loader_lock.py EXTDIR [--hold 3.0] [--threads 4] [--seconds 0.5]

A thread of the test extension (tests/e2e/native/handshake.c, hold_loader) sits inside a
dl_iterate_phdr callback for --hold seconds, as a thread throwing a C++ exception or running an
unwinder does; meanwhile fresh threads contend on one Lock for --seconds. Nothing the program does
needs the loader, so the workers finish long before the hold ends. Under the recorder with
FTPROF_NATIVE=1, the workers' native stacks must not need it either. Prints JSON: acquisitions, how
long the workers took, and whether they finished while the loader was still held.
"""
import json
import sys
import threading
import time

from _common import options, run_threads


def work(lock, counts, i, until):
    n = 0
    while time.monotonic() < until:
        with lock:  # @contend
            n += 1
    counts[i] = n


def main():
    a = options("extdir", hold=3.0, threads=4, seconds=0.5)
    sys.path.insert(0, a.extdir)
    import ftprof_handshake as hs

    holder = threading.Thread(target=hs.hold_loader, args=(a.hold,), name="loader-holder")
    holder.start()
    while not hs.loader_held():
        time.sleep(0.001)
    held_until = time.monotonic() + a.hold
    lock = threading.Lock()
    counts = [0] * a.threads
    t0 = time.monotonic()
    run_threads([threading.Thread(target=work, args=(lock, counts, i, t0 + a.seconds), name=f"worker-{i}")
                 for i in range(a.threads)])
    took = time.monotonic() - t0
    during = hs.loader_held() and time.monotonic() < held_until
    holder.join()
    print(json.dumps({"acquired": sum(counts), "workers_s": round(took, 3), "finished_while_held": during}))


if __name__ == "__main__":
    main()
