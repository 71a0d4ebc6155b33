"""Installing ftprof the two supported ways and profiling with what got installed, nothing else:

  1. `meson setup --prefix=TMP && meson install`, then TMP/bin/ftprof run finds TMP/lib*/ftprof/libftprof.so
  2. `pip install <repo>` into a venv of the free-threaded interpreter, then `ftprof` is on the venv's
     PATH and finds <venv>/share/ftprof/libftprof.so

Each builds the project from scratch (minutes on a small machine): FTPROF_SKIP_SLOW=1 skips them.
The pip test needs meson-python from the package index (build isolation).
"""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import FT_LABELS, ROOT, _python, clean_env, stack_functions, validate_report

pytestmark = pytest.mark.skipif(os.environ.get("FTPROF_SKIP_SLOW") == "1",
                                reason="FTPROF_SKIP_SLOW=1: packaging tests build the project from scratch")

BUILD_TIMEOUT = 1800

# Four threads take turns on one lock and hold it long enough that the others always park on it.
CONTENDED = """\
import threading, time

lock = threading.Lock()

def work():
    for _ in range(25):
        with lock:
            time.sleep(0.002)

threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("done")
"""


def _run(cmd, *, env=None, cwd=None, timeout=600, expect_rc=0):
    proc = subprocess.run([str(c) for c in cmd], env=env or clean_env(), cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)
    if expect_rc is not None:
        assert proc.returncode == expect_rc, (
            f"{' '.join(str(c) for c in cmd)} exited {proc.returncode} (expected {expect_rc})\n"
            f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}")
    return proc


def _meson_version():
    match = re.search(r"version\s*:\s*'([^']+)'", (ROOT / "meson.build").read_text())
    assert match, "meson.build has no project version"
    return match.group(1)


def _site_package(venv):
    found = sorted(venv.glob("lib/python3*/site-packages/ftprof"))
    assert len(found) == 1, f"expected one site-packages/ftprof in {venv}, found {found}"
    return found[0]


def _is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def _profile_contended(cli, python, tmp, env, tag):
    """`ftprof run` on the contended script: exit status, recording, and a report naming the lock."""
    script = tmp / f"contended_{tag}.py"
    script.write_text(CONTENDED)
    recording = tmp / f"{tag}.ftp"
    proc = _run([cli, "run", "-o", recording, "--", python, script], env=env, cwd=tmp, timeout=300)
    assert "done" in proc.stdout, f"the profiled program did not run to its end:\n{proc.stdout}\n{proc.stderr}"
    assert recording.exists(), f"no recording at {recording}; stderr:\n{proc.stderr}"
    assert str(recording) in proc.stderr, f"ftprof run did not name the recording:\n{proc.stderr}"

    report = _run([cli, "report", recording, "--json"], env=env, timeout=300)
    rep = json.loads(report.stdout)
    validate_report(rep)
    locks = [lk for lk in rep["locks"] if lk["kind"] == "lock"
             and any("work" in stack_functions(w) for w in lk["waiters"])]
    assert locks, "the installed recorder saw no contended threading.Lock waited on in work():\n" + \
        "\n".join(f"  {lk['kind']} n={lk['contentions']}" for lk in rep["locks"][:10])
    assert locks[0]["contentions"] >= 10, f"only {locks[0]['contentions']} contentions on the lock"
    return proc


@pytest.mark.support_row("faults (kill -9, fork, exec, close-all, full disk, …), CLI, packaging")
def test_meson_install_prefix(tmp_path, ft_python):
    meson = shutil.which("meson")
    if not meson:
        pytest.skip("meson is not on PATH")
    build = tmp_path / "build"
    prefix = tmp_path / "prefix"
    env = clean_env()
    _run([meson, "setup", build, ROOT, f"--prefix={prefix}", "--buildtype=debugoptimized"], env=env,
         timeout=BUILD_TIMEOUT)
    _run([meson, "compile", "-C", build, "-j", "2"], env=env, timeout=BUILD_TIMEOUT)
    _run([meson, "install", "-C", build, "--quiet"], env=env, timeout=BUILD_TIMEOUT)
    # Nothing may lead back to the build tree: the installed copies have to find each other.
    shutil.rmtree(build)

    cli = prefix / "bin" / "ftprof"
    assert cli.is_file() and os.access(cli, os.X_OK), f"meson install put no ftprof in {prefix}/bin"
    libs = sorted(prefix.rglob("libftprof.so"))
    assert len(libs) == 1, f"expected one installed libftprof.so, found {libs}"
    rel = libs[0].relative_to(prefix)
    assert rel.parts[0].startswith("lib") and rel.parent.name == "ftprof", \
        f"libftprof.so installed at {rel}, not <libdir>/ftprof/"

    _profile_contended(cli, ft_python, tmp_path, env, "prefix")

    # The profiled command's exit status is ftprof run's.
    _run([cli, "run", "-o", tmp_path / "status.ftp", "--", ft_python, "-c", "import sys; sys.exit(3)"],
         env=env, cwd=tmp_path, expect_rc=3)


@pytest.mark.support_row("faults (kill -9, fork, exec, close-all, full disk, …), CLI, packaging")
def test_pip_install_venv(tmp_path, ft_python):
    venv = tmp_path / "venv"
    _run([ft_python, "-m", "venv", venv], timeout=300)
    pip_env = clean_env()
    # Two cores are shared: meson-python would otherwise let ninja use all of them and then some.
    _run([venv / "bin" / "pip", "install", "--disable-pip-version-check", "--config-settings=compile-args=-j2",
          ROOT], env=pip_env, timeout=BUILD_TIMEOUT)

    cli = venv / "bin" / "ftprof"
    assert cli.is_file() and os.access(cli, os.X_OK), "the wheel installed no ftprof command into the venv's bin/"
    package = _site_package(venv)
    assert _is_elf(package / "ftprof") and _is_elf(package / "libftprof.so"), \
        f"the wheel did not install the ftprof executable and libftprof.so into {package}"

    show = _run([venv / "bin" / "pip", "show", "ftprof"], env=pip_env)
    assert re.search(rf"^Version: {re.escape(_meson_version())}$", show.stdout, re.M), \
        f"wheel version differs from meson.build's:\n{show.stdout}"

    # As a user of an activated venv would: `ftprof` and `python` found on PATH.
    env = clean_env({"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
                     "VIRTUAL_ENV": venv})
    resolved = shutil.which("ftprof", path=env["PATH"])
    assert resolved and Path(resolved) == cli, f"ftprof on PATH is {resolved}, not the venv's"
    _profile_contended("ftprof", venv / "bin" / "python", tmp_path, env, "venv")


# What a wheel may still take from the system: glibc's libraries and the loader, libgcc_s and libstdc++
# (zlib, which every manylinux policy also lists, is vendored too: tools/wheel_vendor_zlib.py).
SYSTEM_LIBRARIES = re.compile(r"^(libc|libm|libdl|libpthread|librt|libutil|libresolv|ld-linux-x86-64|libgcc_s|"
                              r"libstdc\+\+)\.so")


def _ldd(path, via=None):
    """{soname: resolved path or None} of what the loader gives `path` (run through the wrapper `via`)."""
    out = _run([via, path] if via else ["ldd", path]).stdout
    deps = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) => (not found|(\S+))", line)
        if m:
            deps[m.group(1)] = m.group(3)
    return deps


def _hiding_wrapper(tmp, hidden, target):
    """A script that runs `target` in a private mount namespace where each file of `hidden` reads as
    /dev/null: the loader cannot take those libraries from the system."""
    unshare = "unshare -m --propagation private" if os.geteuid() == 0 else "unshare -r -m"
    wrapper = tmp / f"hidden-{target.name}"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"exec {unshare} /bin/sh -c '\n"
        f"  for f in {' '.join(hidden)}; do mount --bind /dev/null \"$f\" || exit 125; done\n"
        f"  exec \"$0\" \"$@\"' '{target}' \"$@\"\n")
    wrapper.chmod(0o700)
    return wrapper


@pytest.mark.support_row("faults (kill -9, fork, exec, close-all, full disk, …), CLI, packaging")
def test_wheel_installs_without_the_build_dependencies(tmp_path, ftprof_cli, ftprof_lib):
    # The wheel is py3-none: built and checked once, with the default free-threaded interpreter.
    ft_python = _python(FT_LABELS[0]) if not os.environ.get("FTPROF_PY") else Path(os.environ["FTPROF_PY"])
    proc = _run([ROOT / "tools" / "build-wheel", tmp_path / "dist"], timeout=BUILD_TIMEOUT)
    wheel = Path(proc.stdout.strip().splitlines()[-1])
    assert re.fullmatch(r"ftprof-[0-9.]+-py3-none-manylinux_2_\d+_x86_64\.whl", wheel.name), wheel.name

    venv = tmp_path / "venv"
    _run([ft_python, "-m", "venv", venv], timeout=300)
    _run([venv / "bin" / "pip", "install", "--disable-pip-version-check", "--no-index", wheel], timeout=300)
    package = _site_package(venv)
    vendored = package.parent / "ftprof.libs"
    elves = [p for p in (package / "ftprof", package / "libftprof.so", *sorted(vendored.iterdir())) if _is_elf(p)]
    assert len(elves) >= 4, f"the wheel holds too few ELF files: {elves}"

    # The system copies of what the wheel vendors, found from the plain build's needs: hidden below.
    plain = {**_ldd(ftprof_cli), **_ldd(ftprof_lib)}
    hidden = sorted({os.path.realpath(p) for name, p in plain.items() if p and not SYSTEM_LIBRARIES.match(name)})
    assert any("libdw" in h for h in hidden), f"nothing to hide: {plain}"

    # Every binary in the wheel resolves to the wheel itself or to system libraries, with the others hidden.
    hide_ldd = _hiding_wrapper(tmp_path, hidden, Path(shutil.which("ldd")))
    for elf in elves:
        for name, where in _ldd(elf, via=hide_ldd).items():
            assert where, f"{elf.name} needs {name}, which does not resolve without the system's copy"
            assert os.path.realpath(where).startswith(f"{vendored}/") or SYSTEM_LIBRARIES.match(name), \
                f"{elf.name} takes {name} from {where}, outside the wheel"

    # The hiding is real: the plain build cannot even start under it.
    control = _run([_hiding_wrapper(tmp_path, hidden, ftprof_cli), "--version"], expect_rc=None)
    assert control.returncode != 0 and "error while loading shared libraries" in control.stderr, control

    # And it works: a contended Lock profiled and reported by the installed command, the hiding in force.
    env = clean_env({"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", "VIRTUAL_ENV": venv})
    cli = _hiding_wrapper(tmp_path, hidden, venv / "bin" / "ftprof")
    _profile_contended(cli, venv / "bin" / "python", tmp_path, env, "wheel")
    version = _run([cli, "--version"], env=env).stdout
    assert _meson_version() in version, version
    as_module = _run([venv / "bin" / "python", "-m", "ftprof", "--version"], env=env).stdout
    assert as_module == version

