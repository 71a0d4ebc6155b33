"""The skips a CI run expects (tests/expected-skips.txt), and what CI=true makes of every other skip.

Under CI=true a skipped test is a failure unless an entry of the list names it, and a listed test that
ran instead of skipping is a failure too (its entry is stale): so the skips of a CI run are exactly the
list's entries that matched a test, each with its reason, and nothing is skipped silently.

Two layers use it:
  - pytest (tests/e2e, examples, tests/analyzer): the repository's root conftest.py calls register(config);
    the plugin turns the reports around as above and prints the tally at the end. With
    FTPROF_SKIP_TALLY=FILE it also writes "matched N" (listed tests that ran) there, for tools/run-tests.
  - meson's C tests (exit 77 is meson's SKIP): tools/run-tests runs
        python3 tests/expected_skips.py meson BUILD/meson-logs/testlog.json
    which prints "passed failed skipped matched" with the same rules applied.

Test ids: pytest's are the file relative to the repository and the test's name with its parameters,
`tests/e2e/test_recorder.py::test_x[3.13t]`; meson's are `meson:SUITE/NAME`, `meson:output/out_html`.
An entry is a test id, where `*` and `?` are wildcards, and a reason after ` -- `.
"""
import fnmatch
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIST = ROOT / "tests" / "expected-skips.txt"
PLUGIN_NAME = "ftprof-expected-skips"


@dataclass(frozen=True)
class Entry:
    pattern: str
    reason: str
    line: int

    def where(self):
        return f"{LIST.relative_to(ROOT)}:{self.line}"


def under_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def load(path=LIST):
    """The entries of the list; a line that is not `PATTERN -- REASON` is an error naming the line."""
    entries = []
    for n, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pattern, sep, reason = line.partition(" -- ")
        if not sep or not pattern.strip() or not reason.strip():
            raise ValueError(f"{path}:{n}: expected `TEST-ID-PATTERN -- REASON`, got {raw!r}")
        entries.append(Entry(pattern.strip(), reason.strip(), n))
    return entries


def match(entries, test_id):
    """The entry naming test_id: `*` and `?` are the only wildcards (brackets are parameters)."""
    return next((e for e in entries if fnmatch.fnmatchcase(test_id, e.pattern.replace("[", "[[]"))), None)


# --------------------------------------------------------------------------------------------------
# pytest

def item_id(item):
    """`tests/e2e/test_recorder.py::test_x[3.13t]`, whatever directory pytest was started from."""
    try:
        file = Path(item.path).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        file = Path(item.path).name
    rest = item.nodeid.split("::", 1)[1] if "::" in item.nodeid else item.name
    return f"{file}::{rest}"


def _skip_reason(rep):
    lr = rep.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        return str(lr[2]).removeprefix("Skipped: ")
    return str(lr)


class Plugin:
    def __init__(self, entries):
        self.entries = entries
        self.matched = []      # ids of the tests run (not deselected) that the list names
        self.skipped = []      # (id, entry) of the tests that skipped as listed
        self.unexpected = []   # (id, reason): skipped, not listed (failures under CI)
        self.stale = []        # (id, entry): listed, but ran (failures under CI)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        rep = outcome.get_result()
        tid = item_id(item)
        entry = match(self.entries, tid)
        if entry and rep.when == "setup":
            self.matched.append(tid)
        if rep.skipped and not hasattr(rep, "wasxfail"):
            reason = _skip_reason(rep)
            if entry:
                self.skipped.append((tid, entry))
                return
            self.unexpected.append((tid, reason))
            if under_ci():
                rep.outcome = "failed"
                rep.longrepr = (f"skipped ({reason}), and CI=true allows only the skips listed in "
                                f"{LIST.relative_to(ROOT)}: make the test run here, or list it with its reason")
        elif entry and rep.when == "call" and rep.passed:
            self.stale.append((tid, entry))
            if under_ci():
                rep.outcome = "failed"
                rep.longrepr = (f"ran and passed, but {entry.where()} expects it to skip ({entry.reason}): "
                                f"remove the entry")

    def pytest_terminal_summary(self, terminalreporter):
        tr = terminalreporter
        tr.write_sep("-", "skips (tests/expected-skips.txt)")
        tr.write_line(f"{len(self.skipped)} skipped as listed, {len(self.matched)} tests run that the list names"
                      + ("" if under_ci() else " (CI is not set: other skips stay skips)"))
        for tid, entry in self.skipped:
            tr.write_line(f"  expected skip {tid}: {entry.reason}")
        for tid, reason in self.unexpected:
            tr.write_line(f"  {'FAILED ' if under_ci() else ''}unlisted skip {tid}: {reason}")
        for tid, entry in self.stale:
            tr.write_line(f"  {'FAILED ' if under_ci() else ''}listed but ran {tid} ({entry.where()})")
        tally = os.environ.get("FTPROF_SKIP_TALLY")
        if tally:
            with open(tally, "w") as f:
                f.write(f"matched {len(self.matched)}\n")


def register(config):
    """Called from pytest_configure; the plugin is registered once per session."""
    if not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(Plugin(load()), PLUGIN_NAME)


# --------------------------------------------------------------------------------------------------
# meson

def meson_tally(testlog, entries, ci, out=sys.stderr):
    """(passed, failed, skipped, matched) of meson's testlog.json with the rules above."""
    passed = failed = skipped = matched = 0
    try:
        lines = Path(testlog).read_text().splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        if not line.strip():
            continue
        t = json.loads(line)
        # meson names a test "PROJECT:SUITE / NAME" in its log
        suite, _, name = t.get("name", "?").rpartition(" / ")
        tid = f"meson:{suite.split(':')[-1]}/{name}"
        result = t.get("result", "")
        entry = match(entries, tid)
        matched += entry is not None
        if result == "SKIP":
            said = (t.get("stderr") or "").strip().splitlines()
            reason = f" ({said[-1]})" if said else ""
            if entry:
                skipped += 1
                print(f"expected skip {tid}: {entry.reason}", file=out)
            elif ci:
                failed += 1
                print(f"FAILED {tid}: skipped (exit 77){reason}, and CI=true allows only the skips listed in "
                      f"{LIST.relative_to(ROOT)}", file=out)
            else:
                skipped += 1
                print(f"unlisted skip {tid}{reason}", file=out)
        elif result in ("OK", "EXPECTEDFAIL"):
            if entry and ci:
                failed += 1
                print(f"FAILED {tid}: ran and passed, but {entry.where()} expects it to skip: remove the entry",
                      file=out)
            else:
                passed += 1
        else:
            failed += 1
    return passed, failed, skipped, matched


def main(argv):
    if len(argv) == 3 and argv[1] == "meson":
        print(*meson_tally(argv[2], load(), under_ci()))
        return 0
    print(f"usage: {argv[0]} meson BUILD/meson-logs/testlog.json", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
