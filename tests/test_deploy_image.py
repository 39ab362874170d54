"""The node's cdigen as packaging/build.py makes it, and the agent's image around it
(deploy/kubernetes/Containerfile), built here with podman and nothing pulled: the image has no
Python, the frozen cdigen scans and applies in it, its install step puts a working cdigen on
the "node" (a directory here), the hook path runs, the shim's children see the caller's
environment, and the frozen agent registers with the kubelet stand-in.

One build for the module (about 30 s, and once more for the build venv on a fresh machine:
PyInstaller and the dependencies come from PyPI).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cdigen import __version__
from tests.helpers.podman import Podman, podman_skip_reason
from tests.helpers.proc import fast_tmpdir

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "packaging" / "build.py"
CONTAINERFILE = ROOT / "deploy" / "kubernetes" / "Containerfile"
HOOK_PATH = "/opt/cdigen/bin/cdigen"
IMAGE = f"localhost/cdigen-test:{__version__}"


def skip_reason() -> str | None:
    reason = podman_skip_reason()
    if reason:
        return reason
    for package in ("libc6", "libgcc-s1", "busybox-static"):  # packaging/build.py's IMAGE_PACKAGES
        if subprocess.run(["dpkg-query", "-W", package], capture_output=True).returncode != 0:
            return f"needs the Debian package {package} (the image's root filesystem)"
    return None


pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))


@pytest.fixture(scope="module")
def built():
    """(the bundle directory, a Podman fenced in a directory of its own with the image built).
    In memory (fast_tmpdir): podman's vfs driver copies the whole image for every container."""
    work = Path(fast_tmpdir())
    proc = subprocess.run(
        [sys.executable, str(BUILD), "--out", str(work / "out"), "--image-context", str(work / "context")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (work / "podman").mkdir()
    podman = Podman(work / "podman", rootfs="")
    build = podman.podman(
        work / "podman" / "no-cdi", "build", "--network", "none", "-f", str(CONTAINERFILE), "-t", IMAGE,
        str(work / "context"), timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    yield work / "out" / "cdigen", podman, work
    podman.cleanup()
    shutil.rmtree(work, ignore_errors=True)


def run_image(built, *args: str, volumes: dict | None = None, entrypoint: str | None = None):
    _, podman, work = built
    argv = ["run", "--rm", "--runtime", "runc", "--network", "none", "--cgroup-parent", f"/{podman.cgroup_parent}"]
    for host, inside in (volumes or {}).items():
        argv += ["-v", f"{host}:{inside}"]
    if entrypoint:
        argv += ["--entrypoint", entrypoint]
    return podman.podman(work / "podman" / "no-cdi", *argv, IMAGE, *args)


def test_the_image_has_no_python_and_runs_cdigen(built):
    """One container (each costs a copy of the image here): the entrypoint's --version, then
    whether a shell finds any Python."""
    script = '"$0" --version && (command -v python3 python || echo none)'
    proc = run_image(built, "-c", script, "/usr/local/bin/cdigen", entrypoint="/bin/sh")
    assert (proc.returncode, proc.stdout) == (0, f"cdigen {__version__}\nnone\n"), proc.stderr
    _, _, work = built
    names = {name for _, _, files in os.walk(work / "context" / "rootfs") for name in files}
    assert not {n for n in names if re.fullmatch(r"python[0-9.]*", n)}  # no interpreter anywhere


def test_scan_and_apply_in_the_image(built, tmp_path):
    """The image's scan points the hooks at the node's cdigen, and its apply injects that spec."""
    bundle, spec = tmp_path / "bundle", tmp_path / "spec"
    bundle.mkdir()
    spec.mkdir()
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    proc = run_image(built, "scan", "--example", "hgx-h100", "--hook-path", HOOK_PATH, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    hooks = [h for d in json.loads(proc.stdout)["devices"] for h in d["containerEdits"].get("hooks", [])]
    assert hooks and {h["path"] for h in hooks} == {HOOK_PATH}
    (spec / "cdigen.json").write_text(proc.stdout)
    proc = run_image(
        built, "apply", "/work/bundle", "--spec-dir", "/work/spec", "--device", "cdigen.io/gpu=gpu0",
        volumes={tmp_path: "/work"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    config = json.loads((bundle / "config.json").read_text())
    assert "/dev/nvidia0" in {d["path"] for d in config["linux"]["devices"]}
    assert {h["path"] for h in config["hooks"]["createRuntime"]} == {HOOK_PATH}


@pytest.fixture(scope="module")
def node(built, tmp_path_factory):
    """/opt/cdigen of a node, as the DaemonSet's init container leaves it."""
    opt = tmp_path_factory.mktemp("node") / "opt-cdigen"
    opt.mkdir()
    proc = run_image(
        built, "/usr/lib/cdigen", "/host/opt/cdigen", volumes={opt: "/host/opt/cdigen"},
        entrypoint="/usr/local/sbin/cdigen-install-node",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return opt


def test_the_install_puts_the_release_on_the_node(built, node):
    bundle, _, _ = built
    release = (bundle / "RELEASE").read_text().strip()
    assert release.startswith(__version__ + "-")
    assert os.readlink(node / "bin" / "cdigen") == f"../releases/{release}/cdigen"
    proc = subprocess.run([node / "bin" / "cdigen", "--version"], capture_output=True, text=True)
    assert proc.stdout == f"cdigen {__version__}\n"


def test_the_hook_runs_from_the_node_path(node, tmp_path):
    """The spec's hook entry, run as a runtime runs it: bad state on stdin is one line, exit 3,
    from the frozen cdigen's own parser (no Python on the way)."""
    proc = subprocess.run([node / "bin" / "cdigen", "hook"], input="{", capture_output=True, text=True)
    assert proc.returncode == 3
    assert proc.stderr.startswith("cdigen: error: ") and proc.stderr.count("\n") == 1


def test_the_shim_hands_the_runtime_the_callers_environment(node, tmp_path):
    """PyInstaller's loader sets LD_LIBRARY_PATH to its own libraries and _PYI_* variables
    for itself; packaging/rthook_env.py takes them out again, so the real runtime (here a
    stand-in named runc) loads the host's libraries."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "runc").write_text(f'#!/bin/sh\nenv > "{tmp_path}/env"\n')
    (fake / "runc").chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin", "LD_LIBRARY_PATH": "/callers/lib"}
    proc = subprocess.run([node / "bin" / "cdigen-runtime", "state", "c1"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    seen = dict(line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines() if "=" in line)
    assert seen["LD_LIBRARY_PATH"] == "/callers/lib"
    assert not [k for k in seen if k.startswith("_PYI") or k == "LD_LIBRARY_PATH_ORIG"]


def test_the_frozen_agent_registers_with_kubelet(node):
    """`cdigen device-plugin` of the node's cdigen (grpc inside the bundle) against the kubelet
    stand-in: it registers and lists the example's eight GPUs."""
    from cdigen.examples import EXAMPLES, fakesys
    from tests.helpers.kubelet import Kubelet

    root, scratch = fakesys.build(EXAMPLES["hgx-h100"], fast_tmpdir()), fast_tmpdir()
    kubelet = Kubelet(os.path.join(scratch, "kubelet"))
    kubelet.start()
    config = os.path.join(scratch, "agent.yaml")
    with open(config, "w") as f:
        f.write(f"root: {root}\nspec: {scratch}/cdi/cdigen.yaml\nkubelet_dir: {scratch}/kubelet\n")
    agent = subprocess.Popen(
        [node / "bin" / "cdigen", "device-plugin", "--config", config],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        kubelet.wait(lambda k: k.lists, timeout=30)
        assert kubelet.registrations[0].resource_name == "cdigen.io/gpu"
        assert sorted(kubelet.latest()) == [f"gpu{i}" for i in range(8)]
        response = kubelet.allocate(["gpu3"])
        assert [d.name for d in response.container_responses[0].cdi_devices] == ["cdigen.io/gpu=gpu3"]
    finally:
        agent.terminate()
        agent.communicate(timeout=10)
        kubelet.stop()
        for d in (root, scratch):
            shutil.rmtree(d, ignore_errors=True)
