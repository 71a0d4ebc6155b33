"""multiprocessing with the fork or spawn start method; each worker process contends on its own lock."""
import json
import multiprocessing as mp
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gated import gated_burst  # noqa: E402


def mp_wait(lock):
    lock.acquire()


def task(i):
    gated_burst(mp_wait, threads=3, rounds=15, hold_s=0.0005)
    return i * i


def main():
    method = sys.argv[1]
    ctx = mp.get_context(method)
    with ctx.Pool(2) as pool:
        squares = pool.map(task, range(4))
    print(json.dumps({"method": method, "squares": squares}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
