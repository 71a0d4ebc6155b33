"""Threads that spin at two of the interpreter's yield call sites back to back: an RLock's (3.14+: its
PyMutex loop inlined into the recursive mutex's) and a Lock's, then a shared dict's critical section. A
spin at one site follows a spin at the other within microseconds, and each site keeps its lock in a
register of its own choosing. Prints the number of rounds when all threads are done."""
import threading
import time

from _common import options, run_threads

opt = options(threads=3, seconds=2.0)
rlock = threading.RLock()
lock = threading.Lock()
shared = {}
rounds = [0] * opt.threads


def work(i):
    end = time.monotonic() + opt.seconds
    n = 0
    while time.monotonic() < end:
        with rlock:
            n += 1
        with lock:
            n += 1
        shared[i] = n
    rounds[i] = n


run_threads([threading.Thread(target=work, args=(i,)) for i in range(opt.threads)])
print("rounds", sum(rounds))
