"""Pytest fixtures shared by several test modules (the code behind them is in tests/helpers/)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.netns import Net, netns_skip_reason
from tests.helpers.proc import fast_tmpdir, run_cdigen
from tests.helpers.runc import runc_skip_reason

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def snapshot(snapshot, request):
    """pytest-snapshot, storing under the top-level snapshots/<test module>/<test name>/."""
    module = request.node.module.__name__.rsplit(".", 1)[-1]
    snapshot.snapshot_dir = ROOT / "snapshots" / module / request.node.name.replace("/", "_")
    return snapshot


@pytest.fixture(scope="session", autouse=True)
def cdigen_state_dir(tmp_path_factory):
    """The hook's record files (cdigen/hook/record.py) go to a directory of this session, not
    /run/cdigen: every cdigen process a test starts inherits CDIGEN_STATE_DIR."""
    path = tmp_path_factory.mktemp("cdigen-state")
    old = os.environ.get("CDIGEN_STATE_DIR")
    os.environ["CDIGEN_STATE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("CDIGEN_STATE_DIR", None)
    else:
        os.environ["CDIGEN_STATE_DIR"] = old


@pytest.fixture
def cdigen():
    """run_cdigen: `python -m cdigen ARGS` as a whole process."""
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


# ---------------------------------------------------------------------------- real netns and runc
# Session-scoped, so that they run before any module-scoped fixture of a test that needs them
# (a busybox rootfs, say) and the probe runs once.


@pytest.fixture(scope="session")
def needs_netns():
    """Skip unless network namespaces and veth pairs can be made here (root, iproute2, ...)."""
    reason = netns_skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def needs_runc(needs_netns):
    """Skip unless the real runc and a static busybox are there too."""
    reason = runc_skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def net(needs_netns):
    """A Net: namespaces and links made by the test, all removed afterwards."""
    made = Net()
    yield made
    made.cleanup()


@pytest.fixture(scope="module")
def rootfs(needs_runc, tmp_path_factory):
    """A busybox-static root filesystem for runc containers (one per test module)."""
    from tests.helpers.runc import build_rootfs

    return build_rootfs(tmp_path_factory.mktemp("busybox"))


@pytest.fixture
def runc(tmp_path):
    """Debian's runc with a state directory of the test's own, its containers removed after."""
    from tests.helpers.runc import Runc

    made = Runc(tmp_path / "runc-state")
    yield made
    made.cleanup()
