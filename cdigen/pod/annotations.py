"""The pod's annotations: Multus's network-status and OVN-Kubernetes's pod-networks (each
network's addresses, MAC, MTU, routes, device-info), and the CRI annotations that name the pod
sandbox (its id is the container id of the pod's CNI calls)."""

from cdigen.pod.devinfo import parse_device_info
from cdigen.pod.fields import (
    json_object,
    list_field,
    optional_mtu,
    parse_cidr,
    parse_dest,
    parse_ifname,
    parse_ip,
    parse_json,
    parse_mac,
    string_field,
)
from cdigen.pod.model import OVN, STATUS, Observation, Route, fail
from cdigen.values import quoted

NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"
NETWORK_STATUS_OLD = "k8s.v1.cni.cncf.io/networks-status"
POD_NETWORKS = "k8s.ovn.org/pod-networks"
ANNOTATIONS = (NETWORK_STATUS, NETWORK_STATUS_OLD, POD_NETWORKS)
OVN_DEFAULT = "default"  # the pod-networks key of the cluster network
# CRI annotations on the sandbox's (and every container's) config.json: containerd's, CRI-O's.
SANDBOX_ID_KEYS = ("io.kubernetes.cri.sandbox-id", "io.kubernetes.cri-o.SandboxID")
CONTAINER_TYPE_KEYS = ("io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType")


def routes_from_gateways(gateways: list[str], where: str) -> list[Route]:
    out = []
    for gw in gateways:
        ip, version = parse_ip(gw, where)
        out.append(Route("0.0.0.0/0" if version == 4 else "::/0", ip))
    return out


def parse_network_status(text, where: str = NETWORK_STATUS) -> list[Observation]:
    """The Multus annotation: a JSON list of network statuses."""
    doc = parse_json(text, where)
    if not isinstance(doc, list):
        fail(where, f"expected a JSON list, got {type(doc).__name__}")
    out = []
    for i, entry in enumerate(doc):
        w = f"{where}[{i}]"
        entry = json_object(entry, w)
        name = string_field(entry, "name", w, required=True)
        w = f"{where}: network {name}"
        interface = string_field(entry, "interface", w)
        if interface is not None:
            parse_ifname(interface, w)
        default = entry.get("default", False)
        if not isinstance(default, bool):
            fail(w, f"'default' must be true or false, got {quoted(default)}")
        ips: list[tuple[str, int | None]] = []
        for ip in list_field(entry, "ips", w):
            if isinstance(ip, str) and "/" in ip:  # the multi-net spec's examples carry a prefix
                addr, plen, _ = parse_cidr(ip, w)
                ips.append((addr, plen))
            else:
                ips.append((parse_ip(ip, w)[0], None))
        mac = string_field(entry, "mac", w)
        mtu = entry.get("mtu")
        gateways = list_field(entry, "gateway", w)
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
                mtu=optional_mtu(mtu, w),
                routes=routes_from_gateways(gateways, w) or None,
                device_info=parse_device_info(devinfo, f"{w}: device-info") if devinfo is not None else None,
            )
        )
    return out


def parse_pod_networks(text, where: str = POD_NETWORKS) -> list[Observation]:
    """The OVN-Kubernetes annotation: a JSON object keyed by network."""
    doc = json_object(parse_json(text, where), where)
    out = []
    for key, entry in doc.items():
        w = f"{where}: network {key}"
        entry = json_object(entry, w)
        addresses = list_field(entry, "ip_addresses", w)
        if not addresses and entry.get("ip_address"):  # deprecated single-address form
            addresses = [entry["ip_address"]]
        ips = []
        for text_ip in addresses:
            addr, plen, _ = parse_cidr(text_ip, w)
            ips.append((addr, plen))
        gateways = list_field(entry, "gateway_ips", w)
        if not gateways and entry.get("gateway_ip"):
            gateways = [entry["gateway_ip"]]
        routes = routes_from_gateways(gateways, w)
        for j, route in enumerate(list_field(entry, "routes", w)):
            rw = f"{w}: routes[{j}]"
            route = json_object(route, rw)
            dest = parse_dest(string_field(route, "dest", rw, required=True), rw)
            hop = string_field(route, "nextHop", rw)
            routes.append(Route(dest, parse_ip(hop, rw)[0] if hop else None))
        mac = string_field(entry, "mac_address", w)
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
            fail(f"annotation {key}", f"expected a non-empty string, got {quoted(value)}")
        if found is not None and value != found[1]:
            fail(f"annotation {key}", f"{value} disagrees with {found[0]} {found[1]}")
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
