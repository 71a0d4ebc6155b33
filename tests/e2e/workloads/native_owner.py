"""Native locks named by their owner (test_native_owner.py).

  native_owner.py shared LIB N   N threads wait on the shared pthread mutex of the library LIB (a path,
                                 or `ftlockdemo`: that package's vendored one) while a
                                 holder keeps it: exactly N contended pthread_mutex_lock calls, released
                                 only once every waiter sleeps in the kernel on that very mutex; then
                                 the same with its rwlock, held for writing while N readers wait
  native_owner.py numpy          8 threads doing matrix products from one start for at least half a
                                 second: OpenBLAS's own threads and its server
                                 lock (a pthread mutex in numpy's vendored libscipy_openblas)

Prints one JSON line: what the workload did and what it saw.
"""
import ctypes
import json
import os
import platform
import sys
import threading
import time

# The futex system call's number, the first field of /proc/.../syscall while a thread sleeps in it.
FUTEX = {"x86_64": 202, "aarch64": 98}[platform.machine()]


def sleeping_on(tid, lock, size):
    """True while thread `tid` sleeps in a futex call on a word of the lock at `lock` (`size` bytes)."""
    try:
        with open(f"/proc/self/task/{tid}/syscall") as f:
            fields = f.read().split()
    except OSError:
        return False
    return len(fields) > 1 and fields[0] == str(FUTEX) and lock <= int(fields[1], 16) < lock + size


def contend(hold, take, lock, size, n):
    """`hold` keeps the lock while n threads call `take`, until all n sleep on it."""
    held_r, held_w = os.pipe()
    release_r, release_w = os.pipe()
    holder = threading.Thread(target=hold, args=(held_w, release_r), name="holder")
    holder.start()
    assert os.read(held_r, 1) == b"h"
    tids = [None] * n
    results = [None] * n

    def waiter(i):
        tids[i] = threading.get_native_id()
        results[i] = take()

    waiters = [threading.Thread(target=waiter, args=(i,), name=f"waiter-{i}") for i in range(n)]
    for t in waiters:
        t.start()
    deadline = time.monotonic() + 120
    while not all(tid and sleeping_on(tid, lock, size) for tid in tids):
        assert time.monotonic() < deadline, "the waiters never all slept on the shared lock"
        time.sleep(0.001)  # polling what the kernel says, not a guess at how long they take
    os.write(release_w, b"r")
    for t in [holder, *waiters]:
        t.join()
    for fd in (held_r, held_w, release_r, release_w):
        os.close(fd)
    assert results == [0] * n, results


def shared(lib_path, n):
    if lib_path == "ftlockdemo":
        import ftlockdemo
        lib_path = ftlockdemo.LIB
    lib = ctypes.CDLL(lib_path)
    lib.sharedlock_address.restype = lib.sharedlock_rwlock_address.restype = ctypes.c_void_p
    mutex, rwlock = lib.sharedlock_address(), lib.sharedlock_rwlock_address()
    contend(lib.sharedlock_hold, lib.sharedlock_take, mutex, ctypes.sizeof(ctypes.c_int), n)
    contend(lib.sharedlock_hold_write, lib.sharedlock_read, rwlock, 56, n)  # sizeof(pthread_rwlock_t)
    return {"waiters": n, "lib": lib_path, "address": mutex, "rwlock_address": rwlock}


def matrix_products():
    import numpy as np
    a = np.random.default_rng(1).random((256, 256))

    # All eight start together and multiply for a fixed time, not a fixed count, so that on a loaded
    # machine they still overlap long enough to meet at OpenBLAS's server lock.
    start = threading.Barrier(8)

    def work():
        start.wait()
        end = time.monotonic() + 0.5
        done = 0
        while done < 20 or time.monotonic() < end:
            a @ a
            done += 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"numpy": np.__version__, "threads": 8}


if __name__ == "__main__":
    if sys.argv[1] == "shared":
        print(json.dumps(shared(sys.argv[2], int(sys.argv[3]))))
    else:
        print(json.dumps(matrix_products()))
