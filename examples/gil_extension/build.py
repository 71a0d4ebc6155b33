"""Builds _legacy.c into the two extension modules the example imports, with gcc alone.

The compiler flags come from the running interpreter's sysconfig, so the modules match
whichever python3.13t runs this script; no setuptools is needed.

    python3.13t examples/gil_extension/build.py [--out DIR]

prints the directory holding ``_legacy`` and ``_threadsafe``. By default that is a
per-interpreter directory under ``$XDG_CACHE_HOME/ftprof/gil_extension`` (``~/.cache``),
rebuilt only when ``_legacy.c`` is newer than the modules.
"""

import argparse
import hashlib
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "_legacy.c")
MODULES = {"_legacy": [], "_threadsafe": ["-DLEGACY_THREAD_SAFE"]}


def default_out_dir():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    # One directory per interpreter: a module built for one Python must not be loaded by another.
    tag = hashlib.sha256(sys.executable.encode()).hexdigest()[:12]
    return os.path.join(cache, "ftprof", "gil_extension", f"{sys.implementation.cache_tag}-{tag}")


def compile_module(name, defines, out_dir):
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    target = os.path.join(out_dir, name + suffix)
    if os.path.exists(target) and os.path.getmtime(target) >= os.path.getmtime(SOURCE):
        return target
    cc = shlex.split(sysconfig.get_config_var("CC") or "gcc")[:1] or ["gcc"]
    cflags = shlex.split(sysconfig.get_config_var("CFLAGSFORSHARED") or "-fPIC")
    include = sysconfig.get_paths()["include"]
    # Compile to a private name and rename: a concurrent run never imports a half-written file.
    fd, tmp = tempfile.mkstemp(prefix=name + ".", suffix=".tmp.so", dir=out_dir)
    os.close(fd)
    cmd = cc + ["-shared", "-O2", "-Wall", "-Wextra", *cflags, f"-I{include}", *defines, SOURCE, "-o", tmp]
    try:
        subprocess.run(cmd, check=True)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def build(out_dir=None):
    """Builds both modules if needed and returns the directory to put on sys.path."""
    out_dir = out_dir or default_out_dir()
    os.makedirs(out_dir, mode=0o700, exist_ok=True)
    for name, defines in MODULES.items():
        compile_module(name, defines, out_dir)
    return out_dir


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="directory for the built modules")
    args = parser.parse_args()
    try:
        print(build(args.out))
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"build.py: {e}")


if __name__ == "__main__":
    main()
