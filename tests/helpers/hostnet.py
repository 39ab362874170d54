"""Fake host trees for cdigen/pod/host.py and dan.py: PCI functions with a driver and netdevs,
tap devices, device-info files and CNI result cache files, laid out as the kernel, Multus and
libcni lay them out (docs/vm.md), and pod annotations in the formats' own shapes."""

import json
import os
from pathlib import Path

PCI_PARENT = "sys/devices/pci0000:80/0000:80:01.0"


def _link(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


def _netdev_files(directory: Path, mac: str, mtu: int, tun_flags: str | None = None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "address").write_text(mac + "\n")
    (directory / "mtu").write_text(f"{mtu}\n")
    if tun_flags is not None:
        (directory / "tun_flags").write_text(tun_flags + "\n")


def pci_function(root, bdf: str, driver: str | None = None, netdevs: dict[str, str] | None = None, mtu: int = 1500):
    """sys/devices/.../<bdf> with a `driver` link and `net/<ifname>` (name -> MAC), the
    sys/bus/pci/devices/<bdf> link, sys/bus/pci/drivers/<driver>, sys/class/net links."""
    root = Path(root)
    device = root / PCI_PARENT / bdf
    device.mkdir(parents=True, exist_ok=True)
    (device / "vendor").write_text("0x15b3\n")
    _link(root / "sys/bus/pci/devices" / bdf, f"../../../../{PCI_PARENT}/{bdf}")
    if driver:
        (root / "sys/bus/pci/drivers" / driver).mkdir(parents=True, exist_ok=True)
        _link(device / "driver", f"../../../../bus/pci/drivers/{driver}")
    for name, mac in (netdevs or {}).items():
        _netdev_files(device / "net" / name, mac, mtu)
        _link(root / "sys/class/net" / name, f"../../../{PCI_PARENT}/{bdf}/net/{name}")
    return device


def virtual_netdev(root, name: str, mac: str, mtu: int = 1500, tap: bool = False):
    """sys/devices/virtual/net/<name> (a tap when `tap`: tun_flags IFF_TAP|IFF_NO_PI) and its
    sys/class/net link."""
    root = Path(root)
    directory = root / "sys/devices/virtual/net" / name
    _netdev_files(directory, mac, mtu, "0x1002" if tap else None)
    _link(root / "sys/class/net" / name, f"../../devices/virtual/net/{name}")
    return directory


def tun_netdev(root, name: str, mac: str = "00:00:00:00:00:00"):
    """A tun (layer 3) device: tun_flags IFF_TUN|IFF_NO_PI."""
    root = Path(root)
    directory = root / "sys/devices/virtual/net" / name
    _netdev_files(directory, mac, 1500, "0x1001")
    _link(root / "sys/class/net" / name, f"../../devices/virtual/net/{name}")


def devinfo_file(root, network: str, container_id: str, ifname: str, doc) -> Path:
    """Multus's per-attachment file: devinfo/cni/<network>-<container id>_<ifname> ('/' -> '-')."""
    path = Path(root) / "var/run/k8s.cni.cncf.io/devinfo/cni" / f"{network}-{container_id}_{ifname}".replace("/", "-")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def cni_cache(root, network: str, container_id: str, ifname: str, result, legacy: bool = False) -> Path:
    """libcni's cache file results/<network>-<container id>-<ifname>, cniCacheV1 (or, `legacy`,
    the result alone as older libcni wrote it)."""
    path = Path(root) / "var/lib/cni/results" / f"{network}-{container_id}-{ifname}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(result, str):
        path.write_text(result)
        return path
    doc = (
        result
        if legacy
        else {
            "kind": "cniCacheV1",
            "containerId": container_id,
            "config": "eyJ9",
            "ifName": ifname,
            "networkName": network,
            "netns": f"/var/run/netns/cni-{container_id[:8]}",
            "cniArgs": [["K8S_POD_NAME", "p"]],
            "result": result,
        }
    )
    path.write_text(json.dumps(doc))
    return path


def pci_devinfo(bdf: str, **extra) -> dict:
    """device-info 1.1.0 of type pci (the Go structs of network-attachment-definition-client)."""
    return {"type": "pci", "version": "1.1.0", "pci": {"pci-address": bdf, **extra}}


def status_entry(name: str, interface: str, ips=(), mac=None, mtu=None, default=False, gateway=(), devinfo=None):
    """One NetworkStatus (NAD client types.go) as Multus writes it: `ips` bare, omitempty keys
    left out."""
    entry: dict = {"name": name, "interface": interface}
    if ips:
        entry["ips"] = list(ips)
    if mac:
        entry["mac"] = mac
    if mtu:
        entry["mtu"] = mtu
    if default:
        entry["default"] = True
    entry["dns"] = {}
    if gateway:
        entry["gateway"] = list(gateway)
    if devinfo:
        entry["device-info"] = devinfo
    return entry


def cni_result(ifname: str, addresses, mac=None, mtu=None, gateway=None, routes=(), pci=None, socket=None) -> dict:
    """A CNI 1.1 result for one sandbox interface (with the host-side bridge listed first, as
    the bridge plugin lists it, so `interface` indexes matter)."""
    iface: dict = {"name": ifname, "sandbox": "/var/run/netns/cni-1234"}
    for key, value in (("mac", mac), ("mtu", mtu), ("pciID", pci), ("socketPath", socket)):
        if value is not None:
            iface[key] = value
    ips = []
    for address in addresses:
        ip = {"address": address, "interface": 1}
        if gateway and (":" in gateway) == (":" in address):
            ip["gateway"] = gateway
        ips.append(ip)
    return {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "cni0", "mac": "02:00:00:00:00:01"}, iface],
        "ips": ips,
        "routes": [dict(r) for r in routes],
        "dns": {},
    }


def bundle(tmp_path, annotations: dict, net_devices: dict | None = None, name: str = "bundle") -> Path:
    """An OCI bundle whose config.json carries `annotations` (values JSON-encoded unless str)."""
    directory = Path(tmp_path) / name
    directory.mkdir()
    config = {
        "ociVersion": "1.0.2",
        "process": {"args": ["/pause"], "cwd": "/"},
        "root": {"path": "rootfs"},
        "annotations": {k: v if isinstance(v, str) else json.dumps(v) for k, v in annotations.items()},
        "linux": {"namespaces": [{"type": "network", "path": "/var/run/netns/cni-1234"}]},
    }
    if net_devices is not None:
        config["linux"]["netDevices"] = net_devices
    (directory / "config.json").write_text(json.dumps(config, indent="\t"))
    return directory
