"""Calls the test extension ftprof_handshake: exactly N contended pthread_mutex_lock calls made from
contend(), for the buffer-overflow accounting test and the per-event cost benchmark.
  handshake.py EXTDIR N            N contended locks
  handshake.py EXTDIR N relock     N failing relocks (the benchmark's blocking-free per-event cost)
  handshake.py EXTDIR N uncontended P   N rounds of uncontended releases while P threads stay parked"""
import json
import sys
import time


def contend(mod, n):
    return mod.run(n)  # @handshake


def main():
    sys.path.insert(0, sys.argv[1])
    n = int(sys.argv[2])
    import ftprof_handshake
    if len(sys.argv) > 4 and sys.argv[3] == "uncontended":
        print(json.dumps({"round_ns": ftprof_handshake.uncontended(n, int(sys.argv[4]))}))
        return 0
    if len(sys.argv) > 3 and sys.argv[3] == "relock":
        print(json.dumps({"relock_ns": ftprof_handshake.relock(n)}))
        return 0
    t0 = time.perf_counter_ns()
    done = contend(ftprof_handshake, n)
    print(json.dumps({"contended": done, "elapsed_ns": time.perf_counter_ns() - t0,
                      "caller_cpu_ns": ftprof_handshake.caller_cpu_ns()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
