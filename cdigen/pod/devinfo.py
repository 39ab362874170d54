"""Device-info (k8snetworkplumbingwg device-info-spec 1.1.0): the documents that say which
device a network is on, from network-status's `device-info`, from the file Multus writes per
attachment (var/run/k8s.cni.cncf.io/devinfo/cni) and from a CNI plugin's CNIDeviceInfoFile."""

import os

from cdigen.pod.fields import json_object, parse_json, parse_pci_address, read_file, string_field
from cdigen.pod.model import DeviceInfo, fail
from cdigen.values import quoted

DEVINFO_CNI_DIR = "var/run/k8s.cni.cncf.io/devinfo/cni"
DEVICE_TYPES = ("pci", "vdpa", "vhost-user", "memif")


def parse_device_info(doc, where: str) -> DeviceInfo:
    """A device-info document (spec 1.1.0): `type` and `version` required, then the map of its
    type with that type's required keys."""
    doc = json_object(doc, where)
    kind = string_field(doc, "type", where, required=True)
    if kind not in DEVICE_TYPES:
        fail(where, f"unknown device-info type {quoted(kind)} (expected {', '.join(DEVICE_TYPES)})")
    version = string_field(doc, "version", where, required=True)
    major, *rest = version.split(".")
    if major != "1" or len(rest) != 2 or not all(p.isascii() and p.isdigit() for p in rest):
        fail(where, f"device-info version {quoted(version)} is not 1.x.y")
    sub = doc.get(kind)
    if sub is None:
        fail(where, f"device-info of type {kind} has no {kind!r} object")
    sub = json_object(sub, f"{where}: {kind}")
    w = f"{where}: {kind}"
    if kind == "pci":
        pf = string_field(sub, "pf-pci-address", w)
        return DeviceInfo(
            kind,
            version,
            pci_address=parse_pci_address(string_field(sub, "pci-address", w, required=True), w),
            pf_pci_address=parse_pci_address(pf, w) if pf else None,
            rdma_device=string_field(sub, "rdma-device", w),
            representor_device=string_field(sub, "representor-device", w),
            vhost_net=string_field(sub, "vhost-net", w),
        )
    if kind == "vdpa":
        pci = string_field(sub, "pci-address", w)
        driver = string_field(sub, "driver", w, required=True)
        if driver not in ("vhost", "virtio"):
            fail(w, f"driver must be vhost or virtio, got {quoted(driver)}")
        return DeviceInfo(
            kind,
            version,
            pci_address=parse_pci_address(pci, w) if pci else None,
            parent_device=string_field(sub, "parent-device", w, required=True),
            driver=driver,
            path=string_field(sub, "path", w, required=True),
        )
    if kind == "vhost-user":
        mode = string_field(sub, "mode", w, required=True)
        if mode not in ("client", "server"):
            fail(w, f"mode must be client or server, got {quoted(mode)}")
        return DeviceInfo(kind, version, mode=mode, path=string_field(sub, "path", w, required=True))
    role = string_field(sub, "role", w, required=True)
    if role not in ("master", "slave"):
        fail(w, f"role must be master or slave, got {quoted(role)}")
    mode = string_field(sub, "mode", w, required=True)
    if mode not in ("ethernet", "ip", "inject-punt", "punt"):
        fail(w, f"mode must be ethernet, ip or inject-punt, got {quoted(mode)}")
    return DeviceInfo(kind, version, role=role, mode=mode, path=string_field(sub, "path", w, required=True))


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
                doc = parse_json(read_file(os.path.join(directory, name), where), where)
                out.setdefault(interface, []).append((where, parse_device_info(doc, where)))
    return out
