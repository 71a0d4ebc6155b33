"""What many workloads do alike, written once: reading their numeric options, starting a group of
threads and waiting for them all, and computing for a given CPU time. Not a workload itself (its name
starts with "_"). Every wait a test checks by function or line stays in the workload's own file: what is
here only parses, starts, joins and computes."""
import argparse
import time


def options(*positional, **defaults):
    """Parses the command line: each name in `positional` is a required argument (a string), each
    keyword an option --NAME (underscores written as dashes) of its default's type."""
    parser = argparse.ArgumentParser()
    for name in positional:
        parser.add_argument(name)
    for name, default in defaults.items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    return parser.parse_args()


def run_threads(threads):
    """Starts every thread, then waits for each to end."""
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def burn(cpu_ns):
    """Computes until this thread has used `cpu_ns` more nanoseconds of its own CPU time."""
    end = time.thread_time_ns() + cpu_ns
    x = 0
    while time.thread_time_ns() < end:
        for i in range(200):
            x += i * i
    return x
