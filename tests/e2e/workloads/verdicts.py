"""Workloads whose report used to contradict its own figures, each measuring its truth itself.

  contend   --threads N --rounds R: threads queue for one lock held while they compute (contention is
            most of their time); run with a tiny FTPROF_BUFFER most waits are dropped.
  hang      --threads N: daemon threads block on two held Locks until the program exits (a hung
            program); the main thread waits until every one of them is inside acquire(), then lets the
            hang last --hang-ms and exits.
  sigterm   --threads N: threads contend, half of them end, then the process sends itself SIGTERM while
            the others are still blocked (default action: it dies without exit handlers).
  cpu       --threads N --cpu-ms M: CPU-bound threads, more than the cores: each reads the kernel's own
            run delay and creation-to-end time for itself (/proc/thread-self/schedstat) at its end.
  lifetimes --threads N: threads that sleep, compute or block before their first hooked call, each
            measuring its lifetime from its first line to its end.
Prints one JSON line (the truth) last.
"""
import argparse
import json
import os
import signal
import sys
import threading
import time

from _common import burn

perf_ns = time.perf_counter_ns


def burn_ms(ms):
    return burn(int(ms * 1e6))


def schedstat():
    with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as f:
        run, delay, _ = f.read().split()
    return int(run), int(delay)


def wait_blocked(threads, line_word):
    """Until every thread's innermost Python frame is the line calling acquire() (it is blocked there)."""
    idents = {t.ident for t in threads}
    while True:
        frames = sys._current_frames()
        if all(i in frames and frames[i].f_code.co_name == "blocked" for i in idents):
            return
        time.sleep(0.001)


def contend(a):
    """wait_ns: the workers' waits for the lock; other_wait_ns: every other wait of the run (the start
    gate, Thread.start and Thread.join), which a busy machine can make as long as the run itself."""
    lock = threading.Lock()
    waits, others = [], []
    gate = threading.Barrier(a.threads)

    def work():
        t0 = perf_ns()
        gate.wait()
        others.append(perf_ns() - t0)
        w = 0
        for _ in range(a.rounds):
            t0 = perf_ns()
            with lock:  # @acquire
                w += perf_ns() - t0
                burn_ms(a.hold_ms)
        waits.append(w)

    ts = [threading.Thread(target=work, name=f"worker-{i}") for i in range(a.threads)]
    t0 = perf_ns()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return {"wait_ns": sum(waits), "other_wait_ns": sum(others) + perf_ns() - t0}


def blocked(lock):
    lock.acquire()  # @blocked


def hang(a):
    locks = [threading.Lock(), threading.Lock()]
    for lk in locks:
        lk.acquire()
    ts = [threading.Thread(target=blocked, args=(locks[i % 2],), name=f"stuck-{i}", daemon=True)
          for i in range(a.threads)]
    for t in ts:
        t.start()
    wait_blocked(ts, "blocked")
    t0 = perf_ns()
    time.sleep(a.hang_ms / 1000)
    return {"blocked_ns": perf_ns() - t0, "threads": a.threads}


def sigterm(a):
    lock = threading.Lock()
    lock.acquire()
    n_done = a.threads // 2
    meet = threading.Barrier(n_done)  # a recorded wait, so that the recorder sees these threads end

    def short():
        burn_ms(a.cpu_ms)
        meet.wait()

    done = [threading.Thread(target=short, name=f"done-{i}") for i in range(n_done)]
    stuck = [threading.Thread(target=blocked, args=(lock,), name=f"stuck-{i}", daemon=True)
             for i in range(a.threads - a.threads // 2)]
    for t in done + stuck:
        t.start()
    for t in done:
        t.join()
    wait_blocked(stuck, "blocked")
    burn_ms(a.cpu_ms)
    print(json.dumps({"threads": a.threads}), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)


def cpu(a):
    out = []
    gate = threading.Barrier(a.threads + 1)

    def work():
        t0 = perf_ns()
        gate.wait()
        burn_ms(a.cpu_ms)
        run, delay = schedstat()  # as late as it can: the thread ends right after
        out.append({"name": threading.current_thread().name, "tid": threading.get_native_id(),
                    "run_delay_ns": delay, "cpu_ns": run, "lifetime_ns": perf_ns() - t0})

    ts = [threading.Thread(target=work, name=f"cpu-{i}") for i in range(a.threads)]
    for t in ts:
        t.start()
    gate.wait()
    for t in ts:
        t.join()
    return {"threads": out, "cores": os.cpu_count()}


def lifetimes(a):
    """Each thread first sleeps, computes or blocks on a pipe read (no hooked call: os.read of a pipe) for
    --before-ms, then meets the others at a barrier, takes a lock once, and ends."""
    out = []
    lock = threading.Lock()
    gate = threading.Barrier(a.threads)  # a recorded wait for each, so that every thread is seen
    r, w = os.pipe()

    def run(how):
        t0 = perf_ns()
        if how == "sleep":
            time.sleep(a.before_ms / 1000)
        elif how == "compute":
            burn_ms(a.before_ms)
        else:
            os.read(r, 1)
        gate.wait()
        with lock:
            burn_ms(5)
        out.append({"name": threading.current_thread().name, "tid": threading.get_native_id(), "how": how,
                    "lifetime_ns": perf_ns() - t0})

    hows = ["sleep", "compute", "block"]
    ts = [threading.Thread(target=run, args=(hows[i % 3],), name=f"{hows[i % 3]}-{i}") for i in range(a.threads)]
    for t in ts:
        t.start()
    time.sleep(a.before_ms / 1000)
    os.write(w, b"x" * sum(1 for i in range(a.threads) if i % 3 == 2))
    for t in ts:
        t.join()
    return {"threads": out}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["contend", "hang", "sigterm", "cpu", "lifetimes"])
    p.add_argument("--threads", type=int, default=6)
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--hold-ms", type=float, default=1.0)
    p.add_argument("--hang-ms", type=float, default=1000)
    p.add_argument("--cpu-ms", type=float, default=300)
    p.add_argument("--before-ms", type=float, default=600)
    a = p.parse_args()
    res = globals()[a.mode](a)
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
