"""A small reusable burst of threading.Lock contention, named after its caller so reports can tell
which process or phase waited."""
import threading
import time

from _common import run_threads


def take_turns(lock, waiter, rounds, hold_s):
    """`rounds` times: waits for the lock inside `waiter`, holds it for hold_s, lets it go."""
    for _ in range(rounds):
        waiter(lock)
        time.sleep(hold_s)
        lock.release()


def burst(waiter, threads=3, rounds=20, hold_s=0.0005):
    lock = threading.Lock()
    run_threads([threading.Thread(target=take_turns, args=(lock, waiter, rounds, hold_s)) for _ in range(threads)])
