"""The facts of each network, merged from its sources with one precedence (docs/vm.md,
"Merging and precedence"): facts that say which device and which addresses must agree among
every source that gives them; facts that configure the interface (MTU, routes) come whole from
the first source that has them, in RANK's order. Pure."""

from cdigen import netdev
from cdigen.errors import InvalidInput
from cdigen.pod.annotations import OVN_DEFAULT
from cdigen.pod.model import CNI, OVN, STATUS, DeviceInfo, Observation, fail

RANK = (CNI, OVN, STATUS)  # precedence of the configuring facts, highest first
DEFAULT_IFNAME = "eth0"  # the cluster network's name in the pod (containerd, CRI-O, Multus)


class Network:
    """One network while the observations are joined."""

    __slots__ = ("name", "interface", "default", "observations", "extra_devinfo")

    def __init__(self, name: str, interface: str | None, default: bool, observations: list[Observation]):
        self.name, self.interface, self.default, self.observations = name, interface, default, observations
        self.extra_devinfo: list[tuple[str, DeviceInfo]] = []  # (file, info)


def join(observations: list[Observation]) -> list[Network]:
    """Group the observations by network: network-status entries first (their order), then
    pod-networks keys not joined to one, then CNI results not joined to one."""
    nets: list[Network] = []
    seen: set[tuple[str, str | None]] = set()
    by_name: dict[str, list[Network]] = {}
    for obs in (o for o in observations if o.source == STATUS):
        key = (obs.name, obs.interface)
        if key in seen:
            fail(obs.where, f"network {obs.name} is listed twice" + (f" for {obs.interface}" if obs.interface else ""))
        seen.add(key)
        net = Network(obs.name, obs.interface, obs.default, [obs])
        nets.append(net)
        by_name.setdefault(obs.name, []).append(net)
    for obs in (o for o in observations if o.source == OVN):
        targets = by_name.get(obs.name, [])
        if not targets and obs.name == OVN_DEFAULT:
            targets = [n for n in nets if n.default]
        if len(targets) > 1:
            fail(obs.where, f"network {obs.name} matches {len(targets)} network-status entries")
        if targets:
            targets[0].observations.append(obs)
            targets[0].default = targets[0].default or obs.default
            continue
        net = Network(obs.name, DEFAULT_IFNAME if obs.default else None, obs.default, [obs])
        nets.append(net)
    for obs in (o for o in observations if o.source == CNI):
        targets = [n for n in nets if n.interface == obs.interface]
        if targets:
            targets[0].observations.append(obs)
            continue
        net = Network(obs.name or obs.interface, obs.interface, obs.interface == DEFAULT_IFNAME, [obs])
        nets.append(net)
    for net in nets:
        if net.interface is None:
            if net.default:
                net.interface = DEFAULT_IFNAME
            else:
                fail(f"network {net.name}", "no source names its interface in the pod (network-status lists none)")
    interfaces: dict[str, str] = {}
    for net in nets:
        if net.interface in interfaces:
            fail(f"network {net.name}", f"interface {net.interface} is network {interfaces[net.interface]}'s too")
        interfaces[net.interface] = net.name
    return nets


def _ranked(net: Network) -> list[Observation]:
    return sorted(net.observations, key=lambda o: RANK.index(o.source))


def merge(net: Network) -> dict:
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
                fail(
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
                    fail(
                        where,
                        f"the mask of {ip} disagrees: {prefix[ip][1]} says /{prefix[ip][0]}, {o.source} says /{plen}",
                    )
                prefix.setdefault(ip, (plen, o.source))
    for ip in order:
        if ip not in prefix:
            fail(
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
            fail(where, f"the MAC disagrees: {mac_source} has {mac}, {o.source} has {o.mac}")
        if mac is None:
            mac, mac_source = o.mac, o.source
    # Configuring facts: the first source that has them.
    mtu = next((o.mtu for o in obs if o.mtu is not None), None)
    if mtu is not None and any(":" in a for a in addresses):
        try:
            netdev.check_mtu(mtu, 6)
        except InvalidInput as e:
            fail(where, f"{e} (it has an IPv6 address)")
    routes = next((tuple(o.routes) for o in obs if o.routes), ())
    for route in routes:
        if route.gateway is not None and (":" in route.gateway) != (":" in route.dest):
            fail(where, f"route to {route.dest} via {route.gateway}: the address families differ")
    gateways = tuple(dict.fromkeys(r.gateway for r in routes if r.dest in ("0.0.0.0/0", "::/0") and r.gateway))
    # The device: device-info from the annotation and the file, and the CNI result's pciID and
    # socketPath, all agree.
    infos = [(o.source, o.device_info) for o in obs if o.device_info] + [
        (f"device-info file {path}", info) for path, info in net.extra_devinfo
    ]
    device_info = infos[0][1] if infos else None
    for label, info in infos[1:]:
        if info.identity() != device_info.identity():
            fail(where, f"device-info disagrees: {infos[0][0]} and {label} describe different devices")
    pci = device_info.pci_address if device_info else None
    for o in obs:
        if o.pci_address and pci and o.pci_address != pci:
            fail(where, f"the PCI address disagrees: device-info has {pci}, the CNI result has {o.pci_address}")
        pci = pci or o.pci_address
        path = device_info.path if device_info else None
        if o.socket_path and path and o.socket_path != path:
            fail(where, f"the socket disagrees: device-info has {path}, the CNI result has {o.socket_path}")
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
