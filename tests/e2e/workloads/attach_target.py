"""A service to attach to (ftprof attach): worker threads take turns on one threading.Lock (or RLock),
holding it for --hold-ms, for --seconds (or until a file named by --until appears). The main thread
stays in Python (short joins), so PEP 768's remote execution reaches it at its next eval-breaker check.
Prints "READY <pid>" (flushed) once the workers run, then, at the end, a deterministic result: the same
lines whether or not ftprof attached meanwhile (the work done is counted by the clock, not printed).

  attach_target.py [--threads N] [--hold-ms MS] [--seconds S] [--until FILE] [--rlock] [--bench]
                   [--main poll|join|event|queue|sleep]

--main: what the main thread does meanwhile. poll (the default) stays in Python; the others block it for
the whole run where PEP 768 alone would never reach it: Thread.join() on the workers, Event.wait() for
the workers' end, queue.get() of their results, time.sleep(--seconds) (a C call). The workers stop by
themselves at the end.

--bench: instead, two threads hand a token back and forth (two SimpleQueues) for --seconds and the main thread prints
"RATE <handoffs per second> <CPU ns per handoff>" every 0.5 s (flushed): the overhead benchmark reads the rate before an
attach, during it and after the detach.
"""
import argparse
import os
import sys
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=4)
ap.add_argument("--hold-ms", type=float, default=1.0)
ap.add_argument("--seconds", type=float, default=6.0)
ap.add_argument("--until")
ap.add_argument("--rlock", action="store_true")
ap.add_argument("--bench", action="store_true")
ap.add_argument("--main", choices=["poll", "join", "event", "queue", "sleep"], default="poll")
a = ap.parse_args()

lock = threading.RLock() if a.rlock else threading.Lock()
stop = threading.Event()
# A holder that spins would keep the GIL on a default build and no waiter would try the lock: sleep.
hold_s = a.hold_ms / 1000


def hold_and_release():
    time.sleep(hold_s)
    lock.release()  # @release


def take():
    lock.acquire()  # @acquire


def worker(n, out):
    done = 0
    while not stop.is_set() and not finished():
        take()
        hold_and_release()
        done += 1
    out[n] = done
    stop.set()  # for a main thread in Event.wait()
    results.put(n)  # for a main thread in queue.get()


def bench_worker(counter, mine, theirs, first):
    # A token handed back and forth through two SimpleQueues: every get() parks (sem_* through the
    # GOT), so a hook left behind would cost on every handoff.
    if first:
        theirs.put(1)
    while not stop.is_set():
        mine.get()  # @bench
        counter[0] += 1
        theirs.put(1)


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def finished():
    return stop.is_set() or (a.until and os.path.exists(a.until)) or time.monotonic() >= end


import queue  # noqa: E402
results = queue.Queue()
end = time.monotonic() + 3600


def main():
    out = [0] * a.threads
    if a.bench:
        counter = [0]
        import queue
        qa, qb = queue.SimpleQueue(), queue.SimpleQueue()
        threads = [threading.Thread(target=bench_worker, args=(counter, qa, qb, True), name="bench-0"),
                   threading.Thread(target=bench_worker, args=(counter, qb, qa, False), name="bench-1")]
    else:
        threads = [threading.Thread(target=worker, args=(i, out), name=f"worker-{i}") for i in range(a.threads)]
    for t in threads:
        t.start()
    global end
    end = time.monotonic() + a.seconds
    say(f"READY {os.getpid()}")
    if a.main != "poll" and not a.bench:
        main_blocked(threads)
        return
    last, last_t, last_cpu = 0, time.monotonic(), time.process_time_ns()
    while time.monotonic() < end and not (a.until and os.path.exists(a.until)):
        time.sleep(0.01 if not a.bench else 0.5)
        if a.bench:
            now, cpu, n = time.monotonic(), time.process_time_ns(), counter[0]
            say(f"RATE {(n - last) / (now - last_t):.0f} {(cpu - last_cpu) / max(1, n - last):.0f}")
            last, last_t, last_cpu = n, now, cpu
    stop.set()
    if a.bench:
        qa.put(1)
        qb.put(1)
    for t in threads:
        while t.is_alive():
            t.join(0.05)
    say(f"done: {len(threads)} threads, every one did some work: {all(out) if not a.bench else True}")


def main_blocked(threads):
    if a.main == "join":
        for t in threads:
            t.join()  # @main_join
    elif a.main == "event":
        stop.wait()  # @main_event
    elif a.main == "queue":
        for _ in threads:
            results.get()  # @main_queue
    else:
        time.sleep(a.seconds)  # @main_sleep
    stop.set()
    for t in threads:
        t.join()
    say(f"done: {len(threads)} threads")


main()
