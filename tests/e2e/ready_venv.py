"""Virtual environments with real packages from the package index, for the readiness tests.

One environment per interpreter under ~/.cache/ftprof/venvs/ (FTPROF_VENV_DIR overrides), made once
and reused: a test that finds `state.json` there uses it as is. Each package is installed on its own,
from a binary wheel when the index has one for this interpreter, else built from source (the
environment then holds a distribution without a wheel of the index), else left out; `state.json` says
which. Creation holds a lock, so parallel test runs make it once.

Run as a script (`python3 tests/e2e/ready_venv.py PYTHON...`) to make them ahead of a test run.
"""
import fcntl
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

# Small packages with compiled modules that ship free-threaded wheels for some versions.
PACKAGES = ["msgpack", "PyYAML", "MarkupSafe", "ujson", "psutil"]
IMPORT_NAMES = {"msgpack": "msgpack", "PyYAML": "yaml", "MarkupSafe": "markupsafe", "ujson": "ujson", "psutil": "psutil"}
INSTALL_TIMEOUT = 600


def venv_root():
    return Path(os.environ.get("FTPROF_VENV_DIR", Path.home() / ".cache" / "ftprof" / "venvs"))


def _key(python):
    ident = subprocess.run([str(python), "-c", "import sys,sysconfig; print(sys.version, sysconfig.get_config_var('Py_GIL_DISABLED'))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    return hashlib.sha256(f"{Path(python).resolve()}|{ident}|{PACKAGES}".encode()).hexdigest()[:12]


def _pip(py, args, timeout):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FTPROF_", "LD_PRELOAD", "PYTHON"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    try:
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", *args], capture_output=True, text=True,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return False, "timed out"
    return r.returncode == 0, (r.stderr or r.stdout)[-400:]


def ensure_venv(python, tag):
    """The environment for `python` (made if missing): (path to its python, state dict)."""
    root = venv_root() / f"{tag}-{_key(python)}"
    root.parent.mkdir(parents=True, exist_ok=True)
    state_file = root / "state.json"
    with open(str(root) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if state_file.exists():
            state = json.loads(state_file.read_text())
            vpy = Path(state["python"])
        else:
            subprocess.run([str(python), "-m", "venv", "--clear", str(root)], check=True, capture_output=True)
            vpy = next(p for p in (root / "bin").iterdir() if p.name.startswith("python3."))
            state = {"python": str(vpy), "packages": {}}
        todo = [p for p in PACKAGES if state["packages"].get(p) not in ("wheel", "source")]
        if not todo:
            return vpy, state
        for pkg in todo:  # a package left out last time (the index unreachable?) is tried again
            ok, why = _pip(vpy, ["--only-binary", ":all:", pkg], INSTALL_TIMEOUT)
            if ok:
                state["packages"][pkg] = "wheel"
                continue
            ok, why = _pip(vpy, ["--no-binary", pkg, pkg], INSTALL_TIMEOUT)
            state["packages"][pkg] = "source" if ok else f"missing: {why.strip().splitlines()[-1] if why.strip() else '?'}"
        tmp = state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(state_file)
        return vpy, state


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        tag, _, path = arg.rpartition("=")
        print(ensure_venv(path, tag or Path(path).name))
