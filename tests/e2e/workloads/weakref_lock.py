"""Threads that take weak references to one shared object: each weakref.ref() looks up the object's
existing references under one of the interpreter's weakref locks (interp->weakref_locks[N], chosen by
the object's address; Include/internal/pycore_weakref.h in 3.13-3.15), so the threads wait on a PyMutex
inside the interpreter state although they share nothing else.
Prints one JSON line: how many references were taken.
"""
import json
import threading
import weakref

from _common import options, run_threads


class Shared:
    pass


def take_refs(target, rounds, barrier):
    barrier.wait()
    for _ in range(rounds):
        weakref.ref(target)  # @weakref


def main():
    args = options(threads=4, rounds=1_000_000)
    target = Shared()
    barrier = threading.Barrier(args.threads)
    run_threads([threading.Thread(target=take_refs, args=(target, args.rounds, barrier))
                 for _ in range(args.threads)])
    print(json.dumps({"refs": args.threads * args.rounds}))


if __name__ == "__main__":
    main()
