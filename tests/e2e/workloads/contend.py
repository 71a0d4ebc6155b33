"""Taking turns on a threading.Lock, each wait inside the caller's `waiter`, so reports can tell which
process or phase waited (gated.py makes the turns contend however loaded the machine is)."""
import time


def take_turns(lock, waiter, rounds, hold_s):
    """`rounds` times: waits for the lock inside `waiter`, holds it for hold_s, lets it go."""
    for _ in range(rounds):
        waiter(lock)
        time.sleep(hold_s)
        lock.release()
