"""The analyzer on damaged recordings: a run killed with SIGKILL under the recorder, then 2,000 copies of
its recording, each cut short at a random point and 1-20 of its bytes changed, through every command
that reads a recording (tests/analyzer/damage.py). Each run exits 0, 3, 4 or 5, with one line naming
the file when not 0; never by a signal or a timeout.

FTPROF_DAMAGE_COPIES changes the number of copies (2,000), FTPROF_DAMAGE_SEED the seed; a failure
prints the seed, the copy's number, its length and the bytes changed, and the command that remakes it.
"""
import os
import sys
from pathlib import Path

from conftest import FLAG_FINISHED, read_header

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analyzer"))
import damage  # noqa: E402

COPIES = int(os.environ.get("FTPROF_DAMAGE_COPIES", "2000"))
SEED = os.environ.get("FTPROF_DAMAGE_SEED", "issue15")


def killed_recording(runner, name, marker):
    """A recording of lock contention killed with SIGKILL once `marker` contended acquisitions were made:
    a 1 MiB buffer of 64 KiB chunks, partly written as a crash leaves them; 8 threads take 8 chunks or
    more, so cuts fall past the reader's first group of 8 too."""
    out = runner.tmp / name
    runner.kill_at_mark(marker, ["--threads", 8, "--hold-ms", 0.05], extra_env={"FTPROF_BUFFER": "1M"}, output=out,
                        timeout=120)
    assert out.exists(), "the killed process left no recording"
    assert not read_header(out)["flags"] & FLAG_FINISHED
    return out


def test_damaged_killed_recordings(any_runner):
    # Named by interpreter: the damage is seeded by the file's name, so each interpreter gets its own.
    rec = killed_recording(any_runner, f"killed-{any_runner.python.label}.ftp", 100)
    intact = killed_recording(any_runner, "intact.ftp", 50)
    r = any_runner.cli_run("report", rec)
    assert r.returncode == 0 and "contended acquisitions" in r.stdout, r.stderr
    assert read_header(rec)["chunks_used"] >= 8, "fewer than 8 chunks: the cuts miss the reader's second group"
    lines = []
    failures = damage.run(str(any_runner.cli), [str(rec)], str(intact), COPIES, SEED, log=lines.append)
    print("\n".join(lines))
    assert not failures, (f"{len(failures)} of {COPIES * 7} runs on damaged copies failed; the first:\n"
                          + "\n".join(failures[:5])
                          + f"\nremake one: tests/analyzer/damage.py --ftprof {any_runner.cli} --intact INTACT "
                            f"--seed {SEED} --copies 1 --first K {rec.name}")
