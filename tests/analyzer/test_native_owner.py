"""Native locks named by their owner, on recordings written here (format 7 WAIT records carry the lock
call's return address; MODULE records map it to an object) and on the environment's packaging records
made here: the object's distribution from the *.dist-info/RECORD that lists it.

FTPROF names the binary (set by meson).
"""
import struct

from test_time import MS, REC_WAIT, Recording, record, report, text

REC_MODULE = 7
KIND_PTHREAD_MUTEX, KIND_PTHREAD_RWLOCK = 9, 10
LIB_BASE, LIB_END = 0x7F0000000000, 0x7F0000100000
OTHER_BASE, OTHER_END = 0x7E0000000000, 0x7E0000100000


class NativeRecording(Recording):
    def module(self, base, end, path):
        p = path.encode()
        self.defs.append(record(REC_MODULE, struct.pack("<QQQHHI", base, base, end, 0, len(p), 0) + p))

    def native_wait(self, tid, kind, addr, start, end, caller):
        """A WAIT record of format 7 (88 bytes with the caller), or of format 6 (80) when caller is None."""
        self.seq[tid] += 1
        event = tid << 32 | self.seq[tid]
        body = struct.pack("<IBBHQQQQQQIIII", tid, kind, 1, 0, event, event, start, start, end, addr, 0, 0, 0, 0)
        if caller is not None:
            body += struct.pack("<Q", caller)
        self.chunks[tid].append(record(REC_WAIT, body))


def site_packages(tmp_path):
    """A site-packages with numpy's wheel layout: numpy/_core/ and the vendored numpy.libs/, listed in
    numpy-2.5.5.dist-info/RECORD (one line quoted as CSV allows), with METADATA and WHEEL; and a
    distribution without METADATA whose directory name says it."""
    sp = tmp_path / "venv" / "lib" / "python3.14t" / "site-packages"
    (sp / "numpy" / "_core").mkdir(parents=True)
    (sp / "numpy.libs").mkdir()
    lib = sp / "numpy.libs" / "libscipy_openblas64_-4b78795a.so"
    lib.write_bytes(b"\x7fELF")
    info = sp / "numpy-2.5.5.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: numpy\nVersion: 2.5.5\nSummary: x\n\nbody\n")
    (info / "WHEEL").write_text("Wheel-Version: 1.0\nRoot-Is-Purelib: false\n"
                                "Tag: cp314-cp314t-manylinux_2_27_x86_64\nTag: cp314-cp314t-manylinux_2_28_x86_64\n")
    (info / "RECORD").write_text("numpy/__init__.py,sha256=x,1\n"
                                 '"numpy.libs/libscipy_openblas64_-4b78795a.so",sha256=y,4\n'
                                 "numpy-2.5.5.dist-info/RECORD,,\n")
    (sp / "otherpkg").mkdir()
    (sp / "otherpkg" / "libother.so").write_bytes(b"\x7fELF")
    other = sp / "otherpkg-0.3.dist-info"
    other.mkdir()
    (other / "RECORD").write_text("otherpkg/libother.so,,\n")
    return sp, lib


def test_vendored_library_named_by_its_wheel(tmp_path):
    sp, lib = site_packages(tmp_path)
    rec = NativeRecording(version=7)
    # As the loader names a library it found through numpy's $ORIGIN run path.
    rec.module(LIB_BASE, LIB_END, str(sp / "numpy" / "_core" / ".." / ".." / "numpy.libs" / lib.name))
    rec.thread(101, "w", 1000 * MS)
    for i in range(3):
        rec.native_wait(101, KIND_PTHREAD_MUTEX, 0x5000, 1100 * MS + i * 10 * MS, 1105 * MS + i * 10 * MS,
                        LIB_BASE + 0x1234 + i)
    doc = report(rec.write(tmp_path / "r.ftp"))
    (lk,) = doc["locks"]
    assert lk["native_owner"] == {"object": str(lib), "other_object": None, "distribution": "numpy",
                                  "version": "2.5.5",
                                  "wheel_tag": "cp314-cp314t-manylinux_2_27_x86_64.manylinux_2_28_x86_64"}
    assert lk["name"] == f"pthread_mutex in {lib.name} (numpy 2.5.5) @\u202600005000"
    # However narrow the terminal, the row's note names the object, distribution and wheel in full.
    report_text = " ".join(text(tmp_path / "r.ftp").split())
    assert (f"(taken by code in {lib}, installed by numpy 2.5.5 from a wheel tagged "
            "cp314-cp314t-manylinux_2_27_x86_64.manylinux_2_28_x86_64)") in report_text, report_text


def test_symlinked_path_metadata_less_distribution_and_a_second_object(tmp_path):
    sp, lib = site_packages(tmp_path)
    # The process loaded it through a symbolic link to its directory: found once the link is resolved.
    (tmp_path / "link").symlink_to(sp / "otherpkg")
    rec = NativeRecording(version=7)
    rec.module(LIB_BASE, LIB_END, str(tmp_path / "link" / "libother.so"))
    rec.module(OTHER_BASE, OTHER_END, str(tmp_path / "nowhere" / "libsystem.so"))
    rec.thread(101, "w", 1000 * MS)
    rec.native_wait(101, KIND_PTHREAD_RWLOCK, 0x6000, 1100 * MS, 1101 * MS, LIB_BASE + 0x10)
    rec.native_wait(101, KIND_PTHREAD_RWLOCK, 0x6000, 1200 * MS, 1201 * MS, LIB_BASE + 0x20)  # same object
    rec.native_wait(101, KIND_PTHREAD_RWLOCK, 0x6000, 1300 * MS, 1301 * MS, OTHER_BASE + 0x30)
    # Not listed anywhere: named by its file alone.
    rec.native_wait(101, KIND_PTHREAD_MUTEX, 0x7000, 1400 * MS, 1402 * MS, OTHER_BASE + 0x40)
    doc = report(rec.write(tmp_path / "r.ftp"))
    rw = next(lk for lk in doc["locks"] if lk["kind"] == "pthread_rwlock")
    assert rw["native_owner"]["object"] == str(tmp_path / "link" / "libother.so")
    assert rw["native_owner"]["other_object"] == str(tmp_path / "nowhere" / "libsystem.so")
    assert (rw["native_owner"]["distribution"], rw["native_owner"]["version"]) == ("otherpkg", "0.3")
    assert rw["native_owner"]["wheel_tag"] is None
    assert rw["name"].startswith("pthread_rwlock in libother.so (otherpkg 0.3) and libsystem.so @")
    mx = next(lk for lk in doc["locks"] if lk["kind"] == "pthread_mutex")
    assert mx["native_owner"] == {"object": str(tmp_path / "nowhere" / "libsystem.so"), "other_object": None,
                                  "distribution": None, "version": None, "wheel_tag": None}
    assert mx["name"] == "pthread_mutex in libsystem.so @\u202600007000"
    report_text = " ".join(text(tmp_path / "r.ftp").split())
    assert f"(taken by code in {tmp_path / 'nowhere' / 'libsystem.so'}; no installed distribution lists it)" in report_text


def test_callers_unknown_in_older_recordings_and_outside_the_module_map(tmp_path):
    sp, lib = site_packages(tmp_path)
    rec = NativeRecording(version=6)
    rec.module(LIB_BASE, LIB_END, str(lib))
    rec.thread(101, "w", 1000 * MS)
    rec.native_wait(101, KIND_PTHREAD_MUTEX, 0x5000, 1100 * MS, 1105 * MS, None)  # an 80-byte record
    rec.native_wait(101, KIND_PTHREAD_MUTEX, 0x8000, 1200 * MS, 1205 * MS, 0x1000)  # in no module
    doc = report(rec.write(tmp_path / "r.ftp"))
    assert {lk["address"]: lk["native_owner"] for lk in doc["locks"]} == {"0x5000": None, "0x8000": None}
    assert sorted(lk["name"] for lk in doc["locks"]) == ["pthread_mutex @\u202600005000",
                                                         "pthread_mutex @\u202600008000"]
