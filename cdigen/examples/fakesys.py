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
    gpu                H100 SXM (3D controller) with the nvidia driver
    ib | roce | eth    ConnectX-7 InfiniBand (IPoIB netdev) | ConnectX-7 Ethernet with RoCE |
                       plain Ethernet NIC without RDMA
Modifiers, appended with ':':  gpu:vga (GeForce, VGA class)  gpu:nodrv (no driver bound)
    gpu:driver=vfio-pci  gpu:minor=N  ib:nonet (HCA without netdev)  roce:vf8 (8 SR-IOV VFs,
    each with its own netdev and RDMA device).

Bus numbers are allocated depth-first, as the kernel enumerates: the first root port of
bus 0x10 gets secondary bus 0x11, its switch's internal bus 0x12, the endpoints 0x13, 0x14...
"""

import hashlib
import os
import re
from dataclasses import dataclass, field

GPU_IDS = {"h100": (0x2330, 0x030200, "NVIDIA H100 80GB HBM3"), "vga": (0x2684, 0x030000, "NVIDIA GeForce RTX 4090")}
CX7 = 0x1021
IB_CLASS, ETH_CLASS, BRIDGE_CLASS = 0x020700, 0x020000, 0x060400
UVM_MAJOR = 508
# Kernel numbering (drivers/infiniband/core/{uverbs_main,user_mad}.c): uverbsN = 231:192+N for N < 32, umadN = 231:N and
# issmN = 231:64+N for N < 64; later ones get dynamic majors.
DYN_UVERBS, DYN_UMAD, DYN_ISSM = 511, 510, 509
RDMA_CM = (10, 58)


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
        elif kind not in ("gpu", "ib", "roce", "eth"):
            raise DescriptionError(f"topology description: unknown item {kind!r}: {line!r}")
        items.append(item)
    return items, pos


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

    def __init__(self, root: str):
        self.root = root
        self.dirs: set[str] = set()
        self.ifindex = 1
        self.counters = {"gpu": 0, "mlx5_": 0, "uverbs": 0, "umad": 0, "card": 0}

    def write(self, rel: str, content: str) -> None:
        path = os.path.join(self.root, rel)
        self._mkdir(os.path.dirname(path))
        with open(path, "w") as f:
            f.write(content + "\n")

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


def _bridge(t: _Tree, devpath: str, bdf: str, numa: int, secondary: int, root_port: bool) -> None:
    vendor, device = (0x8086, 0x352A) if root_port else (0x1000, 0xC030)  # placeholder RP / PEX890xx
    _pci_function(t, devpath, bdf, vendor, device, BRIDGE_CLASS, numa, "pcieport")
    t.write(f"{devpath}/secondary_bus_number", str(secondary))
    domain = bdf[:4]
    t.write(f"{devpath}/pci_bus/{domain}:{secondary:02x}/cpuaffinity", "0")
    t.link(f"sys/class/pci_bus/{domain}:{secondary:02x}", f"{devpath}/pci_bus/{domain}:{secondary:02x}")


def _gpu(t: _Tree, devpath: str, bdf: str, numa: int, mods: dict, minor: int | None) -> None:
    device, cls, model = GPU_IDS["vga" if "vga" in mods else "h100"]
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
    kind, mods = item.kind, item.mods
    ib = kind == "ib"
    rdma = kind in ("ib", "roce")
    prefix = ("ib" if ib else "en") + (f"P{domain}" if domain else "")
    mtu = 4092 if ib else 9000 if rdma else 1500
    nvfs = next((int(k[2:]) for k in mods if re.fullmatch(r"vf\d+", k)), 0)
    functions = [(slot, 0)] + [divmod(2 + k, 8) for k in range(nvfs)]  # VF offset 2, stride 1
    pf_bdf = _bdf(domain, bus, slot)
    for k, (dev, fn) in enumerate(functions):
        bdf = _bdf(domain, bus, dev, fn)
        devpath = f"{parent}/{bdf}"
        device = CX7 if k == 0 else 0x101E  # ConnectX Family mlx5Gen Virtual Function
        if kind == "eth":
            _pci_function(t, devpath, bdf, 0x8086, 0x1533, ETH_CLASS, numa, "igb")
        else:
            _pci_function(t, devpath, bdf, 0x15B3, device, IB_CLASS if ib else ETH_CLASS, numa, "mlx5_core")
        if k == 0 and nvfs:
            t.write(f"{devpath}/sriov_totalvfs", "16")
            t.write(f"{devpath}/sriov_numvfs", str(nvfs))
        if k > 0:
            t.link(f"{devpath}/physfn", f"{parent}/{pf_bdf}")
            t.link(f"{parent}/{pf_bdf}/virtfn{k - 1}", devpath)
        name = None
        if "nonet" not in mods:
            name = f"{prefix}p{bus}s{dev}" + (f"f{fn}" if k else "np0" if kind == "roce" else "")
            _netdev(t, devpath, name, ib, mtu, bdf)
        if rdma:
            _rdma(t, devpath, ib, name)


def _place(t: _Tree, item: Item, parent: str, domain: int, bus: int, slot: int, numa: int, alloc, minors) -> None:
    """Put `item` at DDDD:bus:slot.0 under the directory `parent`."""
    bdf = _bdf(domain, bus, slot)
    if item.kind == "switch":
        usp = f"{parent}/{bdf}"
        internal = alloc()
        _bridge(t, usp, bdf, numa, internal, root_port=False)
        for j, child in enumerate(item.children):
            dsp_bdf = _bdf(domain, internal, j)
            dsp = f"{usp}/{dsp_bdf}"
            secondary = alloc()
            _bridge(t, dsp, dsp_bdf, numa, secondary, root_port=False)
            _place(t, child, dsp, domain, secondary, 0, numa, alloc, minors)
    elif item.kind == "gpu":
        _gpu(t, f"{parent}/{bdf}", bdf, numa, item.mods, minors.get(id(item)))
    else:
        _nic(t, parent, domain, bus, slot, numa, item)


def _walk(items):
    for item in items:
        yield item
        yield from _walk(item.children)


def _bus_allocator(first: int):
    """The next free bus number below a host bridge, depth-first as the kernel enumerates."""
    last = [first]

    def alloc() -> int:
        last[0] += 1
        return last[0]

    return alloc


def build(description: str | Description, root: str) -> str:
    """Write the tree described by `description` under `root` (created if needed); returns root."""
    desc = parse(description) if isinstance(description, str) else description
    t = _Tree(root)
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
        alloc = _bus_allocator(hb.bus)

        for i, item in enumerate(hb.items):
            if hb.on_bus:
                _place(t, item, top, hb.domain, hb.bus, i, hb.numa, alloc, minors)
            else:
                rp_bdf = _bdf(hb.domain, hb.bus, i + 1)
                rp = f"{top}/{rp_bdf}"
                secondary = alloc()
                _bridge(t, rp, rp_bdf, hb.numa, secondary, root_port=True)
                _place(t, item, rp, hb.domain, secondary, 0, hb.numa, alloc, minors)
    # A virtual netdev, as on every host: discovery must skip it.
    t.write("sys/devices/virtual/net/lo/type", "772")
    t.write("sys/devices/virtual/net/lo/mtu", "65536")
    t.link("sys/class/net/lo", "sys/devices/virtual/net/lo")
    if minors:
        t.write(
            "proc/devices",
            "Character devices:\n  1 mem\n 10 misc\n195 nvidia\n226 drm\n"
            f"231 infiniband_verbs\n{UVM_MAJOR} nvidia-uvm\n\nBlock devices:\n  8 sd",
        )
    if t.counters["mlx5_"]:
        t.write("sys/class/infiniband_verbs/abi_version", "6")
        t.write("sys/class/infiniband_mad/abi_version", "5")
        t.write("sys/devices/virtual/misc/rdma_cm/dev", f"{RDMA_CM[0]}:{RDMA_CM[1]}")
        t.link("sys/class/misc/rdma_cm", "sys/devices/virtual/misc/rdma_cm")
    return root
