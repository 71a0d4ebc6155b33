"""A daemon that owns descriptors 0, 1 and 2: it closes the ones it was started with, opens files of its
own under those numbers, writes known lines to them, and then, with them open, makes the recorder warn
from inside its hooks:
  disk-full  threads contend while the recording's file system (a small one) runs out of room;
  moved      the recording's directory (argv[3]) is emptied first, its files moved aside, so the
             recorder, which reserves chunks through the file's name (FTPROF_TEST_NO_POPULATE=1),
             cannot find its file any more and stops.
Its files must come out byte for byte the same with and without the recorder: a warning written to
"fd 2" would land in err.log. Exit codes: 3 a descriptor number was not the one expected."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gated import gated_burst  # noqa: E402

NAMES = ("in.dat", "out.log", "err.log")


def daemon_wait(lock):
    lock.acquire()


def main():
    out, mode = sys.argv[1], sys.argv[2]
    for fd in (0, 1, 2):
        os.close(fd)
    for want, name in enumerate(NAMES):
        fd = os.open(os.path.join(out, name), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        if fd != want:
            os._exit(3)
        os.write(fd, f"{name}: the daemon's own descriptor {fd}\n".encode())
    if mode == "moved":
        rec_dir = sys.argv[3]
        for name in os.listdir(rec_dir):
            os.rename(os.path.join(rec_dir, name), os.path.join(rec_dir, name + ".moved"))
    # Each new thread needs a chunk of its own: a claim, which meets the full disk or the missing file.
    gated_burst(daemon_wait, threads=16, rounds=10)
    for fd in (0, 1, 2):
        os.write(fd, b"worked\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
