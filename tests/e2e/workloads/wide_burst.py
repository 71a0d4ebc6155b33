"""Many threads contending at once, each needing a chunk of its own in the recording: what fills a
small disk. Prints a deterministic line per phase."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gated import gated_burst  # noqa: E402


def wide_wait(lock):
    lock.acquire()


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    for phase in range(3):
        gated_burst(wide_wait, threads=threads, rounds=10)
        print(f"phase {phase} done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
