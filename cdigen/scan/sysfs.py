"""Read a host root (/, or a fake tree) into a `Topology`.

Never raises on a bad, missing or unreadable file: it records a `ScanWarning` naming the path
and scans the rest. Device numbers come from sysfs `dev` files and /proc (docs/topology.md),
never from stat of /dev. Cost: one readlink per PCI function/netdev/RDMA device (kernfs links
are relative and the directories below sys/devices are real, so readlink + normpath is the
realpath), a handful of small reads, and one 256-byte read of `config` per bridge; no
subprocesses.
"""

import os
import re

from cdigen.files import UnreadableFile, read_head, read_regular
from cdigen.scan.affinity import bridge_hops
from cdigen.scan.model import (
    NVIDIA_MAJOR,
    NVIDIA_VENDOR,
    CharDev,
    Gpu,
    Netdev,
    Nic,
    PciFunction,
    RdmaDevice,
    ScanWarning,
    Topology,
)
from cdigen.scan.nccltopo import read_topology
from cdigen.values import is_pci_address

_ROOT_BUS = re.compile(r"pci[0-9a-f]{4,}:[0-9a-f]{2}")
_GPU_CLASSES = (0x0300, 0x0302)  # VGA, 3D controller
_ARPHRD = {"1": "Ethernet", "32": "InfiniBand"}
MAX_TEXT_BYTES = 65536  # sysfs attributes are at most a page; /proc/devices and a GPU's information are short


class _Reader:
    """Reads files below `root`; every failure becomes a warning naming the path."""

    def __init__(self, root: str):
        self.root = root.rstrip("/") or "/"
        self.warnings: list[ScanWarning] = []

    def path(self, rel: str) -> str:
        return os.path.join(self.root, rel)

    def warn(self, rel: str, reason: str) -> None:
        self.warnings.append(ScanWarning("/" + rel, reason))

    def text(self, rel: str, missing_ok: bool = False) -> str | None:
        try:
            return read_regular(self.path(rel), MAX_TEXT_BYTES).decode("utf-8", "replace").strip()
        except UnreadableFile as e:
            if not (e.missing and missing_ok):
                self.warn(rel, "missing" if e.missing else f"unreadable: {e.reason}")
        return None

    def raw(self, rel: str, size: int) -> bytes | str:
        """The first `size` bytes of a binary file, or why they cannot be read (no warning)."""
        try:
            return read_head(self.path(rel), size)
        except UnreadableFile as e:
            return "missing" if e.missing else f"unreadable: {e.reason}"

    def number(self, rel: str, base: int, missing_ok: bool = False) -> int | None:
        text = self.text(rel, missing_ok)
        if text is None:
            return None
        try:
            return int(text, base)
        except ValueError:
            self.warn(rel, f"not a number: {text[:40]!r}")
            return None

    def devnum(self, rel: str) -> tuple[int, int] | None:
        """A sysfs `dev` file: "MAJOR:MINOR"."""
        text = self.text(rel)
        if text is None:
            return None
        major, sep, minor = text.partition(":")
        if sep and decimal(major) is not None and decimal(minor) is not None:
            return decimal(major), decimal(minor)
        self.warn(rel, f"not MAJOR:MINOR: {text[:40]!r}")
        return None

    def listdir(self, rel: str, missing_ok: bool = True) -> list[str]:
        try:
            return sorted(os.listdir(self.path(rel)))
        except FileNotFoundError:
            if not missing_ok:
                self.warn(rel, "missing")
        except OSError as e:
            self.warn(rel, f"unreadable: {e.strerror}")
        return []

    def resolve(self, rel: str, missing_ok: bool = False) -> str | None:
        """Where the symlink `rel` points, as a normalised path relative to the root."""
        try:
            target = os.readlink(self.path(rel))
        except FileNotFoundError:
            if not missing_ok:
                self.warn(rel, "missing")
            return None
        except OSError as e:
            if not missing_ok:
                self.warn(rel, f"not a symlink: {e.strerror}")
            return None
        if os.path.isabs(target):  # kernfs links are relative; keep an absolute one inside the root
            return os.path.normpath(target.lstrip("/"))
        return os.path.normpath(os.path.join(os.path.dirname(rel), target))


def _nearest_bdf(devpath: str, stop: str) -> str | None:
    """The PCI function owning a class device: the last BDF component before `/stop/` (None
    without one: a class link retargeted to a device's own directory names no class device)."""
    head, sep, _name = devpath.rpartition(f"/{stop}/")
    if not sep:
        return None
    for comp in reversed(head.split("/")):
        if is_pci_address(comp):
            return comp
    return None


_PORT_KINDS = {0x4: "root", 0x5: "upstream", 0x6: "downstream"}  # PCIe Device/Port Type; else "bridge"


def _bridge_kind(config: bytes) -> str:
    """A bridge's kind from its config space (docs/topology.md): the Device/Port Type field
    (bits 7:4 of the capabilities register) of the PCI Express capability (ID 0x10), found by
    walking the capability list from the pointer at 0x34. A bridge without that capability
    (conventional PCI) is a "bridge". ValueError: too short to tell, or a broken list."""
    if len(config) < 0x40:
        raise ValueError(f"{len(config)} bytes, not even the header")
    if not config[0x06] & 0x10:  # Status: Capabilities List
        return "bridge"
    pos, seen = config[0x34] & 0xFC, set()
    while pos:
        if pos + 4 > len(config) and pos >= 0x40:
            raise ValueError(f"{len(config)} bytes, the capabilities are beyond them (reading them needs root)")
        if pos < 0x40 or pos in seen:
            raise ValueError(f"broken capability list (pointer 0x{pos:02x})")
        seen.add(pos)
        if config[pos] == 0x10:
            return _PORT_KINDS.get((config[pos + 2] >> 4) & 0xF, "bridge")
        pos = config[pos + 1] & 0xFC
    return "bridge"


def _pci(r: _Reader) -> dict[str, PciFunction]:
    pci: dict[str, PciFunction] = {}
    unknown: list[tuple[str, str]] = []  # bridges whose port type could not be read: (config path, why)
    base = "sys/bus/pci/devices"
    found: dict[str, tuple[list[str], int]] = {}  # bdf -> (its path's components, index of its root bus)
    for bdf in r.listdir(base, missing_ok=False):
        rel = f"{base}/{bdf}"
        devpath = r.resolve(rel)
        if devpath is None:
            continue
        comps = devpath.split("/")
        if comps[:2] != ["sys", "devices"] or comps[-1] != bdf:
            r.warn(rel, f"does not resolve to a PCI device under /sys/devices: {devpath}")
            continue
        # The last root-bus component: handles VMD and Hyper-V, which nest a root bus deeper.
        roots = [i for i, c in enumerate(comps) if _ROOT_BUS.fullmatch(c)]
        if not roots:
            r.warn(rel, f"no PCI root bus in {devpath}")
            continue
        found[bdf] = comps, roots[-1]
    # Every bridge of a chain is in the result, so that any BDF a Topology names can be looked
    # up: one whose own link is damaged (warned above) is read where its functions' paths say.
    for comps, root in list(found.values()):
        for i in range(root + 1, len(comps) - 1):
            if comps[i] not in found and is_pci_address(comps[i]):
                found[comps[i]] = comps[: i + 1], root
    for bdf in sorted(found):
        comps, root = found[bdf]
        devpath = "/".join(comps)
        chain = tuple(c for c in comps[root + 1 :] if is_pci_address(c))
        fn = PciFunction(
            bdf=bdf,
            root=comps[root],
            chain=chain,
            vendor=r.number(f"{devpath}/vendor", 16),
            class_code=r.number(f"{devpath}/class", 16),
        )
        if fn.class_code is not None and fn.class_code >> 8 == 0x0604:
            # A bridge: its place in the tree and its port type are all that matters.
            config = r.raw(f"{devpath}/config", 256)  # the PCIe capability lies in the first 256
            try:
                if isinstance(config, str):
                    raise ValueError(config)
                fn.bridge_kind = _bridge_kind(config)
            except ValueError as e:
                unknown.append((f"{devpath}/config", str(e)))
            pci[bdf] = fn
            continue
        numa = r.number(f"{devpath}/numa_node", 10, missing_ok=True)
        fn.numa_node = numa if numa is not None and numa >= 0 else -1
        driver = r.resolve(f"{devpath}/driver", missing_ok=True)
        fn.driver = os.path.basename(driver) if driver else None
        physfn = r.resolve(f"{devpath}/physfn", missing_ok=True)
        fn.physfn = os.path.basename(physfn) if physfn else None
        pci[bdf] = fn
    vfs: dict[str, list[str]] = {}
    for fn in pci.values():
        if fn.physfn:
            vfs.setdefault(fn.physfn, []).append(fn.bdf)
    for pf, children in vfs.items():
        if pf in pci:
            pci[pf].virtfns = tuple(children)
    if unknown:
        (path, why), others = unknown[0], len(unknown) - 1
        r.warn(
            path,
            f"no PCIe port type ({why}); "
            + (f"it and {others} other bridge{'s' if others > 1 else ''} were" if others else "this bridge was")
            + " classified by depth (root port, then switch upstream/downstream port pairs)",
        )
    kinds = {bdf: fn.bridge_kind for bdf, fn in pci.items() if fn.bridge_kind}
    for fn in pci.values():
        fn.hops = bridge_hops(fn.chain, kinds)
    return pci


def _parse_information(text: str) -> dict[str, str]:
    """/proc/driver/nvidia/gpus/<bdf>/information: "Key: \\t value" lines (docs/topology.md)."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _gpus(r: _Reader, pci: dict[str, PciFunction]) -> list[Gpu]:
    gpus = []
    for bdf, fn in pci.items():
        if fn.vendor != NVIDIA_VENDOR or fn.class_code is None or fn.class_code >> 8 not in _GPU_CLASSES:
            continue
        dev = f"sys/bus/pci/devices/{bdf}"
        if fn.driver != "nvidia":
            r.warn(
                dev, f"NVIDIA GPU without the nvidia driver bound (driver: {fn.driver or 'none'}); left out of the spec"
            )
            gpus.append(Gpu(bdf, None, driver=fn.driver))
            continue
        rel = f"proc/driver/nvidia/gpus/{bdf}/information"
        text = r.text(rel)
        info = _parse_information(text) if text is not None else {}
        minor_text = info.get("Device Minor", "")
        minor = decimal(minor_text)
        minor = minor if minor is not None and minor <= 247 else None
        if text is not None and minor is None:
            r.warn(rel, f"no valid 'Device Minor' (got {minor_text[:20]!r})")
        if minor is None:
            gpus.append(Gpu(bdf, None, driver=fn.driver))
            continue
        drm = []
        for name in r.listdir(f"{dev}/drm"):
            if re.fullmatch(r"card\d+|renderD\d+", name):
                num = r.devnum(f"{dev}/drm/{name}/dev")
                if num:
                    drm.append(CharDev(f"/dev/dri/{name}", *num))
        drm.sort(key=lambda c: (not c.path.startswith("/dev/dri/card"), c.minor))
        uuid = info.get("GPU UUID") or None
        gpus.append(Gpu(bdf, minor, uuid if uuid and uuid.startswith("GPU-") else None, fn.driver, tuple(drm)))
    return gpus


def _control(r: _Reader) -> list[CharDev]:
    """nvidiactl and nvidia-modeset (fixed numbers), nvidia-uvm(-tools) (major from /proc/devices)."""
    nodes = [CharDev("/dev/nvidiactl", NVIDIA_MAJOR, 255), CharDev("/dev/nvidia-modeset", NVIDIA_MAJOR, 254)]
    text = r.text("proc/devices")
    if text is None:
        return nodes
    uvm = parse_char_majors(text).get("nvidia-uvm")
    if uvm is None:
        r.warn(
            "proc/devices",
            "no nvidia-uvm character device (module nvidia-uvm not loaded?); /dev/nvidia-uvm left out, CUDA needs it",
        )
    else:
        nodes += [CharDev("/dev/nvidia-uvm", uvm, 0), CharDev("/dev/nvidia-uvm-tools", uvm, 1)]
    return nodes


def _rdma_chardevs(r: _Reader) -> dict[str, list[CharDev]]:
    """uverbsN, umadN, issmN by RDMA device name (their `ibdev` file)."""
    out: dict[str, list[CharDev]] = {}
    for cls, prefixes in (("infiniband_verbs", ("uverbs",)), ("infiniband_mad", ("umad", "issm"))):
        for name in r.listdir(f"sys/class/{cls}"):
            if not name.startswith(prefixes) or not name[len(name.rstrip("0123456789")) :]:
                continue
            ibdev = r.text(f"sys/class/{cls}/{name}/ibdev")
            num = r.devnum(f"sys/class/{cls}/{name}/dev")
            if ibdev and num:
                out.setdefault(ibdev, []).append(CharDev(f"/dev/infiniband/{name}", *num))
    order = {"uverbs": 0, "umad": 1, "issm": 2}
    for devs in out.values():
        devs.sort(key=lambda c: (order[c.path[16:].rstrip("0123456789")], c.minor, c.path))
    return out


def _rdma(r: _Reader, pci: dict[str, PciFunction]) -> list[RdmaDevice]:
    chardevs = _rdma_chardevs(r)
    devices = []
    for name in r.listdir("sys/class/infiniband"):
        rel = f"sys/class/infiniband/{name}"
        devpath = r.resolve(rel)
        if devpath is None:
            continue
        bdf = _nearest_bdf(devpath, "infiniband")
        if bdf is None or bdf not in pci:
            r.warn(rel, f"not on a known PCI function: {devpath}")
            continue
        ports = [p for p in r.listdir(f"{rel}/ports") if p.isdigit()]
        link_layer = r.text(f"{rel}/ports/{ports[0]}/link_layer") if ports else None
        if name not in chardevs:
            r.warn(rel, "no uverbs character device (module ib_uverbs not loaded?)")
        numbers = tuple(sorted(int(p) for p in ports if p.isdecimal()))
        devices.append(RdmaDevice(name, bdf, link_layer, tuple(chardevs.get(name, ())), numbers))
    return devices


def _netdevs(r: _Reader, pci: dict[str, PciFunction]) -> list[Netdev]:
    out = []
    for name in r.listdir("sys/class/net", missing_ok=False):
        rel = f"sys/class/net/{name}"
        devpath = r.resolve(rel)
        if devpath is None or devpath.startswith("sys/devices/virtual/"):
            continue  # loopback, bridges, veth...: not PCI NICs
        bdf = _nearest_bdf(devpath, "net")  # walks up past virtio*/, like dranet
        if bdf is None or bdf not in pci:
            continue  # not on PCI (e.g. a platform device)
        link_type = r.text(f"{devpath}/type")
        mtu = r.number(f"{devpath}/mtu", 10)
        out.append(Netdev(name, bdf, _ARPHRD.get(link_type or ""), mtu))
    return out


MAX_NUMA_NODES = 1024


def parse_char_majors(text: str) -> dict[str, int]:
    """name -> major from the "Character devices:" section of /proc/devices."""
    majors, section = {}, None
    for line in text.splitlines():
        if line.endswith("devices:"):
            section = line
            continue
        num, _, name = line.strip().partition(" ")
        if section == "Character devices:" and decimal(num) is not None:
            majors[name.strip()] = decimal(num)
    return majors


def decimal(text: str) -> int | None:
    """A non-negative decimal number as the kernel writes it, else None: ASCII digits only
    (`"²".isdigit()` is true and `int("²")` fails) and short (no value in sysfs has 20 digits)."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) < 20 else None


def _numa_nodes(r: _Reader) -> tuple[int, ...] | None:
    text = r.text("sys/devices/system/node/online", missing_ok=True)
    if text is None:
        return None
    nodes: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        first, last = decimal(lo), decimal(hi or lo)
        # The kernel's MAX_NUMNODES is at most 1024: a longer range is garbage, not a host to expand.
        if first is None or last is None or not first <= last < MAX_NUMA_NODES:
            r.warn("sys/devices/system/node/online", f"not a node list: {text[:40]!r}")
            return None
        nodes.extend(range(first, last + 1))
    return tuple(nodes)


def discover(root: str = "/", nccl_topo: str | None = None, host_prefix: str | None = None) -> Topology:
    """Everything cdigen needs about the host below `root`. Never raises for bad files.

    Where sysfs cannot tell which GPU and NIC share a PCIe switch, an NCCL topology file may
    (scan/nccltopo.py): `nccl_topo`, else the one /etc/nccl.conf under `root` names, its path
    in the spec under `host_prefix` (else `root`). BadArgument: `nccl_topo` cannot be read."""
    r = _Reader(root)
    pci = _pci(r)
    topo = Topology(pci=pci, numa_nodes=_numa_nodes(r))
    topo.gpus = _gpus(r, pci)
    if topo.usable_gpus:
        topo.control = _control(r)
    netdevs = _netdevs(r, pci)
    rdma = _rdma(r, pci)
    by_bdf: dict[str, tuple[list[Netdev], list[RdmaDevice]]] = {}
    for nd in netdevs:
        by_bdf.setdefault(nd.bdf, ([], []))[0].append(nd)
    for rd in rdma:
        by_bdf.setdefault(rd.bdf, ([], []))[1].append(rd)
    with_nic = set(by_bdf)
    for bdf in sorted(by_bdf):
        nds, rds = by_bdf[bdf]
        fn = pci[bdf]
        topo.nics.append(Nic(bdf, tuple(nds), tuple(rds), fn.physfn, tuple(v for v in fn.virtfns if v in with_nic)))
    if rdma:
        rel = "sys/class/misc/rdma_cm/dev"
        num = r.devnum(rel) if os.path.lexists(r.path(rel)) else None
        if not os.path.lexists(r.path(rel)):
            r.warn("sys/class/misc/rdma_cm", "missing (module rdma_ucm not loaded?); /dev/infiniband/rdma_cm left out")
        if num:
            topo.rdma_cm = CharDev("/dev/infiniband/rdma_cm", *num)
    if any(fn.driver == "vfio-pci" for fn in pci.values()):
        from cdigen.scan.vfio import discover_vfio

        topo.vfio, topo.vfio_control = discover_vfio(r, pci)
    r.warnings += read_topology(topo, root, nccl_topo, host_prefix)
    topo.warnings = r.warnings
    return topo
