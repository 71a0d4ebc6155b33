"""Two threads park on two RLocks while the RLock type is still being defined: the first RLock wait of
the process. Run with FTPROF_TEST_SLOW_TYPES=1, the recorder takes a second over a type's definition,
so thread "late" parks on its lock while thread "early" is still defining the type it parks on.

A warm-up defines the Lock type first. The main thread holds both RLocks. "early" is started and reaches `acquire()`; 0.2 s later "late" is
started; the main thread lets both go 2.5 s after that. Prints {"early_ns": NS, "late_ns": NS}: how long
each waited, by its own clock around acquire().
"""
import json
import threading
import time

# First define _thread.lock's type (the main thread's own waits below, on thread starts and an Event,
# are Lock waits): a thread waits on a held Lock, so that definition happens in that thread.
warm, warm_ready = threading.Lock(), threading.Event()
warm.acquire()
warmer = threading.Thread(target=lambda: (warm_ready.set(), warm.acquire(), warm.release()), name="warm-up")
warmer.start()
warm_ready.wait()
time.sleep(0.1)
warm.release()
warmer.join()

first, second = threading.RLock(), threading.RLock()
first.acquire()
second.acquire()
waited = {}
about_to_wait = threading.Event()


def take(lock, name, signal):
    if signal:
        signal.set()
    t0 = time.monotonic_ns()
    lock.acquire()  # @wait
    waited[name] = time.monotonic_ns() - t0
    lock.release()


early = threading.Thread(target=take, args=(first, "early", about_to_wait), name="early")
early.start()
about_to_wait.wait()
time.sleep(0.2)
late = threading.Thread(target=take, args=(second, "late", None), name="late")
late.start()
time.sleep(2.5)
second.release()
first.release()
early.join()
late.join()
print(json.dumps({f"{k}_ns": v for k, v in sorted(waited.items())}))
