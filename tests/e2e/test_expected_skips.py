"""CI=true's rule for skips (tests/expected_skips.py), on a small test directory and a small meson log:
an unlisted skip fails, a listed one stays a skip, a listed test that ran fails; without CI the skips
stay skips. And the checked-in list itself parses."""
import io
import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tests"))
import expected_skips  # noqa: E402

TESTS = '''
import pytest

def test_missing_tool():
    pytest.skip("no frobnicator")

def test_listed_and_skips():
    pytest.skip("not on this build")

def test_listed_but_runs():
    pass

def test_plain():
    pass
'''
LISTED = """
# comment
test_trial.py::test_listed_and_skips -- does not apply here
test_trial.py::test_listed_but_r?ns -- a stale entry
"""


def run_trial(tmp_path, ci):
    (tmp_path / "test_trial.py").write_text(TESTS)
    (tmp_path / "skips.txt").write_text(LISTED)
    (tmp_path / "conftest.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        import expected_skips

        def pytest_configure(config):
            config.pluginmanager.register(expected_skips.Plugin(expected_skips.load({str(tmp_path / "skips.txt")!r})))
        """))
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS") and not k.startswith("FTPROF_")}
    env["FTPROF_SKIP_TALLY"] = str(tmp_path / "tally")
    if ci:
        env["CI"] = "true"
    junit = tmp_path / "junit.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={junit}",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_trial.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    outcome = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        outcome[case.get("name")] = ("failed" if kinds & {"failure", "error"} else
                                     "skipped" if "skipped" in kinds else "passed")
    return proc, outcome, (tmp_path / "tally").read_text()


def test_under_ci_only_listed_skips_stay_skips(tmp_path):
    proc, outcome, tally = run_trial(tmp_path, ci=True)
    assert outcome == {"test_missing_tool": "failed", "test_listed_and_skips": "skipped",
                       "test_listed_but_runs": "failed", "test_plain": "passed"}, proc.stdout
    assert proc.returncode == 1
    assert "no frobnicator" in proc.stdout and "remove the entry" in proc.stdout, proc.stdout
    assert tally == "matched 2\n"


def test_without_ci_skips_stay_skips(tmp_path):
    proc, outcome, tally = run_trial(tmp_path, ci=False)
    assert outcome == {"test_missing_tool": "skipped", "test_listed_and_skips": "skipped",
                       "test_listed_but_runs": "passed", "test_plain": "passed"}, proc.stdout
    assert proc.returncode == 0 and tally == "matched 2\n"


@pytest.mark.parametrize("ci", [True, False])
def test_meson_skips(tmp_path, ci):
    log = tmp_path / "testlog.json"
    tests = [("ftprof:output / out_html", "SKIP", "chromium not found"), ("ftprof:output / out_pprof", "SKIP", ""),
             ("ftprof:unit / recorder", "OK", ""), ("ftprof:analyzer / report", "FAIL", ""),
             ("ftprof:output / out_svg", "OK", "")]
    log.write_text("".join(json.dumps({"name": n, "result": r, "stderr": e}) + "\n" for n, r, e in tests))
    entries = [expected_skips.Entry("meson:output/out_pprof", "trial", 1),
               expected_skips.Entry("meson:output/out_svg", "a stale entry", 2)]
    said = io.StringIO()
    counts = expected_skips.meson_tally(log, entries, ci, out=said)
    # passed, failed, skipped, listed tests that ran
    assert counts == ((1, 3, 1, 2) if ci else (2, 1, 2, 2)), (counts, said.getvalue())
    assert "meson:output/out_html" in said.getvalue() and "chromium not found" in said.getvalue()


def test_the_checked_in_list_parses():
    entries = expected_skips.load()
    assert all(e.reason and ("::" in e.pattern or e.pattern.startswith("meson:")) for e in entries), entries
    assert len({e.pattern for e in entries}) == len(entries), "an entry is listed twice"
