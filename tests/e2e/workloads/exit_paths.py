"""Ways a profiled program ends: os._exit with a status, KeyboardInterrupt from SIGINT, an uncaught
exception, sys.exit with a status; after some contention so the recorder has work in flight."""
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gated import gated_burst  # noqa: E402


def exit_wait(lock):
    lock.acquire()


def main():
    how = sys.argv[1]
    gated_burst(exit_wait, rounds=20, hold_s=0.0005)
    print("before", how, flush=True)
    print("on stderr", file=sys.stderr, flush=True)
    if how == "os_exit":
        os._exit(7)
    if how == "sigint":
        # A thread is still alive when the interrupt arrives, as in a real Ctrl-C.
        ev = threading.Event()
        t = threading.Thread(target=ev.wait, daemon=True)
        t.start()
        signal.raise_signal(signal.SIGINT)
        print("not reached")
    if how == "raise":
        raise RuntimeError("boom")
    if how == "sys_exit":
        sys.exit(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
