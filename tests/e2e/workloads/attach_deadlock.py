"""A service that deadlocks while ftprof is attached: threads "left" and "right" wait until the file
GO exists, then take their first lock, meet at a barrier and block for good on the other's lock (lines
marked @left_waits, @right_waits). The main thread stays in Python (short sleeps) until the file END
exists, so PEP 768 reaches it; prints "READY" (flushed) first.

  attach_deadlock.py GO END
"""
import os
import sys
import threading
import time

go, end = sys.argv[1], sys.argv[2]
first, second = threading.Lock(), threading.Lock()
both_hold = threading.Barrier(2)


def wait_for_go():
    while not os.path.exists(go):
        time.sleep(0.01)


def left():
    wait_for_go()
    with first:
        both_hold.wait()
        with second:  # @left_waits
            pass


def right():
    wait_for_go()
    with second:
        both_hold.wait()
        with first:  # @right_waits
            pass


for f in (left, right):
    threading.Thread(target=f, name=f.__name__, daemon=True).start()
print("READY", flush=True)
while not os.path.exists(end):
    time.sleep(0.02)
print("main thread done")
