"""The network facts of a pod: what its annotations, its device-info files and the CNI result
cache say about each of its networks, merged, checked, and matched to a host device.

Sources (formats, origins and the facts behind every rule: docs/vm.md):

=============  ============================================================================
CNI result     ``/var/lib/cni/results/<network>-<container id>-<ifname>`` (libcni's cache; read
               only with a container id): CIDR ``ips``, the sandbox interface's ``mac``, ``mtu``,
               ``pciID`` and ``socketPath``, ``routes``.
pod-networks   the ``k8s.ovn.org/pod-networks`` annotation (OVN-Kubernetes): an object keyed by
               network ("default" is the cluster network); CIDR ``ip_addresses``,
               ``mac_address``, ``gateway_ips``, ``routes``; no MTU, no interface name.
network-status the ``k8s.v1.cni.cncf.io/network-status`` annotation (Multus; the old name
               ``networks-status`` when the new one is absent): a list; ``ips`` WITHOUT prefix
               length, ``mac``, ``mtu``, ``interface``, ``default``, ``gateway`` (default routes
               only), ``device-info``.
device-info    spec 1.1.0: network-status's ``device-info``, and the file
               ``/var/run/k8s.cni.cncf.io/devinfo/cni/<network>-<container id>_<ifname>`` that
               Multus names per attachment (read only with a container id).
=============  ============================================================================

Networks are joined by name (pod-networks key = network-status ``name``; "default" = the
network-status entry with ``default: true``) and by interface name (CNI result ``ifName``,
device-info file suffix). A network that only the CNI result cache names is a network too.

Precedence. Facts that say *which* device and *which* addresses must agree among every source
that gives them, and a disagreement is an error: the set of IP addresses, each address's
prefix length, the MAC, the device (device-info from the annotation and from the file, the CNI
result's ``pciID``/``socketPath``). Facts that *configure* the interface come whole from the
first source that has them, in the order CNI result, pod-networks, network-status: the MTU,
and the routes with the default gateways. The addresses are listed in the order of that first
source. A bare IP that no CIDR source gives a prefix length for is an error: a mask is never
guessed.

Matching a network to the host (below `root`), every rule that finds something must agree:

1. device-info ``pci-address`` (or the CNI result's ``pciID``): ``sys/bus/pci/devices/<bdf>``
   must exist; its ``net/*`` netdev is the host interface, and without one the PCI function
   itself is the device (bound to vfio-pci, say); device-info vdpa: the netdev below
   ``sys/bus/vdpa/devices/<parent-device>``; vhost-user and memif: the socket is the device;
2. the interface name: the host interface whose container name (`netdevs`, e.g. from
   config.json ``linux.netDevices``) is the network's interface;
3. the MAC, when no rule above found anything: the one host netdev under ``sys/class/net``
   with that address.

A network that matches nothing is an error, except the pod's default network (network-status
``default: true``, pod-networks "default", or an unlisted ``eth0``, the name that containerd,
CRI-O and Multus give the cluster network): it is the pod's own veth and comes back with no
device. Two networks on one device are an error. Every error is one line (InvalidInput, exit
3) naming the network.

Plain functions; file reads only in `network_facts` (under `root`); `merge` is pure.
"""

import ipaddress
import os
from collections import namedtuple

from cdigen import netdev, strictjson
from cdigen.errors import InvalidInput
from cdigen.files import UnreadableFile, read_regular

NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"
NETWORK_STATUS_OLD = "k8s.v1.cni.cncf.io/networks-status"
POD_NETWORKS = "k8s.ovn.org/pod-networks"
ANNOTATIONS = (NETWORK_STATUS, NETWORK_STATUS_OLD, POD_NETWORKS)
# CRI annotations on the sandbox's (and every container's) config.json: containerd's, CRI-O's.
SANDBOX_ID_KEYS = ("io.kubernetes.cri.sandbox-id", "io.kubernetes.cri-o.SandboxID")
CONTAINER_TYPE_KEYS = ("io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType")
DEVINFO_CNI_DIR = "var/run/k8s.cni.cncf.io/devinfo/cni"
CNI_RESULTS_DIR = "var/lib/cni/results"
VFIO_DRIVER = "vfio-pci"
DEFAULT_IFNAME = "eth0"
OVN_DEFAULT = "default"
MAX_FILE_BYTES = 1 << 20

CNI, OVN, STATUS = "CNI result", "pod-networks", "network-status"
RANK = (CNI, OVN, STATUS)  # precedence of the configuring facts, highest first

DEVICE_TYPES = ("pci", "vdpa", "vhost-user", "memif")
_HEX = frozenset("0123456789abcdef")


class PodNetError(InvalidInput):
    """Pod network facts that are malformed, contradict each other or match no device."""


class Route(tuple):
    """(dest, gateway): dest in CIDR, the network address ("0.0.0.0/0" for a default route);
    gateway an IP, None for on-link. A tuple, equal to a plain (dest, gateway) one. (Not a
    typing.NamedTuple: importing typing would add to every `cdigen dan` start.)"""

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


# ---------------------------------------------------------------------------- small parsers


def one_line(text: str, limit: int = 400) -> str:
    """`text` with unprintable characters (of names taken from the input) escaped, cut short."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)[:limit]


def _fail(where: str, message: str):
    raise PodNetError(one_line(f"{where}: {message}"))


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_ip(text, where: str) -> tuple[str, int]:
    """(canonical text, version) of a bare IP address."""
    if not isinstance(text, str):
        _fail(where, f"expected an IP address, got {_short(text)}")
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        _fail(where, f"invalid IP address {_short(text)}")
    return str(ip), ip.version


def parse_cidr(text, where: str) -> tuple[str, int, int]:
    """(canonical address, prefix length, version) of ``ADDR/LEN``."""
    if not isinstance(text, str) or "/" not in text:
        _fail(where, f"expected an address with a prefix length (CIDR), got {_short(text)}")
    addr, _, plen = text.strip().partition("/")
    ip, version = parse_ip(addr, where)
    if not plen.isdigit() or int(plen) > (32 if version == 4 else 128):
        _fail(where, f"invalid prefix length in {_short(text)}")
    return ip, int(plen), version


def parse_dest(text, where: str) -> str:
    """A route destination as its network in CIDR ("10.1.2.3/8" -> "10.0.0.0/8")."""
    _, _, _ = parse_cidr(text, where)
    return str(ipaddress.ip_network(text.strip(), strict=False))


def parse_mac(text, where: str) -> str:
    """A hardware address, lower case and colon separated: 6 bytes (Ethernet), 8 (EUI-64) or 20
    (IPoIB), groups of two hex digits separated by ':' or '-'."""
    if not isinstance(text, str):
        _fail(where, f"expected a MAC address, got {_short(text)}")
    groups = text.strip().lower().replace("-", ":").split(":")
    if len(groups) not in (6, 8, 20) or not all(len(g) == 2 and _HEX.issuperset(g) for g in groups):
        _fail(where, f"invalid MAC address {_short(text)}")
    return ":".join(groups)


def _str(doc: dict, key: str, where: str, required: bool = False) -> str | None:
    value = doc.get(key)
    if value is None or value == "":
        if required:
            _fail(where, f"missing {key!r}")
        return None
    if not isinstance(value, str):
        _fail(where, f"{key!r} must be a string, got {_short(value)}")
    return value


def _list(doc: dict, key: str, where: str) -> list:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        _fail(where, f"{key!r} must be a list, got {_short(value)}")
    return value


def _object(value, where: str) -> dict:
    if not isinstance(value, dict):
        _fail(where, f"expected a JSON object, got {type(value).__name__}")
    return value


def _json(text, where: str):
    if not isinstance(text, (str, bytes)):
        _fail(where, f"expected a string, got {type(text).__name__}")
    try:
        return strictjson.loads(text)
    except UnicodeDecodeError as e:
        _fail(where, f"not UTF-8 (byte {e.start})")
    except ValueError as e:
        _fail(where, f"invalid JSON: {e}")


def _mtu(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(where, f"MTU must be an integer, got {_short(value)}")
    try:
        return netdev.check_mtu(value)
    except InvalidInput as e:
        _fail(where, str(e))


def _opt_mtu(value, where: str) -> int | None:
    """An optional MTU: absent, null or 0 (Go's omitempty zero) is none."""
    if value is None or (value == 0 and type(value) is int):
        return None
    return _mtu(value, where)


def _is_bdf(text: str) -> bool:
    """dddd:bb:dd.f, lower-case hex, function 0-7."""
    parts = text.split(":")
    if len(parts) != 3 or len(parts[2]) != 4 or parts[2][2] != ".":
        return False
    digits = parts[0] + parts[1] + parts[2][:2]
    return len(parts[0]) == 4 and len(parts[1]) == 2 and _HEX.issuperset(digits) and parts[2][3] in "01234567"


def _bdf(value, where: str) -> str:
    text = value.strip().lower() if isinstance(value, str) else value
    if not isinstance(text, str) or not _is_bdf(text):
        _fail(where, f"invalid PCI address {_short(value)} (expected dddd:bb:dd.f)")
    return text


def parse_device_info(doc, where: str) -> DeviceInfo:
    """A device-info document (spec 1.1.0): `type` and `version` required, then the map of its
    type with that type's required keys."""
    doc = _object(doc, where)
    kind = _str(doc, "type", where, required=True)
    if kind not in DEVICE_TYPES:
        _fail(where, f"unknown device-info type {_short(kind)} (expected {', '.join(DEVICE_TYPES)})")
    version = _str(doc, "version", where, required=True)
    major, *rest = version.split(".")
    if major != "1" or len(rest) != 2 or not all(p.isascii() and p.isdigit() for p in rest):
        _fail(where, f"device-info version {_short(version)} is not 1.x.y")
    sub = doc.get(kind)
    if sub is None:
        _fail(where, f"device-info of type {kind} has no {kind!r} object")
    sub = _object(sub, f"{where}: {kind}")
    w = f"{where}: {kind}"
    if kind == "pci":
        pf = _str(sub, "pf-pci-address", w)
        return DeviceInfo(
            kind,
            version,
            pci_address=_bdf(_str(sub, "pci-address", w, required=True), w),
            pf_pci_address=_bdf(pf, w) if pf else None,
            rdma_device=_str(sub, "rdma-device", w),
            representor_device=_str(sub, "representor-device", w),
            vhost_net=_str(sub, "vhost-net", w),
        )
    if kind == "vdpa":
        pci = _str(sub, "pci-address", w)
        driver = _str(sub, "driver", w, required=True)
        if driver not in ("vhost", "virtio"):
            _fail(w, f"driver must be vhost or virtio, got {_short(driver)}")
        return DeviceInfo(
            kind,
            version,
            pci_address=_bdf(pci, w) if pci else None,
            parent_device=_str(sub, "parent-device", w, required=True),
            driver=driver,
            path=_str(sub, "path", w, required=True),
        )
    if kind == "vhost-user":
        mode = _str(sub, "mode", w, required=True)
        if mode not in ("client", "server"):
            _fail(w, f"mode must be client or server, got {_short(mode)}")
        return DeviceInfo(kind, version, mode=mode, path=_str(sub, "path", w, required=True))
    role = _str(sub, "role", w, required=True)
    if role not in ("master", "slave"):
        _fail(w, f"role must be master or slave, got {_short(role)}")
    mode = _str(sub, "mode", w, required=True)
    if mode not in ("ethernet", "ip", "inject-punt", "punt"):
        _fail(w, f"mode must be ethernet, ip or inject-punt, got {_short(mode)}")
    return DeviceInfo(kind, version, role=role, mode=mode, path=_str(sub, "path", w, required=True))


# ---------------------------------------------------------------------------- observations


class Observation:
    """What one source says about one network. `ips`: (address, prefix length or None);
    `routes` None: this source says nothing about routes. (A plain class, not a dataclass:
    each dataclass costs its creation at every `cdigen dan` start.)"""

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


def _routes_from_gateways(gateways: list[str], where: str) -> list[Route]:
    out = []
    for gw in gateways:
        ip, version = parse_ip(gw, where)
        out.append(Route("0.0.0.0/0" if version == 4 else "::/0", ip))
    return out


def parse_network_status(text, where: str = NETWORK_STATUS) -> list[Observation]:
    """The Multus annotation: a JSON list of network statuses."""
    doc = _json(text, where)
    if not isinstance(doc, list):
        _fail(where, f"expected a JSON list, got {type(doc).__name__}")
    out = []
    for i, entry in enumerate(doc):
        w = f"{where}[{i}]"
        entry = _object(entry, w)
        name = _str(entry, "name", w, required=True)
        w = f"{where}: network {name}"
        interface = _str(entry, "interface", w)
        if interface is not None:
            _ifname(interface, w)
        default = entry.get("default", False)
        if not isinstance(default, bool):
            _fail(w, f"'default' must be true or false, got {_short(default)}")
        ips: list[tuple[str, int | None]] = []
        for ip in _list(entry, "ips", w):
            if isinstance(ip, str) and "/" in ip:  # the multi-net spec's examples carry a prefix
                addr, plen, _ = parse_cidr(ip, w)
                ips.append((addr, plen))
            else:
                ips.append((parse_ip(ip, w)[0], None))
        mac = _str(entry, "mac", w)
        mtu = entry.get("mtu")
        gateways = _list(entry, "gateway", w)
        devinfo = entry.get("device-info")
        out.append(
            Observation(
                STATUS,
                where,
                name=name,
                interface=interface,
                default=default,
                ips=ips or None,
                mac=parse_mac(mac, w) if mac else None,
                mtu=_opt_mtu(mtu, w),
                routes=_routes_from_gateways(gateways, w) or None,
                device_info=parse_device_info(devinfo, f"{w}: device-info") if devinfo is not None else None,
            )
        )
    return out


def parse_pod_networks(text, where: str = POD_NETWORKS) -> list[Observation]:
    """The OVN-Kubernetes annotation: a JSON object keyed by network."""
    doc = _object(_json(text, where), where)
    out = []
    for key, entry in doc.items():
        w = f"{where}: network {key}"
        entry = _object(entry, w)
        addresses = _list(entry, "ip_addresses", w)
        if not addresses and entry.get("ip_address"):  # deprecated single-address form
            addresses = [entry["ip_address"]]
        ips = []
        for text_ip in addresses:
            addr, plen, _ = parse_cidr(text_ip, w)
            ips.append((addr, plen))
        gateways = _list(entry, "gateway_ips", w)
        if not gateways and entry.get("gateway_ip"):
            gateways = [entry["gateway_ip"]]
        routes = _routes_from_gateways(gateways, w)
        for j, route in enumerate(_list(entry, "routes", w)):
            rw = f"{w}: routes[{j}]"
            route = _object(route, rw)
            dest = parse_dest(_str(route, "dest", rw, required=True), rw)
            hop = _str(route, "nextHop", rw)
            routes.append(Route(dest, parse_ip(hop, rw)[0] if hop else None))
        mac = _str(entry, "mac_address", w)
        out.append(
            Observation(
                OVN,
                where,
                name=key,
                # "default" is the cluster network, the pod's eth0, whatever its `role` (with a
                # primary user-defined network it is "infrastructure-locked" and still eth0).
                default=key == OVN_DEFAULT,
                ips=ips or None,
                mac=parse_mac(mac, w) if mac else None,
                routes=routes or None,
            )
        )
    return out


def parse_cni_result(data, where: str, ifname: str | None = None) -> Observation:
    """One libcni cache file: ``{"kind": "cniCacheV1", "containerId", "ifName", "networkName",
    "result": {...}}``, or (older libcni) the result alone, `ifname` then from the file name."""
    doc = _object(data if isinstance(data, dict) else _json(data, where), where)
    name = None
    if "result" in doc or doc.get("kind") == "cniCacheV1":
        name = _str(doc, "networkName", where)
        ifname = _str(doc, "ifName", where) or ifname
        result = _object(doc.get("result"), f"{where}: result")
    else:
        result = doc
    if not ifname:
        _fail(where, "no 'ifName'")
    _ifname(ifname, where)
    interfaces = _list(result, "interfaces", where)
    index, iface = None, {}
    for i, candidate in enumerate(interfaces):
        candidate = _object(candidate, f"{where}: interfaces[{i}]")
        if candidate.get("name") == ifname and candidate.get("sandbox"):
            index, iface = i, candidate
            break
    w = where
    ips, gateways = [], {}
    for j, ipc in enumerate(_list(result, "ips", w)):
        ipc = _object(ipc, f"{w}: ips[{j}]")
        ref = ipc.get("interface")
        if ref is not None and index is not None and ref != index:
            continue  # an address of another interface (a host-side one)
        addr, plen, version = parse_cidr(ipc.get("address"), f"{w}: ips[{j}]")
        ips.append((addr, plen))
        gw = _str(ipc, "gateway", f"{w}: ips[{j}]")
        if gw:
            gateways.setdefault(version, parse_ip(gw, f"{w}: ips[{j}]")[0])
    routes = []
    for j, route in enumerate(_list(result, "routes", w)):
        rw = f"{w}: routes[{j}]"
        route = _object(route, rw)
        dest = parse_dest(_str(route, "dst", rw, required=True), rw)
        gw = _str(route, "gw", rw)
        # CNI: "If omitted, a default gateway is assumed"; libcni's ipam.ConfigureIface uses the
        # gateway of the route's family from `ips`.
        gateway = parse_ip(gw, rw)[0] if gw else gateways.get(6 if ":" in dest else 4)
        routes.append(Route(dest, gateway))
    mac = _str(iface, "mac", w)
    mtu = iface.get("mtu")
    pci = _str(iface, "pciID", w)
    return Observation(
        CNI,
        where,
        name=name,
        interface=ifname,
        ips=ips or None,
        mac=parse_mac(mac, w) if mac else None,
        mtu=_opt_mtu(mtu, w),
        routes=routes or None,
        pci_address=_bdf(pci, w) if pci else None,
        socket_path=_str(iface, "socketPath", w),
    )


def _ifname(name: str, where: str) -> str:
    try:
        return netdev.check_ifname(name, "interface name")
    except InvalidInput as e:
        _fail(where, str(e))


# ---------------------------------------------------------------------------- merging (pure)


class _Network:
    """One network while the observations are joined."""

    __slots__ = ("name", "interface", "default", "observations", "extra_devinfo")

    def __init__(self, name: str, interface: str | None, default: bool, observations: list[Observation]):
        self.name, self.interface, self.default, self.observations = name, interface, default, observations
        self.extra_devinfo: list[tuple[str, DeviceInfo]] = []  # (file, info)


def join(observations: list[Observation]) -> list[_Network]:
    """Group the observations by network: network-status entries first (their order), then
    pod-networks keys not joined to one, then CNI results not joined to one."""
    nets: list[_Network] = []
    seen: set[tuple[str, str | None]] = set()
    by_name: dict[str, list[_Network]] = {}
    for obs in (o for o in observations if o.source == STATUS):
        key = (obs.name, obs.interface)
        if key in seen:
            _fail(obs.where, f"network {obs.name} is listed twice" + (f" for {obs.interface}" if obs.interface else ""))
        seen.add(key)
        net = _Network(obs.name, obs.interface, obs.default, [obs])
        nets.append(net)
        by_name.setdefault(obs.name, []).append(net)
    for obs in (o for o in observations if o.source == OVN):
        targets = by_name.get(obs.name, [])
        if not targets and obs.name == OVN_DEFAULT:
            targets = [n for n in nets if n.default]
        if len(targets) > 1:
            _fail(obs.where, f"network {obs.name} matches {len(targets)} network-status entries")
        if targets:
            targets[0].observations.append(obs)
            targets[0].default = targets[0].default or obs.default
            continue
        net = _Network(obs.name, DEFAULT_IFNAME if obs.default else None, obs.default, [obs])
        nets.append(net)
    for obs in (o for o in observations if o.source == CNI):
        targets = [n for n in nets if n.interface == obs.interface]
        if targets:
            targets[0].observations.append(obs)
            continue
        net = _Network(obs.name or obs.interface, obs.interface, obs.interface == DEFAULT_IFNAME, [obs])
        nets.append(net)
    for net in nets:
        if net.interface is None:
            if net.default:
                net.interface = DEFAULT_IFNAME
            else:
                _fail(f"network {net.name}", "no source names its interface in the pod (network-status lists none)")
    interfaces: dict[str, str] = {}
    for net in nets:
        if net.interface in interfaces:
            _fail(f"network {net.name}", f"interface {net.interface} is network {interfaces[net.interface]}'s too")
        interfaces[net.interface] = net.name
    return nets


def _ranked(net: _Network) -> list[Observation]:
    return sorted(net.observations, key=lambda o: RANK.index(o.source))


def merge(net: _Network) -> dict:
    """The merged facts of one network (no device yet), as keyword arguments of NetworkFacts."""
    where = f"network {net.name}"
    obs = _ranked(net)
    # Addresses: every source that lists some lists the same set; prefix lengths agree.
    listed = [o for o in obs if o.ips]
    order: list[str] = []
    prefix: dict[str, tuple[int, str]] = {}
    if listed:
        first = {ip for ip, _ in listed[0].ips}
        for o in listed[1:]:
            other = {ip for ip, _ in o.ips}
            if other != first:
                _fail(
                    where,
                    f"addresses disagree: {listed[0].source} has {', '.join(sorted(first))}, "
                    f"{o.source} has {', '.join(sorted(other))}",
                )
        for o in listed:
            for ip, plen in o.ips:
                if ip not in order:
                    order.append(ip)
                if plen is None:
                    continue
                if ip in prefix and prefix[ip][0] != plen:
                    _fail(
                        where,
                        f"the mask of {ip} disagrees: {prefix[ip][1]} says /{prefix[ip][0]}, {o.source} says /{plen}",
                    )
                prefix.setdefault(ip, (plen, o.source))
    for ip in order:
        if ip not in prefix:
            _fail(
                where,
                f"address {ip} has no prefix length in any source (network-status carries bare IPs; "
                "pod-networks or the CNI result give the mask)",
            )
    addresses = tuple(f"{ip}/{prefix[ip][0]}" for ip in order)
    # The MAC: the same wherever given.
    mac, mac_source = None, None
    for o in obs:
        if o.mac is None:
            continue
        if mac is not None and o.mac != mac:
            _fail(where, f"the MAC disagrees: {mac_source} has {mac}, {o.source} has {o.mac}")
        if mac is None:
            mac, mac_source = o.mac, o.source
    # Configuring facts: the first source that has them.
    mtu = next((o.mtu for o in obs if o.mtu is not None), None)
    if mtu is not None and any(":" in a for a in addresses):
        try:
            netdev.check_mtu(mtu, 6)
        except InvalidInput as e:
            _fail(where, f"{e} (it has an IPv6 address)")
    routes = next((tuple(o.routes) for o in obs if o.routes), ())
    for route in routes:
        if route.gateway is not None and (":" in route.gateway) != (":" in route.dest):
            _fail(where, f"route to {route.dest} via {route.gateway}: the address families differ")
    gateways = tuple(dict.fromkeys(r.gateway for r in routes if r.dest in ("0.0.0.0/0", "::/0") and r.gateway))
    # The device: device-info from the annotation and the file, and the CNI result's pciID and
    # socketPath, all agree.
    infos = [(o.source, o.device_info) for o in obs if o.device_info] + [
        (f"device-info file {path}", info) for path, info in net.extra_devinfo
    ]
    device_info = infos[0][1] if infos else None
    for label, info in infos[1:]:
        if info.identity() != device_info.identity():
            _fail(where, f"device-info disagrees: {infos[0][0]} and {label} describe different devices")
    pci = device_info.pci_address if device_info else None
    for o in obs:
        if o.pci_address and pci and o.pci_address != pci:
            _fail(where, f"the PCI address disagrees: device-info has {pci}, the CNI result has {o.pci_address}")
        pci = pci or o.pci_address
        path = device_info.path if device_info else None
        if o.socket_path and path and o.socket_path != path:
            _fail(where, f"the socket disagrees: device-info has {path}, the CNI result has {o.socket_path}")
    return {
        "name": net.name,
        "interface": net.interface,
        "addresses": addresses,
        "mtu": mtu,
        "mac": mac,
        "gateways": gateways,
        "routes": routes,
        "default": net.default,
        "device_info": device_info,
        "pci_address": pci,
        "sources": tuple(dict.fromkeys([o.source for o in obs] + (["device-info file"] if net.extra_devinfo else []))),
    }


# ---------------------------------------------------------------------------- the host (sysfs under root)


class Host:
    """Reads sysfs below `root`: PCI functions, their drivers and netdevs, netdev MACs."""

    def __init__(self, root: str = "/"):
        self.root = root
        self._macs: dict[str, list[str]] | None = None

    def path(self, rel: str) -> str:
        return os.path.join(self.root, rel)

    def resolve(self, rel: str) -> str | None:
        """The directory the sysfs symlink `rel` points to, kept inside the root; None if absent."""
        try:
            target = os.readlink(self.path(rel))
        except OSError:
            return self.path(rel) if os.path.isdir(self.path(rel)) else None
        if os.path.isabs(target):
            return self.path(target.lstrip("/"))
        return os.path.normpath(os.path.join(os.path.dirname(self.path(rel)), target))

    def _listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(path))
        except OSError:
            return []

    def pci_function(self, bdf: str) -> tuple[str | None, list[str]] | None:
        """(driver, netdevs) of a PCI function; None when it does not exist."""
        directory = self.resolve(f"sys/bus/pci/devices/{bdf}")
        if directory is None or not os.path.isdir(directory):
            return None
        try:
            driver = os.path.basename(os.readlink(os.path.join(directory, "driver")))
        except OSError:
            driver = None
        return driver, self._listdir(os.path.join(directory, "net"))

    def vdpa_netdevs(self, parent: str) -> list[str] | None:
        directory = self.resolve(f"sys/bus/vdpa/devices/{parent}")
        if directory is None or not os.path.isdir(directory):
            return None
        out = []
        for sub in self._listdir(directory):
            if sub.startswith("virtio"):
                out += self._listdir(os.path.join(directory, sub, "net"))
        return out

    def netdev_exists(self, name: str) -> bool:
        return os.path.lexists(self.path(f"sys/class/net/{name}"))

    def read(self, rel: str) -> str | None:
        try:
            with open(self.path(rel), "rb") as f:
                return f.read(4096).decode("utf-8", "replace").strip()
        except OSError:
            return None

    def by_mac(self, mac: str) -> list[str]:
        if self._macs is None:
            self._macs = {}
            for name in self._listdir(self.path("sys/class/net")):
                address = self.read(f"sys/class/net/{name}/address")
                if address:
                    self._macs.setdefault(address.lower(), []).append(name)
        return self._macs.get(mac, [])


def match(facts: dict, host: Host, netdevs: dict[str, str] | None = None) -> dict:
    """`facts` (from `merge`) with host_interface, pci_address and pci_driver: the rules of the
    module docstring. PodNetError when they disagree or, but for a default network, find nothing."""
    where = f"network {facts['name']}"
    info: DeviceInfo | None = facts["device_info"]
    rules: list[tuple[str, set[str]]] = []  # (rule, the host interfaces it finds)
    pci, driver, device = facts["pci_address"], None, None
    if pci:
        function = host.pci_function(pci)
        if function is None:
            _fail(where, f"PCI function {pci} is not in /sys/bus/pci/devices")
        driver, names = function
        device = f"PCI function {pci}"
        rules.append((device, set(names)))
    elif info and info.type == "vdpa":
        names = host.vdpa_netdevs(info.parent_device)
        if names is None:
            _fail(where, f"vdpa device {info.parent_device} is not in /sys/bus/vdpa/devices")
        device = f"vdpa device {info.parent_device}"
        rules.append((device, set(names)))
    elif info and info.type in ("vhost-user", "memif"):
        device = f"{info.type} socket {info.path}"
    by_name = {h for h, inside in (netdevs or {}).items() if inside == facts["interface"]}
    if by_name:
        rules.append((f"container name {facts['interface']}", by_name))
    if device is None and not by_name and facts["mac"]:
        by_mac = set(host.by_mac(facts["mac"]))
        if by_mac:
            rules.append((f"MAC {facts['mac']}", by_mac))
    host_if = None
    if any(names for _, names in rules):
        hosts = set.intersection(*(names for _, names in rules))
        if len(hosts) == 1:
            host_if = hosts.pop()
        elif len(rules) == 1:
            _fail(where, f"{rules[0][0]} matches several host interfaces: {', '.join(sorted(rules[0][1]))}")
        else:
            found = "; ".join(f"{rule} -> {', '.join(sorted(names)) or 'no netdev'}" for rule, names in rules)
            _fail(where, f"the device rules disagree: {found}")
    if host_if is None and device is None and not facts["default"]:
        _fail(
            where,
            "no device matches it (no device-info, no host interface with that container name, no netdev with its MAC)",
        )
    return facts | {"host_interface": host_if, "pci_address": pci, "pci_driver": driver}


# ---------------------------------------------------------------------------- files below root


def _read_file(path: str, where: str) -> bytes:
    try:
        return read_regular(path, MAX_FILE_BYTES)
    except UnreadableFile as e:
        _fail(where, str(e))


def cni_results(root: str, container_id: str) -> list[Observation]:
    """The cache files of `container_id` (``<network>-<container id>-<ifname>``)."""
    directory = os.path.join(root, CNI_RESULTS_DIR)
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    infix = f"-{container_id}-"
    out = []
    for name in names:
        if infix not in name:
            continue
        where = f"/{CNI_RESULTS_DIR}/{name}"
        network, _, ifname = name.partition(infix)
        obs = parse_cni_result(_read_file(os.path.join(directory, name), where), where, ifname)
        obs.name = obs.name or network
        out.append(obs)
    return out


def devinfo_files(root: str, container_id: str, interfaces: list[str]) -> dict[str, list[tuple[str, DeviceInfo]]]:
    """interface -> the device-info files Multus wrote for it (``<network>-<container id>_<ifname>``)."""
    directory = os.path.join(root, DEVINFO_CNI_DIR)
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return {}
    out: dict[str, list[tuple[str, DeviceInfo]]] = {}
    for interface in interfaces:
        suffix = f"-{container_id}_{interface}"
        for name in names:
            if name.endswith(suffix):
                where = f"/{DEVINFO_CNI_DIR}/{name}"
                doc = _json(_read_file(os.path.join(directory, name), where), where)
                out.setdefault(interface, []).append((where, parse_device_info(doc, where)))
    return out


# ---------------------------------------------------------------------------- the API


def has_network_annotations(annotations: dict | None) -> bool:
    return any(key in (annotations or {}) for key in ANNOTATIONS)


def _annotation(annotations: dict, keys: tuple[str, ...]) -> str | None:
    """The first of `keys` present; InvalidInput when two present disagree or one is no string."""
    found = None
    for key in keys:
        value = annotations.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            _fail(f"annotation {key}", f"expected a non-empty string, got {_short(value)}")
        if found is not None and value != found[1]:
            _fail(f"annotation {key}", f"{value} disagrees with {found[0]} {found[1]}")
        found = found or (key, value)
    return found[1] if found else None


def sandbox_id(annotations: dict) -> str | None:
    """The pod sandbox's id from the CRI annotations (containerd's, CRI-O's); also the id libcni
    caches the pod's CNI results under."""
    return _annotation(annotations or {}, SANDBOX_ID_KEYS)


def is_sandbox(annotations: dict) -> bool:
    """False only when the CRI annotations say this is a workload container, not the sandbox."""
    kind = _annotation(annotations or {}, CONTAINER_TYPE_KEYS)
    return kind is None or kind == "sandbox"


def network_facts(
    annotations: dict[str, str],
    root: str = "/",
    container_id: str | None = None,
    *,
    netdevs: dict[str, str] | None = None,
) -> list[NetworkFacts]:
    """Every network of the pod, merged and matched to a host device (module docstring).

    `annotations`: the pod's (config.json's) annotations. `root`: where sys/, var/run and
    var/lib are. `container_id`: the pod sandbox's id; with it the CNI result cache and the
    device-info files are read too. `netdevs`: host interface -> its name inside the pod, known
    from elsewhere (config.json linux.netDevices), for matching by interface name.
    PodNetError (InvalidInput, exit 3), one line naming the network."""
    if annotations is None:
        annotations = {}
    if not isinstance(annotations, dict):
        _fail("annotations", "expected an object")
    observations: list[Observation] = []
    status_key = NETWORK_STATUS if NETWORK_STATUS in annotations else NETWORK_STATUS_OLD
    if status_key in annotations:
        observations += parse_network_status(annotations[status_key], status_key)
    if POD_NETWORKS in annotations:
        observations += parse_pod_networks(annotations[POD_NETWORKS])
    if container_id:
        observations += cni_results(root, container_id)
    nets = join(observations)
    if container_id:
        files = devinfo_files(root, container_id, [n.interface for n in nets])
        for net in nets:
            net.extra_devinfo = files.get(net.interface, [])
    host = Host(root)
    out = [NetworkFacts(**match(merge(net), host, netdevs)) for net in nets]
    owners: dict[tuple, str] = {}
    for facts in out:
        for key in (("if", facts.host_interface), ("pci", facts.pci_address), ("dev", facts.device)):
            if key[1] is None:
                continue
            if key in owners and owners[key] != facts.name:
                _fail(f"network {facts.name}", f"{facts.device} is network {owners[key]}'s too")
            owners[key] = facts.name
    return out


def netdev_settings(facts: NetworkFacts, with_name: bool = False) -> netdev.NetdevSettings:
    """The `NetdevSettings` overrides for the network's host interface: one address (a netdev
    setting has one: the first IPv4 address, else the first IPv6 one) with its mask, and the
    MTU; the container name only `with_name`. The other addresses, the MAC and the routes have
    no place in a netdev setting. PodNetError when the network has no host interface."""
    if facts.host_interface is None:
        _fail(f"network {facts.name}", "it has no host interface")
    address = next((a for a in facts.addresses if ":" not in a), facts.addresses[0] if facts.addresses else None)
    try:
        return netdev.make(facts.host_interface, facts.interface if with_name else None, address, None, facts.mtu)
    except InvalidInput as e:
        _fail(f"network {facts.name}", str(e))


def to_overrides(facts: list[NetworkFacts], with_name: bool = False) -> list[netdev.NetdevSettings]:
    """`netdev_settings` of every network that is a host interface, in order."""
    return [netdev_settings(f, with_name) for f in facts if f.host_interface is not None]


def overrides_for(annotations: dict, netdevs: dict[str, str], root: str = "/") -> list[netdev.NetdevSettings]:
    """What `cdigen apply` takes from the pod: the settings of the host interfaces in `netdevs`
    (host -> container name, the requested devices'), when the annotations carry network facts
    (else [] and nothing is read). The CNI result cache is read under the sandbox id of the
    CRI annotations. Networks on other devices, and the default network, are left out."""
    if not has_network_annotations(annotations):
        return []
    facts = network_facts(annotations, root, sandbox_id(annotations), netdevs=netdevs)
    return [netdev_settings(f) for f in facts if f.host_interface in netdevs]


def facts_from_result(
    result: dict,
    ifname: str,
    network: str | None = None,
    root: str = "/",
    device_info: dict | None = None,
    host_interface: str | None = None,
) -> NetworkFacts:
    """The facts of one interface of a CNI result (a plugin's prevResult), matched to the host
    like the annotations' (device-info, then `host_interface`, then the MAC). For the CNI
    plugin and the DAN writer; PodNetError as `network_facts`."""
    where = f"CNI result for {ifname}"
    obs = parse_cni_result({"result": result, "ifName": ifname, "networkName": network}, where, ifname)
    net = _Network(network or ifname, ifname, False, [obs])
    if device_info is not None:
        net.extra_devinfo = [("CNIDeviceInfoFile", parse_device_info(device_info, f"{where}: device-info"))]
    netdevs = {host_interface: ifname} if host_interface else None
    return NetworkFacts(**match(merge(net), Host(root), netdevs))
