"""Many threads logging through one FileHandler: every record queues on the handler's lock.

Eight worker threads each do a little work and log a line per step through the same
logger, which has one ``logging.FileHandler``. ``Handler.handle`` holds the handler's
``threading.RLock`` while it formats the record (timestamp, level, thread name) and
writes it to the file's buffered writer, so only one thread at a time gets through;
the rest park on that RLock.

Under the profiler three locks stand out, in an order that changes from run to run with the
machine's load:

* an ``rlock``, the handler's: waiters are inside ``Handler.handle`` called from
  ``Logger.info``; holders release it at the end of ``Handler.handle``, after
  ``FileHandler.emit`` / ``Formatter.format``;
* a ``pymutex`` named ``interp->types.mutex``: the interpreter's type lock. In 3.13t an
  attribute lookup that misses the type cache takes it, and each record makes several such
  lookups (``Logger.findCaller`` walking the frames in ``_is_internal_frame``,
  ``os.path.basename`` in ``LogRecord.__init__``); eight threads missing at once queue on it;
* a ``critical_section`` on a ``dict`` in ``LogRecord.__init__``. That dict is
  ``sys.modules``: every record looks up ``multiprocessing`` and ``asyncio`` there to fill
  in ``processName`` and ``taskName``, and in CPython 3.13t ``dict.get`` takes the dict's
  per-object lock. Once those waits start to queue, the lock is handed from thread to
  thread and each hand-off waits for the next thread to be scheduled: a convoy. On a busy
  machine it can make a run several times slower than the last one.

The fix (``--fixed``) is the queue-handler pattern: the logger gets a ``QueueHandler`` that
puts each line on a ``queue.SimpleQueue``, and one ``QueueListener`` thread writes them to
the file. Two changes make it fit free threading: ``FormattingQueueHandler`` formats the
record in the thread that logs it (so that work runs on every core instead of piling onto
the writer thread) and takes no handler lock (the queue is thread-safe on its own), and it
queues the finished ``str`` rather than the ``LogRecord``, which the garbage collector
would have to track: with records queueing up, the collector would run, and stop every
thread, again and again. Finally ``logging.logMultiprocessing`` and
``logging.logAsyncioTasks`` are switched off, since the format prints neither field, which
removes the ``sys.modules`` lookups. What is left in the after profile: the writer waiting
on the queue for lines, the threads' waits to put lines on the one shared queue (its
per-object lock, a convoy of its own with more threads than cores), and the type lock, which
``findCaller`` and ``LogRecord`` still take.
On two cores the run time hardly changes - the lines still have to be formatted and
written - but no thread waits for another one's formatting or file write any more.

    ftprof run -o before.ftp -- python3.14t examples/logging_threads.py
    ftprof run -o after.ftp  -- python3.14t examples/logging_threads.py --fixed
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


class FormattingQueueHandler(logging.handlers.QueueHandler):
    """Formats each record in the thread that logs it and queues the finished line.

    ``QueueHandler.handle`` would take the handler's RLock around ``emit``; the queue is
    thread-safe on its own, so this one takes no lock. Formatting here spreads that work over
    every logging thread instead of piling it onto the one writer thread, and a queued ``str``
    is nothing the garbage collector has to track, where a queued ``LogRecord`` is: a backlog
    of records would make the collector run, and stop every thread, again and again.
    """

    def handle(self, record):
        rv = self.filter(record)
        if isinstance(rv, logging.LogRecord):
            record = rv
        if rv:
            self.emit(record)
        return rv

    def prepare(self, record):
        return self.format(record)


class LineWriter(logging.handlers.QueueListener):
    """The one thread that touches the file: writes the lines the logging threads queued."""

    def __init__(self, lines, stream):
        super().__init__(lines)
        self.stream = stream

    def handle(self, line):
        self.stream.write(line + "\n")
        self.stream.flush()  # as FileHandler does after every record


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
    parser.add_argument("--fixed", action="store_true", help="format in each thread, queue the lines, write them from one thread")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ftprof-logging-") as tmp:
        path = os.path.join(tmp, "app.log")
        log = logging.getLogger("app")
        log.setLevel(logging.INFO)
        log.propagate = False

        listener = stream = None
        if args.fixed:
            # Fields this format never prints; collecting them costs two sys.modules.get() calls
            # per record, and dict.get locks the dict in 3.13t: eight threads meet on sys.modules.
            logging.logMultiprocessing = False
            logging.logAsyncioTasks = False
            line_queue = queue.SimpleQueue()
            handler = FormattingQueueHandler(line_queue)
            handler.setFormatter(logging.Formatter(FORMAT))
            log.addHandler(handler)
            stream = open(path, "a", encoding="utf-8")
            listener = LineWriter(line_queue, stream)
            listener.start()
        else:
            file_handler = logging.FileHandler(path, encoding="utf-8")
            file_handler.setFormatter(logging.Formatter(FORMAT))
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
            listener.stop()  # drains the queue: every line is in the file afterwards
            stream.close()
        for handler in list(log.handlers):
            log.removeHandler(handler)
            handler.close()
        elapsed = time.perf_counter() - start

        with open(path, encoding="utf-8") as f:
            lines = sum(1 for _ in f)
    expected = args.threads * args.steps
    assert lines == expected, f"{lines} log lines, expected {expected}"
    print(f"logging_threads: {lines} lines from {args.threads} threads; workers done in {workers_done:.2f} s, "
          f"all written in {elapsed:.2f} s ({'queued lines, one writer' if args.fixed else 'shared FileHandler'})")


if __name__ == "__main__":
    main()
