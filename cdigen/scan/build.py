"""Topology -> CDI spec (pure), and its deterministic YAML/JSON rendering.

The spec holds only fields the reference Go loader knows, in the Go structs' key order, empty
fields omitted, and `cdiVersion` set to the minimum its fields require (docs/cdi-conformance.md).
One device per usable GPU and name strategy, plus `all`. Each GPU device carries its
/dev/nvidiaN, DRM nodes, the RDMA char devices of its NICs, their netdevs as `netDevices`,
their settings in annotations, and two hook entries with the same arguments: createRuntime
(`cdigen hook --netdev ...`) applies those settings, poststop (`cdigen hook --poststop
--netdev ...`) brings the netdevs home (docs/netdev.md). The spec's own edits carry the
control nodes and the driver files (read-only bind mounts, and a createContainer hook,
`cdigen hook ldcache`, that makes the libraries findable); the devices around the GPUs
(GDRCopy, GPUDirect Storage, IMEX channels, MIG instances) follow `all` (docs/gpu.md).
"""

from dataclasses import dataclass, field

from cdigen import hookentry, netdev
from cdigen.errors import BadArgument, NoGPU
from cdigen.scan import DEFAULT_CDI_VERSION, DEFAULT_CLASS, DEFAULT_VENDOR, FORMATS, MODES, NAME_STRATEGIES
from cdigen.scan.affinity import Affinity, assign, pair_class
from cdigen.scan.model import CharDev, Gpu, Mount, Nic, ScanWarning, Topology

ANNOTATIONS_SINCE = "0.6.0"
NET_DEVICES_SINCE = "1.1.0"


@dataclass
class BuildOptions:
    hook_path: str
    vendor: str = DEFAULT_VENDOR
    cls: str = DEFAULT_CLASS
    name_strategies: tuple[str, ...] = ("index",)
    nic_affinity: Affinity = Affinity.PXB
    split_ports: bool = False  # the ports of one adapter may go to different GPUs
    # host interface -> {"name", "address", "mask", "mtu"} (any subset): the netdev config file
    netdev_config: dict[str, dict] = field(default_factory=dict)
    netdev_config_path: str = ""  # that file's name, for warnings ("": not from a file)
    netdev_name: str | None = None  # container-name template, e.g. "net{index}"
    cdi_version: str = DEFAULT_CDI_VERSION  # the newest cdiVersion the spec's readers accept
    # Only the NICs, keyed by GPU (no GPU nodes, driver files or GPUDirect devices): for a host
    # whose GPUs come from nvidia-ctk's spec (docs/gpu.md, "Beside nvidia-ctk").
    nic_only: bool = False
    # "container" (default) or "vm": only the functions bound to vfio-pci, as VFIO devices for
    # a VM runtime (scan/vfio.py, docs/vm.md "VFIO devices").
    mode: str = "container"


def candidate_nics(topo: Topology) -> list[Nic]:
    """NICs that may be handed to a GPU: RDMA-capable physical functions, PCI order.

    Plain Ethernet NICs (no RDMA device) are the host's own networking; VFs stay with their
    PF's owner (the operator hands them out by other means, e.g. an SR-IOV device plugin)."""
    return [n for n in topo.nics if n.rdma and not n.is_vf]


def assignment(topo: Topology, limit: Affinity = Affinity.PXB, split_ports: bool = False) -> dict[str, list[Nic]]:
    """{gpu bdf: [Nic, ...]} for every usable GPU (docs/topology.md, "Assignment"): the ports
    of one adapter go to one GPU unless `split_ports`. Ties go by PCI order (not by minor,
    which changes when a driver is rebound)."""
    gpus, nics = topo.usable_gpus, candidate_nics(topo)
    by_bdf = {n.bdf: n for n in nics}
    chosen = assign(
        [topo.pci[g.bdf] for g in gpus],
        [topo.pci[n.bdf] for n in nics],
        limit,
        split_ports=split_ports,
        link=lambda g, n: pair_class(topo, g.bdf, n.bdf)[0],
    )
    return {bdf: [by_bdf[b] for b in nic_bdfs] for bdf, nic_bdfs in chosen.items()}


def _nothing_within(topo: Topology, gpus: list[Gpu], candidates: list[Nic], limit: Affinity) -> ScanWarning:
    """Why no GPU got a NIC, about the NIC affinity: the nearest class there is, and whether
    the PCI tree is flat (every GPU and NIC on a host bridge of its own, as in cloud VMs),
    which no affinity below NODE can pair, unless an NCCL topology file says how."""
    single = topo.single_numa_node
    nearest = min((*pair_class(topo, g.bdf, n.bdf), i, j) for i, g in enumerate(gpus) for j, n in enumerate(candidates))
    affinity, from_file, gpu, nic = nearest[0], nearest[1], gpus[nearest[2]], candidates[nearest[3]]
    text = f"no RDMA NIC is within {limit.name} of any GPU ({len(candidates)} left out)"
    roots = [topo.pci[d.bdf].root for d in [*gpus, *candidates]]
    if from_file:
        text += (
            f"; the nearest are {affinity.name} by the NCCL topology file {topo.nccl_topo_path}, "
            f"e.g. GPU {gpu.bdf} and {nic.label} ({nic.bdf})"
        )
    elif len(set(roots)) == len(roots):
        why = "every GPU and RDMA NIC is on a PCI host bridge of its own"
        if {topo.pci[d.bdf].numa_node for d in [*gpus, *candidates]} == {-1} and not single:
            why += " and no NUMA node is known"
        text += f": the PCI tree is flat ({why}, as in cloud VMs), so the nearest are {affinity.name}"
    else:
        text += f"; the nearest are {affinity.name}, e.g. GPU {gpu.bdf} and {nic.label} ({nic.bdf})"
    return ScanWarning(
        limit.name.lower(),
        f"{text}: widen it to {affinity.name.lower()} to pair them",
        argument="nic_affinity",
    )


def check_name_template(template: str) -> str:
    """`{n}` (the NIC's position among the container's NICs: net0, net1... in every
    container) or `{index}` (its position among all netdevs of the spec) is required, so that
    no two NICs of a container share a name (any combination of devices can be requested
    together); `{gpu}` is optional. A field may carry a short width (`{index:02}`), nothing
    else: an interface name has 15 bytes, and `{gpu.attr}` or `{gpu:>1000000}` are no names."""
    import re
    import string

    shown = repr(template[:40]) + ("..." if len(template) > 40 else "")
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise BadArgument("netdev_name", f"{shown}: {e}") from None
    for name, spec, conv in fields:
        if name == "n" and (spec or conv):
            raise BadArgument("netdev_name", f"{shown}: {{n}} takes no width")
        if name not in ("n", "index", "gpu") or conv is not None or not re.fullmatch(r"(0?\dd?)?", spec):
            raise BadArgument(
                "netdev_name", f"{shown}: only {{n}}, {{index}} and {{gpu}} (with a width like :02) may be used"
            )
    if not any(name in ("n", "index") for name, _, _ in fields):
        raise BadArgument("netdev_name", f"{shown} must contain {{n}} or {{index}}")
    return template


def no_gpu(topo: Topology) -> NoGPU:
    """The error of a host with no GPU a container can be given (exit 4), for scan and topo."""
    without = [g.bdf for g in topo.gpus]
    return NoGPU(
        "no NVIDIA GPU with the nvidia driver bound"
        + (
            f" (found without: {', '.join(without)})"
            if without
            else " (no PCI function of vendor 0x10de, class 0x0300/0x0302)"
        )
    )


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
                    name = (
                        opts.netdev_name.format(index=index, gpu=gpu.minor, n=netdev.NIC_NUMBER)
                        if opts.netdev_name
                        else nd.name
                    )
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
            warnings.append(
                ScanWarning(
                    opts.netdev_config_path, f"{host}: no such network interface; ignored", argument="netdev_config"
                )
            )
        elif host not in out:
            warnings.append(
                ScanWarning(
                    opts.netdev_config_path,
                    f"{host}: not assigned to any GPU (NIC affinity {opts.nic_affinity.name}); ignored",
                    argument="netdev_config",
                )
            )
    return out


def _edits(
    nodes: list[CharDev], settings: list[netdev.NetdevSettings], ports: dict[str, bool], hook_path: str, target: str
) -> tuple[dict, dict]:
    """(annotations, containerEdits) of one device, with only the fields a loader of version
    `target` knows: the hook arguments always carry the netdev settings and the NICs' RDMA
    ports (`--ib`/`--roce`, for NCCL and UCX: docs/nccl.md); device annotations (0.6.0) and
    netDevices (1.1.0) only where the target allows them."""
    from cdigen.cdi.spec import version_key

    seen, unique = set(), []
    for c in nodes:
        if c.path not in seen:
            seen.add(c.path)
            unique.append(c)
    edits: dict = {"deviceNodes": [_node(c) for c in unique]}
    annotations = {}
    if settings or ports:
        if version_key(target) >= version_key(NET_DEVICES_SINCE):
            # A netDevices name is one per device; a `{n}` name is per container: the hook gives it.
            fixed = [s for s in settings if netdev.NIC_NUMBER not in s.container_name]
            if fixed:
                edits["netDevices"] = [{"hostInterfaceName": s.host, "name": s.container_name} for s in fixed]
        edits["hooks"] = hookentry.cdi_hooks(hook_path, [s.to_arg() for s in settings], ports)
        if settings and version_key(target) >= version_key(ANNOTATIONS_SINCE):
            annotations = {netdev.annotation_key(s.host): s.to_text() for s in settings}
    return annotations, edits


RO_OPTIONS = ["ro", "nosuid", "nodev", "bind"]
IPC_OPTIONS = ["nosuid", "nodev", "noexec", "bind"]  # sockets and pipe directories: clients write


def _mount(m: Mount) -> dict:
    """A CDI mount without `type` (0.4.0): the `bind` option makes it a bind mount for runc and
    crun, and the spec stays loadable by every CDI library (0.3.0)."""
    options = IPC_OPTIONS if m.writable else RO_OPTIONS
    return {"hostPath": m.host, "containerPath": m.container, "options": list(options)}


def _common_edits(topo: Topology, hook_path: str) -> dict:
    """The spec's own containerEdits: the control nodes every GPU needs and the driver files,
    with the createContainer hook that makes the libraries findable (docs/gpu.md)."""
    edits: dict = {}
    if topo.control:
        edits["deviceNodes"] = [_node(c) for c in topo.control]
    driver = topo.driver
    if driver is not None and (driver.folders or driver.links):
        version = driver.version if hookentry.dotted_version(driver.version) else None  # for CUDA forward compat
        edits["hooks"] = [hookentry.ldcache_hook(hook_path, driver.folders, driver.links, version)]
    if driver is not None and driver.mounts:
        edits["mounts"] = [_mount(m) for m in driver.mounts]
    return edits


def _with_topo_file(edits: dict, topo_file: str) -> dict:
    """The spec's own edits with the NCCL topology file mounted read-only where NCCL reads it
    when NCCL_TOPO_FILE is unset (docs/nccl.md); `mounts` stays the last key."""
    return dict(edits, mounts=[*edits.get("mounts", []), _mount(Mount(topo_file, hookentry.NCCL_TOPO_CONTAINER_PATH))])


def _gpudirect_devices(topo: Topology, gpus: list[Gpu], strategies) -> list[dict]:
    """The devices around the GPUs, each requested on its own (docs/gpu.md): `gdrcopy`, `gds`,
    `imex-channel<N>`, and per MIG instance `<GPU name>-gi<G>-ci<C>` under each name strategy."""
    gd = topo.gpudirect
    if gd is None:
        return []
    out = []
    if gd.gdrdrv is not None:
        out.append(_device("gdrcopy", {}, {"deviceNodes": [_node(gd.gdrdrv)]}))
    if gd.nvidia_fs:
        edits: dict = {"deviceNodes": [_node(c) for c in gd.nvidia_fs]}
        if gd.gds_mounts:
            edits["mounts"] = [_mount(m) for m in gd.gds_mounts]
        out.append(_device("gds", {}, edits))
    for channel in gd.imex:
        out.append(_device(f"imex-channel{channel.minor}", {}, {"deviceNodes": [_node(channel)]}))
    by_minor = {g.minor: g for g in gpus}
    for strategy in strategies:
        for mig in gd.mig:
            gpu = by_minor.get(mig.gpu_minor)
            name = gpu and device_name(strategy, f"gpu{gpu.minor}", gpu.bdf, gpu.uuid)
            if name:
                nodes = [gpu.node, *mig.caps]
                out.append(_device(f"{name}-gi{mig.gi}-ci{mig.ci}", {}, {"deviceNodes": [_node(c) for c in nodes]}))
    return out


def name_strategies(opts: BuildOptions) -> tuple[str, ...]:
    """The naming strategies of `opts`, each once; BadArgument for an unknown one."""
    for strategy in opts.name_strategies:
        if strategy not in NAME_STRATEGIES:
            raise BadArgument("name_strategy", f"unknown {strategy!r}; use {', '.join(NAME_STRATEGIES)}")
    return tuple(dict.fromkeys(opts.name_strategies))


def device_name(strategy: str, index_name: str, bdf: str, uuid: str | None = None) -> str | None:
    """A GPU's (or VFIO function's) device name under a naming strategy: `index_name` ("gpu0",
    "vfio-nic1"), its UUID (None: it has none) or its PCI address."""
    return {"index": index_name, "uuid": uuid, "pci": bdf}[strategy]


def _device(name: str, annotations: dict, edits: dict) -> dict:
    device: dict = {"name": name}
    if annotations:
        device["annotations"] = annotations
    device["containerEdits"] = edits
    return device


def build_spec(topo: Topology, opts: BuildOptions) -> tuple[dict, list[ScanWarning]]:
    """The CDI spec for `topo`, and warnings (about the options, not the host)."""
    from cdigen.cdi.spec import (
        SpecError,
        check_class,
        check_device_name,
        check_target_version,
        check_vendor,
        minimum_version,
        version_key,
    )

    check_target_version(opts.cdi_version)

    for argument, check, value in (("vendor", check_vendor, opts.vendor), ("class", check_class, opts.cls)):
        try:
            check(value)
        except SpecError as e:
            raise BadArgument(argument, str(e)) from None
    hookentry.check_hook_path(opts.hook_path)
    if opts.mode not in MODES:
        raise BadArgument("mode", f"unknown {opts.mode!r}; use {' or '.join(MODES)}")
    if opts.mode == "vm":
        from cdigen.scan.vfio import build_vm_spec

        return build_vm_spec(topo, opts)
    if opts.netdev_name is not None:
        check_name_template(opts.netdev_name)
    gpus = sorted(topo.usable_gpus, key=lambda g: g.minor)  # devices by /dev/nvidia minor
    if not gpus:
        raise no_gpu(topo)
    warnings: list[ScanWarning] = []
    chosen = assignment(topo, opts.nic_affinity, opts.split_ports)
    candidates = candidate_nics(topo)
    if candidates and not any(chosen[g.bdf] for g in gpus):
        # Say so instead of silently emitting GPUs without NICs.
        warnings.append(_nothing_within(topo, gpus, candidates, opts.nic_affinity))
    settings = _netdev_settings(topo, chosen, gpus, opts, warnings)
    if topo.gpudirect is not None:
        from cdigen.scan.gpudirect import rdma_warnings

        warnings += rdma_warnings(topo, chosen)

    # /dev/infiniband/rdma_cm serves RDMA connection setup: only devices that carry a NIC get it.
    with_nic = [topo.rdma_cm] if topo.rdma_cm else []
    per_gpu = {}
    for gpu in gpus:
        nics = chosen[gpu.bdf]
        own = [] if opts.nic_only else [gpu.node, *gpu.drm]
        nodes = [*own, *(c for nic in nics for c in nic.chardevs), *(with_nic if nics else [])]
        ports = {f"{r.name}:{p}": r.link_layer == "Ethernet" for nic in nics for r in nic.rdma for p in r.ports}
        per_gpu[gpu.bdf] = (nodes, [settings[nd.name] for nic in nics for nd in nic.netdevs], ports)
    if opts.nic_only:
        # A device needs edits: a GPU without a NIC has none to give.
        gpus = [g for g in gpus if chosen[g.bdf]]
        if not gpus:
            raise BadArgument(
                "nic_only",
                f"finds no GPU with an RDMA NIC within {opts.nic_affinity.name}: the spec would have no device",
            )

    devices = []
    strategies = name_strategies(opts)
    for strategy in strategies:
        for gpu in gpus:
            name = device_name(strategy, f"gpu{gpu.minor}", gpu.bdf, gpu.uuid)
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
    any_nic = any(chosen[g.bdf] for g in gpus)
    all_nodes = [c for g in gpus for c in per_gpu[g.bdf][0] if c not in with_nic] + (with_nic if any_nic else [])
    all_settings = [s for g in gpus for s in per_gpu[g.bdf][1]]
    all_ports = {port: roce for g in gpus for port, roce in per_gpu[g.bdf][2].items()}
    devices.append(_device("all", *_edits(all_nodes, all_settings, all_ports, opts.hook_path, opts.cdi_version)))
    if not opts.nic_only:
        devices += _gpudirect_devices(topo, gpus, strategies)

    common = {} if opts.nic_only else _common_edits(topo, opts.hook_path)
    if topo.nccl_topo_path:
        common = _with_topo_file(common, topo.nccl_topo_path)
    spec: dict = {"cdiVersion": "", "kind": f"{opts.vendor}/{opts.cls}", "devices": devices}
    if common:
        spec["containerEdits"] = common
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
