"""The records of the pod's network: what one source says about one network (Observation),
and the merged facts of a network (NetworkFacts), with its device-info and routes.

Plain classes and tuples, no typing.NamedTuple or dataclass: `cdigen dan` and `apply` import
this at container start, where those imports would cost more than the work
(docs/architecture.md, "Hot path").
"""

from collections import namedtuple

from cdigen.errors import InvalidInput
from cdigen.values import one_line

VFIO_DRIVER = "vfio-pci"
CNI, OVN, STATUS = "CNI result", "pod-networks", "network-status"  # the sources, as messages name them


class PodNetError(InvalidInput):
    """Pod network facts that are malformed, contradict each other or match no device."""


def fail(where: str, message: str):
    raise PodNetError(one_line(f"{where}: {message}"))


class Route(tuple):
    """(dest, gateway): dest in CIDR, the network address ("0.0.0.0/0" for a default route);
    gateway an IP, None for on-link. A tuple, equal to a plain (dest, gateway) one."""

    __slots__ = ()

    def __new__(cls, dest: str, gateway: str | None = None):
        return tuple.__new__(cls, (dest, gateway))

    def __getnewargs__(self):
        return tuple(self)

    @property
    def dest(self) -> str:
        return self[0]

    @property
    def gateway(self) -> str | None:
        return self[1]

    def __repr__(self) -> str:
        return f"Route({self[0]!r}, {self[1]!r})"


class DeviceInfo(
    namedtuple(
        "DeviceInfo",
        (
            "type",  # pci, vdpa, vhost-user, memif
            "version",
            "pci_address",  # pci (required), vdpa (optional)
            "pf_pci_address",
            "rdma_device",
            "representor_device",
            "vhost_net",
            "parent_device",  # vdpa
            "driver",  # vdpa: vhost | virtio
            "path",  # vdpa device node, vhost-user or memif socket
            "mode",  # vhost-user: client | server; memif: ethernet | ip | inject-punt
            "role",  # memif: master | slave
        ),
        defaults=(None,) * 10,  # all but type and version
    )
):
    """A device-info document (spec 1.1.0), the fields cdigen uses."""

    __slots__ = ()

    def identity(self) -> tuple:
        return (self.type, self.pci_address, self.parent_device, self.path)


class NetworkFacts(
    namedtuple(
        "NetworkFacts",
        (
            "name",  # network-status name / pod-networks key / CNI network name
            "interface",  # the interface name inside the pod
            "host_interface",  # None; the host netdev it is, if any
            "pci_address",  # None; the PCI function it is, if known
            "addresses",  # (); CIDR, canonical ("192.0.2.10/24", "2001:db8::a/64")
            "mtu",  # None
            "mac",  # None; lower case, colon separated
            "gateways",  # (); of the default routes
            "routes",  # (); Route, default routes included
            "default",  # False; the pod's default (cluster) network
            "pci_driver",  # None; the driver bound to the PCI function (None: none)
            "device_info",  # None; DeviceInfo
            "sources",  # (); which sources described it (CNI result, pod-networks, ...)
        ),
        defaults=(None, None, (), None, None, (), (), False, None, None, ()),
    )
):
    __slots__ = ()

    @property
    def vfio(self) -> bool:
        return self.pci_address is not None and self.pci_driver == VFIO_DRIVER

    @property
    def device(self) -> str | None:
        """What the network is on the host, in words; None for a default network on no device."""
        if self.host_interface:
            return f"host interface {self.host_interface}"
        if self.pci_address:
            return f"PCI function {self.pci_address}"
        if self.device_info and self.device_info.path:
            return f"{self.device_info.type} {self.device_info.path}"
        if self.device_info and self.device_info.parent_device:
            return f"vdpa device {self.device_info.parent_device}"
        return None


class Observation:
    """What one source says about one network. `ips`: (address, prefix length or None);
    `routes` None: this source says nothing about routes."""

    __slots__ = (
        "source", "where", "name", "interface", "default", "ips", "mac", "mtu", "routes", "device_info",
        "pci_address", "socket_path",
    )  # fmt: skip

    def __init__(self, source: str, where: str, **facts):
        self.source = source  # CNI, OVN or STATUS
        self.where = where  # the annotation or the file, for messages
        for key in self.__slots__[2:]:
            setattr(self, key, facts.pop(key, None))
        if facts:
            raise TypeError(f"unknown observation keys: {', '.join(facts)}")

    def __repr__(self) -> str:
        return "Observation(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"
