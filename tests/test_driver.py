"""The driver userspace in the spec (cdigen/scan/driver.py, docs/gpu.md): fake driver roots
built here with gcc-compiled libraries and an ld.so.cache made by the real `ldconfig -r`."""

import json
import os
import subprocess

import pytest
from ruamel.yaml import YAML

from cdigen.cdi.spec import check_spec
from cdigen.examples import EXAMPLES, build_example
from cdigen.examples.fakedriver import elf_stub
from cdigen.scan.driver import cache_paths, discover_driver, elf_soname
from tests.helpers import driver
from tests.helpers.driver import VERSION, put
from tests.helpers.proc import run_in_process

LIB = "/usr/lib/x86_64-linux-gnu"
HOOK = ("--hook-path", "/usr/bin/cdigen")


def scan(*args, check=0):
    return run_in_process("scan", *HOOK, *args, check=check)


def load(text: str) -> dict:
    return YAML(typ="safe", pure=True).load(text)


def containers(files) -> list[str]:
    return [m.container for m in files.mounts]


# ---------------------------------------------------------------------------- ELF and ld.so.cache


def test_soname_of_gcc_libraries_and_of_cdigen_stubs(tmp_path):
    path = put(tmp_path, "/libcuda.so.1.2.3", driver.shared_object("libcuda.so.1"))
    assert elf_soname(path) == "libcuda.so.1"
    assert elf_soname(put(tmp_path, "/plain.so", driver.shared_object(None))) is None
    assert elf_soname(put(tmp_path, "/stub.so", elf_stub("libnvidia-ml.so.1"))) == "libnvidia-ml.so.1"
    assert elf_soname(put(tmp_path, "/empty.so", b"")) is None
    assert elf_soname(put(tmp_path, "/script", b"#!/bin/sh\n")) is None
    assert elf_soname(put(tmp_path, "/truncated.so", driver.shared_object("libx.so.1")[:200])) is None
    assert elf_soname(str(tmp_path / "missing.so")) is None


@pytest.mark.parametrize("fmt", ["new", "compat"])
def test_cache_paths_as_ldconfig_lists_them(tmp_path, fmt):
    driver.library(tmp_path, LIB, "libcuda", "libcuda.so.1")
    driver.library(tmp_path, "/opt/nvidia/lib", "libnvidia-ml", "libnvidia-ml.so.1")
    put(tmp_path, "/etc/ld.so.conf", b"/opt/nvidia/lib\n")
    subprocess.run(["ldconfig", "-r", tmp_path, "-c", fmt, LIB], check=True, capture_output=True)
    listed = subprocess.run(["ldconfig", "-r", tmp_path, "-p"], check=True, capture_output=True, text=True).stdout
    expected = [line.split(" => ")[1] for line in listed.splitlines() if " => " in line]
    paths = cache_paths((tmp_path / "etc/ld.so.cache").read_bytes())
    assert sorted(paths) == sorted(expected)
    assert {f"{LIB}/libcuda.so.1", "/opt/nvidia/lib/libnvidia-ml.so.1"} <= set(paths)
    assert cache_paths(b"") == cache_paths(b"glibc-ld.so.cache1.1") == cache_paths(b"garbage" * 20) == []


def test_fakedriver_libraries_pass_the_real_ldconfig(tmp_path):
    """The example driver's ELF stubs are what ldconfig accepts as libraries with a SONAME."""
    root = build_example("hgx-h100-driver", str(tmp_path))
    subprocess.run(["ldconfig", "-r", root, LIB, f"{LIB}/vdpau"], check=True, capture_output=True)
    listed = subprocess.run(["ldconfig", "-r", root, "-p"], check=True, capture_output=True, text=True).stdout
    assert f"libcuda.so.1 (libc6,x86-64) => {LIB}/libcuda.so.1" in listed
    assert f"libvdpau_nvidia.so.1 (libc6,x86-64) => {LIB}/vdpau/libvdpau_nvidia.so.1" in listed


# ---------------------------------------------------------------------------- discovery


def test_every_directory_that_holds_driver_libraries(tmp_path):
    host = tmp_path / "host"
    driver.kernel_version(host)
    drv = driver.driver_root(tmp_path / "driver")
    files, warnings = discover_driver(str(host), drv)
    assert warnings == []
    assert files.version == VERSION
    assert containers(files) == [
        f"{LIB}/libcuda.so.{VERSION}",
        f"{LIB}/libnvidia-ml.so.{VERSION}",
        f"{LIB}/vdpau/libvdpau_nvidia.so.{VERSION}",
        f"/opt/nvidia/lib/libnvidia-ptxjitcompiler.so.{VERSION}",  # only in the ld.so.cache
        "/usr/bin/nvidia-smi",
        f"/lib/firmware/nvidia/{VERSION}",
        "/run/nvidia-persistenced/socket",
    ]
    assert files.mounts[0].host == f"{drv}{LIB}/libcuda.so.{VERSION}"
    assert [m.writable for m in files.mounts] == [False] * 6 + [True]
    assert files.folders == [LIB, f"{LIB}/vdpau", "/opt/nvidia/lib"]
    assert files.links == [
        (f"{LIB}/libcuda.so.1", f"libcuda.so.{VERSION}"),
        (f"{LIB}/libcuda.so", "libcuda.so.1"),  # always, and the host has it too
        (f"{LIB}/libnvidia-ml.so.1", f"libnvidia-ml.so.{VERSION}"),  # no libnvidia-ml.so on this host
        (f"{LIB}/vdpau/libvdpau_nvidia.so.1", f"libvdpau_nvidia.so.{VERSION}"),
        ("/opt/nvidia/lib/libnvidia-ptxjitcompiler.so.1", f"libnvidia-ptxjitcompiler.so.{VERSION}"),
    ]


def test_version_from_libcuda_without_the_kernel_module_file(tmp_path):
    drv = driver.driver_root(tmp_path / "driver", "535.183.01", second_dir=None)
    files, warnings = discover_driver(drv)
    assert (files.version, warnings) == ("535.183.01", [])
    driver.library(drv, LIB, "libcuda", "libcuda.so.1", "550.90.07", links=False)  # an upgrade's leftover
    files, warnings = discover_driver(drv)
    assert files.version == "550.90.07"
    [warning] = warnings
    assert warning.reason == "libcuda of several driver versions (535.183.01, 550.90.07): using 550.90.07"


def test_kernel_module_and_libraries_of_different_versions(tmp_path):
    host = tmp_path / "host"
    driver.kernel_version(host, "550.127.05")  # the module loaded before an upgrade of the files
    drv = driver.driver_root(tmp_path / "driver", second_dir=None)
    files, warnings = discover_driver(str(host), drv)
    assert [m for m in containers(files) if "/lib/" in m] == []
    assert [(w.path, w.reason) for w in warnings] == [
        (
            drv,
            "no lib*.so.550.127.05 in /usr/lib/x86_64-linux-gnu, /usr/lib, /lib (found libcuda.so.550.90.07): "
            "driver libraries left out of the spec",
        )
    ]


def test_nothing_found_is_a_warning(tree):
    root = tree(EXAMPLES["switch-pair"])
    files, warnings = discover_driver(root)
    assert files is None
    assert [(w.path, w.reason) for w in warnings] == [
        (
            f"{root}/proc/driver/nvidia/version",
            f"missing, and no libcuda.so.<version> in the library directories of {root}: no NVIDIA driver userspace "
            "found; driver files left out of the spec",
        )
    ]
    proc = scan("--root", root)
    assert proc.stderr == f"cdigen: warning: {warnings[0].path}: {warnings[0].reason}\n"
    assert "mounts" not in proc.stdout and "ldcache" not in proc.stdout
    assert scan("--root", root, "--no-driver-files").stderr == ""


def test_symlinks_stay_inside_the_driver_root(tmp_path):
    """A driver container's root is not the host: its absolute symlinks and `..` resolve in
    it, never to this machine's files."""
    drv = tmp_path / "driver"
    driver.library(drv, "/opt/real/lib", "libcuda", "libcuda.so.1")
    os.makedirs(drv / "usr/lib")
    os.symlink("/opt/real/lib", drv / "usr/lib/x86_64-linux-gnu")  # absolute: inside the driver root
    os.symlink("/etc/hostname", drv / f"opt/real/lib/libnvidia-ml.so.{VERSION}")  # this machine has that file
    os.symlink("../../../../../../etc/passwd", drv / f"opt/real/lib/libnvidia-cfg.so.{VERSION}")
    put(drv, "/etc/hostname", b"not a library")  # the one inside the root: not a library either
    os.symlink("/usr/bin", drv / "bin")
    put(drv, "/usr/bin/nvidia-smi", b"#!/bin/sh\n", 0o755)
    files, warnings = discover_driver(str(drv))
    assert warnings == []
    assert [(m.host, m.container) for m in files.mounts] == [
        (f"{drv}/opt/real/lib/libcuda.so.{VERSION}", f"/opt/real/lib/libcuda.so.{VERSION}"),
        # /etc/hostname of the driver root (this machine's is never looked at); ../etc/passwd
        # stops at the driver root, which has none: left out.
        (f"{drv}/etc/hostname", f"/opt/real/lib/libnvidia-ml.so.{VERSION}"),
        (f"{drv}/usr/bin/nvidia-smi", "/usr/bin/nvidia-smi"),
    ]
    assert all(m.host.startswith(str(drv)) for m in files.mounts)


def test_firmware_in_the_kernel_search_order(tmp_path):
    host = tmp_path / "host"
    driver.kernel_version(host)
    put(host, "/proc/sys/kernel/osrelease", b"6.1.0-28-amd64\n")
    drv = driver.driver_root(tmp_path / "driver", second_dir=None)
    put(drv, f"/lib/firmware/6.1.0-28-amd64/nvidia/{VERSION}/gsp_ga10x.bin")
    files, _ = discover_driver(str(host), drv)
    assert f"/lib/firmware/6.1.0-28-amd64/nvidia/{VERSION}" in containers(files)
    put(host, "/sys/module/firmware_class/parameters/path", b"/srv/firmware\n")
    put(drv, f"/srv/firmware/nvidia/{VERSION}/gsp_tu10x.bin")
    put(drv, f"/lib/firmware/updates/nvidia/{VERSION}/README")  # no gsp*.bin: not a firmware directory
    files, _ = discover_driver(str(host), drv)
    assert [c for c in containers(files) if "firmware" in c] == [f"/srv/firmware/nvidia/{VERSION}"]


# ---------------------------------------------------------------------------- the spec


def test_spec_with_a_driver_root(tree, tmp_path, snapshot):
    host = tree("numa 0\npci 0000:40 numa=0 ports: switch(gpu ib)")
    driver.kernel_version(host)
    drv = driver.driver_root(tmp_path / "driver")
    proc = scan("--root", host, "--driver-root", drv)
    assert proc.stderr == ""
    spec = load(proc.stdout)
    for version in ("0.3.0", "0.5.0", "1.1.0"):
        check_spec(spec, version)  # mounts without `type`: every CDI library loads them
    assert spec["cdiVersion"] == "0.3.0"
    common = spec["containerEdits"]
    [hook] = common["hooks"]
    assert hook["hookName"] == "createContainer" and hook["args"][:3] == ["cdigen", "hook", "ldcache"]
    assert hook["args"][3:5] == ["--host-driver-version", driver.VERSION]  # CUDA forward compatibility
    assert all(m["hostPath"].startswith(drv) for m in common["mounts"])
    # The GPU devices themselves carry no driver file: it is the spec's, once per container.
    assert all("mounts" not in d["containerEdits"] for d in spec["devices"])
    snapshot.assert_match(proc.stdout.replace(drv, "{driverRoot}"), "spec.yaml")
    json_spec = json.loads(scan("--root", host, "--driver-root", drv, "--format", "json").stdout)
    assert json_spec == spec


def test_no_driver_files_and_option_errors(tmp_path):
    proc = scan("--example", "hgx-h100-driver", "--no-driver-files")
    spec = load(proc.stdout)
    assert "mounts" not in spec["containerEdits"] and "hooks" not in spec["containerEdits"]
    assert "gdrcopy" in [d["name"] for d in spec["devices"]]  # device nodes, not driver files
    proc = scan("--example", "hgx-h100-driver", "--driver-root", str(tmp_path), check=2)
    assert proc.stderr == "cdigen: error: --driver-root not with --example (an example is its own driver root)\n"
    proc = scan("--example", "hgx-h100", "--nic-only", "--driver-root", str(tmp_path), check=2)
    assert proc.stderr == "cdigen: error: --nic-only and --driver-root: a NIC-only spec has no driver files\n"
    proc = scan("--example", "workstation", "--nic-only", check=2)
    assert proc.stderr == (
        "cdigen: error: --nic-only finds no GPU with an RDMA NIC within PXB: the spec would have no device\n"
    )


def test_example_driver_files_are_shown_as_the_hosts():
    spec = load(scan("--example", "hgx-h100-driver").stdout)
    mounts = spec["containerEdits"]["mounts"]
    assert all(m["hostPath"] == m["containerPath"] for m in mounts)  # the example's tree is shown as /
    assert f"{LIB}/libcuda.so.550.90.07" in [m["hostPath"] for m in mounts]
    assert load(scan("--example", "hgx-h100").stdout)["containerEdits"].keys() == {"deviceNodes"}
