"""What the recorder's hooks promise (preload/recorder.h): they take no lock of the program's or the
loader's, and they do not block the program on anything it did not block on itself."""
import json

from conftest import WORKLOADS
from test_recorder import build_extension


def test_native_stacks_do_not_wait_for_the_loader(runner, tmp_path, results):
    """FTPROF_NATIVE=1 unwinds through libunwind, which finds unwind tables with dl_iterate_phdr; glibc's
    holds the loader's lock while any other thread's callback runs. Fresh threads contending while a
    thread sits in such a callback for 3 s must finish as they do without the recorder, long before the
    callback returns, and their waits must carry native frames."""
    so = build_extension(runner.python, tmp_path, "handshake.c", "ftprof_handshake")
    argv = [WORKLOADS / "loader_lock.py", so.parent, "--hold", 3.0, "--seconds", 0.3]
    plain = runner.run(argv, preload=False).truth()
    assert plain["finished_while_held"], f"the workload itself waited for the loader: {plain}"
    run = runner.run(argv, extra_env={"FTPROF_NATIVE": "1"})
    got = run.truth()
    assert got["finished_while_held"], (
        f"with native stacks the workers took {got['workers_s']} s and finished only after the loader's lock "
        f"was let go (without the recorder: {plain['workers_s']} s)")
    rep = runner.report(run.files)
    native = [fr for lk in rep["locks"] for w in lk["waiters"] for fr in w["stack"] if fr["native"]]
    assert native, f"no native frame in any waiter stack:\n{rep.summary()}"
    results.add(f"native stacks with the loader's lock held [{runner.python.label}]",
                workers_s=got["workers_s"], plain_s=plain["workers_s"])
