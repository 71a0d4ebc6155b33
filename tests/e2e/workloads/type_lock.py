"""Threads that assign attributes of their own classes: no object is shared, yet every assignment
takes the interpreter's one type lock (interp->types.mutex in 3.13t: type_setattro updates the type's
version and the method cache under it), so the threads wait on a PyMutex inside the interpreter state.
Prints one JSON line: how many assignments ran.
"""
import json
import threading

from _common import options, run_threads


def assign(n, rounds, barrier):
    cls = type(f"Own{n}", (), {})
    barrier.wait()
    for i in range(rounds):
        cls.value = i  # @assign


def main():
    args = options(threads=4, rounds=200_000)
    barrier = threading.Barrier(args.threads)
    run_threads([threading.Thread(target=assign, args=(n, args.rounds, barrier)) for n in range(args.threads)])
    print(json.dumps({"assignments": args.threads * args.rounds}))


if __name__ == "__main__":
    main()
