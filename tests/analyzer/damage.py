#!/usr/bin/env python3
"""Randomly damaged copies of recordings through every analyzer command that reads one.

Each copy is a recording cut short at a random length, then 1-20 of its bytes changed at random (within
what the file holds of its header and used chunks, where a change means something; a quarter of them in
the header, half of those in its first 96 bytes). Every copy goes
through `report`, `report --json`, `flamegraph` (html, svg or folded in turn), `export --format pprof`,
`export --format trace`, `diff` against an intact recording, and `top --once`. Each must exit 0, 3, 4
or 5 (ftprof --help) with, when not 0, a last stderr line `ftprof: ...` that names the damaged file;
never by a signal, a sanitizer report or a timeout. One analyzer run at a time: the copies are small.

The RNG is seeded per copy (seed, recording, copy number), so a failure names the one copy to remake:
    tests/analyzer/damage.py --ftprof build/analyzer/ftprof --intact GOOD.ftp --seed S --copies 1 \\
        --first K REC.ftp

Used by tests/e2e/test_damage.py (killed-run recordings of every interpreter) and tools/sanitize (a
sample under ASan and UBSan); runnable by hand as above.
"""
import argparse
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

ALLOWED = (0, 3, 4, 5)
HEADER_FMT = "<8sHHIIIIII"  # magic, version, min_reader, header_size, features, flags, chunk_size, count, used
HEADER_PAGE = 4096
HEADER_FIELDS = 96  # up to argv (format.h)
FLAME_SUFFIXES = (".html", ".svg", ".folded")
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


def used_length(data):
    """Bytes of the header and the used chunks: where a changed byte changes what is read."""
    if len(data) < struct.calcsize(HEADER_FMT):
        return len(data)
    _, _, _, header_size, _, _, chunk_size, count, used = struct.unpack_from(HEADER_FMT, data)
    return min(len(data), header_size + min(count, used) * chunk_size) or len(data)


def damage(data, rng):
    """(damaged bytes, cut length, [(offset, new byte)])."""
    cut = rng.randrange(1, len(data) + 1)
    out = bytearray(data[:cut])
    span = min(cut, used_length(data))
    flips = []
    for _ in range(rng.randint(1, 20)):
        # A quarter of the changes in the header page, whose fields say where everything else is, half
        # of those in its fixed fields (sizes, counts, versions, flags).
        where = rng.random()
        at = rng.randrange(min(span, HEADER_FIELDS if where < 0.125 else HEADER_PAGE if where < 0.25 else span))
        out[at] = (out[at] + rng.randrange(1, 256)) % 256  # always a different byte
        flips.append((at, out[at]))
    return bytes(out), cut, flips


def commands(copy, intact, work, k):
    """(argv, output file or None) of each command run on one copy."""
    suffix = FLAME_SUFFIXES[k % len(FLAME_SUFFIXES)]
    return [
        (["report", copy], None),
        (["report", "--json", copy], None),
        (["flamegraph", copy, "-o", os.path.join(work, "out" + suffix)], os.path.join(work, "out" + suffix)),
        (["export", copy, "--format", "pprof", "-o", os.path.join(work, "out.pb.gz")],
         os.path.join(work, "out.pb.gz")),
        (["export", copy, "--format", "trace", "-o", os.path.join(work, "out.json")],
         os.path.join(work, "out.json")),
        (["diff", intact, copy], None),
        (["top", copy, "--once"], None),
    ]


def check_run(proc, copy):
    """None, or what is wrong with one command's outcome."""
    err = proc.stderr.decode(errors="replace")
    for mark in SANITIZER_MARKS:
        if mark in err:
            return f"sanitizer report:\n{err[-3000:]}"
    if proc.returncode < 0:
        return f"killed by signal {-proc.returncode}"
    if proc.returncode not in ALLOWED:
        return f"exit {proc.returncode}, not one of {ALLOWED}\n{err[-2000:]}"
    if proc.returncode != 0:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        if not lines:
            return f"exit {proc.returncode} without a message"
        last = lines[-1]
        if not last.startswith("ftprof: ") or os.path.basename(copy) not in last:
            return f"exit {proc.returncode}, its last line does not name the file: {last!r}"
    return None


def run(ftprof, recordings, intact, copies, seed, first=0, timeout=30, env=None, log=None):
    """Damages `copies` copies of each recording; returns a list of failures (strings), empty if all
    were handled. `log` (a callable) gets a line per recording with the exit codes seen."""
    failures = []
    env = dict(os.environ if env is None else env)
    env.pop("FTPROF_OUTPUT", None)
    env["NO_COLOR"] = "1"
    work = tempfile.mkdtemp(prefix="ftprof-damage-")
    try:
        for ri, rec in enumerate(recordings):
            with open(rec, "rb") as f:
                data = f.read()
            seen = {}
            for k in range(first, first + copies):
                rng = random.Random(f"{seed}/{os.path.basename(rec)}/{k}")
                damaged, cut, flips = damage(data, rng)
                copy = os.path.join(work, f"damaged-{k}.ftp")
                with open(copy, "wb") as f:
                    f.write(damaged)
                for argv, out in commands(copy, intact, work, k):
                    try:
                        proc = subprocess.run([ftprof, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                              stdin=subprocess.DEVNULL, timeout=timeout, env=env)
                        problem = check_run(proc, copy)
                        seen[proc.returncode] = seen.get(proc.returncode, 0) + 1
                    except subprocess.TimeoutExpired:
                        problem = f"no exit within {timeout} s"
                    if out and os.path.exists(out):
                        os.unlink(out)
                    if problem:
                        failures.append(f"{rec} copy {k} (--seed {seed} --first {k}): cut to {cut} bytes, "
                                        f"bytes changed (offset, new value): {flips}\n  ftprof {' '.join(argv)}: "
                                        f"{problem}")
                os.unlink(copy)
            if log:
                log(f"{rec}: {copies} copies, {copies * 7} runs, exit codes {dict(sorted(seen.items()))}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ftprof", required=True, help="the ftprof binary")
    ap.add_argument("--intact", required=True, help="an intact recording for `diff`")
    ap.add_argument("--copies", type=int, default=2000)
    ap.add_argument("--seed", default="ftprof")
    ap.add_argument("--first", type=int, default=0, help="number of the first copy (to remake one)")
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("recordings", nargs="+")
    a = ap.parse_args()
    failures = run(a.ftprof, a.recordings, a.intact, a.copies, a.seed, a.first, a.timeout,
                   log=lambda s: print(s, file=sys.stderr))
    for f in failures[:20]:
        print(f, file=sys.stderr)
    if failures:
        print(f"damage: {len(failures)} failing runs", file=sys.stderr)
        return 1
    print(f"damage: {a.copies} copies of {len(a.recordings)} recording(s), every run handled", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
