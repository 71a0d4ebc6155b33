#!/usr/bin/env python3
"""Vendors zlib into a wheel that auditwheel repaired (a step of tools/build-wheel).

  wheel_vendor_zlib.py REPAIRED_WHEEL OUTDIR

auditwheel leaves libz.so.1 to the system, as every manylinux policy allows. This copies the system's
libz.so.1 into the wheel's ftprof.libs/ under a name of its own (libz-<first 8 hex of its SHA-256>.so.1,
its soname set to match, as auditwheel names what it vendors), points every ELF of the wheel that needs
libz.so.1 at that copy (patchelf --replace-needed; the executables find ftprof.libs/ through their
RPATH, and a vendored library without one gets $ORIGIN),
and writes the wheel again with its RECORD recomputed. The wheel then needs nothing from the system but
glibc, libgcc_s and libstdc++. patchelf comes from PATH (tools/build-wheel's pinned environment).
Exit status 0, or 1 with a one-line reason.
"""
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

NEEDED = "libz.so.1"


def die(msg):
    print(f"wheel_vendor_zlib: {msg}", file=sys.stderr)
    sys.exit(1)


def patchelf(*args):
    return subprocess.run(["patchelf", *map(str, args)], capture_output=True, text=True, check=True).stdout


def is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def system_zlib(elf):
    """Where the loader finds libz.so.1 for `elf` (an ELF of the wheel that needs it)."""
    out = subprocess.run(["ldd", str(elf)], capture_output=True, text=True).stdout
    m = re.search(rf"^\s*{re.escape(NEEDED)} => (/\S+)", out, re.M)
    if not m:
        die(f"ldd does not resolve {NEEDED} for {elf.name}")
    return Path(os.path.realpath(m.group(1)))


def record_line(root, path):
    data = path.read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path.relative_to(root).as_posix()},sha256={digest},{len(data)}"


def main():
    if len(sys.argv) != 3:
        die("usage: wheel_vendor_zlib.py REPAIRED_WHEEL OUTDIR")
    wheel, outdir = Path(sys.argv[1]), Path(sys.argv[2])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with zipfile.ZipFile(wheel) as z:
            z.extractall(root)
            modes = {i.filename: i.external_attr for i in z.infolist()}  # extractall drops the exec bits
        libs = root / "ftprof.libs"
        elves = [p for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink() and is_elf(p)]
        needing = [p for p in elves if NEEDED in patchelf("--print-needed", p).split()]
        if needing:
            source = system_zlib(needing[0])
            data = source.read_bytes()
            name = f"libz-{hashlib.sha256(data).hexdigest()[:8]}.so.1"
            libs.mkdir(exist_ok=True)
            copy = libs / name
            shutil.copyfile(source, copy)
            copy.chmod(0o755)
            patchelf("--set-soname", name, copy)
            for p in needing:
                patchelf("--replace-needed", NEEDED, name, p)
                if patchelf("--print-rpath", p).strip():
                    continue
                if p.parent != libs:
                    die(f"{p.relative_to(root)} has no RPATH to find ftprof.libs/ by")
                patchelf("--set-rpath", "$ORIGIN", p)  # a vendored library: the copy lies beside it
        records = sorted(root.glob("*.dist-info/RECORD"))
        if len(records) != 1:
            die(f"{wheel.name} has {len(records)} RECORD files")
        record = records[0]
        files = [p for p in sorted(root.rglob("*")) if p.is_file() and p != record]
        record.write_text("\n".join([record_line(root, p) for p in files] +
                                    [f"{record.relative_to(root).as_posix()},,"]) + "\n")
        outdir.mkdir(parents=True, exist_ok=True)
        out = outdir / wheel.name
        with zipfile.ZipFile(out, "x", zipfile.ZIP_DEFLATED) as z:
            # dist-info last, as wheels write it
            for p in sorted(files, key=lambda p: (".dist-info/" in p.as_posix(), p.as_posix())) + [record]:
                info = zipfile.ZipInfo.from_file(p, p.relative_to(root).as_posix())
                info.external_attr = modes.get(info.filename, 0o100755 << 16)
                with open(p, "rb") as f:
                    z.writestr(info, f.read(), zipfile.ZIP_DEFLATED)
    print(out)


if __name__ == "__main__":
    main()
