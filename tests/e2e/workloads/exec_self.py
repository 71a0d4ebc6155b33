"""A program that replaces itself with a new interpreter (os.execv(sys.executable, ...)), as
re-executing servers and some launchers do: the same pid runs two images, each with its own waits."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gated import gated_burst  # noqa: E402


def before_exec(lock):
    lock.acquire()


def after_exec(lock):
    lock.acquire()


def main():
    stage = int(sys.argv[1])
    last = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    if stage < last:
        gated_burst(before_exec)
        print(f"image {stage} pid {os.getpid()}", flush=True)
        os.execv(sys.executable, [sys.executable, os.path.abspath(__file__), str(stage + 1), str(last)])
    gated_burst(after_exec)
    print(f"image {stage} pid {os.getpid()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
