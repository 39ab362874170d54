"""The NVIDIA driver's userspace under a driver root: what a GPU container needs to run CUDA
(docs/gpu.md, "Driver files").

No NVML and no subprocess. The version comes from the kernel module
(`/proc/driver/nvidia/version` under the host root), else from the suffix of
`libcuda.so.<version>`. Libraries are `lib*.so.<version>` in every directory that holds them:
the directories of the driver root's ld.so.cache and the standard library directories, each
with its `vdpau/`. Every path is resolved inside the driver root (a symlink there never
leads to the machine's own files), and a file the container should see is reported at its
path in the driver root, which is where it goes in the container. Nothing found is a
warning, never an error.
"""

import os
import re
import stat
import struct

from cdigen.files import UnreadableFile, open_regular, read_regular
from cdigen.scan.model import DriverFiles, Mount, ScanWarning
from cdigen.values import version_tuple

# Searched in this order, then the ld.so.cache directories (nvidia-ctk's order).
LIBRARY_DIRS = (
    "/usr/lib64",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu/nvidia/current",
    "/usr/lib/aarch64-linux-gnu/nvidia/current",
    "/lib64",
    "/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib",
    "/lib",
)
PROGRAMS = (
    "nvidia-smi",
    "nvidia-debugdump",
    "nvidia-persistenced",
    "nvidia-cuda-mps-control",
    "nvidia-cuda-mps-server",
)
PROGRAM_DIRS = ("/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin", "/usr/local/sbin")
# Development links the container gets whatever the host has: what programs dlopen by that name.
ALWAYS_DEV_LINKS = ("libcuda", "libnvidia-opticalflow")
PERSISTENCED_SOCKET = "/run/nvidia-persistenced/socket"
MPS_PIPE_DIR = "/tmp/nvidia-mps"  # CUDA_MPS_PIPE_DIRECTORY's default
VERSION_FILE = "proc/driver/nvidia/version"
CACHE_MAGIC = b"glibc-ld.so.cache1.1"
OLD_CACHE_MAGIC = b"ld.so-1.7.0"
MAX_LINKS = 40  # symlinks followed while resolving one path, as the kernel's limit

_KERNEL_VERSION = re.compile(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+\.\d+(?:\.\d+)?)\s")
_LIBCUDA = re.compile(r"libcuda\.so\.(\d+\.\d+(?:\.\d+)?)")


# ---------------------------------------------------------------------------- paths in a root


class Root:
    """Paths below a directory taken as `/`: symlinks resolved inside it, lstat results cached."""

    def __init__(self, root: str):
        self.root = root.rstrip("/") or "/"
        self._lstat: dict[str, os.stat_result | None] = {}

    def host(self, rel: str) -> str:
        """The path on this machine of `rel` (relative to the root, no leading slash)."""
        return os.path.join(self.root, rel) if rel else self.root

    def lstat(self, rel: str) -> os.stat_result | None:
        if rel not in self._lstat:
            try:
                self._lstat[rel] = os.lstat(self.host(rel))
            except OSError:
                self._lstat[rel] = None
        return self._lstat[rel]

    def resolve(self, path: str) -> str | None:
        """`path` (absolute inside the root) with every symlink resolved inside the root:
        an absolute target starts again at the root, `..` stops there. The result is relative
        to the root ("usr/lib/x86_64-linux-gnu"; "" for the root), or None when a component
        is missing or the links loop."""
        pending = [p for p in reversed(path.split("/")) if p]
        done: list[str] = []
        links = 0
        while pending:
            name = pending.pop()
            if name == ".":
                continue
            if name == "..":
                if done:
                    done.pop()
                continue
            rel = "/".join([*done, name])
            st = self.lstat(rel)
            if st is None:
                return None
            if stat.S_ISLNK(st.st_mode):
                links += 1
                try:
                    target = os.readlink(self.host(rel))
                except OSError:
                    return None
                if links > MAX_LINKS:
                    return None
                if target.startswith("/"):
                    done = []
                pending.extend(p for p in reversed(target.split("/")) if p)
                continue
            done.append(name)
        return "/".join(done)

    def kind(self, path: str) -> tuple[str | None, int]:
        """(resolved relative path, file type bits) of `path`; (None, 0) when it is not there."""
        rel = self.resolve(path)
        if rel is None:
            return None, 0
        st = self.lstat(rel)
        return rel, stat.S_IFMT(st.st_mode) if st else 0

    def listdir(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self.host(rel)))
        except OSError:
            return []


# ---------------------------------------------------------------------------- ld.so.cache and ELF


def cache_paths(data: bytes) -> list[str]:
    """The library paths of an ld.so.cache (glibc's format "glibc-ld.so.cache1.1", possibly
    after the old "ld.so-1.7.0" section), in cache order; [] for anything else."""
    start = 0
    if data.startswith(OLD_CACHE_MAGIC):  # old entries (3 x int32 each), then the new header, 8-aligned
        if len(data) < 16:
            return []
        (count,) = struct.unpack_from("<I", data, 12)
        start = (16 + 12 * count + 7) & ~7
    if data[start : start + len(CACHE_MAGIC)] != CACHE_MAGIC or len(data) < start + 48:
        return []
    (count,) = struct.unpack_from("<I", data, start + 20)
    out = []
    for i in range(min(count, (len(data) - start - 48) // 24)):
        value = struct.unpack_from("<iIIIQ", data, start + 48 + 24 * i)[2]
        offset = start + value
        end = data.find(b"\0", offset)
        if 0 <= offset < len(data) and end > offset:
            out.append(data[offset:end].decode("utf-8", "replace"))
    return out


def elf_soname(path: str) -> str | None:
    """DT_SONAME of an ELF shared object (32/64-bit, either byte order), read from its
    program headers; None when it is not ELF or names no SONAME."""
    try:
        with os.fdopen(open_regular(path), "rb") as f:
            head = f.read(64)
            if len(head) < 52 or head[:4] != b"\x7fELF" or head[5] not in (1, 2) or head[4] not in (1, 2):
                return None
            end = "<" if head[5] == 1 else ">"
            if head[4] == 2:
                phoff, (phentsize, phnum) = (
                    struct.unpack_from(end + "Q", head, 0x20)[0],
                    struct.unpack_from(end + "HH", head, 0x36),
                )
                phfmt, dynfmt = end + "IIQQQQQQ", end + "qQ"
                fields = (0, 2, 3, 5)  # p_type, p_offset, p_vaddr, p_filesz
            else:
                phoff, (phentsize, phnum) = (
                    struct.unpack_from(end + "I", head, 0x1C)[0],
                    struct.unpack_from(end + "HH", head, 0x2A),
                )
                phfmt, dynfmt = end + "IIIIIIII", end + "iI"
                fields = (0, 1, 2, 4)
            if phentsize < struct.calcsize(phfmt) or not 0 < phnum <= 512:
                return None
            f.seek(phoff)
            table = f.read(phentsize * phnum)
            loads, dynamic = [], None
            for i in range(len(table) // phentsize):
                ph = struct.unpack_from(phfmt, table, i * phentsize)
                kind, offset, vaddr, size = (ph[k] for k in fields)
                if kind == 1:
                    loads.append((vaddr, offset, size))
                elif kind == 2:
                    dynamic = (offset, min(size, 1 << 16))
            if dynamic is None:
                return None
            f.seek(dynamic[0])
            raw = f.read(dynamic[1])
            size = struct.calcsize(dynfmt)
            strtab = soname = None
            for i in range(len(raw) // size):
                tag, value = struct.unpack_from(dynfmt, raw, i * size)
                if tag == 0:
                    break
                if tag == 5:
                    strtab = value
                elif tag == 14:
                    soname = value
            if strtab is None or soname is None:
                return None
            for vaddr, offset, size in loads:
                if vaddr <= strtab < vaddr + size:
                    f.seek(strtab - vaddr + offset + soname)
                    name = f.read(256).split(b"\0", 1)[0]
                    return name.decode("utf-8", "replace") or None
    except (OSError, UnreadableFile, struct.error, ValueError):
        return None
    return None


# ---------------------------------------------------------------------------- the driver


def kernel_module(root: str) -> tuple[str | None, bool | None]:
    """(version, open flavour) of the loaded nvidia kernel module, from `/proc/driver/nvidia/version`
    under `root`; (None, None) when there is no such file or it cannot be read."""
    try:
        text = read_regular(os.path.join(root, VERSION_FILE), 4096).decode("utf-8", "replace")
    except UnreadableFile:
        return None, None
    m = _KERNEL_VERSION.search(text)
    return (m.group(1) if m else None), "Open Kernel Module" in text


def discover_driver(
    root: str, driver_root: str | None = None, host_prefix: str | None = None, label: str | None = None
) -> tuple[DriverFiles | None, list[ScanWarning]]:
    """The driver files below `driver_root` (default: `root`), and warnings. `root` is the
    host root whose /proc tells the kernel module's version. `host_prefix` replaces the
    driver root in the spec's host paths, and `label` names both roots in warnings (an
    example's throw-away tree: `/` and `<example NAME>`); by default they are the roots'
    own paths."""
    driver_root = driver_root or root
    shown = (host_prefix or driver_root).rstrip("/") or "/"
    named = label if label is not None else driver_root.rstrip("/")
    r = Root(driver_root)
    warnings: list[ScanWarning] = []
    version, _open = kernel_module(root)

    # Candidate library directories: the standard ones, then those of the ld.so.cache.
    candidates = list(LIBRARY_DIRS)
    cache_rel = r.resolve("/etc/ld.so.cache")
    if cache_rel is not None and r.lstat(cache_rel) and stat.S_ISREG(r.lstat(cache_rel).st_mode):
        try:
            data = read_regular(r.host(cache_rel), 16 << 20)
        except UnreadableFile:
            data = b""
        candidates += dict.fromkeys(os.path.dirname(p) for p in cache_paths(data) if p.startswith("/"))
    dirs: list[str] = []  # resolved, relative to the root, each once
    for d in candidates:
        rel, kind = r.kind(d)
        if rel is not None and kind == stat.S_IFDIR and rel not in dirs:
            dirs.append(rel)
    listing = {d: r.listdir(d) for d in dirs}

    found = sorted(
        {m.group(1) for names in listing.values() for n in names if (m := _LIBCUDA.fullmatch(n))},
        key=version_tuple,
    )
    if version is None:
        if not found:
            where = label if label is not None else root.rstrip("/")
            warnings.append(
                ScanWarning(
                    f"{where}/{VERSION_FILE}",
                    f"missing, and no libcuda.so.<version> in the library directories of {named or '/'}: "
                    "no NVIDIA driver userspace found; driver files left out of the spec",
                )
            )
            return None, warnings
        version = found[-1]
        if len(found) > 1:
            warnings.append(
                ScanWarning(named or "/", f"libcuda of several driver versions ({', '.join(found)}): using {version}")
            )

    # The libraries: lib*.so.<version> in each directory and its vdpau/.
    pattern = re.compile(r"lib.+\.so\." + re.escape(version))
    mounts: list[Mount] = []
    folders: list[str] = []
    links: list[tuple[str, str]] = []
    seen: set[str] = set()
    for d in dirs:
        subs = [(d, listing[d])]
        if "vdpau" in listing[d]:
            vdpau, kind = r.kind(f"/{d}/vdpau")
            if kind == stat.S_IFDIR:
                subs.append((vdpau, r.listdir(vdpau)))
        for sub, names in subs:
            here = False
            for name in names:
                if not pattern.fullmatch(name):
                    continue
                real, kind = r.kind(f"/{sub}/{name}")
                if kind != stat.S_IFREG or f"{sub}/{name}" in seen:
                    continue
                seen.add(f"{sub}/{name}")
                here = True
                mounts.append(Mount(_join(shown, real), f"/{sub}/{name}"))
                soname = elf_soname(r.host(real))
                if soname is not None and ("/" in soname or soname in (".", "..")):
                    soname = None
                if soname and soname != name:
                    links.append((f"/{sub}/{soname}", name))
                stem = name[: -len(version) - 4]  # "libcuda" of "libcuda.so.550.54.15"
                host_dev = r.lstat(f"{sub}/{stem}.so")
                if stem in ALWAYS_DEV_LINKS or (host_dev is not None and stat.S_ISLNK(host_dev.st_mode)):
                    links.append((f"/{sub}/{stem}.so", soname or name))
            if here and f"/{sub}" not in folders:
                folders.append(f"/{sub}")
    if not mounts:
        other = f" (found libcuda.so.{', libcuda.so.'.join(found)})" if found else ""
        warnings.append(
            ScanWarning(
                named or "/",
                f"no lib*.so.{version} in {', '.join('/' + d for d in dirs) or 'any library directory'}{other}: "
                "driver libraries left out of the spec",
            )
        )
    elif not any(m.container.endswith(f"/libcuda.so.{version}") for m in mounts):
        warnings.append(ScanWarning(named or "/", f"no libcuda.so.{version}: CUDA will not start in the containers"))

    # Programs: the first of each in the program directories.
    for program in PROGRAMS:
        for d in PROGRAM_DIRS:
            real, kind = r.kind(f"{d}/{program}")
            if kind == stat.S_IFREG:
                mounts.append(Mount(_join(shown, real), "/" + real))
                break

    firmware = _firmware(root, r, version)
    if firmware is not None:
        mounts.append(Mount(_join(shown, firmware), "/" + firmware))

    # IPC: the persistenced socket and the MPS pipe directory, when they are there; clients
    # write to them, so they are not read-only.
    for path, wanted in ((PERSISTENCED_SOCKET, stat.S_IFSOCK), (MPS_PIPE_DIR, stat.S_IFDIR)):
        real, kind = r.kind(path)
        if kind == wanted:
            mounts.append(Mount(_join(shown, real), path, writable=True))
    return DriverFiles(version, mounts, folders, list(dict.fromkeys(links))), warnings


def _text(path: str, limit: int) -> str:
    try:
        return read_regular(path, limit).decode("utf-8", "replace").strip()
    except UnreadableFile:
        return ""


def _join(shown: str, rel: str) -> str:
    return shown.rstrip("/") + "/" + rel


def _firmware(root: str, r: Root, version: str) -> str | None:
    """The resolved path of the GSP firmware directory `nvidia/<version>`: in the firmware
    loader's custom path, then /lib/firmware/updates/<release>, /lib/firmware/updates,
    /lib/firmware/<release> and /lib/firmware (the kernel's order); None when none holds gsp*.bin."""
    release = _text(os.path.join(root, "proc/sys/kernel/osrelease"), 256)
    custom = _text(os.path.join(root, "sys/module/firmware_class/parameters/path"), 4096)
    bases = [custom] if custom.startswith("/") else []
    bases += ["/lib/firmware/updates/" + release, "/lib/firmware/updates", "/lib/firmware/" + release, "/lib/firmware"]
    for base in bases:
        if base.endswith("/"):  # no release known
            continue
        real, kind = r.kind(f"{base}/nvidia/{version}")
        if kind == stat.S_IFDIR and any(n.startswith("gsp") and n.endswith(".bin") for n in r.listdir(real)):
            return real
    return None
