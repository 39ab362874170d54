"""Fake NVIDIA driver roots built by the tests: versioned libraries compiled by gcc with their
SONAMEs (cdigen's own ELF stubs where gcc is missing), an ld.so.cache made by the real
`ldconfig -r`, programs, GSP firmware, the persistenced socket, and the kernel module's
version file under a host root."""

import os
import shutil
import stat
import subprocess
import tempfile

from cdigen.examples.fakedriver import elf_stub, version_text

VERSION = "550.90.07"
_compiled: dict[str, bytes] = {}


def shared_object(soname: str | None) -> bytes:
    """A real shared object with that DT_SONAME (gcc -shared -Wl,-soname), cached per SONAME."""
    if soname not in _compiled:
        if shutil.which("gcc") is None:
            _compiled[soname] = elf_stub(soname)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                src, out = os.path.join(tmp, "stub.c"), os.path.join(tmp, "stub.so")
                with open(src, "w") as f:
                    f.write("int cdigen_stub = 1;\n")
                flags = [f"-Wl,-soname,{soname}"] if soname else []
                subprocess.run(["gcc", "-shared", "-fPIC", "-o", out, src, *flags], check=True, capture_output=True)
                with open(out, "rb") as f:
                    _compiled[soname] = f.read()
    return _compiled[soname]


def put(root, path: str, data: bytes = b"", mode: int = 0o644) -> str:
    """Write `data` at `path` (absolute inside `root`); returns the full path."""
    full = os.path.join(str(root), path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data)
    os.chmod(full, mode)
    return full


def library(root, directory: str, stem: str, soname: str | None, version: str = VERSION, links: bool = True) -> str:
    """`directory/stem.so.VERSION` (a gcc-built shared object) and, with `links`, its SONAME link."""
    name = f"{stem}.so.{version}"
    put(root, f"{directory}/{name}", shared_object(soname), 0o755)
    if links and soname and soname != name:
        os.symlink(name, os.path.join(str(root), directory.lstrip("/"), soname))
    return name


def kernel_version(host_root, version: str = VERSION, open_module: bool = False) -> None:
    put(host_root, "/proc/driver/nvidia/version", version_text(version, open_module).encode())


def ld_cache(root, extra_dirs: list[str] = ()) -> None:
    """etc/ld.so.conf naming `extra_dirs`, then the real `ldconfig -r ROOT` writes etc/ld.so.cache."""
    put(root, "/etc/ld.so.conf", "".join(f"{d}\n" for d in extra_dirs).encode())
    subprocess.run(["ldconfig", "-r", str(root)], check=True, capture_output=True)


def driver_root(root, version: str = VERSION, second_dir: str | None = "/opt/nvidia/lib") -> str:
    """A driver root as a host (or a driver container) has it: libcuda, libnvidia-ml and a
    vdpau library in /usr/lib/x86_64-linux-gnu; with `second_dir`, libnvidia-ptxjitcompiler
    there, known only through the ld.so.cache; nvidia-smi; GSP firmware; the persistenced
    socket."""
    lib = "/usr/lib/x86_64-linux-gnu"
    library(root, lib, "libcuda", "libcuda.so.1", version)
    os.symlink("libcuda.so.1", os.path.join(str(root), lib.lstrip("/"), "libcuda.so"))
    library(root, lib, "libnvidia-ml", "libnvidia-ml.so.1", version)
    library(root, f"{lib}/vdpau", "libvdpau_nvidia", "libvdpau_nvidia.so.1", version)
    if second_dir:
        library(root, second_dir, "libnvidia-ptxjitcompiler", "libnvidia-ptxjitcompiler.so.1", version)
    ld_cache(root, [second_dir] if second_dir else [])
    put(root, "/usr/bin/nvidia-smi", f"#!/bin/sh\necho NVIDIA-SMI {version}\n".encode(), 0o755)
    put(root, f"/lib/firmware/nvidia/{version}/gsp_ga10x.bin", b"\0" * 16)
    socket = os.path.join(str(root), "run/nvidia-persistenced/socket")
    os.makedirs(os.path.dirname(socket), exist_ok=True)
    os.mknod(socket, stat.S_IFSOCK | 0o666)
    return str(root)
