"""Many threads logging through one FileHandler: every record queues on the handler's lock.

Eight worker threads each do a little work and log a line per step through the same
logger, which has one ``logging.FileHandler``. ``Handler.handle`` holds the handler's
``threading.RLock`` while it formats the record (timestamp, level, thread name) and
writes it to the file's buffered writer, so only one thread at a time gets through;
the rest park on that RLock.

Under the profiler two locks stand out, in either order depending on the run:

* an ``rlock``, the handler's: waiters are inside ``Handler.handle`` called from
  ``Logger.info``; holders release it at the end of ``Handler.handle``, after
  ``FileHandler.emit`` / ``Formatter.format``;
* a ``critical_section`` on a ``dict`` in ``LogRecord.__init__``. That dict is
  ``sys.modules``: every record looks up ``multiprocessing`` and ``asyncio`` there to fill
  in ``processName`` and ``taskName``, and in CPython 3.13t ``dict.get`` takes the dict's
  per-object lock. Once those waits start to queue, the lock is handed from thread to
  thread and each hand-off waits for the next thread to be scheduled: a convoy. On a busy
  machine it can make a run several times slower than the last one.

The fix (``--fixed``): the workers' logger gets a ``QueueHandler`` feeding a
``queue.SimpleQueue``, and one ``QueueListener`` thread formats the records and writes
them with the ``FileHandler``, so the expensive formatting and the file I/O run on the
listener's thread, where nobody waits for them. ``QueueHandler.handle`` would still take
its own RLock around ``emit``; since ``SimpleQueue.put`` is thread-safe, the example's
``LocklessQueueHandler`` skips it, and it enqueues the record as it is instead of
formatting and copying it (that copy is for sending records to another process). Finally
``logging.logMultiprocessing`` and ``logging.logAsyncioTasks`` are switched off, since the
format prints neither field, which removes the ``sys.modules`` lookups.

On a machine with few cores this barely changes the total run time: formatting and writing
still cost CPU, and records waiting in the queue make the garbage collector run more often
(short ``stop_the_world`` entries in the after profile). What changes is that workers no
longer wait for each other to log.

    ftprof run -o before.ftp -- python3.13t examples/logging_threads.py
    ftprof run -o after.ftp  -- python3.13t examples/logging_threads.py --fixed
"""

import argparse
import logging
import logging.handlers
import os
import queue
import tempfile
import threading
import time

FORMAT = "%(asctime)s %(levelname)-8s %(threadName)s %(name)s:%(funcName)s:%(lineno)d %(message)s"


class LocklessQueueHandler(logging.handlers.QueueHandler):
    """A QueueHandler for threads: no per-handler lock (the queue is thread-safe on its own)."""

    def prepare(self, record):
        # The base class formats and copies each record so it can be pickled for another
        # process; a listener thread in the same process can format the record itself.
        return record

    def handle(self, record):
        rv = self.filter(record)
        if isinstance(rv, logging.LogRecord):
            record = rv
        if rv:
            self.emit(record)
        return rv


def checksum(step, worker):
    total = 0
    for i in range(800):
        total = (total * 31 + i * step + worker) % 1_000_003
    return total


def worker_loop(log, worker, steps):
    for step in range(steps):
        value = checksum(step, worker)
        log.info("worker %d step %d: checksum %d", worker, step, value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixed", action="store_true", help="log through a QueueHandler and a QueueListener")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ftprof-logging-") as tmp:
        path = os.path.join(tmp, "app.log")
        file_handler = logging.FileHandler(path, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter(FORMAT))
        log = logging.getLogger("app")
        log.setLevel(logging.INFO)
        log.propagate = False

        listener = None
        if args.fixed:
            # Fields this format never prints; collecting them costs two sys.modules.get() calls
            # per record, and dict.get locks the dict in 3.13t: eight threads meet on sys.modules.
            logging.logMultiprocessing = False
            logging.logAsyncioTasks = False
            records = queue.SimpleQueue()
            log.addHandler(LocklessQueueHandler(records))
            listener = logging.handlers.QueueListener(records, file_handler)
            listener.start()
        else:
            log.addHandler(file_handler)

        start = time.perf_counter()
        threads = [threading.Thread(target=worker_loop, args=(log, w, args.steps), name=f"worker-{w}")
                   for w in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        workers_done = time.perf_counter() - start
        if listener is not None:
            listener.stop()  # drains the queue: every record is in the file afterwards
        for handler in list(log.handlers):
            log.removeHandler(handler)
        file_handler.close()
        elapsed = time.perf_counter() - start

        with open(path, encoding="utf-8") as f:
            lines = sum(1 for _ in f)
    expected = args.threads * args.steps
    assert lines == expected, f"{lines} log lines, expected {expected}"
    print(f"logging_threads: {lines} lines from {args.threads} threads; workers done in {workers_done:.2f} s, "
          f"all written in {elapsed:.2f} s ({'queue listener' if args.fixed else 'shared FileHandler'})")


if __name__ == "__main__":
    main()
