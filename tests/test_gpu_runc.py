"""End to end with a real runtime: `cdigen scan` of a fake host whose driver lives in its own
driver root -> `cdigen apply` -> `runc run` (Debian's runc 1.1.5) of a busybox container with
Debian's static /sbin/ldconfig. The createContainer hook (`cdigen hook ldcache`) makes
libcuda.so.1 and runs the container's ldconfig: inside, the link resolves and the container's
ld cache lists it. The GPU's device nodes point at /dev/null through hostPath, so the
container gets harmless nodes under the GPU's names."""

import json
import os
import shutil

import pytest

from cdigen.hookentry import default_hook_path
from tests.helpers import driver
from tests.helpers.proc import run_cdigen
from tests.helpers.runc import build_rootfs, runc_bundle

pytestmark = [pytest.mark.usefixtures("needs_runc"), pytest.mark.root, pytest.mark.runc]

LIB = "/usr/lib/x86_64-linux-gnu"


def rootfs_with_ldconfig(directory, ldconfig: bytes | None = None) -> str:
    """busybox with the applets the tests use, /etc/ld.so.conf, and an ldconfig at /sbin:
    Debian's static one, or `ldconfig` given as the file's content."""
    rootfs = build_rootfs(directory)
    for applet in ("ls", "test", "readlink", "grep", "echo"):
        os.symlink("busybox", os.path.join(rootfs, "bin", applet))
    os.makedirs(os.path.join(rootfs, "sbin"))
    if ldconfig is None:
        shutil.copy2("/sbin/ldconfig", os.path.join(rootfs, "sbin", "ldconfig"))
    else:
        driver.put(rootfs, "/sbin/ldconfig", ldconfig, 0o755)
    driver.put(rootfs, "/etc/ld.so.conf", b"include /etc/ld.so.conf.d/*.conf\n")
    return rootfs


def gpu_spec(tree, tmp_path) -> str:
    """`cdigen scan` of a one-GPU host whose driver is in its own driver root, with every
    device node pointed at /dev/null (path kept, numbers from the host node); its directory."""
    host = tree("numa 0\npci 0000:40 numa=0 ports: gpu")
    driver.kernel_version(host)
    drv = driver.driver_root(tmp_path / "driver")
    spec_dir = tmp_path / "cdi"
    spec_dir.mkdir()
    out = spec_dir / "cdigen.json"
    proc = run_cdigen(
        "scan", "--root", host, "--driver-root", drv, "--hook-path", default_hook_path(), "--format", "json", "-o", out
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    spec = json.loads(out.read_text())
    for edits in [spec["containerEdits"], *(d["containerEdits"] for d in spec["devices"])]:
        edits["deviceNodes"] = [{"path": n["path"], "hostPath": "/dev/null"} for n in edits.get("deviceNodes", [])]
    spec["cdiVersion"] = "0.5.0"  # hostPath
    out.write_text(json.dumps(spec))
    return str(spec_dir)


def start(runc, tmp_path, tree, rootfs: str, script: str):
    bundle = runc_bundle(tmp_path / "bundle", rootfs, ["sh", "-c", script])
    spec_dir = gpu_spec(tree, tmp_path)
    run_cdigen(
        "apply",
        bundle,
        "--spec-dir",
        spec_dir,
        "--device",
        "cdigen.io/gpu=gpu0",
        "--hook-path",
        default_hook_path(),
        check=0,
    )
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    [hook] = config["hooks"]["createContainer"]
    assert hook["args"][:3] == ["cdigen", "hook", "ldcache"]
    return runc.run(bundle), config


def test_container_finds_libcuda(runc, tree, tmp_path):
    rootfs = rootfs_with_ldconfig(tmp_path / "image")
    script = (
        f"ls -l {LIB}/libcuda.so.1 {LIB}/libcuda.so && test -f {LIB}/libcuda.so.1 && echo RESOLVED; "
        "ls -l /dev/nvidia0 /dev/nvidiactl; /usr/bin/nvidia-smi; /sbin/ldconfig -p"
    )

    proc, config = start(runc, tmp_path, tree, rootfs, script)

    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "RESOLVED" in lines
    assert any(line.endswith(f"{LIB}/libcuda.so.1 -> libcuda.so.{driver.VERSION}") for line in lines), lines
    assert any(line.endswith(f"{LIB}/libcuda.so -> libcuda.so.1") for line in lines), lines
    assert f"NVIDIA-SMI {driver.VERSION}" in lines
    cache = {line.split()[0]: line.split(" => ")[-1] for line in lines if " => " in line}
    assert cache["libcuda.so.1"] == f"{LIB}/libcuda.so.1"
    assert cache["libnvidia-ml.so.1"] == f"{LIB}/libnvidia-ml.so.1"
    # The library known to the host only through its ld.so.cache, in a directory of its own.
    assert cache["libnvidia-ptxjitcompiler.so.1"] == "/opt/nvidia/lib/libnvidia-ptxjitcompiler.so.1"
    # /dev/nvidia0 is /dev/null's node (1:3) under the GPU's name.
    assert any(line.startswith("crw") and "1,   3" in line and line.endswith("/dev/nvidia0") for line in lines), lines
    mounts = {m["destination"]: m for m in config["mounts"]}
    assert mounts[f"{LIB}/libcuda.so.{driver.VERSION}"]["options"] == ["ro", "nosuid", "nodev", "bind"]
    assert mounts["/run/nvidia-persistenced/socket"]["options"] == ["nosuid", "nodev", "noexec", "bind"]
    # The hook wrote into the image (runc bind-mounts the rootfs): the links and the cache.
    assert os.readlink(os.path.join(rootfs, LIB.lstrip("/"), "libcuda.so.1")) == f"libcuda.so.{driver.VERSION}"
    assert os.path.isfile(os.path.join(rootfs, "etc/ld.so.cache"))
    assert runc.containers() == []


def test_container_prefers_its_newer_cuda_compat_libcuda(runc, tree, tmp_path):
    """An image with CUDA forward-compatibility libraries of a newer branch than the host's
    driver (550): inside, libcuda.so.1 resolves to the image's first; the host's stays behind it."""
    rootfs = rootfs_with_ldconfig(tmp_path / "image")
    driver.library(rootfs, "/usr/local/cuda/compat", "libcuda", "libcuda.so.1", "570.86.10")

    proc, config = start(runc, tmp_path, tree, rootfs, "/sbin/ldconfig -p")

    assert proc.returncode == 0, proc.stderr
    [hook] = config["hooks"]["createContainer"]
    assert hook["args"][3:5] == ["--host-driver-version", driver.VERSION]
    libcuda = [line.split(" => ")[1] for line in proc.stdout.splitlines() if "libcuda.so.1 (" in line]
    assert libcuda == ["/usr/local/cuda/compat/libcuda.so.1", f"{LIB}/libcuda.so.1"]
    assert runc.containers() == []


def test_container_ldconfig_runs_without_privileges(runc, tree, tmp_path):
    """The image's ldconfig is the image's code: it runs chrooted with no capability at all
    and no way to gain one; what it sees of itself is kept in the image for the test."""
    fake = b"#!/bin/sh\ngrep -E '^(Cap|NoNewPrivs)' /proc/self/status > /ldconfig-saw\necho \"$@\" >> /ldconfig-saw\n"
    rootfs = rootfs_with_ldconfig(tmp_path / "image", fake)

    proc, _config = start(runc, tmp_path, tree, rootfs, "echo started")

    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(rootfs, "ldconfig-saw")) as f:
        saw = dict(line.split(":\t") for line in f.read().splitlines() if ":\t" in line)
    assert {k: saw[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")} == dict.fromkeys(
        ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"), "0000000000000000"
    )
    assert saw["NoNewPrivs"] == "1"
    with open(os.path.join(rootfs, "ldconfig-saw")) as f:
        assert f.read().splitlines()[-1] == f"{LIB} {LIB}/vdpau /opt/nvidia/lib"
