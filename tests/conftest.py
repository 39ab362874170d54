"""Shared test helpers: snapshot location and running the real `cdigen` process."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def snapshot(snapshot, request):
    """pytest-snapshot, storing under the top-level snapshots/<test module>/<test name>/."""
    module = request.node.module.__name__.rsplit(".", 1)[-1]
    snapshot.snapshot_dir = ROOT / "snapshots" / module / request.node.name.replace("/", "_")
    return snapshot


def run_cdigen(*args, input=None, env=None, check=None):
    """Run `python -m cdigen ARGS` as a whole process; returns CompletedProcess (text)."""
    full_env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
    full_env.pop("CDIGEN_DEBUG", None)
    if env:
        full_env.update(env)
    proc = subprocess.run([sys.executable, "-m", "cdigen", *map(str, args)], input=input,
                          capture_output=True, text=True, env=full_env, timeout=120)
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
    return proc


@pytest.fixture
def cdigen():
    return run_cdigen


@pytest.fixture
def read_only_dir(tmp_path):
    """Make a directory with the given files that even root cannot write to: a read-only bind
    mount when root (directory permissions do not stop root), else mode 0555."""
    mounted = []

    def make(files: dict) -> Path:
        src = tmp_path / "ro-src"
        src.mkdir()
        for name, text in files.items():
            (src / name).write_text(text)
        if os.geteuid() != 0:
            src.chmod(0o555)
            return src
        dst = tmp_path / "ro"
        dst.mkdir()
        if subprocess.run(["mount", "--bind", str(src), str(dst)], capture_output=True).returncode:
            pytest.skip("cannot bind-mount here")
        mounted.append(dst)
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(dst)], capture_output=True).returncode:
            pytest.skip("cannot remount read-only here")
        return dst

    yield make
    for path in mounted:
        subprocess.run(["umount", str(path)], capture_output=True)


def fast_tmpdir() -> str:
    """A fresh directory for a fake sysfs tree: ~1000 small files build in 20 ms in /dev/shm
    instead of 0.5 s on this machine's disk."""
    return tempfile.mkdtemp(prefix="cdigen-test-", dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None)


@pytest.fixture
def tree():
    """build(description) -> root of a fake sysfs/procfs tree, removed after the test."""
    from cdigen.examples import fakesys

    made = []

    def build(desc: str) -> str:
        made.append(fakesys.build(desc, fast_tmpdir()))
        return made[-1]

    yield build
    for root in made:
        shutil.rmtree(root)
