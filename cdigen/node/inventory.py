"""What the node agent knows about the host: one scan (the scan stage, as `cdigen scan` runs
it) gives the spec's bytes and the devices kubelet is offered; the device table keeps every
device seen since the start with its health, and answers kubelet's questions (preferred
allocation, allocation) without gRPC types.

A device is a GPU device of the spec, named by the settings' `device_name_strategy` (its ID
for kubelet and its name in the spec), with its NUMA node and the PCI addresses of its NICs.
It is healthy while its GPU is in the spec and every NIC it has had is still a PCI function
with a driver: a NIC whose netdev is in a container stays healthy (the netdev left the host's
network namespace, not the host).
"""

import os
import threading
from typing import NamedTuple

from cdigen.errors import CdigenError, InvalidInput, NoGPU
from cdigen.node.config import Settings
from cdigen.scan.affinity import Affinity, pair_class
from cdigen.scan.model import PciFunction, ScanWarning

HEALTHY, UNHEALTHY = "Healthy", "Unhealthy"
ANNOTATION_PREFIX = "cdi.k8s.io/"
ENV_DEVICES = "CDIGEN_DEVICES"  # the runtime shim's variable (cdigen/shim.py), not imported: it is the hot path's


class Device(NamedTuple):
    id: str  # the spec's device name: gpu0, GPU-<uuid> or a PCI address, all within kubelet's 63
    qualified: str  # cdigen.io/gpu=gpu0
    numa: int | None  # None: unknown
    gpu: PciFunction
    nics: frozenset[str]  # PCI addresses


class Scan(NamedTuple):
    spec: bytes | None  # None: no GPU, no spec
    devices: dict[str, Device]
    present: frozenset[str]  # PCI functions with a driver bound
    # (ID, ID) -> the class of the path between their GPUs (scan.affinity.pair_class: sysfs, or
    # the NCCL topology file on a flat VM)
    links: dict[tuple[str, str], int]
    warnings: list[ScanWarning]
    no_gpu: str | None  # why there is no spec


def netdev_table(settings: Settings) -> dict[str, dict]:
    """The settings' --netdev-config file, read once (InvalidInput naming it)."""
    if settings.netdev_config is None:
        return {}
    from cdigen.scan.netdev_config import load_netdev_config

    try:
        return load_netdev_config(settings.netdev_config)
    except InvalidInput as e:
        raise InvalidInput(f"netdev_config {settings.netdev_config}: {e}") from None


def _host_prefix(root: str, driver_root: str) -> str | None:
    """Where the driver root is on the host, for the spec's paths: the agent may see the host's
    / at `root` (/host in a pod), and the runtime reads the spec on the host."""
    if os.path.realpath(root) == "/":
        return None
    rel = os.path.relpath(driver_root, root)
    return None if rel.startswith("..") else os.path.normpath("/" + rel)


def _below(root: str, warnings: list[ScanWarning]) -> list[ScanWarning]:
    """Warnings about files, their paths below `root` (those about a setting stay)."""
    return [w if w.argument else ScanWarning(root + w.path, w.reason) for w in warnings]


def scan(settings: Settings, netdevs: dict[str, dict], hook_path: str) -> Scan:
    """Read the host and build its spec with `settings`, as `cdigen scan` would."""
    from cdigen.scan import sysfs
    from cdigen.scan.build import BuildOptions, assignment, build_spec, device_name, render

    root = settings.root
    driver_root = settings.driver_root or root
    prefix = _host_prefix(root, driver_root)
    topo = sysfs.discover(root, host_prefix=prefix)
    shown = "" if os.path.realpath(root) == "/" else root.rstrip("/")  # warnings name paths below the root
    warnings = _below(shown, topo.warnings)
    present = frozenset(bdf for bdf, f in topo.pci.items() if f.driver)
    single = topo.single_numa_node
    if topo.usable_gpus:
        from cdigen.scan.gpudirect import discover_gpudirect

        if settings.driver_files and not settings.nic_only:
            from cdigen.scan.driver import discover_driver

            topo.driver, more = discover_driver(root, driver_root, prefix)
            warnings += more
        topo.gpudirect, more = discover_gpudirect(root, topo, driver_root, prefix)
        warnings += _below(shown, more)
    opts = BuildOptions(
        hook_path=hook_path,
        vendor=settings.vendor,
        cls=settings.cls,
        name_strategies=(settings.device_name_strategy,),
        nic_affinity=Affinity[settings.nic_affinity.upper()],
        split_ports=settings.split_ports,
        netdev_config=netdevs,
        netdev_config_path=settings.netdev_config or "",
        netdev_name=settings.netdev_name,
        cdi_version=settings.cdi_version,
        nic_only=settings.nic_only,
    )
    try:
        spec, more = build_spec(topo, opts)
    except NoGPU as e:
        return Scan(None, {}, present, {}, warnings, str(e))
    names = {d["name"] for d in spec["devices"]}
    chosen = assignment(topo, opts.nic_affinity, opts.split_ports)
    devices = {}
    for gpu in sorted(topo.usable_gpus, key=lambda g: g.minor):
        name = device_name(settings.device_name_strategy, f"gpu{gpu.minor}", gpu.bdf, gpu.uuid)
        if name in names:
            fn = topo.pci[gpu.bdf]
            numa = fn.numa_node if fn.numa_node >= 0 else 0 if single else None
            nics = frozenset(n.bdf for n in chosen[gpu.bdf])
            devices[name] = Device(name, f"{settings.kind}={name}", numa, fn, nics)
    gpus = {name: d.gpu.bdf for name, d in devices.items()}
    links = {(a, b): pair_class(topo, gpus[a], gpus[b])[0] for a in gpus for b in gpus}
    return Scan(
        render(spec, "json" if settings.spec.endswith(".json") else "yaml"),
        devices,
        present,
        links,
        warnings + more,
        None,
    )


class UnknownDevice(CdigenError):
    """An ID kubelet asked for that this plugin never offered."""


class DeviceTable:
    """The devices kubelet is offered, by ID, in the order they were first seen; `changed` is
    notified (under `lock`) whenever the list or a health changes, `version` counts changes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.version = 0
        self.devices: dict[str, Device] = {}
        self.health: dict[str, str] = {}
        self.expected: dict[str, frozenset[str]] = {}  # every NIC each device has had
        self.links: dict[tuple[str, str], int] = {}  # kept for devices that left: kubelet may still ask

    def update(self, result: Scan) -> list[tuple[str, str]]:
        """Take a scan's devices; returns the (ID, health) pairs that changed."""
        with self.lock:
            self.links.update(result.links)
            changes = []
            for name, device in result.devices.items():
                self.devices[name] = device
                self.expected[name] = self.expected.get(name, frozenset()) | device.nics
            for name in self.devices:
                now = result.devices.get(name)
                healthy = now is not None and self.expected[name] <= result.present
                state = HEALTHY if healthy else UNHEALTHY
                if self.health.get(name) != state:
                    self.health[name] = state
                    changes.append((name, state))
            if changes:
                self.version += 1
                self.changed.notify_all()
            return changes

    def listing(self) -> list[tuple[str, str, int | None]]:
        """(ID, health, NUMA node) of every device."""
        with self.lock:
            return [(d.id, self.health[d.id], d.numa) for d in self.devices.values()]

    def _known(self, ids) -> list[Device]:
        from cdigen.values import quoted

        unknown = [i for i in ids if i not in self.devices]
        if unknown:
            raise UnknownDevice(
                f"unknown device {quoted(unknown[0])} for {self.settings.resource}; "
                f"this plugin offers {', '.join(list(self.devices)[:16]) or 'none'}"
            )
        return [self.devices[i] for i in ids]

    def allocation(self, ids: list[str]) -> tuple[list[str], dict[str, str], dict[str, str]]:
        """(CDI names, env, annotations) for one container given `ids`: the names for kubelet's
        cdi_devices field (1.28+), the same as a `cdi.k8s.io/` annotation for runtimes that
        read CDI requests there, and as CDIGEN_DEVICES for the runtime shim."""
        with self.lock:
            names = [d.qualified for d in self._known(ids)]
        joined = ",".join(names)
        key = ANNOTATION_PREFIX + self.settings.resource.replace("/", "_")
        return names, {ENV_DEVICES: joined}, {key: joined}

    def preferred(self, available: list[str], must: list[str], size: int) -> list[str]:
        """`size` IDs from `available`, `must` included, as close together as the host allows."""
        with self.lock:
            self._known([*available, *must])
            links = dict(self.links)
        return preferred(links, list(dict.fromkeys(must)), list(dict.fromkeys(available)), size)


def preferred(links: dict[tuple[str, str], int], must: list[str], available: list[str], size: int) -> list[str]:
    """Grow a group from `must` (or from each available device in turn) by the device nearest
    to it, where the distance to a group is its farthest member (scan.affinity: PIX, PXB under
    one PCIe switch, then PHB, NODE, SYS), ties to the smaller sum, then to `available` order.
    The best group is the one whose farthest pair is nearest: one switch, else one NUMA node.
    `links`: the class between every two IDs (Scan.links)."""
    if len(must) >= size:
        return must[:size]
    pool = [i for i in available if i not in must]

    def link(a: str, b: str) -> int:
        return links.get((a, b), Affinity.SYS)  # a pair never seen together in one scan: the farthest

    best: tuple | None = None
    for start in [must] if must else [[i] for i in pool]:
        group, rest = list(start), [i for i in pool if i not in start]
        while len(group) < size and rest:
            distances = [
                (max(link(i, g) for g in group), sum(link(i, g) for g in group), n) for n, i in enumerate(rest)
            ]
            group.append(rest.pop(min(distances)[2]))
        pairs = [link(a, b) for n, a in enumerate(group) for b in group[n + 1 :]]
        score = (max(pairs, default=0), sum(pairs))
        if best is None or score < best[0]:
            best = (score, group)
    return best[1] if best else must
