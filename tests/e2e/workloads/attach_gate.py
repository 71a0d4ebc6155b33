"""A target for the attach security tests, with a gate that decides when PEP 768 can run the attach script.

  attach_gate.py UID GID STOPFILE

Started as root, it first drops to UID/GID for good (setresuid: real, effective, saved and file-system
ids; no supplementary groups) and becomes dumpable again, as a service started as that user is. It imports
beforehand all the attach script needs (ctypes, _sha2 or hashlib): the interpreter's own files may not be readable
by UID (an interpreter under /root).

Then it prints "READY" and its main thread reads one line from stdin: a blocking read(), a C call in
which it reaches no eval-breaker check, so a pending attach script waits there for as long as the test
wants, deterministically. After the line, four workers take turns on a Lock (each holds it 1 ms) and the
main thread prints "OPEN" (any pending attach script has run by then: it ran at the first eval-breaker
check after the gate) and stays in Python (short sleeps) until STOPFILE exists; it then prints "done".
"""
import ctypes
import hashlib
import os
import sys
import threading
import time

uid, gid, stopfile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
hashlib.sha256(b"")
try:
    import _sha2  # what the attach script prefers to hashlib
except ImportError:
    pass
if os.getuid() == 0:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    PR_SET_DUMPABLE = 4
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
assert os.getresuid() == (uid, uid, uid), os.getresuid()

lock = threading.Lock()
stop = threading.Event()


def worker():
    while not stop.is_set():
        with lock:  # @acquire
            time.sleep(0.001)


print("READY", flush=True)
sys.stdin.buffer.readline()  # the gate

threads = [threading.Thread(target=worker) for _ in range(4)]
for t in threads:
    t.start()
print("OPEN", flush=True)  # the calls since the gate checked the eval breaker: a pending script has run
while not os.path.exists(stopfile):
    time.sleep(0.02)
stop.set()
for t in threads:
    t.join()
print("done", flush=True)
