"""Topology -> CDI spec (pure), and its deterministic YAML/JSON rendering.

The spec holds only fields the reference Go loader knows, in the Go structs' key order, empty
fields omitted, and `cdiVersion` set to the minimum its fields require (docs/cdi-conformance.md).
One device per usable GPU and name strategy, plus `all`. Each GPU device carries its
/dev/nvidiaN, DRM nodes, the RDMA char devices of its NICs, their netdevs as `netDevices`,
their settings in annotations, and one createRuntime hook (`cdigen hook --netdev ...`) that
applies those settings (docs/netdev.md).
"""

from dataclasses import dataclass, field

from cdigen import hookentry, netdev
from cdigen.errors import BadArgument, NoGPU
from cdigen.scan import DEFAULT_CDI_VERSION, DEFAULT_CLASS, DEFAULT_VENDOR, FORMATS, NAME_STRATEGIES
from cdigen.scan.affinity import Affinity, assign
from cdigen.scan.model import CharDev, Gpu, Nic, ScanWarning, Topology

ANNOTATIONS_SINCE = "0.6.0"
NET_DEVICES_SINCE = "1.1.0"


@dataclass
class BuildOptions:
    hook_path: str
    vendor: str = DEFAULT_VENDOR
    cls: str = DEFAULT_CLASS
    name_strategies: tuple[str, ...] = ("index",)
    nic_affinity: Affinity = Affinity.PXB
    # host interface -> {"name", "address", "mask", "mtu"} (any subset), from --netdev-config
    netdev_config: dict[str, dict] = field(default_factory=dict)
    netdev_config_path: str = "--netdev-config"  # named in warnings
    netdev_name: str | None = None  # container-name template, e.g. "net{index}"
    cdi_version: str = DEFAULT_CDI_VERSION  # the newest cdiVersion the spec's readers accept


def candidate_nics(topo: Topology) -> list[Nic]:
    """NICs that may be handed to a GPU: RDMA-capable physical functions, PCI order.

    Plain Ethernet NICs (no RDMA device) are the host's own networking; VFs stay with their
    PF's owner (the operator hands them out by other means, e.g. an SR-IOV device plugin)."""
    return [n for n in topo.nics if n.rdma and not n.is_vf]


def assignment(topo: Topology, limit: Affinity = Affinity.PXB) -> dict[str, list[Nic]]:
    """{gpu bdf: [Nic, ...]} for every usable GPU (docs/topology.md, "Assignment").
    Ties go by PCI order (not by minor, which changes when a driver is rebound)."""
    gpus, nics = topo.usable_gpus, candidate_nics(topo)
    by_bdf = {n.bdf: n for n in nics}
    chosen = assign([topo.pci[g.bdf] for g in gpus], [topo.pci[n.bdf] for n in nics], limit, topo.single_numa_node)
    return {bdf: [by_bdf[b] for b in nic_bdfs] for bdf, nic_bdfs in chosen.items()}


def check_name_template(template: str) -> str:
    """`{index}` (position of the netdev among all netdevs of the spec) is required so that no
    two netdevs anywhere in the spec share a container name (CDI rejects duplicates within a
    device, and any combination of devices can be requested together); `{gpu}` is optional."""
    if "{index}" not in template:
        raise BadArgument("netdev_name", f"{template!r} must contain {{index}}")
    try:
        template.format(index=0, gpu=0)
    except (KeyError, IndexError, ValueError) as e:
        raise BadArgument("netdev_name", f"{template!r}: only {{index}} and {{gpu}} may be used ({e})") from None
    return template


def _node(c: CharDev) -> dict:
    return {"path": c.path, "type": "c", "major": c.major, "minor": c.minor}


def _netdev_settings(
    topo: Topology, chosen: dict[str, list[Nic]], gpus: list[Gpu], opts: BuildOptions, warnings: list[ScanWarning]
) -> dict[str, netdev.NetdevSettings]:
    """host interface -> its NetdevSettings, for every assigned netdev; names unique spec-wide."""
    out: dict[str, netdev.NetdevSettings] = {}
    index = 0
    for gpu in gpus:
        for nic in chosen[gpu.bdf]:
            for nd in nic.netdevs:
                cfg = dict(opts.netdev_config.get(nd.name) or {})
                mtu = nd.mtu
                if mtu is not None:
                    try:
                        netdev.check_mtu(mtu)
                    except netdev.NetdevError as e:
                        warnings.append(ScanWarning(f"/sys/class/net/{nd.name}/mtu", f"{e}; MTU not set"))
                        mtu = None
                name = cfg.get("name")
                if name is None:
                    name = opts.netdev_name.format(index=index, gpu=gpu.minor) if opts.netdev_name else nd.name
                netdev.check_ifname(name, f"container name for {nd.name}", allow_template=True)
                out[nd.name] = netdev.make(
                    nd.name,
                    name,
                    cfg.get("address"),
                    cfg.get("mask"),
                    cfg["mtu"] if cfg.get("mtu") is not None else mtu,
                )
                index += 1
    netdev.check_unique_names(out.values())
    known = {nd.name for nic in topo.nics for nd in nic.netdevs}
    for host in sorted(opts.netdev_config):
        if host not in known:
            warnings.append(ScanWarning(opts.netdev_config_path, f"{host}: no such network interface; ignored"))
        elif host not in out:
            warnings.append(
                ScanWarning(
                    opts.netdev_config_path,
                    f"{host}: not assigned to any GPU (--nic-affinity {opts.nic_affinity.name.lower()}); ignored",
                )
            )
    return out


def _edits(
    nodes: list[CharDev], settings: list[netdev.NetdevSettings], hook_path: str, target: str
) -> tuple[dict, dict]:
    """(annotations, containerEdits) of one device, with only the fields a loader of version
    `target` knows: the hook arguments always carry the netdev settings; device annotations
    (0.6.0) and netDevices (1.1.0) only where the target allows them."""
    from cdigen.cdi.spec import version_key

    seen, unique = set(), []
    for c in nodes:
        if c.path not in seen:
            seen.add(c.path)
            unique.append(c)
    edits: dict = {"deviceNodes": [_node(c) for c in unique]}
    annotations = {}
    if settings:
        if version_key(target) >= version_key(NET_DEVICES_SINCE):
            edits["netDevices"] = [{"hostInterfaceName": s.host, "name": s.container_name} for s in settings]
        edits["hooks"] = [hookentry.cdi_hook(hook_path, [s.to_arg() for s in settings])]
        if version_key(target) >= version_key(ANNOTATIONS_SINCE):
            annotations = {netdev.annotation_key(s.host): s.to_text() for s in settings}
    return annotations, edits


def _device(name: str, annotations: dict, edits: dict) -> dict:
    device: dict = {"name": name}
    if annotations:
        device["annotations"] = annotations
    device["containerEdits"] = edits
    return device


def build_spec(topo: Topology, opts: BuildOptions) -> tuple[dict, list[ScanWarning]]:
    """The CDI spec for `topo`, and warnings (about the options, not the host)."""
    from cdigen.cdi.spec import (
        CDI_VERSIONS,
        SpecError,
        check_class,
        check_device_name,
        check_vendor,
        minimum_version,
        version_key,
    )

    if opts.cdi_version not in CDI_VERSIONS or version_key(opts.cdi_version) < version_key("0.3.0"):
        raise BadArgument("cdi_version", f"{opts.cdi_version!r}: not one of {', '.join(CDI_VERSIONS[2:])}")

    for argument, check, value in (("vendor", check_vendor, opts.vendor), ("class", check_class, opts.cls)):
        try:
            check(value)
        except SpecError as e:
            raise BadArgument(argument, str(e)) from None
    hookentry.check_hook_path(opts.hook_path)
    if opts.netdev_name is not None:
        check_name_template(opts.netdev_name)
    gpus = sorted(topo.usable_gpus, key=lambda g: g.minor)  # devices by /dev/nvidia minor
    if not gpus:
        without = [g.bdf for g in topo.gpus]
        raise NoGPU(
            "no NVIDIA GPU with the nvidia driver bound"
            + (
                f" (found without: {', '.join(without)})"
                if without
                else " (no PCI function of vendor 0x10de, class 0x0300/0x0302)"
            )
        )
    warnings: list[ScanWarning] = []
    chosen = assignment(topo, opts.nic_affinity)
    candidates = candidate_nics(topo)
    if candidates and not any(chosen[g.bdf] for g in gpus):
        # Typical of cloud VMs (every device on its own PCI domain): say so instead of
        # silently emitting GPUs without NICs.
        warnings.append(
            ScanWarning(
                "/sys/class/infiniband",
                (
                    f"no RDMA NIC is within {opts.nic_affinity.name} of any GPU, {len(candidates)} left out "
                    "(a flat PCI tree, as in cloud VMs?); see `cdigen topo`, widen with --nic-affinity node"
                ),
            )
        )
    settings = _netdev_settings(topo, chosen, gpus, opts, warnings)

    per_gpu = {}
    for gpu in gpus:
        nics = chosen[gpu.bdf]
        nodes = [gpu.node, *gpu.drm, *(c for nic in nics for c in nic.chardevs)]
        per_gpu[gpu.bdf] = (nodes, [settings[nd.name] for nic in nics for nd in nic.netdevs])

    devices = []
    for strategy in dict.fromkeys(opts.name_strategies):
        if strategy not in NAME_STRATEGIES:
            raise BadArgument("name_strategy", f"unknown {strategy!r}; use {', '.join(NAME_STRATEGIES)}")
        for gpu in gpus:
            name = {"index": f"gpu{gpu.minor}", "uuid": gpu.uuid, "pci": gpu.bdf}[strategy]
            if name is None:
                warnings.append(
                    ScanWarning(
                        f"/proc/driver/nvidia/gpus/{gpu.bdf}/information",
                        "no GPU UUID; no UUID-named device for this GPU",
                    )
                )
                continue
            check_device_name(name)
            devices.append(_device(name, *_edits(*per_gpu[gpu.bdf], opts.hook_path, opts.cdi_version)))
    all_nodes = [c for g in gpus for c in per_gpu[g.bdf][0]]
    all_settings = [s for g in gpus for s in per_gpu[g.bdf][1]]
    devices.append(_device("all", *_edits(all_nodes, all_settings, opts.hook_path, opts.cdi_version)))

    common = list(topo.control) + ([topo.rdma_cm] if topo.rdma_cm else [])
    spec: dict = {"cdiVersion": "", "kind": f"{opts.vendor}/{opts.cls}", "devices": devices}
    if common:
        spec["containerEdits"] = {"deviceNodes": [_node(c) for c in common]}
    spec["cdiVersion"] = minimum_version(spec)
    if version_key(spec["cdiVersion"]) > version_key(opts.cdi_version):  # only digit-first device names do this
        raise BadArgument(
            "cdi_version", f"{opts.cdi_version} is too old for this spec: its device names need {spec['cdiVersion']}"
        )
    return spec, warnings


# ---------------------------------------------------------------------------- rendering


def render(spec: dict, fmt: str = "yaml") -> bytes:
    """Deterministic bytes: same dict in, same bytes out (key order as built)."""
    if fmt == "json":
        import json

        return (json.dumps(spec, indent=2, ensure_ascii=False) + "\n").encode()
    if fmt == "yaml":
        from cdigen.cdi import goyaml

        return goyaml.render(spec).encode()
    raise BadArgument("format", f"unknown {fmt!r}; use {' or '.join(FORMATS)}")
