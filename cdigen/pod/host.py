"""Matching a network to its host device, in sysfs below a root (docs/vm.md, "Matching to the
host"): the PCI function or vdpa device its device-info names, the host interface with its
name in the container, or the one netdev with its MAC; every rule that finds something agrees."""

import os

from cdigen.files import UnreadableFile, read_regular
from cdigen.pod.model import DeviceInfo, fail

MAX_ATTRIBUTE_BYTES = 4096  # address, mtu, tun_flags: a few bytes each


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

    def read(self, rel: str) -> str | None:
        """A sysfs attribute, stripped; None when it is absent. PodNetError when it is there but
        no bounded regular file: a FIFO put in the tree is refused, never waited on."""
        path = self.path(rel)
        try:
            data = read_regular(path, MAX_ATTRIBUTE_BYTES)
        except UnreadableFile as e:
            if not os.path.lexists(path):
                return None
            fail(f"/{rel}", str(e))
        return data.decode("utf-8", "replace").strip()

    def by_mac(self, mac: str) -> list[str]:
        if self._macs is None:
            self._macs = {}
            for name in self._listdir(self.path("sys/class/net")):
                address = self.read(f"sys/class/net/{name}/address")
                if address:
                    self._macs.setdefault(address.lower(), []).append(name)
        return self._macs.get(mac, [])


def match(facts: dict, host: Host, netdevs: dict[str, str] | None = None) -> dict:
    """`facts` (from `merge`) with host_interface, pci_address and pci_driver. PodNetError when
    the rules disagree or, but for a default network, find nothing."""
    where = f"network {facts['name']}"
    info: DeviceInfo | None = facts["device_info"]
    rules: list[tuple[str, set[str]]] = []  # (rule, the host interfaces it finds)
    pci, driver, device = facts["pci_address"], None, None
    if pci:
        function = host.pci_function(pci)
        if function is None:
            fail(where, f"PCI function {pci} is not in /sys/bus/pci/devices")
        driver, names = function
        device = f"PCI function {pci}"
        rules.append((device, set(names)))
    elif info and info.type == "vdpa":
        names = host.vdpa_netdevs(info.parent_device)
        if names is None:
            fail(where, f"vdpa device {info.parent_device} is not in /sys/bus/vdpa/devices")
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
            fail(where, f"{rules[0][0]} matches several host interfaces: {', '.join(sorted(rules[0][1]))}")
        else:
            found = "; ".join(f"{rule} -> {', '.join(sorted(names)) or 'no netdev'}" for rule, names in rules)
            fail(where, f"the device rules disagree: {found}")
    if host_if is None and device is None and not facts["default"]:
        fail(
            where,
            "no device matches it (no device-info, no host interface with that container name, no netdev with its MAC)",
        )
    return facts | {"host_interface": host_if, "pci_address": pci, "pci_driver": driver}
