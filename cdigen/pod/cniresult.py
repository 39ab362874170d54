"""libcni's result cache, var/lib/cni/results/<network>-<container id>-<ifname>: what the
plugin chain configured for one attachment (CIDR addresses, MAC, MTU, PCI address or socket,
routes). A cdigen CNI record (cdigen/pod/cnirecord.py) reads as one too."""

import os

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
    parse_pci_address,
    read_file,
    string_field,
)
from cdigen.pod.model import CNI, Observation, Route, fail

CNI_RESULTS_DIR = "var/lib/cni/results"


def parse_cni_result(data, where: str, ifname: str | None = None) -> Observation:
    """One libcni cache file: ``{"kind": "cniCacheV1", "containerId", "ifName", "networkName",
    "result": {...}}``, or (older libcni) the result alone, `ifname` then from the file name."""
    doc = json_object(data if isinstance(data, dict) else parse_json(data, where), where)
    name = None
    if "result" in doc or doc.get("kind") == "cniCacheV1":
        name = string_field(doc, "networkName", where)
        ifname = string_field(doc, "ifName", where) or ifname
        result = json_object(doc.get("result"), f"{where}: result")
    else:
        result = doc
    if not ifname:
        fail(where, "no 'ifName'")
    parse_ifname(ifname, where)
    interfaces = list_field(result, "interfaces", where)
    index, iface = None, {}
    for i, candidate in enumerate(interfaces):
        candidate = json_object(candidate, f"{where}: interfaces[{i}]")
        if candidate.get("name") == ifname and candidate.get("sandbox"):
            index, iface = i, candidate
            break
    w = where
    ips, gateways = [], {}
    for j, ipc in enumerate(list_field(result, "ips", w)):
        ipc = json_object(ipc, f"{w}: ips[{j}]")
        ref = ipc.get("interface")
        if ref is not None and index is not None and ref != index:
            continue  # an address of another interface (a host-side one)
        addr, plen, version = parse_cidr(ipc.get("address"), f"{w}: ips[{j}]")
        ips.append((addr, plen))
        gw = string_field(ipc, "gateway", f"{w}: ips[{j}]")
        if gw:
            gateways.setdefault(version, parse_ip(gw, f"{w}: ips[{j}]")[0])
    routes = []
    for j, route in enumerate(list_field(result, "routes", w)):
        rw = f"{w}: routes[{j}]"
        route = json_object(route, rw)
        dest = parse_dest(string_field(route, "dst", rw, required=True), rw)
        gw = string_field(route, "gw", rw)
        # CNI: "If omitted, a default gateway is assumed"; libcni's ipam.ConfigureIface uses the
        # gateway of the route's family from `ips`.
        gateway = parse_ip(gw, rw)[0] if gw else gateways.get(6 if ":" in dest else 4)
        routes.append(Route(dest, gateway))
    mac = string_field(iface, "mac", w)
    mtu = iface.get("mtu")
    pci = string_field(iface, "pciID", w)
    return Observation(
        CNI,
        where,
        name=name,
        interface=ifname,
        ips=ips or None,
        mac=parse_mac(mac, w) if mac else None,
        mtu=optional_mtu(mtu, w),
        routes=routes or None,
        pci_address=parse_pci_address(pci, w) if pci else None,
        socket_path=string_field(iface, "socketPath", w),
    )


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
        obs = parse_cni_result(read_file(os.path.join(directory, name), where), where, ifname)
        obs.name = obs.name or network
        out.append(obs)
    return out
