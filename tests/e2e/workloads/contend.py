"""A small reusable burst of threading.Lock contention, named after its caller so reports can tell
which process or phase waited."""
import threading
import time


def burst(waiter, threads=3, rounds=20, hold_s=0.0005):
    lock = threading.Lock()

    def run():
        for _ in range(rounds):
            waiter(lock)
            time.sleep(hold_s)
            lock.release()

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
