"""Every ✓ of the support table (docs/support.md, "Supported Pythons") is an assertion: some test names the row with
`@pytest.mark.support_row(TEXT)` (TEXT is part of the row's first cell, backticks left out) and runs on
that column's interpreter; a ✓ whose only tests are expected to skip there (tests/expected-skips.txt) is
not backed. Each test the row's last cell names carries the marker, and each marker names one row.

The tests are collected (not run) in a child pytest with all six interpreters in FTPROF_PYTHONS; the root
conftest.py writes what each marked test names and runs on (FTPROF_SUPPORT_ROWS)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, VERSIONS

sys.path.insert(0, str(ROOT / "tests"))
import expected_skips  # noqa: E402

README = ROOT / "docs" / "support.md"
LABELS = [f"{v}t" for v in VERSIONS] + list(VERSIONS)


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def support_table(text):
    """[(first cell without backticks, {column label: cell}, last cell)] of the table under "## Supported
    Pythons"."""
    section = text.split("\n## Supported Pythons\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    header = _cells(lines[0])
    assert sorted(header[1:-1]) == sorted(LABELS), f"the table's interpreter columns: {header}"
    rows = []
    for line in lines[2:]:
        cells = _cells(line)
        assert len(cells) == len(header), f"a row of {len(cells)} cells under {len(header)} headers: {line}"
        rows.append((cells[0].replace("`", ""), dict(zip(header[1:-1], cells[1:-1])), cells[-1]))
    return rows


@pytest.fixture(scope="module")
def marked(tmp_path_factory):
    """[{"id", "rows", "pythons"}] of every test carrying a support_row marker."""
    out = tmp_path_factory.mktemp("support") / "rows.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS" and not k.startswith("FTPROF_")}
    # Collection only: the interpreters are named, never started.
    env.update(FTPROF_PYTHONS=" ".join(f"{label}=/nonexistent/python{label}" for label in LABELS),
               FTPROF_SUPPORT_ROWS=str(out))
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "tests/e2e", "examples/test_examples.py"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_the_table_parses():
    rows = support_table(README.read_text())
    assert len(rows) >= 15, [r[0] for r in rows]
    for first, cols, _ in rows:
        assert set(cols.values()) <= {"✓", "—", ""}, (first, cols)


def test_every_marker_names_one_row(marked):
    firsts = [r[0] for r in support_table(README.read_text())]
    for t in marked:
        for text in t["rows"]:
            hits = [f for f in firsts if text in f]
            assert len(hits) == 1, f"{t['id']}: support_row({text!r}) matches {len(hits)} rows: {hits}"


def test_every_check_mark_has_a_test(marked):
    """The README's ✓ for (row, interpreter) needs a test naming the row that runs on that interpreter
    and is not an expected skip there."""
    entries = expected_skips.load()
    missing = []
    for first, cols, _ in support_table(README.read_text()):
        for label, cell in cols.items():
            if cell != "✓":
                continue
            backing = [t["id"] for t in marked if label in t["pythons"] and any(text in first for text in t["rows"])
                       and not expected_skips.match(entries, t["id"])]
            if not backing:
                missing.append(f"{label}: {first}")
    assert not missing, "✓ with no test naming the row on that interpreter:\n  " + "\n  ".join(missing)


def test_the_tests_a_row_names_carry_its_marker(marked):
    """The last cell names tests (`test_x`, `test_file.py::test_x`) or whole files (`test_file.py`): each
    carries the row's marker (a file: one of its tests does)."""
    wrong = []
    for first, _, tests in support_table(README.read_text()):
        for name in re.findall(r"`([^`]+)`", tests):
            file, _, func = name.rpartition("::") if "::" in name else (
                (name, "", "") if name.endswith(".py") else ("", "", name))
            ids = [t["id"] for t in marked if any(text in first for text in t["rows"])]
            ok = any((not file or Path(i.split("::")[0]).name == file)
                     and (not func or re.fullmatch(rf"{re.escape(func)}(\[.*\])?", i.split("::", 1)[1]))
                     for i in ids)
            if not ok:
                wrong.append(f"{name} (row: {first})")
    assert not wrong, "named in the table without the row's support_row marker:\n  " + "\n  ".join(wrong)
