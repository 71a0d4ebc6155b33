"""A daemon-style program: it closes every descriptor it did not open itself (os.closerange, as daemons,
servers and process spawners do), opens its own log and keeps it open while threads contend, forks a
child that writes to the inherited log and to a file of its own, and exits normally with the log still
open. The files it writes must be the same with and without the recorder."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gated import gated_burst  # noqa: E402


def parent_wait(lock):
    lock.acquire()


def child_wait(lock):
    lock.acquire()


def main():
    out = sys.argv[1]
    os.closerange(3, 1 << 16)
    log = os.open(os.path.join(out, "parent.log"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(log, b"parent: started\n")
    # More threads at once than ever before: each needs a chunk of its own (a new claim).
    gated_burst(parent_wait, threads=8, rounds=10)
    os.write(log, b"parent: worked\n")
    pid = os.fork()
    if pid == 0:
        os.write(log, b"child: through the inherited descriptor\n")
        own = os.open(os.path.join(out, "child.log"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(own, b"child: started\n")
        gated_burst(child_wait, threads=8, rounds=10)
        os.write(own, b"child: worked\n")
        os.write(log, b"child: done\n")
        # A normal exit of the child (its recorder trims its file at exit), files still open.
        sys.exit(0)
    _, status = os.waitpid(pid, 0)
    os.write(log, f"parent: child exited {os.waitstatus_to_exitcode(status)}\n".encode())
    print(f"parent {os.getpid()} child {pid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
