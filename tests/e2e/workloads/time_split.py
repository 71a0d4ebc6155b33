"""Threads that compute, then take a shared lock and hold it for a known time: ground truth for time
accounting and hold times, measured by the workload itself.

Each worker, for --rounds rounds: burns --cpu-ms of its own CPU time (time.thread_time_ns()), then takes
the lock and holds it --hold-ms (sleeping, so the hold costs no CPU and the waiters really park: the
free-threaded PyMutex spins only briefly before it parks). It measures its own contended waits
(perf_counter_ns() around a blocking acquire() after a failed non-blocking one), each hold (from the
moment acquire() returned to just before release()), and its CPU time at the end. --idle-threads adds
threads that only wait for work (a queue.get() until the end); --compute-threads threads that only
compute and never take the lock. The workers start together once all are started (on a loaded machine
threads start one after another and might otherwise never meet at the lock), polling a flag with short
sleeps, so the gate is neither a lock wait nor a wait for work. Prints one JSON line.
"""
import json
import queue
import sys
import threading
import time

from _common import burn, options

perf_ns = time.perf_counter_ns


def worker(lock, gate, a, out):
    wait = 0
    holds = []
    start = perf_ns()
    g0 = perf_ns()
    while not gate.is_set():
        time.sleep(0.0005)
    gate_ns = perf_ns() - g0
    for _ in range(a.rounds):
        burn(int(a.cpu_ms * 1e6))
        if not lock.acquire(blocking=False):
            t0 = perf_ns()
            lock.acquire()  # @acquire
            wait += perf_ns() - t0
        h0 = perf_ns()
        time.sleep(a.hold_ms / 1000)
        holds.append(perf_ns() - h0)
        lock.release()  # @release
    out.update(name=threading.current_thread().name, wait_ns=wait, holds_ns=holds, gate_ns=gate_ns,
               cpu_ns=time.thread_time_ns(), lifetime_ns=perf_ns() - start, kind="worker")


def idle(q, out):
    start = perf_ns()
    t0 = perf_ns()
    q.get()  # @get
    out.update(name=threading.current_thread().name, waiting_ns=perf_ns() - t0, cpu_ns=time.thread_time_ns(),
               lifetime_ns=perf_ns() - start, kind="idle")


def compute(a, out):
    start = perf_ns()
    burn(int(a.compute_ms * 1e6))
    out.update(name=threading.current_thread().name, cpu_ns=time.thread_time_ns(), lifetime_ns=perf_ns() - start,
               kind="compute")


def main():
    a = options(threads=4, rounds=8, cpu_ms=20.0, hold_ms=20.0, idle_threads=0, compute_threads=0,
                compute_ms=200.0)
    lock = threading.Lock()
    gate = threading.Event()
    q = queue.Queue()
    outs = []
    threads = []
    for i in range(a.threads):
        outs.append({})
        threads.append(threading.Thread(target=worker, args=(lock, gate, a, outs[-1]), name=f"worker-{i}"))
    for i in range(a.idle_threads):
        outs.append({})
        threads.append(threading.Thread(target=idle, args=(q, outs[-1]), name=f"idle-{i}"))
    for i in range(a.compute_threads):
        outs.append({})
        threads.append(threading.Thread(target=compute, args=(a, outs[-1]), name=f"compute-{i}"))
    t0 = perf_ns()
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        if t.name.startswith(("worker", "compute")):
            t.join()
    for _ in range(a.idle_threads):
        q.put(None)
    for t in threads:
        t.join()
    print(json.dumps({"elapsed_ns": perf_ns() - t0, "threads": outs,
                      "process_cpu_ns": time.process_time_ns()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
