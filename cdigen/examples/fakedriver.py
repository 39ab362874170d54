"""A fake NVIDIA driver userspace under a root: what `cdigen scan` mounts into GPU containers
(docs/gpu.md).

`write_driver(root, version)` writes, below `root`:

- `proc/driver/nvidia/version` in the kernel module's format (proprietary or open flavour);
- the driver's libraries `usr/lib/x86_64-linux-gnu/lib*.so.VERSION` (and `vdpau/`) as
  minimal ELF64 shared objects whose dynamic section names their SONAME, so that the real
  `ldconfig` and cdigen's ELF reader see what they would see on a host, plus the SONAME
  links and the `libcuda.so`/`libnvidia-ml.so` development links the installer makes;
- the driver's programs in `usr/bin` (shell scripts), the GSP firmware in
  `lib/firmware/nvidia/VERSION/`, and the nvidia-persistenced socket (a socket inode).

`elf_stub(soname)` is the ELF writer, for tests that need their own libraries.
"""

import os
import stat
import struct

LIBDIR = "usr/lib/x86_64-linux-gnu"
# A 550-series driver's libraries: file stem -> SONAME (None: the versioned name itself).
LIBRARIES = {
    "libcuda": "libcuda.so.1",
    "libcudadebugger": "libcudadebugger.so.1",
    "libnvidia-ml": "libnvidia-ml.so.1",
    "libnvidia-ptxjitcompiler": "libnvidia-ptxjitcompiler.so.1",
    "libnvidia-nvvm": "libnvidia-nvvm.so.4",
    "libnvidia-opencl": "libnvidia-opencl.so.1",
    "libnvidia-cfg": "libnvidia-cfg.so.1",
    "libnvidia-allocator": "libnvidia-allocator.so.1",
    "libnvidia-gpucomp": None,
    "libnvidia-encode": "libnvidia-encode.so.1",
    "libnvidia-opticalflow": "libnvidia-opticalflow.so.1",
    "libnvcuvid": "libnvcuvid.so.1",
    "libnvidia-fbc": "libnvidia-fbc.so.1",
    "libnvidia-ngx": "libnvidia-ngx.so.1",
    "libnvoptix": "libnvoptix.so.1",
    "libnvidia-rtcore": None,
    "libnvidia-glcore": None,
    "libnvidia-glsi": None,
    "libnvidia-tls": None,
    "libnvidia-eglcore": None,
    "libnvidia-glvkspirv": None,
    "libGLX_nvidia": "libGLX_nvidia.so.0",
    "libEGL_nvidia": "libEGL_nvidia.so.0",
    "libGLESv2_nvidia": "libGLESv2_nvidia.so.2",
    "libGLESv1_CM_nvidia": "libGLESv1_CM_nvidia.so.1",
}
VDPAU = {"libvdpau_nvidia": "libvdpau_nvidia.so.1"}
DEV_LINKS = ("libcuda", "libnvidia-ml")  # libX.so -> SONAME, as the installer makes them
PROGRAMS = (
    "nvidia-smi",
    "nvidia-debugdump",
    "nvidia-persistenced",
    "nvidia-cuda-mps-control",
    "nvidia-cuda-mps-server",
)
FIRMWARE = ("gsp_ga10x.bin", "gsp_tu10x.bin")
EM_X86_64 = 62


def version_text(version: str, open_module: bool = False) -> str:
    """/proc/driver/nvidia/version as the driver writes it (nv-procfs.c)."""
    flavour = "Open Kernel Module for x86_64" if open_module else "x86_64 Kernel Module"
    return (
        f"NVRM version: NVIDIA UNIX {flavour}  {version}  Release Build  (dvs-builder@U16-I3-B03-4-3)  "
        "Tue Mar  5 22:26:40 UTC 2024\nGCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n"
    )


def elf_stub(soname: str | None, machine: int = EM_X86_64) -> bytes:
    """A minimal ELF64 little-endian shared object (ET_DYN): one PT_LOAD over the whole file
    and a PT_DYNAMIC with DT_STRTAB, DT_STRSZ and, unless `soname` is None, DT_SONAME. No
    code, no sections: enough for ldconfig (which reads the program headers) and for
    cdigen's SONAME reader."""
    strtab = b"\0" + (soname.encode() + b"\0" if soname else b"")
    ehsize, phentsize, phnum = 64, 56, 2
    dyn_off = ehsize + phentsize * phnum
    entries = [(5, 0), (10, len(strtab))] + ([(14, 1)] if soname else []) + [(0, 0)]
    str_off = dyn_off + 16 * len(entries)
    entries[0] = (5, str_off)  # DT_STRTAB: an address; vaddr == file offset in the one PT_LOAD
    size = str_off + len(strtab)
    header = b"\x7fELF" + bytes((2, 1, 1, 0)) + bytes(8)
    header += struct.pack("<HHIQQQIHHHHHH", 3, machine, 1, 0, ehsize, 0, 0, ehsize, phentsize, phnum, 64, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 4, 0, 0, 0, size, size, 0x1000)  # PT_LOAD, R
    dynamic = struct.pack("<IIQQQQQQ", 2, 6, dyn_off, dyn_off, dyn_off, 16 * len(entries), 16 * len(entries), 8)
    body = b"".join(struct.pack("<qQ", tag, value) for tag, value in entries)
    return header + load + dynamic + body + strtab


def _write(path: str, data: bytes, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def _link(path: str, target: str) -> None:
    if not os.path.lexists(path):
        os.symlink(target, path)


def write_libraries(libdir: str, version: str, libraries: dict[str, str | None]) -> list[str]:
    """lib*.so.VERSION ELF stubs in `libdir` with their SONAME links; their file names."""
    names = []
    for stem, soname in libraries.items():
        name = f"{stem}.so.{version}"
        _write(os.path.join(libdir, name), elf_stub(soname or name), 0o755)
        if soname and soname != name:
            _link(os.path.join(libdir, soname), name)
        if stem in DEV_LINKS:
            _link(os.path.join(libdir, f"{stem}.so"), soname or name)
        names.append(name)
    return names


def write_driver(root: str, version: str, open_module: bool = False) -> str:
    """The driver userspace of `version` (and its kernel module's version file) below `root`."""
    _write(os.path.join(root, "proc/driver/nvidia/version"), version_text(version, open_module).encode())
    libdir = os.path.join(root, LIBDIR)
    write_libraries(libdir, version, LIBRARIES)
    write_libraries(os.path.join(libdir, "vdpau"), version, VDPAU)
    for program in PROGRAMS:
        _write(os.path.join(root, "usr/bin", program), f"#!/bin/sh\necho {program} {version}\n".encode(), 0o755)
    for name in FIRMWARE:
        _write(os.path.join(root, "lib/firmware/nvidia", version, name), b"\0" * 64)
    socket = os.path.join(root, "run/nvidia-persistenced/socket")
    os.makedirs(os.path.dirname(socket), exist_ok=True)
    if not os.path.lexists(socket):
        os.mknod(socket, stat.S_IFSOCK | 0o666)  # an inode of type socket; nothing listens
    return root
