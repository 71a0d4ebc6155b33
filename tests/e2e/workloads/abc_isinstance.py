"""Threads asking isinstance(obj, collections.abc.Mapping) about objects that are no Mapping.

Nothing is shared in the program's own code, yet in 3.13t every such check goes through the ABC's
negative cache, a set of weak references: ABCMeta.__instancecheck__ (frozen into the interpreter from
Lib/abc.py) calls _abc_instancecheck, which locks that set (a critical section) and the weak
references' striped locks (interp->weakref_locks[...]). Prints one JSON line: how many checks ran.
"""
import json
import threading
from collections.abc import Mapping

from _common import options, run_threads


class Plain:
    pass


def check(objs, rounds, barrier):
    barrier.wait()
    hits = 0
    for i in range(rounds):
        hits += isinstance(objs[i & 7], Mapping)  # @isinstance
    return hits


def main():
    args = options(threads=4, rounds=200_000)
    objs = [Plain() for _ in range(8)]
    barrier = threading.Barrier(args.threads)
    run_threads([threading.Thread(target=check, args=(objs, args.rounds, barrier)) for _ in range(args.threads)])
    print(json.dumps({"checks": args.threads * args.rounds}))


if __name__ == "__main__":
    main()
