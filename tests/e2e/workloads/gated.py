"""Contention that happens however loaded the machine is: the lock is held while the threads start,
so the first acquire of each thread has to wait, and it is let go only once every thread has arrived
at it. Each wait is made inside `waiter`, so reports can tell which process or phase waited."""
import threading
import time


def gated_burst(waiter, threads=3, rounds=5, hold_s=0.001):
    lock = threading.Lock()
    arrived = threading.Semaphore(0)

    def run():
        arrived.release()
        for _ in range(rounds):
            waiter(lock)
            time.sleep(hold_s)
            lock.release()

    lock.acquire()
    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for _ in ts:
        arrived.acquire()
    time.sleep(0.05)  # the last one to arrive reaches acquire() too
    lock.release()
    for t in ts:
        t.join()
