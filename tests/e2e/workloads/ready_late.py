"""Extension modules loaded before a recording starts and imported after: in a fork child (whose recording
starts at the fork), or under `ftprof attach` (whose recording starts at the attach).

usage: ready_late.py EXT_DIR fork|attach
  fork:   imports _json, forks; the child imports ftprof_ready_multi and exits; prints the child's pid
  attach: imports _json and ftprof_gilmod, prints READY, waits for a line (running Python code), imports ftprof_ready_multi, prints IMPORTED, reads
          until stdin closes
"""
import json  # noqa: F401  (loads the _json extension module)
import os
import sys

ext_dir, mode = sys.argv[1], sys.argv[2]
sys.path.insert(0, ext_dir)

if mode == "fork":
    pid = os.fork()
    if pid == 0:
        import ftprof_ready_multi  # @child_import
        os._exit(0 if ftprof_ready_multi.square(3) == 9 else 1)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"child": pid, "status": status}))
else:
    import select

    def wait_for_input():
        # The main thread must keep running Python code: an attach (PEP 768) runs at its next eval check.
        while not select.select([sys.stdin], [], [], 0.05)[0]:
            pass
        return sys.stdin.readline()

    import ftprof_gilmod  # noqa: F401  (single-phase: its declaration is in the module object, not its def)
    print("READY", flush=True)
    wait_for_input()
    import ftprof_ready_multi  # @attached_import
    print("IMPORTED", ftprof_ready_multi.square(4), flush=True)
    while wait_for_input():
        pass
