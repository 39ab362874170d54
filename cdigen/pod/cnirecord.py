"""What the `cdigen` CNI plugin records about one container interface, and where.

The plugin runs chained after the plugin that moved the NIC (host-device, sriov) or bound it to
VFIO; from that plugin's result it records the interface's facts, one JSON file per
interface, which CHECK and DEL read back:

    /run/cdigen/cni/<CNI_CONTAINERID>/<CNI_IFNAME>.json

    {"kind": "cdigen.cni/v1", "containerId": "...", "ifName": "net1", "netns": "/var/run/netns/x",
     "networkName": "rdma-a", "cniVersion": "1.0.0",
     "interface": {"name": "net1", "mac": "02:..", "mtu": 9000, "hostInterface": "ens1f0np0",
                   "pciAddress": "0000:17:00.1", "inNetns": true},
     "ips": [{"address": "192.0.2.10/24", "gateway": "192.0.2.1"}],
     "routes": [{"dst": "198.51.100.0/24", "gw": "192.0.2.1"}],
     "netDevice": {"hostInterfaceName": "ens1f0np0", "name": "net1", "address": "192.0.2.10",
                   "mask": "255.255.255.0", "mtu": 9000},
     "deviceInfo": {...the CNIDeviceInfoFile...},
     "dan": "/run/kata-containers/dans/<sandbox>.json",
     "result": {...prevResult, as the plugin received it...}}

Keys without a value are left out. `netDevice` is the linux.netDevices entry shape
(docs/netdev.md) keyed by the host interface name, so it can become a netdev override.
`interface.inNetns`: the interface was in CNI_NETNS at ADD (false for a VFIO device).
`networkName`, `ifName` and `result` are the keys of libcni's own cache files
(/var/lib/cni/results), so cdigen/pod/cniresult.py reads a record as one.
Plain functions; the plugin's work is cdigen/pod/cni.py.
"""

import contextlib
import os

from cdigen import netdev
from cdigen.errors import CdigenError, InvalidInput

RECORD_DIR = "/run/cdigen/cni"
KIND = "cdigen.cni/v1"
MAX_RECORD_BYTES = 1 << 20


def check_container_id(container_id: object) -> str:
    """CNI's rule for CNI_CONTAINERID (libcni ValidateContainerID): non-empty, alphanumeric
    first, then alphanumerics, '_', '.', '-'. It is a directory name here."""
    if not isinstance(container_id, str) or not container_id:
        raise InvalidInput("container ID is empty")
    if not (container_id[0].isascii() and container_id[0].isalnum()) or not all(
        c.isascii() and (c.isalnum() or c in "_.-") for c in container_id
    ):
        raise InvalidInput(
            f"container ID {container_id!r}: only letters, digits, '_', '.', '-' (a letter or digit first)"
        )
    return container_id


def record_path(container_id: str, ifname: str, record_dir: str = RECORD_DIR) -> str:
    check_container_id(container_id)
    netdev.check_ifname(ifname, "CNI_IFNAME")
    return os.path.join(record_dir, container_id, ifname + ".json")


def _host_from_alias(alias: str) -> str | None:
    """host-device keeps the host name in the interface alias; cdigen's hook keeps
    'cdigen host=NAME ...' there (docs/netdev.md)."""
    if alias.startswith("cdigen "):
        alias = next((w[5:] for w in alias.split() if w.startswith("host=")), "")
    try:
        return netdev.check_ifname(alias, "alias") if alias else None
    except netdev.NetdevError:
        return None


def facts(
    result: dict,
    ifname: str,
    netns: str | None = None,
    link: dict | None = None,
    device_info: dict | None = None,
) -> dict:
    """The record's facts (without containerId, network, cniVersion) from a CNI result.

    `link`: what the kernel says about the interface in the container's netns ({"mtu", "mac",
    "alias"}; None when it is not there, as for a VFIO device). InvalidInput when the result
    is not a CNI result or its address cannot be a netdev setting."""
    if not isinstance(result, dict):
        raise InvalidInput("prevResult: expected an object")
    interfaces = result.get("interfaces") or []
    ips = result.get("ips") or []
    if not isinstance(interfaces, list) or not isinstance(ips, list):
        raise InvalidInput("prevResult: interfaces and ips must be lists")
    index = None
    for i, iface in enumerate(interfaces):
        if isinstance(iface, dict) and iface.get("name") == ifname and iface.get("sandbox"):
            index = i
            break
    iface = interfaces[index] if index is not None else {}
    interface: dict = {"name": ifname}
    mac = iface.get("mac") or (link or {}).get("mac")
    mtu = iface.get("mtu") or (link or {}).get("mtu")
    host = _host_from_alias((link or {}).get("alias") or "")
    pci = iface.get("pciID") or ((device_info or {}).get("pci") or {}).get("pci-address")
    for key, value in (("mac", mac), ("mtu", mtu), ("hostInterface", host), ("pciAddress", pci)):
        if value:
            interface[key] = value
    interface["inNetns"] = link is not None
    out: dict = {"ifName": ifname, "interface": interface}
    if netns:
        out["netns"] = netns
    mine = []
    for ip in ips:
        if not isinstance(ip, dict) or not isinstance(ip.get("address"), str):
            raise InvalidInput("prevResult: ips[]: expected objects with an address")
        owner = ip.get("interface")
        if owner is None or owner == index:
            mine.append({k: ip[k] for k in ("address", "gateway") if isinstance(ip.get(k), str)})
    if mine:
        out["ips"] = mine
    routes = result.get("routes")
    if isinstance(routes, list) and routes:
        out["routes"] = [r for r in routes if isinstance(r, dict)]
    settings = settings_of(out)
    if settings is not None:
        out["netDevice"] = {"hostInterfaceName": settings.host, **settings.to_oci()}
    if device_info:
        out["deviceInfo"] = device_info
    return out


def settings_of(record: dict) -> netdev.NetdevSettings | None:
    """The netdev setting a record carries: host interface -> name, first address, MTU.
    None when the record has nothing to set."""
    interface = record.get("interface") or {}
    ips = record.get("ips") or []
    address = ips[0]["address"] if ips else None
    mtu = interface.get("mtu")
    if address is None and mtu is None:
        return None
    host = interface.get("hostInterface") or record["ifName"]
    try:
        return netdev.make(host, record["ifName"], address, None, mtu)
    except netdev.NetdevError as e:
        raise InvalidInput(f"prevResult: interface {record['ifName']}: {e}") from None


def write(path: str, record: dict) -> None:
    """Write a record atomically (its directory made as needed); CdigenError (1) on failure."""
    import json

    from cdigen.files import atomic_write

    try:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    except OSError as e:
        raise CdigenError(f"cannot create {os.path.dirname(path)}: {e.strerror}") from None
    atomic_write(path, (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode("utf-8"), 0o644)


def read(path: str) -> dict | None:
    """A record, or None when there is none; InvalidInput when it is not one."""
    from cdigen.files import read_json

    doc = read_json(path, MAX_RECORD_BYTES)
    if doc is None:
        return None
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise InvalidInput(f"{path}: not a cdigen CNI record")
    return doc


def remove(path: str) -> bool:
    """Remove a record and its container's directory once empty; False when there was none."""
    try:
        os.unlink(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as e:
        raise CdigenError(f"cannot remove {path}: {e.strerror}") from None
    with contextlib.suppress(OSError):  # other interfaces of the container are still recorded
        os.rmdir(os.path.dirname(path))
    return True


def read_container(container_id: str, root: str = "/", record_dir: str = RECORD_DIR) -> list[dict]:
    """Every record of one container (CNI container ID: a Kubernetes pod's sandbox ID), by
    interface name. Unreadable records are skipped."""
    directory = os.path.join(root, record_dir.lstrip("/"), check_container_id(container_id))
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    out = []
    for name in names:
        if name.endswith(".json") and not name.startswith("."):
            try:
                record = read(os.path.join(directory, name))
            except InvalidInput:
                continue
            if record is not None:
                out.append(record)
    return out
