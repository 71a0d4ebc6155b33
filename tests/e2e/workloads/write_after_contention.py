"""Threads contend, then the program writes its own file: argv[1] is its name, argv[2] how many bytes.
On a small file system the recorder must leave the program the room for it. Prints what it wrote;
exits 4 (with the error on stderr) if the write failed."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gated import gated_burst  # noqa: E402


def contend_wait(lock):
    lock.acquire()


def main():
    path, size = sys.argv[1], int(sys.argv[2])
    gated_burst(contend_wait, threads=8, rounds=10)
    data = bytes(i * 7 % 251 for i in range(size))
    try:
        with open(path, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        print(f"write failed: {e}", file=sys.stderr)
        return 4
    print(f"wrote {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
