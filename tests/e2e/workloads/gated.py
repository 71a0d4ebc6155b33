"""Contention that happens however loaded the machine is: the lock is held while the threads start,
so the first acquire of each thread has to wait, and it is let go only once every thread has arrived
at it. Each wait is made inside `waiter`, so reports can tell which process or phase waited."""
import threading
import time

from contend import take_turns


def gated_burst(waiter, threads=3, rounds=5, hold_s=0.001):
    lock = threading.Lock()
    arrived = threading.Semaphore(0)

    def run():
        arrived.release()
        take_turns(lock, waiter, rounds, hold_s)

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
