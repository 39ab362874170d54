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
    # A bridge's PCI Express port type, from its `config`: "root" (root port), "upstream" or
    # "downstream" (switch ports), "bridge" (any other bridge); None: not a bridge, or unreadable.
    bridge_kind: str | None = None
    # The bridges a path from this function up to the host bridge crosses, top first, as
    # nvidia-smi counts them: a root port, a switch (named by its upstream port), any other
    # bridge. Set by discovery from the bridges' port types; None: derived from `chain` by depth
    # (affinity.bridge_hops, docs/topology.md "Classes").
    hops: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Gpu:
    bdf: str
    minor: int | None  # /dev/nvidia<minor>; None when no nvidia driver is bound
    uuid: str | None = None
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
    ports: tuple[int, ...] = ()  # its port numbers (NCCL_IB_HCA and UCX_NET_DEVICES name DEV:PORT)


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
class VfioFunction:
    """A PCI function bound to vfio-pci, to be passed whole to a VM (docs/vm.md, "VFIO
    devices"): an NVIDIA GPU (`kind` "gpu") or a network/InfiniBand controller ("nic"), PF or
    VF. It has no netdev, RDMA device or /dev/nvidiaN on the host: only its IOMMU group's node
    /dev/vfio/<group>, whose numbers come from sysfs (`node`; None: unknown, the CDI runtime
    takes them from the host's node)."""

    bdf: str
    kind: str
    group: int
    node: CharDev | None = None
    physfn: str | None = None  # a VF: its PF

    @property
    def path(self) -> str:
        return f"/dev/vfio/{self.group}"


@dataclass(frozen=True)
class ScanWarning:
    """Something the scan could not read, or a choice the caller may want to revisit.

    Without `argument`, `path` is the file or directory concerned, relative to the scanned
    root ("/sys/..."). With `argument`, the warning is about that value the caller passed,
    named in the library's terms ("nic_affinity", "netdev_config": the command line names
    the option, as for errors.BadArgument), and `path` is its value."""

    path: str
    reason: str
    argument: str | None = None


@dataclass(frozen=True)
class Mount:
    """A host file or directory bound into the container at `container`: read-only, unless
    `writable` (IPC sockets and pipe directories, which clients write to)."""

    host: str
    container: str
    writable: bool = False


@dataclass
class DriverFiles:
    """The driver userspace a container needs (docs/gpu.md): its mounts, the container
    directories that hold its libraries (for ldconfig), and the links to make there:
    (container path of the link, its target: a file name in the same directory)."""

    version: str
    mounts: list[Mount] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class MigDevice:
    """A MIG instance (GPU instance `gi`, compute instance `ci`) of the GPU /dev/nvidia<gpu_minor>,
    with its two capability nodes /dev/nvidia-caps/nvidia-cap<N> (GI access, CI access)."""

    gpu_minor: int
    gi: int
    ci: int
    caps: tuple[CharDev, ...]


@dataclass
class GpuDirect:
    """The devices around the GPUs (docs/gpu.md, "GPUDirect and friends") and what GPUDirect
    RDMA needs: `rdma` holds, per (GPU bdf, NIC bdf), a verdict ("yes", "cpu", "no"), why, and
    the switch ports whose ACS sends that pair's peer-to-peer traffic up to the root complex."""

    gdrdrv: CharDev | None = None
    nvidia_fs: tuple[CharDev, ...] = ()
    gds_mounts: tuple[Mount, ...] = ()  # /etc/cufile.json, /run/udev
    imex: tuple[CharDev, ...] = ()
    mig: tuple[MigDevice, ...] = ()
    peermem: bool = False  # module nvidia_peermem loaded
    dmabuf: bool | None = None  # DMA-BUF possible (open kernel module, Linux 5.12+); None: unknown
    rdma: dict[tuple[str, str], tuple[str, str, tuple[str, ...]]] = field(default_factory=dict)


@dataclass
class Topology:
    # By BDF: every GPU, NIC, VFIO function and bridge of any function's chain is a key here.
    pci: dict[str, PciFunction] = field(default_factory=dict)
    gpus: list[Gpu] = field(default_factory=list)  # PCI order
    nics: list[Nic] = field(default_factory=list)  # PCI order, VFs included
    control: list[CharDev] = field(default_factory=list)  # nvidiactl, nvidia-modeset, nvidia-uvm(-tools)
    rdma_cm: CharDev | None = None
    numa_nodes: tuple[int, ...] | None = None  # /sys/devices/system/node/online; None: unknown
    warnings: list[ScanWarning] = field(default_factory=list)
    driver: DriverFiles | None = None  # scan/driver.py; None: not looked for, or nothing found
    gpudirect: GpuDirect | None = None  # scan/gpudirect.py; None: not looked for
    vfio: list[VfioFunction] = field(default_factory=list)  # PCI order: GPUs and NICs on vfio-pci
    vfio_control: CharDev | None = None  # /dev/vfio/vfio, when `vfio` is not empty
    # The NCCL topology file that decided affinities sysfs could not (host path, under the
    # scan's root), mounted where the containers' NCCL reads it; None: none used.
    nccl_topo_path: str | None = None
    # Where that file places each GPU and NIC it names: PCI address -> (its <cpu>, the <pci>
    # elements above it, top first), elements numbered in file order (scan/nccltopo.py).
    nccl_places: dict[str, tuple[int, tuple[int, ...]]] = field(default_factory=dict)

    @property
    def usable_gpus(self) -> list[Gpu]:
        """GPUs that a container can be given: those with a /dev/nvidiaN (PCI order)."""
        return [g for g in self.gpus if g.minor is not None]

    @property
    def single_numa_node(self) -> bool:
        return self.numa_nodes is not None and len(self.numa_nodes) <= 1
