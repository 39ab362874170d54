"""VFIO: PCI functions bound to vfio-pci (GPUs and NICs passed whole to a VM), and the VM form
of the spec (`mode="vm"`, docs/vm.md "VFIO devices").

Discovery reads, for each such function, its `iommu_group` link (the group number is the
link's basename), the group's `sys/class/vfio/<group>/dev` (the minor is allocated by the
kernel, not the group number), the `vfio` major in /proc/devices (a cross-check), the other
members of the group (`sys/kernel/iommu_groups/<group>/devices`: a group is usable only when
every endpoint in it is on vfio-pci or none) and `/dev/vfio/vfio` (misc 10:196, read from
`sys/class/misc/vfio/dev` when there). Never raises: a bad file is a warning, and a function
without a usable group is left out.
"""

import os

from cdigen.scan.model import NVIDIA_VENDOR, CharDev, ScanWarning, Topology, VfioFunction

VFIO_DRIVER = "vfio-pci"
VFIO_CONTROL = CharDev("/dev/vfio/vfio", 10, 196)  # VFIO_MINOR, include/linux/miscdevice.h
_GPU_CLASSES = (0x0300, 0x0302)
_NIC_CLASSES = (0x0200, 0x0207)  # Ethernet, InfiniBand controller
_ALLOWED = (VFIO_DRIVER, "pci-stub")  # drivers that leave a group usable (besides none)
ANNOTATION = "vfio.cdigen.io/pci-address"


def _kind(vendor: int | None, class_code: int | None) -> str | None:
    if class_code is None:
        return None
    if vendor == NVIDIA_VENDOR and class_code >> 8 in _GPU_CLASSES:
        return "gpu"
    return "nic" if class_code >> 8 in _NIC_CLASSES else None


def _char_majors(r) -> dict[str, int] | None:
    """name -> major of proc/devices' character devices; None: unreadable."""
    from cdigen.scan.sysfs import parse_char_majors

    text = r.text("proc/devices", missing_ok=True)
    return None if text is None else parse_char_majors(text)


def _group(r, bdf: str) -> int | None:
    """The IOMMU group of `bdf` from its `iommu_group` link, or None with a warning."""
    from cdigen.scan.sysfs import decimal

    rel = f"sys/bus/pci/devices/{bdf}/iommu_group"
    left_out = "this vfio-pci function is left out of the VM devices"
    try:
        target = os.readlink(r.path(rel))
    except FileNotFoundError:
        r.warn(rel, f"missing (no IOMMU, or it is off: intel_iommu=on / amd_iommu=on); {left_out}")
        return None
    except OSError as e:
        r.warn(rel, f"not a symlink ({e.strerror}); {left_out}")
        return None
    parent, name = os.path.split(os.path.normpath(target))
    group = decimal(name)
    if group is None or os.path.basename(parent) != "iommu_groups":
        r.warn(rel, f"does not point to a group in /sys/kernel/iommu_groups: {target[:80]!r}; {left_out}")
        return None
    return group


def _node(r, group: int, majors: dict[str, int] | None) -> CharDev | None:
    """/dev/vfio/<group> with its numbers from sys/class/vfio/<group>/dev, or None (a warning
    says why: the spec then carries the node without numbers)."""
    rel = f"sys/class/vfio/{group}"
    without = f"/dev/vfio/{group} written without numbers (the CDI runtime reads them from the host's node)"
    if not os.path.lexists(r.path(rel)):
        r.warn(rel, f"missing; {without}")
        return None
    num = r.devnum(f"{rel}/dev")
    if num is None:
        return None
    vfio_major = (majors or {}).get("vfio")
    if vfio_major is not None and num[0] != vfio_major:
        r.warn(f"{rel}/dev", f"major {num[0]} is not that of vfio in /proc/devices ({vfio_major}); {without}")
        return None
    return CharDev(f"/dev/vfio/{group}", *num)


def _viability(r, group: int, pci) -> None:
    """Warn when another endpoint of the group is on a driver that keeps the group from
    being opened (the kernel's viability rule: vfio-pci, pci-stub, no driver, or a bridge)."""
    for member in r.listdir(f"sys/kernel/iommu_groups/{group}/devices"):
        fn = pci.get(member)
        if fn is None or fn.bridge_kind is not None or (fn.class_code or 0) >> 8 == 0x0604:
            continue
        if fn.driver is not None and fn.driver not in _ALLOWED:
            r.warn(
                f"sys/kernel/iommu_groups/{group}/devices/{member}",
                f"bound to {fn.driver}: IOMMU group {group} cannot be opened until every function "
                f"in it is on {VFIO_DRIVER} (or none)",
            )


def discover_vfio(r, pci) -> tuple[list[VfioFunction], CharDev | None]:
    """The functions on vfio-pci that are GPUs or NICs (PCI order), and /dev/vfio/vfio."""
    found = []
    majors: dict[str, int] | None = None
    for bdf, fn in pci.items():
        kind = _kind(fn.vendor, fn.class_code) if fn.driver == VFIO_DRIVER else None
        if kind is None:
            continue
        if majors is None:
            majors = _char_majors(r) or {}
        group = _group(r, bdf)
        if group is None:
            continue
        found.append(VfioFunction(bdf, kind, group, _node(r, group, majors), fn.physfn))
    if not found:
        return [], None
    for group in dict.fromkeys(f.group for f in found):
        _viability(r, group, pci)
    control = VFIO_CONTROL
    rel = "sys/class/misc/vfio/dev"
    if os.path.lexists(r.path(rel)):
        num = r.devnum(rel)
        control = CharDev(VFIO_CONTROL.path, *num) if num else VFIO_CONTROL
    return sorted(found, key=lambda f: f.bdf), control


# ---------------------------------------------------------------------------- the VM spec


def _vfio_node(c: CharDev | None, path: str) -> dict:
    if c is None:  # the CDI runtime stats the host's node (path = hostPath) for type and numbers
        return {"path": path, "type": "c"}
    return {"path": c.path, "type": "c", "major": c.major, "minor": c.minor}


def _env_name(device: str) -> str:
    return "CDIGEN_PCI_" + "".join(ch if ch.isalnum() else "_" for ch in device.upper())


def build_vm_spec(topo: Topology, opts) -> tuple[dict, list[ScanWarning]]:
    """The VM form of the spec (docs/vm.md, "VFIO devices"): one device per GPU on vfio-pci
    (`vfio-gpu<k>`, carrying the VFIO NICs nearest to it, as container mode's `gpu<N>` carries
    its NICs) and one per NIC function on vfio-pci (`vfio-nic<k>`), PCI order, or named by PCI
    address; plus `all`. Each carries /dev/vfio/vfio and the groups' nodes, the PCI addresses
    in an env var (every target) and a device annotation (targets from 0.6.0)."""
    from cdigen.cdi.spec import check_device_name, minimum_version, version_key
    from cdigen.errors import BadArgument
    from cdigen.scan.affinity import assign, pair_class
    from cdigen.scan.build import ANNOTATIONS_SINCE, device_name, name_strategies

    if not topo.vfio:
        raise BadArgument(
            "mode", "vm finds no GPU or network function bound to vfio-pci: the spec would have no device"
        )
    strategies = name_strategies(opts)
    if "uuid" in strategies:
        raise BadArgument("name_strategy", "uuid: a function bound to vfio-pci has no GPU UUID; use index or pci")
    gpus = [f for f in topo.vfio if f.kind == "gpu"]
    nics = [f for f in topo.vfio if f.kind == "nic"]
    by_bdf = {f.bdf: f for f in topo.vfio}
    # As in container mode, VFs are not paired with GPUs: each is a device of its own.
    chosen = assign(
        [topo.pci[g.bdf] for g in gpus],
        [topo.pci[n.bdf] for n in nics if n.physfn is None],
        opts.nic_affinity,
        split_ports=opts.split_ports,
        link=lambda g, n: pair_class(topo, g.bdf, n.bdf)[0],  # the NCCL topology file's, on a flat VM
    )
    annotate = version_key(opts.cdi_version) >= version_key(ANNOTATIONS_SINCE)
    control = topo.vfio_control or VFIO_CONTROL

    def device(name: str, functions: list[VfioFunction]) -> dict:
        nodes = [_vfio_node(control, control.path)]
        for f in functions:
            if all(n["path"] != f.path for n in nodes):  # functions of one group share its node
                nodes.append(_vfio_node(f.node, f.path))
        addresses = ",".join(f.bdf for f in functions)
        out: dict = {"name": name}
        if annotate:
            out["annotations"] = {ANNOTATION: addresses}
        out["containerEdits"] = {"env": [f"{_env_name(name)}={addresses}"], "deviceNodes": nodes}
        return out

    devices = []
    for strategy in strategies:
        for kind, members in (("gpu", gpus), ("nic", nics)):
            for k, f in enumerate(members):
                name = device_name(strategy, f"vfio-{kind}{k}", f.bdf)
                check_device_name(name)
                with_nics = [by_bdf[b] for b in chosen.get(f.bdf, [])] if kind == "gpu" else []
                devices.append(device(name, [f, *with_nics]))
    devices.append(device("all", list(topo.vfio)))
    spec: dict = {"cdiVersion": "", "kind": f"{opts.vendor}/{opts.cls}", "devices": devices}
    spec["cdiVersion"] = minimum_version(spec)
    if version_key(spec["cdiVersion"]) > version_key(opts.cdi_version):
        raise BadArgument(
            "cdi_version", f"{opts.cdi_version} is too old for this spec: its device names need {spec['cdiVersion']}"
        )
    return spec, []
