"""Build fake sysfs/procfs trees from short topology descriptions.

The trees follow the real kernel layout of docs/topology.md ("Fake trees"): device
directories under sys/devices/pciDDDD:BB/<root port>/<switch ports>/<function>, relative
kernfs-style symlinks from sys/bus/pci/devices, sys/class/{net,infiniband,infiniband_verbs,
infiniband_mad,misc,pci_bus}, `dev` files with major:minor, numa_node, the NVIDIA driver's
/proc/driver/nvidia/gpus/<bdf>/information and /proc/devices. All IDs and addresses are
synthetic; vendor/device/class codes are real (docs/topology.md).

A description is a few lines:

    numa 0-1                                    # NUMA nodes online (omit: unknown)
    pci 0000:10 numa=0 ports: switch(gpu ib gpu ib) ib
    pci 0001:00 numa=1 bus: gpu

`pci DDDD:BB numa=N` is a host bridge (root bus). After `ports:` each item sits behind its
own root port (DDDD:BB:01.0, :02.0, ...); after `bus:` items sit directly on the root bus
(as in cloud VMs). Items:

    switch(ITEM ...)   a PCIe switch: upstream port + one downstream port per item
    gpu                H100 SXM (3D controller) with the nvidia driver (gpu:a100: A100 SXM4)
    ib | roce | eth    ConnectX-7 InfiniBand (IPoIB netdev) | ConnectX-7 Ethernet with RoCE |
                       plain Ethernet NIC without RDMA (roce:cx6dx: a ConnectX-6 Dx)
    adapter(PORT ...)  one multi-port adapter: function N of one PCI device per PORT (ib, roce
                       or eth), e.g. adapter(ib roce) for a VPI card with one port of each
Modifiers, appended with ':':  gpu:vga (GeForce, VGA class)  gpu:nodrv (no driver bound)
    gpu:driver=vfio-pci  gpu:minor=N  ib:nonet (HCA without netdev)  roce:vf8 (8 SR-IOV VFs,
    each with its own netdev and RDMA device)  switch:cx7 (the switch built into a
    ConnectX-7, bridges 15b3:1979, instead of a PEX890xx)  switch:acs (its downstream ports
    redirect peer-to-peer requests to the root complex: ACS P2P Request/Completion Redirect).
    ib:vfio, roce:vfio, eth:vfio (the NIC bound to vfio-pci: no netdev, no RDMA device)
    roce:vf4:vfio=vfs (its VFs bound to vfio-pci, the PF keeps mlx5_core). A function on
    vfio-pci (gpu:driver=vfio-pci too) gets its `iommu_group` link (groups numbered in
    enumeration order, one per function), sys/kernel/iommu_groups/<n>, sys/class/vfio/<n>
    (major 503, minors in order), `vfio` in /proc/devices and sys/class/misc/vfio (10:196).

Lines for the driver and the devices around the GPUs (docs/gpu.md):

    driver 550.90.07 [open]   the driver userspace (examples/fakedriver.py) and the kernel
                              module's /proc/driver/nvidia/version (open: the open flavour)
    gdrcopy                   module gdrdrv (/dev/gdrdrv)
    gds N                     module nvidia-fs with N nodes, and /etc/cufile.json
    imex N                    IMEX channels 0..N-1 in /dev/nvidia-caps-imex-channels
    mig MINOR:GI:CI ...       MIG instances (capability minors in /proc/driver/nvidia-caps)
    nopeermem                 module nvidia_peermem not loaded (by default it is, on a host
                              with a GPU and an RDMA NIC)
    late-vfs                  the VFs were made after boot (by writing sriov_numvfs): their
                              netdevs and RDMA devices come after every PF's (mlx5_8... on
                              a host with 8 PFs) instead of after their own PF's

Every bridge gets a binary `config` (256 bytes: header, capability list with the PCI Express
capability and its Device/Port Type), which discovery reads to tell switch ports apart; a
switch's downstream ports get the whole 4096 bytes, with an ACS extended capability.

Bus numbers are allocated depth-first, as the kernel enumerates: the first root port of
bus 0x10 gets secondary bus 0x11, its switch's internal bus 0x12, the endpoints 0x13, 0x14...
"""

import functools
import hashlib
import os
import re
from dataclasses import dataclass, field

GPU_IDS = {
    "h100": (0x2330, 0x030200, "NVIDIA H100 80GB HBM3"),
    "a100": (0x20B0, 0x030200, "NVIDIA A100-SXM4-40GB"),
    "vga": (0x2684, 0x030000, "NVIDIA GeForce RTX 4090"),
}
CX7, CX6DX, MLX5_VF = 0x1021, 0x101D, 0x101E  # MLX5_VF: ConnectX Family mlx5Gen Virtual Function
# Bridges (vendor, device): a root port (placeholder ID), PEX890xx switch ports, and the PCIe
# switch built into a ConnectX-7 ("MT2910 Family [ConnectX-7 PCIe Bridge]", pci.ids 2023-04-11).
ROOT_PORT, PEX_SWITCH, CX7_SWITCH = (0x8086, 0x352A), (0x1000, 0xC030), (0x15B3, 0x1979)
# PCI Express capability, Device/Port Type (PCIe base spec 7.5.3.2).
ROOT, UPSTREAM, DOWNSTREAM = 0x4, 0x5, 0x6
IB_CLASS, ETH_CLASS, BRIDGE_CLASS = 0x020700, 0x020000, 0x060400
UVM_MAJOR = 508
# Kernel numbering (drivers/infiniband/core/{uverbs_main,user_mad}.c): uverbsN = 231:192+N for N < 32, umadN = 231:N and
# issmN = 231:64+N for N < 64; later ones get dynamic majors.
DYN_UVERBS, DYN_UMAD, DYN_ISSM = 511, 510, 509
RDMA_CM = (10, 58)
# Modules with dynamic majors, and the nvidia-caps ones (the driver registers them in this order).
GDRDRV_MAJOR, NVIDIA_FS_MAJOR, NVIDIA_CAPS_MAJOR, IMEX_MAJOR = 507, 506, 505, 504
VFIO_MAJOR, VFIO_MISC = 503, (10, 196)  # the vfio group major (dynamic); /dev/vfio/vfio
ACS_CAP, ACS_REDIRECT = 0x000D, (1 << 2) | (1 << 3)  # P2P Request Redirect, P2P Completion Redirect


class DescriptionError(ValueError):
    """A topology description that cannot be parsed (a bug in an example or a test)."""


@dataclass
class Item:
    kind: str  # switch, gpu, ib, roce, eth
    mods: dict[str, str] = field(default_factory=dict)
    children: list["Item"] = field(default_factory=list)


@dataclass
class HostBridge:
    domain: int
    bus: int
    numa: int
    on_bus: bool  # items directly on the root bus (no root ports)
    items: list[Item]


@dataclass
class Description:
    numa_online: str | None
    bridges: list[HostBridge]
    driver: tuple[str, bool] | None = None  # (version, open kernel module)
    gdrcopy: bool = False
    gds: int = 0  # nvidia-fs nodes
    imex: int = 0  # IMEX channels
    mig: list[tuple[int, int, int]] = field(default_factory=list)  # (GPU minor, GI, CI)
    peermem: bool = True
    late_vfs: bool = False  # VFs made after boot: probed after every PF


# ---------------------------------------------------------------------------- parsing


def _parse_items(tokens: list[str], pos: int, line: str) -> tuple[list[Item], int]:
    items: list[Item] = []
    while pos < len(tokens) and tokens[pos] != ")":
        kind, *mods = tokens[pos].split(":")
        pos += 1
        item = Item(kind, {m.partition("=")[0]: m.partition("=")[2] for m in mods})
        if kind == "switch":
            if pos >= len(tokens) or tokens[pos] != "(":
                raise DescriptionError(f"topology description: 'switch' needs '(...)': {line!r}")
            item.children, pos = _parse_items(tokens, pos + 1, line)
            if pos >= len(tokens):
                raise DescriptionError(f"topology description: unclosed '(': {line!r}")
            pos += 1
        elif kind == "adapter":
            if pos >= len(tokens) or tokens[pos] != "(":
                raise DescriptionError(f"topology description: 'adapter' needs '(...)': {line!r}")
            item.children, pos = _parse_items(tokens, pos + 1, line)
            if pos >= len(tokens):
                raise DescriptionError(f"topology description: unclosed '(': {line!r}")
            pos += 1
            if not item.children or any(p.kind not in ("ib", "roce", "eth") or p.mods for p in item.children):
                raise DescriptionError(f"topology description: adapter ports are ib, roce or eth: {line!r}")
        elif kind not in ("gpu", "ib", "roce", "eth"):
            raise DescriptionError(f"topology description: unknown item {kind!r}: {line!r}")
        items.append(item)
    return items, pos


def _parse_extra(desc: Description, words: list[str]) -> bool:
    """The driver and GPUDirect lines; False for any other line."""
    line = " ".join(words)
    if words[0] == "driver" and len(words) in (2, 3) and re.fullmatch(r"\d+\.\d+(\.\d+)?", words[1]):
        if len(words) == 3 and words[2] != "open":
            raise DescriptionError(f"topology description: driver VERSION [open]: {line!r}")
        desc.driver = (words[1], len(words) == 3)
    elif words == ["gdrcopy"]:
        desc.gdrcopy = True
    elif words == ["nopeermem"]:
        desc.peermem = False
    elif words == ["late-vfs"]:
        desc.late_vfs = True
    elif words[0] in ("gds", "imex") and len(words) == 2 and words[1].isdigit():
        setattr(desc, words[0], int(words[1]))
    elif words[0] == "mig" and len(words) > 1 and all(re.fullmatch(r"\d+:\d+:\d+", w) for w in words[1:]):
        desc.mig = [tuple(int(p) for p in w.split(":")) for w in words[1:]]
    else:
        return False
    return True


def parse(text: str) -> Description:
    desc = Description(None, [])
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] == "numa" and len(words) == 2:
            desc.numa_online = words[1]
            continue
        if _parse_extra(desc, words):
            continue
        m = re.fullmatch(r"pci ([0-9a-f]{4}):([0-9a-f]{2}) numa=(-?\d+) (ports|bus):(.*)", line)
        if not m:
            raise DescriptionError(f"topology description: cannot parse {line!r}")
        tokens = m.group(5).replace("(", " ( ").replace(")", " ) ").split()
        items, pos = _parse_items(tokens, 0, line)
        if pos != len(tokens):
            raise DescriptionError(f"topology description: unbalanced ')': {line!r}")
        desc.bridges.append(
            HostBridge(int(m.group(1), 16), int(m.group(2), 16), int(m.group(3)), m.group(4) == "bus", items)
        )
    return desc


# ---------------------------------------------------------------------------- writing


class _Tree:
    """Collects the files and symlinks of one tree, then writes them."""

    def __init__(self, root: str, late_vfs: bool = False):
        self.root = root
        self.dirs: set[str] = set()
        self.late_vfs = late_vfs
        self.later: list = []  # with late_vfs: the VFs' netdevs and RDMA devices, made after every PF's
        self.ifindex = 1
        self.counters = {"gpu": 0, "mlx5_": 0, "uverbs": 0, "umad": 0, "card": 0, "iommu_group": 0, "vfio": 0}

    def write(self, rel: str, content: str) -> None:
        path = os.path.join(self.root, rel)
        self._mkdir(os.path.dirname(path))
        with open(path, "w") as f:
            f.write(content + "\n")

    def write_bytes(self, rel: str, content: bytes) -> None:
        path = os.path.join(self.root, rel)
        self._mkdir(os.path.dirname(path))
        with open(path, "wb") as f:
            f.write(content)

    def link(self, rel: str, target_rel: str) -> None:
        """A relative symlink at `rel` pointing to `target_rel` (both relative to the root)."""
        path = os.path.join(self.root, rel)
        self._mkdir(os.path.dirname(path))
        os.symlink(os.path.relpath(target_rel, os.path.dirname(rel)), path)

    def _mkdir(self, path: str) -> None:
        if path not in self.dirs:
            os.makedirs(path, exist_ok=True)
            self.dirs.add(path)


def _bdf(domain: int, bus: int, dev: int, fn: int = 0) -> str:
    return f"{domain:04x}:{bus:02x}:{dev:02x}.{fn:x}"


def _pci_function(
    t: _Tree, devpath: str, bdf: str, vendor: int, device: int, cls: int, numa: int, driver: str | None
) -> None:
    t.write(f"{devpath}/vendor", f"0x{vendor:04x}")
    t.write(f"{devpath}/device", f"0x{device:04x}")
    t.write(f"{devpath}/class", f"0x{cls:06x}")
    t.write(f"{devpath}/numa_node", str(numa))
    t.link(f"{devpath}/subsystem", "sys/bus/pci")
    t.link(f"sys/bus/pci/devices/{bdf}", devpath)
    if driver:
        t.link(f"{devpath}/driver", f"sys/bus/pci/drivers/{driver}")
        t.link(f"sys/bus/pci/drivers/{driver}/{bdf}", devpath)
    # The kernel numbers IOMMU groups in enumeration order, one per function here (every port
    # with ACS); only the groups of functions on vfio-pci are written.
    group = t.counters["iommu_group"]
    t.counters["iommu_group"] += 1
    if driver == "vfio-pci":
        _vfio_group(t, devpath, bdf, group)


def _vfio_group(t: _Tree, devpath: str, bdf: str, group: int) -> None:
    """The IOMMU group of a function on vfio-pci, and the group's VFIO character device
    (drivers/vfio/group.c: class "vfio", device named after the group, minors in the order
    the groups were opened by vfio, not the group numbers)."""
    t.link(f"{devpath}/iommu_group", f"sys/kernel/iommu_groups/{group}")
    t.link(f"sys/kernel/iommu_groups/{group}/devices/{bdf}", devpath)
    t.write(f"sys/kernel/iommu_groups/{group}/type", "DMA")
    minor = t.counters["vfio"]
    t.counters["vfio"] += 1
    t.write(f"sys/devices/virtual/vfio/{group}/dev", f"{VFIO_MAJOR}:{minor}")
    t.link(f"sys/class/vfio/{group}", f"sys/devices/virtual/vfio/{group}")


def _bridge(t: _Tree, devpath: str, bdf: str, numa: int, secondary: int, ids: tuple[int, int]) -> None:
    _pci_function(t, devpath, bdf, *ids, BRIDGE_CLASS, numa, "pcieport")
    t.write(f"{devpath}/secondary_bus_number", str(secondary))
    domain = bdf[:4]
    t.write(f"{devpath}/pci_bus/{domain}:{secondary:02x}/cpuaffinity", "0")
    t.link(f"sys/class/pci_bus/{domain}:{secondary:02x}", f"{devpath}/pci_bus/{domain}:{secondary:02x}")


def bridge_config(
    ids: tuple[int, int], port_type: int, primary: int, secondary: int, subordinate: int, acs: int | None = None
) -> bytes:
    """A type 1 (bridge) config space as root reads it from sysfs (256 bytes): the header, then
    a capability list Power Management (0x40) -> MSI (0x48) -> PCI Express (0x60), whose
    capabilities register carries the Device/Port Type, version 2 and, on root and downstream
    ports, Slot Implemented. With `acs` (its ACS Control register), the whole 4096 bytes,
    with an ACS extended capability at 0x100 (every ACS feature supported)."""
    c = bytearray(256)
    c[0x00:0x04] = ids[0].to_bytes(2, "little") + ids[1].to_bytes(2, "little")
    c[0x04:0x08] = (0x0407).to_bytes(2, "little") + (0x0010).to_bytes(2, "little")  # Command; Status: Cap List
    c[0x08:0x0C] = bytes((0x01, 0x00, 0x04, 0x06))  # revision, prog-if, class 0x0604 (PCI-to-PCI bridge)
    c[0x0E] = 0x01  # header type 1
    c[0x18:0x1B] = bytes((primary, secondary, subordinate))
    c[0x34] = 0x40
    c[0x40:0x44] = bytes((0x01, 0x48, 0x03, 0x5A))  # Power Management, version 3
    c[0x48:0x4C] = bytes((0x05, 0x60, 0x80, 0x00))  # MSI, 64-bit
    slot = 0x100 if port_type in (ROOT, DOWNSTREAM) else 0
    c[0x60:0x64] = bytes((0x10, 0x00)) + (0x0002 | port_type << 4 | slot).to_bytes(2, "little")
    if acs is None:
        return bytes(c)
    ext = bytearray(4096 - 256)
    ext[0:8] = (ACS_CAP | 1 << 16).to_bytes(4, "little") + (0x7F).to_bytes(2, "little") + acs.to_bytes(2, "little")
    return bytes(c) + bytes(ext)


def _gpu(t: _Tree, devpath: str, bdf: str, numa: int, mods: dict, minor: int | None) -> None:
    device, cls, model = GPU_IDS[next((m for m in ("vga", "a100") if m in mods), "h100")]
    driver = None if "nodrv" in mods else mods.get("driver", "nvidia")
    _pci_function(t, devpath, bdf, 0x10DE, device, cls, numa, driver)
    if driver != "nvidia" or minor is None:
        return
    uuid = hashlib.sha256(bdf.encode()).hexdigest()
    uuid = f"GPU-{uuid[:8]}-{uuid[8:12]}-{uuid[12:16]}-{uuid[16:20]}-{uuid[20:32]}"
    t.write(
        f"proc/driver/nvidia/gpus/{bdf}/information",
        f"Model: \t\t {model}\nIRQ:   \t\t {100 + minor}\nGPU UUID: \t {uuid}\n"
        f"Video BIOS: \t 96.00.99.00.01\nBus Type: \t PCIe\nDMA Size: \t 52 bits\n"
        f"DMA Mask: \t 0xfffffffffffff\nBus Location: \t {bdf}\nDevice Minor: \t {minor}\n"
        f"GPU Excluded:\t No",
    )
    card = t.counters["card"]
    t.counters["card"] += 1
    for name, num in ((f"card{card}", card), (f"renderD{128 + card}", 128 + card)):
        t.write(f"{devpath}/drm/{name}/dev", f"226:{num}")
        t.link(f"sys/class/drm/{name}", f"{devpath}/drm/{name}")


def _netdev(t: _Tree, devpath: str, name: str, ib: bool, mtu: int, mac_seed: str) -> None:
    ndpath = f"{devpath}/net/{name}"
    h = hashlib.sha256(mac_seed.encode()).hexdigest()
    t.write(f"{ndpath}/type", "32" if ib else "1")
    t.write(f"{ndpath}/mtu", str(mtu))
    t.write(
        f"{ndpath}/address",
        ("00:00:10:29:fe:80:00:00:00:00:00:00:" if ib else "")
        + ":".join(h[i : i + 2] for i in range(0, 16 if ib else 12, 2)),
    )
    t.write(f"{ndpath}/ifindex", str(t.ifindex))
    t.write(f"{ndpath}/operstate", "up")
    t.ifindex += 1
    t.link(f"{ndpath}/device", devpath)
    t.link(f"sys/class/net/{name}", ndpath)


def _rdma(t: _Tree, devpath: str, ib: bool, netdev: str | None) -> None:
    n = t.counters["mlx5_"]
    t.counters["mlx5_"] += 1
    ibdev = f"mlx5_{n}"
    rpath = f"{devpath}/infiniband/{ibdev}"
    t.write(f"{rpath}/node_guid", f"b83f:d203:00{n // 256:02x}:{n % 256:02x}00")
    t.write(f"{rpath}/ports/1/link_layer", "InfiniBand" if ib else "Ethernet")
    t.write(f"{rpath}/ports/1/state", "4: ACTIVE")
    if netdev and not ib:
        t.write(f"{rpath}/ports/1/gid_attrs/ndevs/0", netdev)
    t.link(f"{rpath}/device", devpath)
    t.link(f"sys/class/infiniband/{ibdev}", rpath)
    u = t.counters["uverbs"]
    t.counters["uverbs"] += 1
    dev = f"231:{192 + u}" if u < 32 else f"{DYN_UVERBS}:{u - 32}"
    upath = f"{devpath}/infiniband_verbs/uverbs{u}"
    t.write(f"{upath}/ibdev", ibdev)
    t.write(f"{upath}/dev", dev)
    t.write(f"{upath}/abi_version", "1")
    t.link(f"sys/class/infiniband_verbs/uverbs{u}", upath)
    p = t.counters["umad"]  # one port per device: one umad and one issm
    t.counters["umad"] += 1
    for cls, dev in (
        (f"umad{p}", f"231:{p}" if p < 64 else f"{DYN_UMAD}:{p - 64}"),
        (f"issm{p}", f"231:{64 + p}" if p < 64 else f"{DYN_ISSM}:{p - 64}"),
    ):
        mpath = f"{devpath}/infiniband_mad/{cls}"
        t.write(f"{mpath}/ibdev", ibdev)
        t.write(f"{mpath}/port", "1")
        t.write(f"{mpath}/dev", dev)
        t.link(f"sys/class/infiniband_mad/{cls}", mpath)


def _nic(t: _Tree, parent: str, domain: int, bus: int, slot: int, numa: int, item: Item) -> None:
    """A NIC at DDDD:bus:slot: one function (with SR-IOV VFs if asked), or one function per
    port of an adapter."""
    ports = item.children if item.kind == "adapter" else [item]
    multi = len(ports) > 1
    for fn, port in enumerate(ports):
        kind, mods = port.kind, port.mods
        ib = kind == "ib"
        rdma = kind in ("ib", "roce")
        prefix = ("ib" if ib else "en") + (f"P{domain}" if domain else "")
        mtu = 4092 if ib else 9000 if rdma else 1500
        nvfs = next((int(k[2:]) for k in mods if re.fullmatch(r"vf\d+", k)), 0)
        functions = [(slot, fn)] + [divmod(2 + k, 8) for k in range(nvfs)]  # VF offset 2, stride 1
        pf_bdf = _bdf(domain, bus, slot, fn)
        for k, (dev, vfn) in enumerate(functions):
            bdf = _bdf(domain, bus, dev, vfn)
            devpath = f"{parent}/{bdf}"
            device = MLX5_VF if k else CX6DX if "cx6dx" in mods else CX7
            # `vfio`: the PF on vfio-pci; `vfio=vfs`: its VFs (the PF keeps its driver).
            on_vfio = mods.get("vfio", None) == ("vfs" if k else "")
            if kind == "eth":
                _pci_function(t, devpath, bdf, 0x8086, 0x1533, ETH_CLASS, numa, "vfio-pci" if on_vfio else "igb")
            else:
                driver = "vfio-pci" if on_vfio else "mlx5_core"
                _pci_function(t, devpath, bdf, 0x15B3, device, IB_CLASS if ib else ETH_CLASS, numa, driver)
            if k == 0 and nvfs:
                t.write(f"{devpath}/sriov_totalvfs", "16")
                t.write(f"{devpath}/sriov_numvfs", str(nvfs))
            if k > 0:
                t.link(f"{devpath}/physfn", f"{parent}/{pf_bdf}")
                t.link(f"{parent}/{pf_bdf}/virtfn{k - 1}", devpath)
            name, probe = None, []
            if "nonet" not in mods and not on_vfio:  # vfio-pci: no netdev, no RDMA device
                # systemd names: f<function> only on multi-function devices, np<port> for mlx5 Ethernet.
                name = f"{prefix}p{bus}s{dev}" + (
                    f"f{vfn}"
                    if k
                    else (f"f{fn}" if multi else "") + (f"np{fn if multi else 0}" if kind == "roce" else "")
                )
                probe.append(functools.partial(_netdev, t, devpath, name, ib, mtu, bdf))
            if rdma and not on_vfio:
                probe.append(functools.partial(_rdma, t, devpath, ib, name))
            if k and t.late_vfs:
                t.later += probe
            else:
                for step in probe:
                    step()


class _Buses:
    """Bus numbers below a host bridge, allocated depth-first as the kernel enumerates."""

    def __init__(self, first: int):
        self.last = first

    def __call__(self) -> int:
        self.last += 1
        return self.last


def _place(t: _Tree, item: Item, parent: str, domain: int, bus: int, slot: int, numa: int, alloc, minors) -> None:
    """Put `item` at DDDD:bus:slot.0 under the directory `parent`."""
    bdf = _bdf(domain, bus, slot)
    if item.kind == "switch":
        ids = CX7_SWITCH if "cx7" in item.mods else PEX_SWITCH
        usp = f"{parent}/{bdf}"
        internal = alloc()
        _bridge(t, usp, bdf, numa, internal, ids)
        for j, child in enumerate(item.children):
            dsp_bdf = _bdf(domain, internal, j)
            dsp = f"{usp}/{dsp_bdf}"
            secondary = alloc()
            _bridge(t, dsp, dsp_bdf, numa, secondary, ids)
            _place(t, child, dsp, domain, secondary, 0, numa, alloc, minors)
            acs = ACS_REDIRECT if "acs" in item.mods else 0
            t.write_bytes(f"{dsp}/config", bridge_config(ids, DOWNSTREAM, internal, secondary, alloc.last, acs))
        t.write_bytes(f"{usp}/config", bridge_config(ids, UPSTREAM, bus, internal, alloc.last))
    elif item.kind == "gpu":
        _gpu(t, f"{parent}/{bdf}", bdf, numa, item.mods, minors.get(id(item)))
    else:
        _nic(t, parent, domain, bus, slot, numa, item)


def _walk(items):
    for item in items:
        yield item
        yield from _walk(item.children)


def build(description: str | Description, root: str) -> str:
    """Write the tree described by `description` under `root` (created if needed); returns root."""
    desc = parse(description) if isinstance(description, str) else description
    t = _Tree(root, desc.late_vfs)
    # Minors: explicit ones as given, the others in PCI (description) order, skipping those taken.
    gpus = [
        i
        for b in desc.bridges
        for i in _walk(b.items)
        if i.kind == "gpu" and "nodrv" not in i.mods and i.mods.get("driver", "nvidia") == "nvidia"
    ]
    taken = {int(i.mods["minor"]) for i in gpus if "minor" in i.mods}
    minors, free = {}, (n for n in range(256) if n not in taken)
    for i in gpus:
        minors[id(i)] = int(i.mods["minor"]) if "minor" in i.mods else next(free)
    if desc.numa_online is not None:
        t.write("sys/devices/system/node/online", desc.numa_online)
        t.write("sys/devices/system/node/possible", desc.numa_online)
        lo, _, hi = desc.numa_online.partition("-")
        for n in range(int(lo), int(hi or lo) + 1):
            t.write(f"sys/devices/system/node/node{n}/cpulist", f"{n * 56}-{n * 56 + 55}")
    for hb in desc.bridges:
        top = f"sys/devices/pci{hb.domain:04x}:{hb.bus:02x}"
        t.write(f"{top}/pci_bus/{hb.domain:04x}:{hb.bus:02x}/cpuaffinity", "0")
        t.link(f"sys/class/pci_bus/{hb.domain:04x}:{hb.bus:02x}", f"{top}/pci_bus/{hb.domain:04x}:{hb.bus:02x}")
        alloc = _Buses(hb.bus)

        for i, item in enumerate(hb.items):
            if hb.on_bus:
                _place(t, item, top, hb.domain, hb.bus, i, hb.numa, alloc, minors)
            else:
                rp_bdf = _bdf(hb.domain, hb.bus, i + 1)
                rp = f"{top}/{rp_bdf}"
                secondary = alloc()
                _bridge(t, rp, rp_bdf, hb.numa, secondary, ROOT_PORT)
                _place(t, item, rp, hb.domain, secondary, 0, hb.numa, alloc, minors)
                t.write_bytes(f"{rp}/config", bridge_config(ROOT_PORT, ROOT, hb.bus, secondary, alloc.last))
    for step in t.later:
        step()
    # A virtual netdev, as on every host: discovery must skip it.
    t.write("sys/devices/virtual/net/lo/type", "772")
    t.write("sys/devices/virtual/net/lo/mtu", "65536")
    t.link("sys/class/net/lo", "sys/devices/virtual/net/lo")
    vfio = t.counters["vfio"]
    if minors or vfio:
        extra = "".join(
            f"{major} {name}\n"
            for major, name, wanted in (
                (GDRDRV_MAJOR, "gdrdrv", desc.gdrcopy),
                (NVIDIA_FS_MAJOR, "nvidia-fs", desc.gds),
                (NVIDIA_CAPS_MAJOR, "nvidia-caps", desc.mig),
                (IMEX_MAJOR, "nvidia-caps-imex-channels", desc.imex),
                (VFIO_MAJOR, "vfio", vfio),
            )
            if wanted
        )
        nvidia = ("195 nvidia\n", f"{UVM_MAJOR} nvidia-uvm\n") if minors else ("", "")
        t.write(
            "proc/devices",
            f"Character devices:\n  1 mem\n 10 misc\n{nvidia[0]}226 drm\n"
            f"231 infiniband_verbs\n{extra}{nvidia[1]}\nBlock devices:\n  8 sd",
        )
    if vfio:
        t.write("sys/devices/virtual/misc/vfio/dev", f"{VFIO_MISC[0]}:{VFIO_MISC[1]}")
        t.link("sys/class/misc/vfio", "sys/devices/virtual/misc/vfio")
    if t.counters["mlx5_"]:
        t.write("sys/class/infiniband_verbs/abi_version", "6")
        t.write("sys/class/infiniband_mad/abi_version", "5")
        t.write("sys/devices/virtual/misc/rdma_cm/dev", f"{RDMA_CM[0]}:{RDMA_CM[1]}")
        t.link("sys/class/misc/rdma_cm", "sys/devices/virtual/misc/rdma_cm")
        if minors and desc.peermem:
            t.write("sys/module/nvidia_peermem/initstate", "live")
    if minors:
        _gpu_extras(t, desc, sorted(minors.values()))
    return root


def _gpu_extras(t: _Tree, desc: Description, minors: list[int]) -> None:
    """The driver userspace and the devices around the GPUs, as the description asks."""
    if desc.driver is not None:
        from cdigen.examples.fakedriver import write_driver

        write_driver(t.root, *desc.driver)
        t.write("proc/sys/kernel/osrelease", "6.1.0-28-amd64")
    if desc.gdrcopy:
        t.write("sys/module/gdrdrv/initstate", "live")
    for n in range(desc.gds):
        t.write(f"sys/devices/virtual/nvidia-fs/nvidia-fs{n}/dev", f"{NVIDIA_FS_MAJOR}:{n}")
        t.link(f"sys/class/nvidia-fs/nvidia-fs{n}", f"sys/devices/virtual/nvidia-fs/nvidia-fs{n}")
    if desc.gds:
        t.write("etc/cufile.json", '{"logging": {"level": "ERROR"}}')
    for n in range(desc.imex):  # the admin's (or NVreg_CreateImexChannel0's) nodes; plain files here
        t.write(f"dev/nvidia-caps-imex-channels/channel{n}", "")
    if desc.mig:
        # Every GPU's possible instances, numbered as the driver does: config, monitor, then
        # per GPU 15 GPU instances, each followed by its 8 compute instances.
        lines, minor = ["config 1", "monitor 2"], 3
        numbers = {}
        for gpu in minors:
            for gi in range(15):
                numbers[(gpu, gi, None)] = minor
                lines.append(f"gpu{gpu}/gi{gi}/access {minor}")
                minor += 1
                for ci in range(8):
                    numbers[(gpu, gi, ci)] = minor
                    lines.append(f"gpu{gpu}/gi{gi}/ci{ci}/access {minor}")
                    minor += 1
        t.write("proc/driver/nvidia-caps/mig-minors", "\n".join(lines))
        for gpu, gi, ci in desc.mig:
            base = f"proc/driver/nvidia/capabilities/gpu{gpu}/mig/gi{gi}"
            t.write(f"{base}/access", f"DeviceFileMinor: {numbers[(gpu, gi, None)]}\nDeviceFileMode: 292")
            t.write(f"{base}/ci{ci}/access", f"DeviceFileMinor: {numbers[(gpu, gi, ci)]}\nDeviceFileMode: 292")
