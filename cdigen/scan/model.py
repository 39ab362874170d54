"""What discovery finds on a host: plain data, no behaviour beyond small derived properties.

Everything is keyed by PCI address (BDF, "0000:13:00.0"): GPUs, NICs, RDMA devices and netdevs
are joined on it (docs/topology.md).
"""

from dataclasses import dataclass, field

NVIDIA_VENDOR = 0x10DE
NVIDIA_MAJOR = 195  # NV_MAJOR_DEVICE_NUMBER (the nvidia driver's fixed major)


@dataclass(frozen=True)
class CharDev:
    """A character device node as the container should see it; numbers read from sysfs/procfs."""

    path: str
    major: int
    minor: int


@dataclass
class PciFunction:
    bdf: str
    root: str  # host bridge / root bus, "pci0000:10" (= DRA pcieRoot)
    chain: tuple[str, ...]  # BDFs from the root port down to this function (last = bdf)
    vendor: int | None = None
    class_code: int | None = None  # 24 bits, e.g. 0x030200
    driver: str | None = None
    numa_node: int = -1  # -1: unknown
    physfn: str | None = None  # set on an SR-IOV VF: its PF's BDF
    virtfns: tuple[str, ...] = ()  # set on an SR-IOV PF: its VFs' BDFs

    @property
    def switches(self) -> tuple[str, ...]:
        """Upstream ports of the PCIe switches above this function, top first.

        chain[:-1] are bridges: root port, then (switch upstream port, downstream port) pairs;
        the upstream ports identify switches (NCCL's "rewind two /"; docs/topology.md)."""
        return self.chain[:-1][1::2]


@dataclass(frozen=True)
class Gpu:
    bdf: str
    minor: int | None  # /dev/nvidia<minor>; None when no nvidia driver is bound
    uuid: str | None = None
    model: str | None = None
    driver: str | None = None
    drm: tuple[CharDev, ...] = ()  # /dev/dri/cardN, /dev/dri/renderDN

    @property
    def node(self) -> CharDev | None:
        if self.minor is None:
            return None
        return CharDev(f"/dev/nvidia{self.minor}", NVIDIA_MAJOR, self.minor)


@dataclass(frozen=True)
class Netdev:
    name: str
    bdf: str
    link_layer: str | None  # "Ethernet" or "InfiniBand" (from the ARPHRD type)
    mtu: int | None


@dataclass(frozen=True)
class RdmaDevice:
    name: str  # mlx5_0
    bdf: str
    link_layer: str | None  # port 1's link_layer: "InfiniBand" or "Ethernet" (RoCE)
    chardevs: tuple[CharDev, ...] = ()  # uverbsN, umadN, issmN


@dataclass(frozen=True)
class Nic:
    """A PCI network function with its netdevs and RDMA devices (either may be empty:
    an IB HCA without IPoIB has no netdev; a plain Ethernet NIC has no RDMA device)."""

    bdf: str
    netdevs: tuple[Netdev, ...] = ()
    rdma: tuple[RdmaDevice, ...] = ()
    physfn: str | None = None  # an SR-IOV VF: its PF
    vfs: tuple[str, ...] = ()  # an SR-IOV PF: its VFs that have a netdev or RDMA device

    @property
    def is_vf(self) -> bool:
        return self.physfn is not None

    @property
    def chardevs(self) -> tuple[CharDev, ...]:
        return tuple(c for r in self.rdma for c in r.chardevs)

    @property
    def label(self) -> str:
        return nic_label([r.name for r in self.rdma], [n.name for n in self.netdevs], self.bdf)


def nic_label(rdma: list[str], netdevs: list[str], bdf: str) -> str:
    """How operators name a NIC: its RDMA devices (as nvidia-smi's NIC legend), else its
    netdevs, else its PCI address."""
    return ",".join(rdma) or ",".join(netdevs) or bdf


@dataclass(frozen=True)
class ScanWarning:
    path: str  # the file or directory concerned, relative to the scanned root ("/sys/...")
    reason: str


@dataclass
class Topology:
    pci: dict[str, PciFunction] = field(default_factory=dict)
    gpus: list[Gpu] = field(default_factory=list)  # PCI order
    nics: list[Nic] = field(default_factory=list)  # PCI order, VFs included
    control: list[CharDev] = field(default_factory=list)  # nvidiactl, nvidia-modeset, nvidia-uvm(-tools)
    rdma_cm: CharDev | None = None
    numa_nodes: tuple[int, ...] | None = None  # /sys/devices/system/node/online; None: unknown
    warnings: list[ScanWarning] = field(default_factory=list)

    @property
    def usable_gpus(self) -> list[Gpu]:
        """GPUs that a container can be given: those with a /dev/nvidiaN (PCI order)."""
        return [g for g in self.gpus if g.minor is not None]

    @property
    def single_numa_node(self) -> bool:
        return self.numa_nodes is not None and len(self.numa_nodes) <= 1
