"""Contention before and after os.fork() in the parent, and in the child: each process must end up
with its own recording holding its own waits only."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gated import gated_burst  # noqa: E402


def parent_before(lock):
    lock.acquire()


def parent_after(lock):
    lock.acquire()


def child_wait(lock):
    lock.acquire()


def main():
    gated_burst(parent_before, rounds=20, hold_s=0.0005)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        gated_burst(child_wait, rounds=20, hold_s=0.0005)
        os.write(w, json.dumps({"child": os.getpid()}).encode())
        os.close(w)
        sys.stdout.flush()
        os._exit(0)
    os.close(w)
    child = json.loads(os.read(r, 4096).decode())
    os.close(r)
    gated_burst(parent_after, rounds=20, hold_s=0.0005)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"parent": os.getpid(), "child": child["child"], "child_status": status}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
