"""What the recorder sees in real Python programs: each workload measures its own truth, the recording
is read back with `ftprof report --json`, and the two must tell the same story (kinds, types,
functions, lines, and totals within the issue's bounds)."""
import platform
import shutil
import re
import subprocess
from pathlib import Path

import pytest

from conftest import (NATIVE, WORKLOADS, clean_env, compile_c, marker_line, python_build_flags,
                      ratio, stack_functions, top_frame, top_function)

LOCK_WL = WORKLOADS / "lock_contention.py"


def workload_lock(rep, waiter_func="take", kinds=("lock",)):
    """The one lock the workload contends: the lock of `kinds` whose waiters run `waiter_func`."""
    found = rep.with_waiter_function(waiter_func, kinds=kinds)
    assert found, (f"no {kinds} lock with a waiter in {waiter_func}() in the report:\n{rep.summary()}")
    assert len(found) == 1, (f"the workload contends one lock, the report shows {len(found)} with a "
                             f"waiter in {waiter_func}():\n{rep.summary()}")
    return found[0]


def check_lock_report(rep, truth, results, label, count_bound=0.2, kind="lock"):
    """Compares the waits recorded at the blocking acquire() line with what the workload timed there.

    Waits elsewhere on the same lock are real but outside the workload's measure: in 3.13 even
    acquire(blocking=False) spins (up to 40 yields) when it loses a race for an unlocked mutex, and the
    recorder rightly reports that spin at the non-blocking call's line. They are printed, not compared."""
    lk = workload_lock(rep, kinds=(kind,))
    line = marker_line(LOCK_WL, "acquire")
    at_line = [w for w in lk["waiters"] if top_function(w) == "take" and top_frame(w)["line"] == line]
    wait = sum(w["wait_ns"] for w in at_line)
    count = sum(w["count"] for w in at_line)
    wait_r = ratio(wait, truth["wait_ns"])
    count_r = ratio(count, truth["contended"])
    results.add(label, wait_ratio=wait_r, count_ratio=count_r, recorded_ms=wait / 1e6,
                measured_ms=truth["wait_ns"] / 1e6, recorded_n=count, measured_n=truth["contended"],
                other_waits_on_lock=lk["contentions"] - count)
    assert 0.9 <= wait_r <= 1.1, (f"{label}: recorded wait {wait / 1e6:.1f} ms vs measured "
                                  f"{truth['wait_ns'] / 1e6:.1f} ms (ratio {wait_r:.3f}, bound ±10%)")
    assert 1 - count_bound <= count_r <= 1 + count_bound, (
        f"{label}: recorded {count} contended acquisitions vs {truth['contended']} measured "
        f"(ratio {count_r:.3f}, bound ±{count_bound:.0%})")
    return lk


@pytest.mark.support_row("Python stacks with line numbers", "holders (the releaser's stack)")
@pytest.mark.parametrize("threads", [2, 4, 8])
def test_lock_contention(runner, results, threads):
    run = runner.run([LOCK_WL, "--threads", threads, "--hold-ms", 1])
    truth = run.truth()
    assert len(run.files) == 1, f"expected one recording, got {run.files}"
    rep = runner.report(run.files)
    lk = check_lock_report(rep, truth, results, f"lock threads={threads} hold=1ms")

    assert lk["kind"] == "lock"
    assert lk["threads"] >= 2, "more than one thread waited on the lock"
    assert lk["max_wait_ns"] >= lk["p99_wait_ns"] >= lk["p50_wait_ns"] > 0
    assert lk["waiters"] and lk["holders"], f"waiters and holders expected:\n{rep.summary()}"

    top_w = top_frame(lk["waiters"][0])
    assert top_w["function"] == "take", f"top waiter frame {top_w}"
    assert top_w["line"] == marker_line(LOCK_WL, "acquire"), f"top waiter frame {top_w}"
    assert top_w["file"] and top_w["file"].endswith("lock_contention.py")
    assert "worker" in stack_functions(lk["waiters"][0]), "caller of take() missing from the waiter stack"

    top_h = top_frame(lk["holders"][0])
    assert top_h["function"] == "hold_and_release", f"top holder frame {top_h}"
    assert top_h["line"] == marker_line(LOCK_WL, "release"), f"top holder frame {top_h}"
    # Every wake-up has a releaser; a waiter woken more than once per acquisition may add one more. A wait
    # that ended while spinning (3.15 re-reads the lock as it spins; a loaded machine stretches the spin)
    # was woken by nobody and has no holder.
    assert sum(h["count"] for h in lk["holders"]) >= 0.8 * lk["parked"], (
        f"most parked waits lack a holder ({lk['parked']} parked of {lk['contentions']})")


@pytest.mark.support_row("threading.RLock as rlock", "holders (the releaser's stack)")
def test_rlock_contention(any_runner, results):
    """threading.RLock, on every build: a PyThread semaphore in 3.13 (recognised by where it was made, the
    RLock factory), a _PyRecursiveMutex parked on like a Lock's PyMutex from 3.14 (named by its type)."""
    run = any_runner.run([LOCK_WL, "--rlock", "--threads", 4, "--hold-ms", 1])
    truth = run.truth()
    rep = any_runner.report(run.files)
    lk = check_lock_report(rep, truth, results, f"rlock {any_runner.python.label} threads=4 hold=1ms", kind="rlock")
    assert lk["threads"] >= 2
    top_w = top_frame(lk["waiters"][0])
    assert (top_w["function"], top_w["line"]) == ("take", marker_line(LOCK_WL, "acquire")), top_w
    # 1 ms holds outlast any spin: waiters park, and the releaser that woke them is the holder.
    assert lk["parked"] > 0, f"no RLock wait parked:\n{rep.summary()}"
    assert lk["holders"] and top_function(lk["holders"][0]) == "hold_and_release", rep.summary()
    assert not rep.with_waiter_function("take", kinds=("other", "pymutex", "lock")), \
        f"RLock waits under another kind:\n{rep.summary()}"
    # A new thread waiting in its bootstrap until Thread.start lets it run is waiting for work, not `other`.
    assert not rep.of_kind("other"), f"unnamed waits:\n{rep.summary()}"


def test_rlocks_parked_on_while_their_type_is_being_defined(any_runner):
    """Two threads park on their first RLocks at once: one defines the RLock type (FTPROF_TEST_SLOW_TYPES
    stretches that to a second), the other finds the definition pending. Both waits are RLock waits,
    each within 10% of the workload's own clock (the late one once came out as an unnamed PyMutex)."""
    if any_runner.python.version < (3, 14):
        pytest.skip("3.13's RLock is a semaphore, classified by where it was made, not by its type")
    wl = WORKLOADS / "first_rlocks.py"
    run = any_runner.run([wl], extra_env={"FTPROF_TEST_SLOW_TYPES": "1"})
    truth = run.truth()
    rep = any_runner.report(run.files)
    line = marker_line(wl, "wait")
    waits = [(lk, w) for lk in rep.locks for w in lk["waiters"]
             if top_function(w) == "take" and top_frame(w)["line"] == line and lk["kind"] != "gil"]
    assert len({lk["name"] for lk, _ in waits}) == 2, f"two locks waited on at line {line}:\n{rep.summary()}"
    for lk, w in waits:
        assert (lk["kind"], lk["type"]) == ("rlock", "_thread.RLock"), f"{lk['name']}:\n{rep.summary()}"
    recorded = sorted(w["wait_ns"] for _, w in waits)
    measured = sorted([truth["early_ns"], truth["late_ns"]])
    for r, m in zip(recorded, measured):
        assert 0.9 <= ratio(r, m) <= 1.1, (recorded, measured)


def _has_debug_info(python):
    """Whether the object holding _PyRuntime (the executable, or a shared libpython) has DWARF."""
    code = ("import sys, sysconfig, os; shared = sysconfig.get_config_var('Py_ENABLE_SHARED'); "
            "print(os.path.join(sysconfig.get_config_var('LIBDIR'), sysconfig.get_config_var('LDLIBRARY')) "
            "if shared else sys.executable)")
    holder = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=clean_env(),
                            check=True).stdout.strip()
    readelf = shutil.which("readelf")
    if not readelf:
        return None
    sections = subprocess.run([readelf, "-SW", holder], capture_output=True, text=True).stdout
    return ".debug_info" in sections


def busiest_lock_waited_in(runner, wl, function, kind):
    """Runs a workload with 4 threads; returns its report and the `kind` lock waited on most in `function`."""
    rep = runner.report(runner.run([wl, "--threads", 4]).files)
    found = rep.with_waiter_function(function, kinds=(kind,))
    assert found, f"no {kind} wait in {function}():\n{rep.summary()}"
    return rep, max(found, key=lambda l: l["wait_ns"])


def _field_name_expected(python, lk, field_re):
    """The interpreter's DWARF names the field. Without it the name is an offset (unless a separate debug
    file supplied the field), and what the support table promises is not checked: the test skips."""
    debug = _has_debug_info(python)
    if debug is None:
        pytest.skip("no readelf to tell whether the interpreter has debug information")
    if not debug:
        assert re.fullmatch(field_re, lk["name"]) or lk["name"].startswith("PyMutex _PyRuntime+0x"), lk["name"]
        pytest.skip(f"{python} has no debug information: the lock's field is not named ({lk['name']})")
    assert re.fullmatch(field_re, lk["name"]), lk["name"]


@pytest.mark.support_row("pymutex named by its field")
def test_pymutex_in_the_interpreter_state_is_named_by_its_field(runner, ft_python):
    """weakref.ref() of one shared object from four threads: every call takes the weakref lock chosen by
    the object's address, one of the PyMutexes inside the interpreter state (all three versions)."""
    wl = WORKLOADS / "weakref_lock.py"
    rep, lk = busiest_lock_waited_in(runner, wl, "take_refs", "pymutex")
    assert top_frame(lk["waiters"][0])["line"] == marker_line(wl, "weakref"), lk["waiters"][0]
    # Waits that ended while spinning (a loaded machine stretches the spin) were woken by nobody.
    assert lk["parked"] == 0 or (lk["holders"] and top_function(lk["holders"][0]) == "take_refs"), \
        f"holders:\n{rep.summary()}"
    _field_name_expected(ft_python, lk, r"PyMutex interp->weakref_locks\[\d+\]")


def test_kinds_do_not_depend_on_native_stacks(runner):
    """The same contention recorded with and without FTPROF_NATIVE=1 gets the same kinds: a spin is placed
    on a lock through its Python frames, never through native frames that every stack has."""
    wl = WORKLOADS / "weakref_lock.py"

    line = marker_line(wl, "weakref")

    def kinds(extra):
        rep = runner.report(runner.run([wl, "--threads", 4], extra_env=extra).files)
        out = {}
        # The weak references' waits only, at their line: on a loaded machine the threads started first
        # wait at the barrier in take_refs (its condition, and the lock under it) for as long as the
        # last one takes to start, which says nothing about spins.
        for lk in rep.locks:
            at_line = [w for w in lk["waiters"] if (top_frame(w) or {}).get("function") == "take_refs"
                       and top_frame(w)["line"] == line]
            if at_line:
                out[lk["kind"]] = out.get(lk["kind"], 0) + sum(w["wait_ns"] for w in at_line)
        return out, rep
    plain, rep_p = kinds(None)
    native, rep_n = kinds({"FTPROF_NATIVE": "1"})
    main_p = max(plain, key=plain.get)
    main_n = max(native, key=native.get)
    assert main_p == main_n == "pymutex", (plain, native, rep_p.summary(), rep_n.summary())
    for k in ("other",):
        for kinds_, rep in ((plain, rep_p), (native, rep_n)):
            assert kinds_.get(k, 0) <= 0.1 * sum(kinds_.values()), (k, kinds_, rep.summary())


@pytest.mark.support_row("pymutex named by its field")
def test_type_attribute_assignment(runner, ft_python):
    """Assigning attributes of each thread's own class: no object is shared, but every assignment takes
    the interpreter's one type lock (interp->types.mutex: type_setattro updates the type's version under
    it). 3.14 and 3.15 also lock the class's own dict there, and contend on the type lock much less."""
    wl = WORKLOADS / "type_lock.py"
    rep = runner.report(runner.run([wl, "--threads", 4]).files)
    found = rep.with_waiter_function("assign", kinds=("pymutex",))
    if ft_python.version == (3, 13):
        assert found, f"no pymutex wait in assign():\n{rep.summary()}"
    for lk in found:
        assert top_frame(lk["waiters"][0])["line"] == marker_line(wl, "assign"), lk["waiters"][0]
        assert lk["parked"] == 0 or (lk["holders"] and top_function(lk["holders"][0]) == "assign"), rep.summary()
        _field_name_expected(ft_python, lk, r"PyMutex interp->types\.mutex")


def _report_peak_rss_kib(cli, files):
    """Peak RSS of `ftprof report`, measured by GNU time: a child forked from this (large) Python
    process would carry its high-water mark over the exec."""
    gnu_time = Path("/usr/bin/time")
    if not gnu_time.is_file():
        pytest.skip("no GNU time (make deps installs it)")
    proc = subprocess.run([str(gnu_time), "-f", "%M", str(cli), "report", "--json", *map(str, files)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=clean_env())
    assert proc.returncode == 0, proc.stderr
    return int(proc.stderr.strip().splitlines()[-1])


def test_recordings_of_one_interpreter_share_its_debug_information(runner, ft_python):
    """Naming interpreter-internal locks reads the interpreter's DWARF: once per interpreter binary,
    not once per recording, or merging the recordings of a many-process run would cost memory per
    file (it was 1.6 MiB each)."""
    if not _has_debug_info(ft_python):
        pytest.skip("the interpreter has no debug information: nothing is read")
    files = []
    for _ in range(24):
        files += runner.run([WORKLOADS / "weakref_lock.py", "--threads", 3, "--rounds", 100_000]).files
    rep = runner.report(files)
    named = [l for l in rep.of_kind("pymutex") if re.fullmatch(r"PyMutex interp->weakref_locks\[\d+\]", l["name"])]
    assert len({l["pid"] for l in named}) >= 12, f"the weakref lock is named in few recordings:\n{rep.summary()}"
    one = _report_peak_rss_kib(runner.cli, files[:1])
    all_ = _report_peak_rss_kib(runner.cli, files)
    per_file = (all_ - one) / (len(files) - 1)
    assert per_file < 800, f"{per_file:.0f} KiB more per recording ({one} KiB for one, {all_} KiB for {len(files)})"


@pytest.mark.support_row("source lines for frozen standard-library modules")
def test_waits_inside_a_frozen_stdlib_module(runner, ft_python):
    """isinstance() against an ABC from several threads: the waits are in ABCMeta.__instancecheck__,
    whose file is "<frozen abc>" (as in Python's tracebacks); the report still shows the source line,
    read from the standard library's abc.py."""
    wl = WORKLOADS / "abc_isinstance.py"
    # The ABC's locks: critical sections on its objects, or (3.15, some runs) a PyMutex of the interpreter's.
    rep = runner.report(runner.run([wl, "--threads", 4]).files)
    found = rep.with_waiter_function("ABCMeta.__instancecheck__", kinds=("critical_section", "pymutex"))
    assert found, f"no wait in ABCMeta.__instancecheck__():\n{rep.summary()}"
    lk = max(found, key=lambda l: l["wait_ns"])
    # The ABC machinery's own objects: its negative cache (a set of weak references, locked as a set, or
    # through the weak reference being looked up) or, in 3.15, the class's _abc_data.
    assert lk["kind"] == "pymutex" or lk["type"] in ("set", "weakref.ReferenceType", "_abc._abc_data"), lk["type"]
    top = top_frame(lk["waiters"][0])
    assert top["file"] == "<frozen abc>", top
    assert "check" in stack_functions(lk["waiters"][0]), "the workload's caller is missing"
    caller = next(f for f in lk["waiters"][0]["stack"] if f["function"] == "check")
    assert caller["line"] == marker_line(wl, "isinstance"), caller
    # Waits that ended while spinning (stretched on a loaded machine) were woken by nobody.
    assert lk["parked"] == 0 or (lk["holders"] and top_function(lk["holders"][0]) == "ABCMeta.__instancecheck__"), \
        rep.summary()
    stdlib = subprocess.run([str(ft_python), "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
                            capture_output=True, text=True, env=clean_env(), check=True).stdout.strip()
    expected = Path(stdlib, "abc.py").read_text().splitlines()[top["line"] - 1].strip()
    assert lk["source"] == expected, (lk["source"], expected)


@pytest.mark.support_row("critical_section with the object's type")
@pytest.mark.parametrize("writers", [1, 3])
@pytest.mark.parametrize("container", ["dict", "list"])
def test_critical_section(runner, results, container, writers):
    wl = WORKLOADS / "critical_section.py"
    # Long operations (~0.1 s): a blocked writer first spins 40 sched_yield()s, which on a loaded
    # machine can outlast a short operation, leaving a spin with no lock address instead of a park.
    run = runner.run([wl, "--container", container, "--writers", writers, "--scale", 3, "--rounds", 4])
    truth = run.truth()
    rep = runner.report(run.files)
    writer = f"write_{container}"
    holder = f"hold_{container}"
    cs = [lk for lk in rep.of_kind("critical_section") if lk["type"] == container]
    # A spin that never parked, from a stack no park was seen with, is left unattributed: unknown, not
    # filed under another lock (on a loaded machine a writer can also spin briefly on an interpreter
    # mutex). Those may exist, as a small part; any other kind is a misfiled wait.
    unattributed = [lk for lk in rep.with_waiter_function(writer) if lk["name"] == "spin (unattributed)"]
    misfiled = [f"{lk['kind']} '{lk['name']}' ({lk['contentions']} waits)"
                for lk in rep.with_waiter_function(writer)
                if lk["kind"] != "critical_section" and lk not in unattributed]
    assert cs, (f"no critical_section on a {container} in the report; the writers' waits were filed as "
                f"{misfiled}:\n{rep.summary()}")
    assert not misfiled, f"some of the writers' waits on the {container} were filed elsewhere: {misfiled}"
    lk = max(cs, key=lambda x: x["wait_ns"])
    assert sum(u["wait_ns"] for u in unattributed) <= 0.05 * lk["wait_ns"], rep.summary()

    top_w = top_frame(lk["waiters"][0])
    assert top_w["function"] == writer, f"top waiter frame {top_w}\n{rep.summary()}"
    assert top_w["line"] == marker_line(wl, f"{container}-writer"), f"top waiter frame {top_w}"
    # A writer that took the lock while still spinning (40 yields: on a loaded machine they outlast even
    # these 0.1 s operations) was woken by nobody: its holder is unknown. Every writer that parked was
    # woken by the holder.
    assert lk["holders"] or lk["parked"] == 0, f"no holder recorded for the {container}'s critical section"
    # A writer woken by the long operation's end then wakes the next writer, so with several writers
    # the releasers are the holder and the writers; with one writer, only the holder.
    if lk["parked"]:
        releasers = {top_function(h) for h in lk["holders"]}
        assert holder in releasers and releasers <= {holder, writer}, f"releasers {releasers}"
        top_h = next(top_frame(h) for h in lk["holders"] if top_function(h) == holder)
        assert top_h["line"] == marker_line(wl, f"{container}-holder"), f"holder frame {top_h}"
        if writers == 1:
            assert top_function(lk["holders"][0]) == holder, f"top holder {top_frame(lk['holders'][0])}"

    results.add(f"critical_section {container} writers={writers}", wait_ratio=ratio(lk["wait_ns"], truth["wait_ns"]),
                count_ratio=ratio(lk["contentions"], truth["contended"]),
                recorded_n=lk["contentions"], measured_n=truth["contended"])
    assert lk["contentions"] >= truth["contended"] * 0.8, (
        f"{lk['contentions']} recorded waits on the {container}, the writers saw {truth['contended']} "
        f"blocked stores")


def test_dict_spins_at_a_learnt_call_site(runner):
    """Short critical sections on one shared dict: most waits are spins that never park, at the call site
    where critical sections spin. The recorder learns from the spins themselves (a lone locked candidate
    in one register) which register holds the lock there, then reads that register's lock in place; the
    report must still file the spins under the dict's critical section, at the store's line."""
    wl = WORKLOADS / "dict_spins.py"
    run = runner.run([wl], extra_env={"FTPROF_VERBOSE": "1"})
    m = re.search(r"(\d+) spin call sites, (\d+) with their lock's register learnt", run.stderr)
    assert m and int(m.group(2)) >= 1, f"no spin call site learnt its lock's register:\n{run.stderr[-2000:]}"
    rep = runner.report(run.files)
    cs = [lk for lk in rep.of_kind("critical_section") if lk["type"] == "dict"]
    # The start barrier's own lock and condition wait inside write_shared too, at its first line.
    line = marker_line(wl, "dict-store")
    writer = [lk for lk in rep.with_waiter_function("write_shared")
              if any(top_frame(w)["function"] == "write_shared" and top_frame(w)["line"] == line
                     for w in lk["waiters"])]
    unattributed = [lk for lk in writer if lk["name"] == "spin (unattributed)"]
    misfiled = [f"{lk['kind']} '{lk['name']}' ({lk['contentions']} waits)" for lk in writer
                if lk["kind"] != "critical_section" and lk not in unattributed]
    assert cs, f"no critical_section on a dict; the stores' waits were filed as {misfiled}:\n{rep.summary()}"
    assert not misfiled, f"some of the stores' waits were filed elsewhere: {misfiled}\n{rep.summary()}"
    lk = max(cs, key=lambda x: x["wait_ns"])
    assert sum(u["wait_ns"] for u in unattributed) <= 0.05 * lk["wait_ns"], rep.summary()
    top_w = top_frame(lk["waiters"][0])
    assert top_w["function"] == "write_shared" and top_w["line"] == line, (
        f"top waiter frame {top_w}\n{rep.summary()}")


def test_most_spin_yields_take_the_quiet_path(runner):
    """A yield that continues a spin whose lock was already seen locked, or whose site knows its lock's
    register (the spin's first look settles it), touches one cache line of the thread's state and nothing
    shared (the quiet path): on a shared dict's short critical sections, where most waits are spins, most
    yields must take it (94-99% on an idle machine), the yields through the whole hook must be little
    more than one a spin (its start; a spin whose lock was let go before its first look used to look on
    at every yield), and the spins must still be filed under the dict's critical section."""
    wl = WORKLOADS / "dict_spins.py"
    # Two seconds: on 3.15t with both cores busy a second of stores made fewer than 900 yields.
    run = runner.run([wl, "--seconds", 2], extra_env={"FTPROF_VERBOSE": "1"})
    m = re.search(r"(\d+) of (\d+) spin yields on the quiet path, in (\d+) spins", run.stderr)
    assert m, f"no count of the spin yields:\n{run.stderr[-2000:]}"
    quiet, total, spins = int(m.group(1)), int(m.group(2)), int(m.group(3))
    assert total >= 200, f"the workload's spins made only {total} yields: {m.group(0)}"
    assert quiet >= 0.5 * total, f"most yields went through the whole hook: {m.group(0)}"
    # Before a site has learnt its register (sixteen points of evidence), each spin there may look at
    # every yield: a few hundred yields for the two sites of the stores.
    assert total - quiet <= 1.5 * spins + 800, f"spins looked on past their site's first look: {m.group(0)}"
    rep = runner.report(run.files)
    cs = [lk for lk in rep.of_kind("critical_section") if lk["type"] == "dict"]
    assert cs and max(lk["contentions"] for lk in cs) > 0, rep.summary()


def counter_is_the_kernels_clock():
    """Whether the kernel keeps CLOCK_MONOTONIC on the time-stamp counter (the recorder's condition)."""
    try:
        return platform.machine() == "x86_64" and Path(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource").read_text().strip() == "tsc"
    except OSError:
        return False


def test_spins_timed_by_the_counter_keep_the_clocks_rate(runner):
    """A spin's yields are timed by the time-stamp counter where the kernel's clock runs on it: each
    thread converts ticks with a rate it measured against the clock, and checks that rate against the
    clock every millisecond or more. Over the shared dict's spins the rate must have been checked and
    agree with the clock's within 0.1% (a spin of 1 ms off by at most 1 µs); with the counter turned off, the clock times them,
    and either way the stores' waits land on the dict's critical section."""
    wl = WORKLOADS / "dict_spins.py"
    counter = counter_is_the_kernels_clock()
    for clock_only in ("0", "1"):
        # Two seconds: on 3.15t a thread spins seldom, and its rate is first checked 10 ms after its
        # first spin, then at its spins' starts at least 1 ms apart.
        run = runner.run([wl, "--seconds", 2], extra_env={"FTPROF_VERBOSE": "1", "FTPROF_TEST_CLOCK_ONLY": clock_only})
        m = re.search(r"spins timed by the (clock|time-stamp counter)(?: \(its rate within (\d+) ppm of the "
                      r"clock's in (\d+) checks\))?", run.stderr)
        assert m, f"no account of how spins were timed:\n{run.stderr[-2000:]}"
        if counter and clock_only == "0":
            assert m.group(1) == "time-stamp counter", m.group(0)
            assert int(m.group(3)) >= 1, f"the counter's rate was never checked: {m.group(0)}"
            assert int(m.group(2)) <= 1000, f"the counter's rate strays from the clock's: {m.group(0)}"
        else:
            assert m.group(1) == "clock", m.group(0)
        rep = runner.report(run.files)
        cs = [lk for lk in rep.of_kind("critical_section") if lk["type"] == "dict"]
        assert cs and max(lk["wait_ns"] for lk in cs) > 0, rep.summary()


@pytest.mark.support_row("stop_the_world")
def test_stop_the_world(runner, results):
    wl = WORKLOADS / "stop_the_world.py"
    run = runner.run([wl, "--threads", 2])
    truth = run.truth()
    rep = runner.report(run.files)
    stw = rep.of_kind("stop_the_world")
    assert stw, f"forced collections left no stop_the_world waits:\n{rep.summary()}"
    waited_in = {top_function(w) for lk in stw for w in lk["waiters"]}
    assert "allocate" in waited_in, f"allocating threads not seen stopped; waiters in {waited_in}"
    total = rep.total("wait_ns", stw)
    assert total > 0
    expected = truth["threads"] * truth["gc_ns"]
    results.add("stop_the_world", wait_ratio=ratio(total, expected),
                recorded_ms=total / 1e6, expected_ms=expected / 1e6)
    # The pauses of gc.collect() are named as garbage collection, apart from other pauses, and the thread
    # that stopped the world (the collector, at the collect line) is their holder.
    gc = [lk for lk in stw if lk["name"] == "stop-the-world (garbage collection)"]
    assert gc, f"no pause named as garbage collection: {[lk['name'] for lk in stw]}"
    lk = max(gc, key=lambda x: x["wait_ns"])
    assert "allocate" in {top_function(w) for w in lk["waiters"]}, rep.summary()
    assert lk["holders"] and any(fr["function"] == "collect_loop" and fr["line"] == marker_line(wl, "collect")
                                 for h in lk["holders"] for fr in h["stack"]), f"holders: {lk['holders'][:2]}"
    assert rep.total("wait_ns", gc) >= 0.5 * total, "most of the pauses here are the collector's"


def build_extension(python, tmp_path, source, name):
    include, suffix = python_build_flags(python)
    out_dir = tmp_path / "ext"
    out_dir.mkdir(exist_ok=True)
    return compile_c([NATIVE / source], out_dir / f"{name}{suffix}",
                     flags=["-shared", "-fPIC", f"-I{include}", "-Wno-missing-field-initializers"],
                     libs=["-lpthread"])


def _gil_named_by_its_field(python, gil, rep):
    """take_gil waits on the GIL's condition variable: with the interpreter's DWARF the report names the
    field, `interp->_gil.cond` for the main wait and `interp->_gil.*` for every one; without it the name
    is not checked (a skip)."""
    main = max(gil, key=lambda x: x["wait_ns"])
    debug = _has_debug_info(python)
    if debug is None:
        pytest.skip("no readelf to tell whether the interpreter has debug information")
    if not debug:
        pytest.skip(f"{python} has no debug information: the GIL's field is not named ({main['name']})")
    assert main["name"] == "GIL interp->_gil.cond", f"the main GIL wait is named {main['name']!r}:\n{rep.summary()}"
    # Waits for the GIL an import turned on for a moment before the re-enable are their own row, named
    # by what they are (test_names.py checks them).
    fields = [l for l in gil if not l["name"].startswith("GIL (on for an import)")]
    assert all(l["name"].startswith("GIL interp->_gil.") for l in fields), [l["name"] for l in gil]


@pytest.mark.support_row("gil, named by its field", "the GIL turned back on by an extension")
def test_gil_reenabled_by_extension(runner, tmp_path, results):
    so = build_extension(runner.python, tmp_path, "gilmod.c", "ftprof_gilmod")
    run = runner.run([WORKLOADS / "cpu_threads.py", "--import-gilmod", so.parent, "--threads", 3])
    assert run.truth()["gil_enabled"] is True, "importing the extension should have enabled the GIL"
    rep = runner.report(run.files)
    mods = [g for g in rep["gil_enabled"] if g["module"] == "ftprof_gilmod"]
    assert mods, f"gil_enabled does not name ftprof_gilmod: {rep['gil_enabled']}"
    assert mods[0]["path"] and mods[0]["path"].endswith(so.name), mods[0]
    gil = rep.of_kind("gil")
    assert gil, f"CPU-bound threads after the import left no gil waits:\n{rep.summary()}"
    assert rep.with_waiter_function("spin", kinds=("gil",)), (
        f"gil waits are not attributed to spin():\n{rep.summary()}")
    results.add("gil after extension import", gil_wait_ms=rep.total("wait_ns", gil) / 1e6,
                gil_contentions=rep.total("contentions", gil))
    _gil_named_by_its_field(runner.python, gil, rep)


@pytest.mark.support_row("the GIL turned back on by an extension")
@pytest.mark.parametrize("how", ["PYTHON_GIL=1", "-X gil=1"])
def test_gil_kept_from_the_start(runner, how):
    """A free-threaded build told to keep the GIL says so from the start, and names no extension for it
    (3.15 also turns the GIL on transiently while it starts: that is not "from the start")."""
    env = {"PYTHON_GIL": "1"} if how.startswith("PYTHON_GIL") else None
    argv = (["-X", "gil=1"] if how.startswith("-X") else []) + [WORKLOADS / "cpu_threads.py", "--threads", 3]
    run = runner.run(argv, extra_env=env)
    rep = runner.report(run.files)
    assert [f["gil_at_start"] for f in rep["files"]] == [True], rep["files"]
    assert rep["gil_enabled"] == [], rep["gil_enabled"]
    assert rep.of_kind("gil"), f"threads that take turns on the GIL left no gil waits:\n{rep.summary()}"
    plain = runner.report(runner.run([WORKLOADS / "cpu_threads.py", "--threads", 3]).files)
    assert [f["gil_at_start"] for f in plain["files"]] == [False], plain["files"]


@pytest.mark.support_row("condition (waiting for work: Queue.get, Condition.wait)")
def test_queue_waits_are_conditions(any_runner):
    """Consumers blocked in Queue.get() wait for work, on every build (on the GIL builds too, where the
    waits are the same Condition.wait parks)."""
    runner = any_runner
    run = runner.run([WORKLOADS / "queue_pc.py"])
    rep = runner.report(run.files)
    cond = rep.of_kind("condition")
    assert cond, f"consumers waiting in Queue.get() left no condition waits:\n{rep.summary()}"
    assert rep.with_waiter_function("consume", kinds=("condition",)), (
        f"no condition wait comes from consume():\n{rep.summary()}")
    # Parked in Condition.wait itself is waiting for work and must never show up as lock contention.
    # Re-taking the queue's mutex after a notify (Condition._acquire_restore) is real contention.
    for lk in rep.of_kind("lock", "rlock"):
        for w in lk["waiters"]:
            assert top_function(w) != "Condition.wait", (
                f"a Condition.wait shows up as {lk['kind']} contention:\n{rep.summary()}")
    lock_wait = rep.total("wait_ns", rep.of_kind("lock", "rlock"))
    assert rep.total("wait_ns", cond) > lock_wait, f"lock contention dominates a queue:\n{rep.summary()}"


@pytest.mark.support_row("thread_join, within ±15% of the measured join")
def test_thread_join_is_waiting_for_work(any_runner):
    """Joining sleeping workers is a thread_join wait at the join line, as long as the workload measured
    it, on every build; it is never counted as lock contention."""
    wl = WORKLOADS / "join_wait.py"
    run = any_runner.run([wl])
    truth = run.truth()
    rep = any_runner.report(run.files)
    joins = rep.of_kind("thread_join")
    assert joins, f"no thread_join waits:\n{rep.summary()}"
    at_line = [w for lk in joins for w in lk["waiters"]
               if any(f["function"] == "main" and f["line"] == marker_line(wl, "join") for f in w["stack"])]
    assert at_line, f"no join wait from the join line:\n{rep.summary()}"
    r = ratio(sum(w["wait_ns"] for w in at_line), truth["join_ns"])
    assert 0.85 <= r <= 1.15, f"join wait {r:.3f} of the measured {truth['join_ns'] / 1e6:.1f} ms"
    assert not rep.with_waiter_function("Thread.join", kinds=("lock", "rlock", "pymutex", "other")), rep.summary()


def test_sqlite_shared_connection(runner):
    wl = WORKLOADS / "sqlite_shared.py"
    run = runner.run([wl, "--threads", 3])
    rep = runner.report(run.files)
    pm = rep.of_kind("pthread_mutex")
    assert pm, f"threads sharing a sqlite3 connection left no pthread_mutex waits:\n{rep.summary()}"
    lk = max(pm, key=lambda x: x["wait_ns"])
    top = top_frame(lk["waiters"][0])
    assert top and top["function"] == "query", f"the Python caller of execute is not on top: {top}"
    assert top["line"] == marker_line(wl, "execute"), top


def test_uncontended_program_has_no_contention(runner):
    run = runner.run([WORKLOADS / "uncontended.py"])
    rep = runner.report(run.files)
    assert rep.locks == [], f"a single-threaded program shows waits:\n{rep.summary()}"
    assert rep["dropped_events"] == 0


@pytest.mark.support_row("gil, named by its field")
def test_gil_build_cpu_threads(gil_runner):
    run = gil_runner.run([WORKLOADS / "cpu_threads.py", "--threads", 3])
    rep = gil_runner.report(run.files)
    gil = rep.of_kind("gil")
    assert gil, f"no gil waits on the default build:\n{rep.summary()}"
    lk = max(gil, key=lambda x: x["wait_ns"])
    assert top_function(lk["waiters"][0]) == "spin", f"top gil waiter:\n{rep.summary()}"
    _gil_named_by_its_field(gil_runner.python, gil, rep)


def test_gil_build_lock_workload(gil_runner, results):
    run = gil_runner.run([LOCK_WL, "--threads", 4, "--hold-ms", 0.2, "--busy-hold"])
    rep = gil_runner.report(run.files)
    gil = rep.of_kind("gil")
    assert gil, f"no gil waits on the default build:\n{rep.summary()}"
    workload_funcs = {"take", "hold_and_release", "outside", "worker"}
    # Also, threading's own waits re-take the GIL when they return (Thread.start's Condition.wait).
    waited_in = {top_function(w) for lk in gil for w in lk["waiters"]}
    assert waited_in & workload_funcs, f"gil waits not in the workload's functions: {waited_in}"
    main = max(gil, key=lambda x: x["wait_ns"])
    assert top_function(main["waiters"][0]) in workload_funcs, rep.summary()
    results.add("gil build lock workload", gil_wait_ms=rep.total("wait_ns", gil) / 1e6,
                waiter_functions=",".join(sorted(f for f in waited_in if f)))


@pytest.mark.support_row("native frames spliced into the Python stack")
def test_native_stacks_join_python_frames(any_runner):
    """FTPROF_NATIVE=1: the sqlite waits show the native path into SQLite, innermost first, and then the
    Python caller where the interpreter called into C (the sqlite3 module lets go of the GIL around its
    calls, so on the default builds too)."""
    runner = any_runner
    wl = WORKLOADS / "sqlite_shared.py"
    run = runner.run([wl, "--threads", 3], extra_env={"FTPROF_NATIVE": "1"})
    rep = runner.report(run.files)
    pm = rep.of_kind("pthread_mutex")
    assert pm, f"no pthread_mutex waits with FTPROF_NATIVE=1:\n{rep.summary()}"
    stack = max(pm, key=lambda x: x["wait_ns"])["waiters"][0]["stack"]
    names = [(fr["native"], fr["function"] or "") for fr in stack]
    first_py = next((i for i, (native, _) in enumerate(names) if not native), None)
    assert first_py is not None and first_py > 0, f"expected native frames before the Python ones: {names[:12]}"
    native_part = " ".join(n for _, n in names[:first_py])
    assert "sqlite" in native_part, f"the native frames do not reach SQLite: {names[:first_py]}"
    assert names[first_py][1] == "query", f"innermost Python frame after the native ones: {names[first_py]}"
    assert stack[first_py]["line"] == marker_line(wl, "execute")


@pytest.mark.support_row("thread names from threading")
def test_thread_names_are_the_threading_names(any_runner):
    """Each thread is named as threading knows it: MainThread, and the workers' worker-N (their
    threading.Thread(name=...)), which the OS never hears of in 3.13."""
    runner = any_runner
    run = runner.run([LOCK_WL, "--threads", 3, "--hold-ms", 1, "--seconds", 0.2])
    rep = runner.report(run.files)
    names = sorted(t["name"] for t in rep["threads"] if t["name"])
    assert "MainThread" in names, names
    workers = [n for n in names if n.startswith("worker-")]
    assert len(workers) == 3, f"three workers named by threading expected: {names}"
