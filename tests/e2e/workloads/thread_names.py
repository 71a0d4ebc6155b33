"""Many threads started at once, each with a threading name of its own ("named-N"), each contending a
few times for one shared lock after its start (held by the starter until all have started, so each
one waits at least once). A new thread can wait before `threading` has a frame on
it (its bootstrap waits for the starter's handshake or a stop-the-world pause): the report must still
know it by its threading name. Prints one JSON line: the names given.
"""
import json
import threading

from _common import options

LOCK = threading.Lock()


def work(rounds):
    total = 0
    for i in range(rounds):
        with LOCK:  # @contend
            for j in range(200):
                total += j
    return total


def main():
    args = options(threads=200, rounds=20)
    threads = [threading.Thread(target=work, args=(args.rounds,), name=f"named-{k}") for k in range(args.threads)]
    # The lock is held while they start: every thread's first acquire has to wait, however fast the
    # machine, so each one is in the recording.
    with LOCK:
        for t in threads:
            t.start()
    for t in threads:
        t.join()
    print(json.dumps({"names": [t.name for t in threads]}))


if __name__ == "__main__":
    main()
