"""How close the recorder's totals are to what the workloads measure themselves, over hold times and
thread counts. Every ratio goes to the results file; the ±10% wait / ±5% count bounds are asserted
where the workload measures the very same interval (threading.Lock); for critical sections and
stop-the-world the workload can only approximate, so the bounds there are wider and said so."""
import pytest

from conftest import WORKLOADS, ratio, stack_functions

from test_recorder import check_lock_report

HOLDS_MS = [0.2, 1, 5]
THREADS = [2, 4, 8]


@pytest.mark.support_row("threading.Lock as lock", "Python stacks with line numbers")
@pytest.mark.parametrize("hold_ms", HOLDS_MS)
@pytest.mark.parametrize("threads", THREADS)
def test_lock_accuracy(any_runner, results, hold_ms, threads):
    # About half a second of lock-held time per configuration keeps the whole grid near 10 s.
    runner = any_runner
    run = runner.run([WORKLOADS / "lock_contention.py", "--threads", threads, "--hold-ms", hold_ms,
                      "--seconds", 0.5, "--min-contended", 10])
    truth = run.truth()
    assert truth["contended"] >= 10, f"the workload hardly contended: {truth}"
    rep = runner.report(run.files)
    check_lock_report(rep, truth, results, f"accuracy {runner.python.label} lock hold={hold_ms}ms threads={threads}",
                      count_bound=0.05)


@pytest.mark.support_row("critical_section with the object's type")
@pytest.mark.parametrize("container", ["dict", "list"])
def test_critical_section_accuracy(runner, results, container):
    # The writers time a whole store, so their measure is the wait plus the store itself and any
    # descheduling: ±25% on the wait, and the count is compared one-sided (short waits under the
    # workload's 0.2 ms threshold are not counted by it).
    # ~0.1 s operations: see test_recorder.test_critical_section for why short ones are not used.
    run = runner.run([WORKLOADS / "critical_section.py", "--container", container, "--scale", 3,
                      "--rounds", 5])
    truth = run.truth()
    rep = runner.report(run.files)
    cs = [lk for lk in rep.of_kind("critical_section") if lk["type"] == container]
    assert cs, f"no critical_section on a {container}:\n{rep.summary()}"
    writers = [lk for lk in cs
               if any(f"write_{container}" in stack_functions(w) for w in lk["waiters"])]
    wait = sum(lk["wait_ns"] for lk in writers)
    count = sum(lk["contentions"] for lk in writers)
    wait_r = ratio(wait, truth["wait_ns"])
    count_r = ratio(count, truth["contended"])
    results.add(f"accuracy critical_section {container}", wait_ratio=wait_r, count_ratio=count_r,
                recorded_ms=wait / 1e6, measured_ms=truth["wait_ns"] / 1e6)
    assert 0.75 <= wait_r <= 1.25, f"critical section wait ratio {wait_r:.3f} (bound ±25%)"
    assert count_r >= 0.8, f"critical section count ratio {count_r:.3f} (bound: at least 80%)"


@pytest.mark.support_row("stop_the_world")
@pytest.mark.parametrize("threads", [1, 2])
def test_stop_the_world_accuracy(runner, results, threads):
    # A wide bound, 0.3 to 1.3 of the estimate: a thread stopped between allocations waits the whole
    # collection, but the collector's own time to bring the others to a stop is not in its measure.
    run = runner.run([WORKLOADS / "stop_the_world.py", "--threads", threads, "--rounds", 30])
    truth = run.truth()
    rep = runner.report(run.files)
    stw = [lk for lk in rep.of_kind("stop_the_world")
           if any("allocate" in stack_functions(w) for w in lk["waiters"])]
    wait = sum(lk["wait_ns"] for lk in stw)
    expected = threads * truth["gc_ns"]
    r = ratio(wait, expected)
    results.add(f"accuracy stop_the_world threads={threads}", wait_ratio=r, recorded_ms=wait / 1e6,
                expected_ms=expected / 1e6, collections=truth["rounds"])
    assert stw, f"no stop_the_world waits from allocate():\n{rep.summary()}"
    assert 0.3 <= r <= 1.3, f"stop-the-world wait {wait / 1e6:.1f} ms vs ≈{expected / 1e6:.1f} ms expected"
