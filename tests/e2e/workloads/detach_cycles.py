"""Attach and detach the recorder again and again inside this process while 8 threads contend.

The recorder is loaded the way `ftprof attach` loads it (ctypes, RTLD_LOCAL: not preloaded) and driven
through its attach entry points from a controller thread, so that 1,000 cycles take seconds, not the
eval-breaker round trips of the CLI. With --check, every finished recording is read back here, by this
script's own reader of include/ftprof/format.h: it must be finished, flagged attached, hold only waits and
holders inside its own window, and nothing past a chunk's last record (a write from a thread that still
believed it owned that chunk in an earlier recording). Without --lib the same program runs unprofiled.

    detach_cycles.py [--lib LIBFTPROF --out DIR --cycles N] [--threads 8]

Prints the workers' invariants (the same lines with or without the recorder), then, with --lib, one
line "CYCLES n waits w" to stderr.
"""
import argparse
import ctypes
import os
import struct
import sys
import threading
import queue

HEADER_SIZE = 4096
REC_WAIT, REC_HOLDER = 5, 6
FLAG_FINISHED, FLAG_ATTACHED = 1 << 3, 1 << 8
ATTACH_TEST_PREEMPT = 4  # some hooks stop 40 ms before writing, as a preempted thread would


def check_window(path):
    """The waits in a finished attached recording; raises if anything lies outside its window."""
    with open(path, "rb") as f:
        data = f.read()
    flags, chunk_size, _, chunks_used = struct.unpack_from("<IIII", data, 20)
    start_ns, _, end_ns = struct.unpack_from("<QQQ", data, 48)
    if not (flags & FLAG_FINISHED and flags & FLAG_ATTACHED) or end_ns < start_ns:
        raise AssertionError(f"{path}: not finished as an attached window (flags {flags:#x})")
    waits = 0
    for c in range(chunks_used):
        base = HEADER_SIZE + c * chunk_size
        if base + chunk_size > len(data):
            raise AssertionError(f"{path}: chunk {c} of {chunks_used} lies past the file's end")
        off = 0
        while off + 8 <= chunk_size:
            size, rtype = struct.unpack_from("<IH", data, base + off)
            if size == 0 or size % 8 or off + size > chunk_size:
                break
            if rtype == REC_WAIT:
                w_start, _, w_end = struct.unpack_from("<QQQ", data, base + off + 32)
                if w_start < start_ns or w_end > end_ns or w_end < w_start:
                    raise AssertionError(f"{path}: a wait outside the window")
                waits += 1
            elif rtype == REC_HOLDER:
                (t,) = struct.unpack_from("<Q", data, base + off + 24)
                if not start_ns <= t <= end_ns:
                    raise AssertionError(f"{path}: a holder outside the window")
            off += size
        if any(data[base + off:base + chunk_size]):
            raise AssertionError(f"{path}: bytes past chunk {c}'s last record (a write from an earlier recording)")
    return waits


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib")
    ap.add_argument("--out")
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()

    lock = threading.Lock()
    shared = {"total": 0}
    table = {}
    q = queue.Queue()
    done = threading.Event()
    counts = [0] * args.threads

    def worker(i):
        n = 0
        while not done.is_set():
            with lock:
                shared["total"] += 1
            table[(i, n % 64)] = n  # the dict's own lock (a critical section): every thread writes it
            if i % 2 == 0:
                q.put(n)
            else:
                try:
                    q.get(timeout=0.01)
                except queue.Empty:
                    pass
            n += 1
        counts[i] = n

    workers = [threading.Thread(target=worker, args=(i,), name=f"worker-{i}") for i in range(args.threads)]
    for w in workers:
        w.start()

    failure = None
    if args.lib:
        lib = ctypes.CDLL(args.lib, mode=os.RTLD_LOCAL)
        attach, detach = lib.ftprof_attach, lib.ftprof_detach
        attach.argtypes = [ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_size_t]
        err = ctypes.create_string_buffer(256)
        waits = 0
        for k in range(args.cycles):
            path = os.path.join(args.out, f"cycle-{k}.ftp")
            rc = attach(path.encode(), 1 << 20, ATTACH_TEST_PREEMPT, 0, err, len(err))
            if rc != 0:
                failure = f"attach {k}: {rc} ({err.value.decode()})"
                break
            if k % 3:
                threading.Event().wait(0.001 * (k % 3))
            rc = detach()
            if rc != 0:
                failure = f"detach {k}: {rc}"
                break
            try:
                waits += check_window(path)
            except AssertionError as e:
                failure = f"cycle {k}: {e}"
                break
            os.unlink(path)
        print(f"CYCLES {k + 1} waits {waits}", file=sys.stderr)
    else:
        threading.Event().wait(2.0)
    done.set()
    for w in workers:
        w.join()
    while not q.empty():
        q.get()
    print("workers", args.threads)
    print("lock total matches the increments:", shared["total"] == sum(counts))
    print("dict holds every thread's keys:", len(table) == args.threads * 64 or min(counts) < 64)
    if failure:
        print("FAILED:", failure, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
