"""The one reader of host files: bounded, non-blocking, regular files only. Atomic replacement:
the old file survives any failure; modes are kept; nothing is left over."""

import os
import stat
import subprocess
import sys
import threading
import time

import pytest

from cdigen.errors import CdigenError
from cdigen.files import UnreadableFile, atomic_write, locked_dir, open_regular, read_head, read_regular
from tests.helpers.proc import run_cdigen
from tests.helpers.specs import HOOK_PATH, gpu_spec, make_bundle, write_spec


def test_read_regular_is_bounded_and_says_why_it_cannot_read(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    assert read_regular(str(path), 10) == b"0123456789" and read_head(str(path), 4) == b"0123"
    assert read_head(str(path), 100) == b"0123456789"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    cases = {  # path, limit -> (message, reason, missing)
        (str(path), 9): ("larger than 9 bytes", "larger than 9 bytes", False),
        (str(tmp_path / "none"), 9): ("cannot read: No such file or directory", "No such file or directory", True),
        (str(fifo), 9): ("not a regular file", "not a regular file", False),
        (str(tmp_path), 9): ("not a regular file", "not a regular file", False),
        ("/dev/zero", 9): ("not a regular file", "not a regular file", False),
    }
    for (name, limit), (message, reason, missing) in cases.items():
        with pytest.raises(UnreadableFile) as caught:
            read_regular(name, limit)
        assert (str(caught.value), caught.value.reason, caught.value.missing) == (message, reason, missing)
        assert caught.value.exit_code == 3
        if limit == 9 and name != str(path):
            with pytest.raises(UnreadableFile):
                open_regular(name)
    assert time.monotonic() - started < 5  # the FIFO never blocked


def test_sysfs_attributes_read_whole_though_their_size_says_a_page():
    """sysfs attributes report st_size 4096 (procfs files 0) whatever they hold: the read stops
    at their end."""
    path = "/sys/devices/system/cpu/online"
    if not os.path.exists(path):
        path = "/proc/sys/kernel/osrelease"
    data = read_regular(path, 4096)
    with open(path, "rb") as f:
        assert 0 < len(data) < 4096 and data == f.read()


def test_new_file_gets_0644_and_existing_file_keeps_its_mode(tmp_path):
    new = tmp_path / "spec.yaml"
    atomic_write(str(new), b"a\n")
    assert new.read_bytes() == b"a\n" and (new.stat().st_mode & 0o777) == 0o644
    old = tmp_path / "config.json"
    old.write_text("{}")
    old.chmod(0o600)
    atomic_write(str(old), b'{"x": 1}')
    assert old.read_bytes() == b'{"x": 1}' and (old.stat().st_mode & 0o777) == 0o600
    atomic_write(str(old), b"z", mode=0o640)
    assert (old.stat().st_mode & 0o777) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "spec.yaml"]


def test_failure_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "config.json"
    target.write_text("original")
    os.mkdir(tmp_path / "sub")
    with pytest.raises(CdigenError, match="cannot write"):
        atomic_write(str(tmp_path / "sub"), b"x")  # rename over a directory fails
    assert target.read_text() == "original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "sub"]


def test_read_only_directory(tmp_path, read_only_dir):
    ro = read_only_dir({"f": "x"})
    with pytest.raises(CdigenError, match="cannot write .*Read-only file system"):
        atomic_write(str(ro / "f"), b"y")
    assert (ro / "f").read_text() == "x"


def test_locked_dir_serialises(tmp_path):
    order = []

    def worker(tag):
        with locked_dir(str(tmp_path)):
            order.append(tag + "-in")
            time.sleep(0.05)
            order.append(tag + "-out")

    threads = [threading.Thread(target=worker, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert order in (["a-in", "a-out", "b-in", "b-out"], ["b-in", "b-out", "a-in", "a-out"])


def test_a_device_node_or_fifo_is_written_into_never_replaced(tmp_path):
    atomic_write("/dev/null", b"spec")  # `cdigen scan -o /dev/null` as root
    st = os.stat("/dev/null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        atomic_write(str(fifo), b"through the pipe")
        assert os.read(reader, 100) == b"through the pipe"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]


@pytest.mark.parametrize("held_s, says", [(1.8, True), (0.2, False)])
def test_apply_says_once_who_holds_the_bundle_lock_after_a_second(tmp_path, held_s, says):
    """A real second process holds the bundle's flock: a wait over LOCK_NOTICE_AFTER is one
    line naming its pid and the longest wait; a shorter one, or a free lock, is silent."""
    spec_dir = tmp_path / "cdi"
    write_spec(spec_dir, "gpu.yaml", gpu_spec(1))
    bundle = make_bundle(tmp_path)
    code = (
        f"import fcntl, os, time\nfd = os.open({str(bundle)!r}, os.O_RDONLY)\nfcntl.flock(fd, fcntl.LOCK_EX)\n"
        f"print('held', flush=True)\ntime.sleep({held_s})\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        proc = run_cdigen(
            "apply", bundle, "--spec-dir", spec_dir, "--device", "cdigen.io/gpu=gpu0", "--hook-path", HOOK_PATH
        )
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 0, proc.stderr
    waited = f"cdigen: waiting for the lock on {bundle} held by pid {holder.pid} (up to 10 s)\n"
    assert proc.stderr == (waited if says else "")
