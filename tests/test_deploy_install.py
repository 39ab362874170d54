"""packaging/install-node.sh, the init container's step that puts cdigen on the node, run as the
agent's image runs it: busybox's sh with busybox's applets and nothing else on PATH.

Its bundles here are stand-ins of the frozen cdigen: an executable `cdigen` that checks its own
release (a payload and its checksum under _internal/, as PyInstaller's runtime sits beside the
executable) and prints the release id; the real bundle goes through the same script in
tests/test_deploy_image.py.
"""

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

INSTALL = Path(__file__).resolve().parent.parent / "packaging" / "install-node.sh"
BUSYBOX = shutil.which("busybox")

pytestmark = pytest.mark.skipif(BUSYBOX is None, reason="needs busybox (apt-get install busybox-static)")

FAKE_CDIGEN = """#!/bin/sh
here=$(dirname "$(readlink -f "$0")")
sum=$(sha256sum "$here/_internal/payload") || exit 1
[ "${sum%% *}" = "$(cat "$here/_internal/payload.sha256")" ] || { echo "corrupt"; exit 1; }
cat "$here/RELEASE"
"""


@pytest.fixture
def busybox_path(tmp_path):
    """A PATH of busybox's applets only, as in the agent's image."""
    bindir = tmp_path / "busybox-bin"
    bindir.mkdir()
    for applet in subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split():
        (bindir / applet).symlink_to(BUSYBOX)
    return str(bindir)


def bundle(directory: Path, release: str, size: int = 4 << 20) -> Path:
    """A stand-in of packaging/build.py's bundle, release id `release`."""
    import hashlib

    directory.mkdir(parents=True)
    (directory / "_internal").mkdir()
    payload = os.urandom(size)
    (directory / "_internal" / "payload").write_bytes(payload)
    (directory / "_internal" / "payload.sha256").write_text(hashlib.sha256(payload).hexdigest() + "\n")
    (directory / "cdigen").write_text(FAKE_CDIGEN)
    (directory / "cdigen").chmod(0o755)
    (directory / "cdigen-runtime").symlink_to("cdigen")
    (directory / "RELEASE").write_text(release + "\n")
    return directory


def install(src: Path, dest: Path, path: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BUSYBOX, "sh", str(INSTALL), str(src), str(dest)],
        capture_output=True,
        text=True,
        env={"PATH": path},
        timeout=60,
    )


def releases(dest: Path) -> set[str]:
    return {p.name for p in (dest / "releases").iterdir()}


def test_install_makes_relative_links_into_a_release(tmp_path, busybox_path):
    dest = tmp_path / "opt-cdigen"
    proc = install(bundle(tmp_path / "a", "0.1.0-aaaa"), dest, busybox_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == f"cdigen-install-node: {dest}/bin/cdigen -> releases/0.1.0-aaaa\n"
    # relative: the pod mounts the host's /opt/cdigen elsewhere than the host sees it
    assert os.readlink(dest / "bin" / "cdigen") == "../releases/0.1.0-aaaa/cdigen"
    assert os.readlink(dest / "bin" / "cdigen-runtime") == "../releases/0.1.0-aaaa/cdigen-runtime"
    run = subprocess.run([dest / "bin" / "cdigen"], capture_output=True, text=True)
    assert run.stdout == "0.1.0-aaaa\n"
    assert releases(dest) == {"0.1.0-aaaa"}
    assert sorted(os.listdir(dest / "bin")) == ["cdigen", "cdigen-runtime"]


def test_upgrade_while_the_hook_runs_never_exposes_a_partial_release(tmp_path, busybox_path):
    """A runtime execs bin/cdigen at any moment: every execution during upgrades back and forth
    (at least 16, and until 40 executions have run) finds a complete release, the one before
    or the one after."""
    dest = tmp_path / "opt-cdigen"
    a, b = bundle(tmp_path / "a", "0.1.0-aaaa"), bundle(tmp_path / "b", "0.1.1-bbbb")
    assert install(a, dest, busybox_path).returncode == 0
    seen, bad = [], []
    done = threading.Event()

    def hook_runs():
        while not done.is_set():
            proc = subprocess.run([dest / "bin" / "cdigen"], capture_output=True, text=True)
            out = proc.stdout.strip()
            (seen if proc.returncode == 0 and out in ("0.1.0-aaaa", "0.1.1-bbbb") else bad).append(
                (proc.returncode, out, proc.stderr.strip())
            )

    reader = threading.Thread(target=hook_runs)
    reader.start()
    try:
        i = 0
        while i < 16 or (len(seen) + len(bad) < 40 and i < 1000):
            proc = install(b if i % 2 == 0 else a, dest, busybox_path)
            assert proc.returncode == 0, proc.stderr
            i += 1
    finally:
        done.set()
        reader.join()
    assert bad == []
    assert len(seen) >= 40
    assert {out for _, out, _ in seen} == {"0.1.0-aaaa", "0.1.1-bbbb"}


def test_a_release_directory_appears_whole(tmp_path, busybox_path):
    """Watched while a 32 MiB release is copied: whatever appears under releases/ (dot names
    aside) is complete at the moment it appears."""
    import hashlib

    dest = tmp_path / "opt-cdigen"
    src = bundle(tmp_path / "big", "0.2.0-big", size=32 << 20)
    expected = (src / "_internal" / "payload.sha256").read_text().strip()
    (dest / "releases").mkdir(parents=True)
    checked, bad = [], []
    done = threading.Event()

    def watch():
        while not done.is_set() and not checked:
            for entry in os.listdir(dest / "releases"):
                if not entry.startswith("."):
                    payload = dest / "releases" / entry / "_internal" / "payload"
                    ok = payload.exists() and hashlib.sha256(payload.read_bytes()).hexdigest() == expected
                    (checked if ok else bad).append(entry)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        proc = install(src, dest, busybox_path)
    finally:
        done.set()
        watcher.join()
    assert proc.returncode == 0, proc.stderr
    assert bad == []
    assert checked == ["0.2.0-big"]


def test_keeps_the_current_and_the_previous_release(tmp_path, busybox_path):
    dest = tmp_path / "opt-cdigen"
    for n in (1, 2, 3):
        assert install(bundle(tmp_path / str(n), f"0.1.{n}-r{n}"), dest, busybox_path).returncode == 0
    assert releases(dest) == {"0.1.2-r2", "0.1.3-r3"}
    # back to the previous one: its directory is reused, the newer one stays as the previous
    proc = install(tmp_path / "2", dest, busybox_path)
    assert proc.returncode == 0, proc.stderr
    assert os.readlink(dest / "bin" / "cdigen") == "../releases/0.1.2-r2/cdigen"
    assert releases(dest) == {"0.1.2-r2", "0.1.3-r3"}


def test_an_interrupted_copy_is_cleaned_up_and_never_linked(tmp_path, busybox_path):
    dest = tmp_path / "opt-cdigen"
    leftover = dest / "releases" / ".tmp-0.1.0-aaaa"
    leftover.mkdir(parents=True)
    (leftover / "cdigen").write_text("#!/bin/sh\necho half\n")
    assert install(bundle(tmp_path / "a", "0.1.0-aaaa"), dest, busybox_path).returncode == 0
    assert not leftover.exists()
    assert subprocess.run([dest / "bin" / "cdigen"], capture_output=True, text=True).stdout == "0.1.0-aaaa\n"


@pytest.mark.parametrize("release", ["", "../x", ".hidden", "a b", "a;b"])
def test_a_bad_release_id_changes_nothing(tmp_path, busybox_path, release):
    dest = tmp_path / "opt-cdigen"
    assert install(bundle(tmp_path / "a", "0.1.0-aaaa"), dest, busybox_path).returncode == 0
    bad = bundle(tmp_path / "bad", "x")
    (bad / "RELEASE").write_text(release + "\n")
    proc = install(bad, dest, busybox_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"cdigen-install-node: error: {bad}/RELEASE: not a release id")
    assert proc.stderr.count("\n") == 1
    assert releases(dest) == {"0.1.0-aaaa"}
    assert os.readlink(dest / "bin" / "cdigen") == "../releases/0.1.0-aaaa/cdigen"


def test_two_installs_at_once_leave_one_complete_release_linked(tmp_path, busybox_path):
    """A DaemonSet update with a surge runs the init containers of two pods on one node."""
    dest = tmp_path / "opt-cdigen"
    a, b = bundle(tmp_path / "a", "0.1.0-aaaa"), bundle(tmp_path / "b", "0.1.1-bbbb")
    procs = [
        subprocess.Popen(
            [BUSYBOX, "sh", str(INSTALL), str(src), str(dest)], env={"PATH": busybox_path}, stderr=subprocess.PIPE
        )
        for src in (a, b)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    for p in procs:
        p.stderr.close()
    assert releases(dest) == {"0.1.0-aaaa", "0.1.1-bbbb"}
    out = subprocess.run([dest / "bin" / "cdigen"], capture_output=True, text=True).stdout.strip()
    runtime = subprocess.run([dest / "bin" / "cdigen-runtime"], capture_output=True, text=True).stdout.strip()
    assert out == runtime and out in ("0.1.0-aaaa", "0.1.1-bbbb")


def test_the_cni_plugin_link_names_the_host_path(tmp_path, busybox_path):
    """With CNI_BIN_DIR, the CNI bin directory gets `cdigen`, a link to the stable path as the
    host sees it (libcni runs it there, outside the pod)."""
    dest, cni = tmp_path / "opt-cdigen", tmp_path / "cni-bin"
    cni.mkdir()
    (cni / "cdigen").write_text("an older plugin\n")
    proc = subprocess.run(
        [BUSYBOX, "sh", str(INSTALL), str(bundle(tmp_path / "a", "0.1.0-aaaa")), str(dest)],
        capture_output=True,
        text=True,
        env={"PATH": busybox_path, "CNI_BIN_DIR": str(cni), "HOST_DEST": str(dest)},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert os.readlink(cni / "cdigen") == f"{dest}/bin/cdigen"
    assert sorted(os.listdir(cni)) == ["cdigen"]
    assert subprocess.run([cni / "cdigen"], capture_output=True, text=True).stdout == "0.1.0-aaaa\n"
