"""Threads that assign attributes of their own classes: no object is shared, yet every assignment
takes the interpreter's one type lock (interp->types.mutex in 3.13t: type_setattro updates the type's
version and the method cache under it), so the threads wait on a PyMutex inside the interpreter state.
Prints one JSON line: how many assignments ran.
"""
import argparse
import json
import threading


def assign(n, rounds, barrier):
    cls = type(f"Own{n}", (), {})
    barrier.wait()
    for i in range(rounds):
        cls.value = i  # @assign


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=200_000)
    args = parser.parse_args()
    barrier = threading.Barrier(args.threads)
    threads = [threading.Thread(target=assign, args=(n, args.rounds, barrier)) for n in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"assignments": args.threads * args.rounds}))


if __name__ == "__main__":
    main()
