"""GPUDirect and friends (docs/gpu.md): the device nodes around the GPUs, and whether
GPUDirect RDMA can work between each GPU and NIC.

Read below the host root, like sysfs.py: majors from /proc/devices, nvidia-fs nodes from
/sys/class/nvidia-fs, MIG capability minors from /proc/driver/nvidia-caps/mig-minors and the
instances that exist from /proc/driver/nvidia/capabilities, IMEX channels from the names in
/dev/nvidia-caps-imex-channels (the driver makes channel nodes only on request, so their
presence is the configuration). Nothing missing is an error.

GPUDirect RDMA lets a NIC read and write GPU memory over PCIe. It needs a way in (the
nvidia_peermem module, or DMA-BUF: the open kernel module on Linux 5.12+) and a PCIe path
that peer-to-peer traffic can take: through a switch (PIX/PXB) it stays below the CPU, unless
a switch port redirects it upwards (ACS P2P Request Redirect, read from the port's extended
config space when readable) and ATS does not let translated requests pass; through the root
complex (PHB) it crosses the CPU; across host bridges or sockets (NODE/SYS) NCCL does not use it.
"""

import os
import re
import struct

from cdigen.files import UnreadableFile, read_head, read_regular
from cdigen.scan.affinity import Affinity, pair_class
from cdigen.scan.driver import kernel_module
from cdigen.scan.model import CharDev, GpuDirect, MigDevice, Mount, ScanWarning, Topology
from cdigen.scan.sysfs import parse_char_majors

MAX_IMEX_CHANNEL = (1 << 20) - 1
ACS_CAP, ATS_CAP = 0x000D, 0x000F
ACS_REQUEST_REDIRECT, ACS_DIRECT_TRANSLATED = 1 << 2, 1 << 6
ATS_ENABLE = 1 << 15
VERDICTS = ("yes", "cpu", "no")


def char_majors(root: str) -> dict[str, int]:
    """The "Character devices:" section of /proc/devices: name -> major."""
    return parse_char_majors(_read(os.path.join(root, "proc/devices"), 65536) or "")


def _read(path: str, limit: int = 256) -> str | None:
    """The text of a small file, or None when it cannot be read (a missing one is no error here)."""
    try:
        return read_regular(path, limit).decode("utf-8", "replace").strip()
    except UnreadableFile:
        return None


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _number_key(name: str) -> int:
    return int(name[len(name.rstrip("0123456789")) :] or 0)


def discover_gpudirect(
    root: str, topo: Topology, driver_root: str | None = None, host_prefix: str | None = None
) -> tuple[GpuDirect, list[ScanWarning]]:
    """GPUDirect devices and RDMA verdicts below `root` (the driver's /etc/cufile.json below
    `driver_root`, shown under `host_prefix` in the spec). Warnings name paths relative to the root."""
    warnings: list[ScanWarning] = []
    majors = char_majors(root)
    gd = GpuDirect()
    if "gdrdrv" in majors:
        gd.gdrdrv = CharDev("/dev/gdrdrv", majors["gdrdrv"], 0)

    nodes = []
    for name in _listdir(os.path.join(root, "sys/class/nvidia-fs")):
        if re.fullmatch(r"nvidia-fs\d+", name):
            dev = _read(os.path.join(root, "sys/class/nvidia-fs", name, "dev"))
            major, sep, minor = (dev or "").partition(":")
            if sep and major.isdigit() and minor.isdigit():
                nodes.append(CharDev(f"/dev/{name}", int(major), int(minor)))
            else:
                warnings.append(ScanWarning(f"/sys/class/nvidia-fs/{name}/dev", "not MAJOR:MINOR; node left out"))
    gd.nvidia_fs = tuple(sorted(nodes, key=lambda c: _number_key(c.path)))
    if gd.nvidia_fs:
        driver_root = driver_root or root
        shown = (host_prefix or driver_root).rstrip("/")
        mounts = []
        if os.path.isfile(os.path.join(driver_root, "etc/cufile.json")):
            mounts.append(Mount(f"{shown}/etc/cufile.json", "/etc/cufile.json"))
        if os.path.isdir(os.path.join(root, "run/udev")):  # cuFile finds NVMe and NICs through udev's data
            mounts.append(Mount(f"{(host_prefix or root).rstrip('/')}/run/udev", "/run/udev"))
        gd.gds_mounts = tuple(mounts)

    channels = [
        n
        for n in _listdir(os.path.join(root, "dev/nvidia-caps-imex-channels"))
        if re.fullmatch(r"channel\d+", n) and int(n[7:]) <= MAX_IMEX_CHANNEL
    ]
    if channels:
        major = majors.get("nvidia-caps-imex-channels")
        if major is None:
            warnings.append(
                ScanWarning(
                    "/proc/devices", f"no nvidia-caps-imex-channels major; {len(channels)} IMEX channels left out"
                )
            )
        else:
            gd.imex = tuple(
                CharDev(f"/dev/nvidia-caps-imex-channels/{n}", major, int(n[7:]))
                for n in sorted(channels, key=_number_key)
            )

    gd.mig = tuple(_mig(root, topo, majors, warnings))

    gd.peermem = os.path.isdir(os.path.join(root, "sys/module/nvidia_peermem"))
    version, open_module = kernel_module(root)
    if version is not None:
        release = _read(os.path.join(root, "proc/sys/kernel/osrelease")) or ""
        m = re.match(r"(\d+)\.(\d+)", release)
        gd.dmabuf = bool(open_module) and bool(m) and (int(m.group(1)), int(m.group(2))) >= (5, 12)
    gd.rdma = rdma_verdicts(root, topo, gd)
    return gd, warnings


def _mig(root: str, topo: Topology, majors: dict[str, int], warnings: list[ScanWarning]) -> list[MigDevice]:
    """The MIG instances (GPU instance + compute instance) that exist on the usable GPUs."""
    minors_text = _read(os.path.join(root, "proc/driver/nvidia-caps/mig-minors"), 1 << 20)
    out: list[MigDevice] = []
    found = False
    minors: dict[str, int] = {}
    for line in (minors_text or "").splitlines():
        name, _, num = line.strip().rpartition(" ")
        if num.isdigit():
            minors[name] = int(num)
    major = majors.get("nvidia-caps")
    for gpu in sorted(topo.usable_gpus, key=lambda g: g.minor):
        base = os.path.join(root, f"proc/driver/nvidia/capabilities/gpu{gpu.minor}/mig")
        for gi in (g for g in _listdir(base) if re.fullmatch(r"gi\d+", g)):
            for ci in (c for c in _listdir(os.path.join(base, gi)) if re.fullmatch(r"ci\d+", c)):
                if not os.path.exists(os.path.join(base, gi, ci, "access")):
                    continue
                found = True
                keys = (f"gpu{gpu.minor}/{gi}/access", f"gpu{gpu.minor}/{gi}/{ci}/access")
                if major is None or any(k not in minors for k in keys):
                    continue
                caps = tuple(CharDev(f"/dev/nvidia-caps/nvidia-cap{minors[k]}", major, minors[k]) for k in keys)
                out.append(MigDevice(gpu.minor, int(gi[2:]), int(ci[2:]), caps))
    if found and not out:
        why = "no nvidia-caps major in /proc/devices" if major is None else "/proc/driver/nvidia-caps/mig-minors"
        warnings.append(
            ScanWarning("/proc/driver/nvidia/capabilities", f"MIG instances without minors ({why}); left out")
        )
    out.sort(key=lambda m: (m.gpu_minor, m.gi, m.ci))
    return out


# ---------------------------------------------------------------------------- GPUDirect RDMA paths


def ext_capability(config: bytes, cap_id: int) -> int | None:
    """The offset of PCIe extended capability `cap_id` in a config space read whole (4096
    bytes: only root reads past 256), or None."""
    pos, seen = 0x100, set()
    while 0x100 <= pos <= len(config) - 8 and pos not in seen:
        seen.add(pos)
        (header,) = struct.unpack_from("<I", config, pos)
        if header in (0, 0xFFFFFFFF):
            return None
        if header & 0xFFFF == cap_id:
            return pos
        pos = (header >> 20) & 0xFFC
    return None


def _config(root: str, topo: Topology, bdf: str, cache: dict) -> bytes | None:
    """The whole config space of `bdf`, or None when only its first 256 bytes (or nothing) can be read."""
    if bdf not in cache:
        try:
            data = read_head(os.path.join(root, "sys/bus/pci/devices", bdf, "config"), 4096)
        except UnreadableFile:
            data = b""
        cache[bdf] = data if len(data) > 0x100 else None
    return cache[bdf]


def _control(config: bytes | None, cap_id: int) -> int | None:
    if config is None:
        return None
    pos = ext_capability(config, cap_id)
    return None if pos is None else struct.unpack_from("<H", config, pos + 6)[0]


def rdma_verdicts(root: str, topo: Topology, gd: GpuDirect) -> dict[tuple[str, str], tuple[str, str, tuple]]:
    """(GPU bdf, NIC bdf) -> (verdict, why, redirecting switch ports) for every usable GPU and
    RDMA NIC that is not a VF."""
    configs: dict[str, bytes | None] = {}
    way_in = gd.peermem or gd.dmabuf
    out = {}
    for gpu in topo.usable_gpus:
        g = topo.pci[gpu.bdf]
        for nic in topo.nics:
            if not nic.rdma or nic.is_vf:
                continue
            n = topo.pci[nic.bdf]
            affinity = pair_class(topo, gpu.bdf, nic.bdf)[0]
            if not way_in:
                out[(gpu.bdf, nic.bdf)] = (
                    "no",
                    "neither nvidia_peermem nor DMA-BUF (open kernel module, Linux 5.12+)",
                    (),
                )
            elif affinity >= Affinity.NODE:
                out[(gpu.bdf, nic.bdf)] = ("no", f"{affinity.name}: across host bridges; NCCL does not use it", ())
            elif affinity == Affinity.PHB:
                out[(gpu.bdf, nic.bdf)] = ("cpu", "PHB: through the CPU's root complex", ())
            else:
                out[(gpu.bdf, nic.bdf)] = _switch_path(root, topo, g.chain, n.chain, nic.bdf, configs)
    return out


def _switch_path(root, topo, a: tuple, b: tuple, nic: str, configs: dict) -> tuple[str, str, tuple]:
    """The verdict for a pair below one switch or root port: the ports where their paths part
    are where a switch could redirect peer-to-peer requests upwards (ACS)."""
    common = 0
    while common < min(len(a), len(b)) - 1 and a[common] == b[common]:
        common += 1
    ports = [p for p in (a[common], b[common]) if topo.pci[p].bridge_kind in ("downstream", "root")]
    unknown, redirect = [], []
    for port in ports:
        control = _control(_config(root, topo, port, configs), ACS_CAP)
        if control is None:
            if _config(root, topo, port, configs) is None:
                unknown.append(port)
        elif control & ACS_REQUEST_REDIRECT:
            redirect.append((port, control))
    if redirect:
        where = ", ".join(p for p, _ in redirect)
        ats = _control(_config(root, topo, nic, configs), ATS_CAP)
        if all(c & ACS_DIRECT_TRANSLATED for _, c in redirect) and ats is not None and ats & ATS_ENABLE:
            return "yes", f"ACS redirects on {where}; ATS lets translated requests pass", ()
        return "cpu", f"ACS P2P Request Redirect on {where}: through the root complex", tuple(p for p, _ in redirect)
    if unknown:
        return "yes", f"ACS of {', '.join(unknown)} unknown (its extended config space needs root)", ()
    return "yes", "", ()


def rdma_warnings(topo: Topology, chosen: dict[str, list]) -> list[ScanWarning]:
    """Warnings for the GPU–NIC pairs of a spec (`chosen`: gpu bdf -> [Nic]) where GPUDirect
    RDMA cannot work, or only through the CPU: one for a missing way in, one per redirecting port."""
    gd = topo.gpudirect
    if gd is None:
        return []
    pairs = [(g, n) for g, nics in chosen.items() for n in nics if (g, n.bdf) in gd.rdma]
    if not pairs:
        return []
    out = []
    if not (gd.peermem or gd.dmabuf):
        dmabuf = (
            "DMA-BUF needs the open kernel module on Linux 5.12+"
            if gd.dmabuf is False
            else "DMA-BUF unknown: no /proc/driver/nvidia/version"
        )
        out.append(
            ScanWarning(
                "/sys/module/nvidia_peermem",
                f"missing: GPUDirect RDMA will not work for the {len(pairs)} GPU-NIC pairs of this spec "
                f"(load it: modprobe nvidia_peermem; {dmabuf})",
            )
        )
        return out
    by_port: dict[str, list[str]] = {}
    for g, n in pairs:
        for port in gd.rdma[(g, n.bdf)][2]:
            by_port.setdefault(port, []).append(f"GPU {g} and {n.label}")
    for port, which in by_port.items():
        out.append(
            ScanWarning(
                f"/sys/bus/pci/devices/{port}/config",
                f"ACS P2P Request Redirect is on: GPUDirect RDMA between {'; '.join(which)} goes through the "
                "root complex (disable ACS redirection on this switch port, or enable ATS on the NIC)",
            )
        )
    return out


def report_section(topo: Topology, report: dict) -> dict:
    """The `gpudirectRdma` part of `cdigen topo --json`: the way in, and a verdict for every
    GPU (with a driver) and RDMA NIC of the matrix, with the reasons that are not plain."""
    gd = topo.gpudirect or GpuDirect()
    names = {g["pciAddress"]: g["name"] for g in report["gpus"]} | {n["pciAddress"]: n["name"] for n in report["nics"]}
    matrix: dict[str, dict[str, str]] = {}
    notes: dict[str, str] = {}
    for (g, n), (verdict, why, _ports) in gd.rdma.items():
        if g in names and n in names:
            matrix.setdefault(names[g], {})[names[n]] = verdict
            if why and not why.startswith(("PHB", "NODE", "SYS", "neither")):
                notes[f"{names[g]}-{names[n]}"] = why
    order = [g["name"] for g in report["gpus"]]
    columns = [n["name"] for n in report["nics"]]
    return {
        "peermem": gd.peermem,
        "dmabuf": gd.dmabuf,
        "matrix": {g: {c: matrix[g][c] for c in columns if c in matrix[g]} for g in order if g in matrix},
        "notes": notes,
    }
