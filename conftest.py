"""pytest's settings for every pytest layer of the repository (tests/e2e, examples, tests/analyzer):
under CI=true a skip is a failure unless tests/expected-skips.txt lists it (tests/expected_skips.py),
and the `support_row` marker ties a test to a row of README's support table (tests/e2e/test_support_table.py).

This is the only conftest above the test directories, so it is loaded once whichever of them pytest is
given; tests/e2e/conftest.py keeps the e2e machinery."""
import importlib.util
import json
import os
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("ftprof_expected_skips",
                                               Path(__file__).resolve().parent / "tests" / "expected_skips.py")
expected_skips = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = expected_skips
_spec.loader.exec_module(expected_skips)


def pytest_configure(config):
    expected_skips.register(config)
    config.addinivalue_line("markers", "support_row(text): the test backs the row of README's support table "
                            "(Supported Pythons) whose first cell contains `text`, on each interpreter it runs on")


def pytest_collection_modifyitems(config, items):
    """With FTPROF_SUPPORT_ROWS=FILE (set by tests/e2e/test_support_table.py around a --collect-only run),
    writes one JSON line per test carrying support_row markers: its id, the rows it names, and the
    interpreters (FTPROF_PYTHONS labels) it runs on, from its parameters."""
    out = os.environ.get("FTPROF_SUPPORT_ROWS")
    if not out:
        return
    labels = {item.partition("=")[0] for item in os.environ.get("FTPROF_PYTHONS", "").split()}
    with open(out, "w") as f:
        for item in items:
            rows = [text for m in item.iter_markers("support_row") for text in m.args]
            if not rows:
                continue
            params = getattr(item, "callspec", None)
            values = params.params.values() if params else ()
            pythons = sorted({v for v in values if isinstance(v, str) and v in labels})
            f.write(json.dumps({"id": expected_skips.item_id(item), "rows": rows, "pythons": pythons}) + "\n")
