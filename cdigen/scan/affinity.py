"""GPU–NIC affinity the way `nvidia-smi topo -m` reports it, and exclusive NIC assignment.

Pure functions over `PciFunction`s (docs/topology.md, "Classes"): PIX at most one PCIe bridge
between the two (one switch, or one root port that both sit on), PXB several bridges but no
host bridge, PHB the same host bridge (they meet at the root complex), NODE different host
bridges on one NUMA node, SYS across NUMA nodes. Where sysfs says only NODE or SYS (flat cloud
VMs), an NCCL topology file may say more (`pair_class`, docs/topology.md "NCCL topology files").
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command line imports Affinity; keep that import free of the model
    from collections.abc import Callable

    from cdigen.scan.model import PciFunction, Topology


class Affinity(IntEnum):
    X = 0
    PIX = 1
    PXB = 2
    PHB = 3
    NODE = 4
    SYS = 5


LEGEND = (
    ("X", "Self"),
    ("SYS", "Connection traversing PCIe as well as the SMP interconnect between NUMA nodes (e.g., QPI/UPI)"),
    ("NODE", "Connection traversing PCIe as well as the interconnect between PCIe Host Bridges within a NUMA node"),
    ("PHB", "Connection traversing PCIe as well as a PCIe Host Bridge (typically the CPU)"),
    ("PXB", "Connection traversing multiple PCIe bridges (without traversing the PCIe Host Bridge)"),
    ("PIX", "Connection traversing at most a single PCIe bridge"),
)


def bridge_hops(chain: tuple[str, ...], kinds: dict[str, str | None] | None = None) -> tuple[str, ...]:
    """The bridges that a path from the last function of `chain` up to its host bridge crosses,
    top first, as nvidia-smi counts them: each root port, each switch (named by its upstream
    port; its downstream ports belong to it) and each other bridge is one.

    `kinds` gives the PCI Express port type of bridges ("root", "upstream", "downstream",
    "bridge"; docs/topology.md). A bridge of unknown kind is inferred from its place: the
    first bridge is a root port, one below an upstream port is a downstream port, any other
    is an upstream port. With no kinds at all this is the depth rule: root port, then
    (upstream, downstream) pairs."""
    kinds = kinds or {}
    hops = []
    parent = None
    for i, bdf in enumerate(chain[:-1]):
        kind = kinds.get(bdf)
        if kind is None:
            kind = "root" if i == 0 else "downstream" if parent == "upstream" else "upstream"
        if kind != "downstream" or parent != "upstream":  # a downstream port is part of its switch
            hops.append(bdf)
        parent = kind
    return tuple(hops)


def _hops(f: PciFunction) -> tuple[str, ...]:
    return f.hops if f.hops is not None else bridge_hops(f.chain)


def classify(a: PciFunction, b: PciFunction, single_numa_node: bool = False) -> Affinity:
    """The class of the path between two PCI functions.

    `single_numa_node`: the host has one NUMA node, so an unknown node (-1) is that node.
    With several nodes an unknown one is never "the same" (SYS: the conservative answer)."""
    if a.bdf == b.bdf:
        return Affinity.X
    if a.root != b.root:
        na, nb = (
            (0 if n < 0 else n for n in (a.numa_node, b.numa_node)) if single_numa_node else (a.numa_node, b.numa_node)
        )
        return Affinity.NODE if na == nb and na >= 0 else Affinity.SYS
    ha, hb = _hops(a), _hops(b)
    common = 0
    for x, y in zip(ha, hb, strict=False):  # compare the common prefix
        if x != y:
            break
        common += 1
    if common == 0:
        return Affinity.PHB  # they meet only at the root complex
    # The deepest common bridge (a switch, or the root port both sit on) plus every bridge
    # below it on either side.
    crossed = 1 + (len(ha) - common) + (len(hb) - common)
    return Affinity.PIX if crossed == 1 else Affinity.PXB


def file_class(a: tuple[int, tuple[int, ...]], b: tuple[int, tuple[int, ...]]) -> Affinity:
    """The class of the path between two devices that an NCCL topology file places at `a` and
    `b` ((its <cpu>, the <pci> elements above it, top first)), as NCCL's path types count
    it (src/graph/topo.h): below the same <pci> element (a PCIe switch) PIX; below a common
    one further up PXB; below the same <cpu> only PHB; below different <cpu>s SYS."""
    (cpu_a, up_a), (cpu_b, up_b) = a, b
    if cpu_a != cpu_b:
        return Affinity.SYS
    if up_a and up_b and up_a[-1] == up_b[-1]:
        return Affinity.PIX
    return Affinity.PXB if up_a and up_b and up_a[0] == up_b[0] else Affinity.PHB


def pair_class(topo: Topology, a: str, b: str) -> tuple[Affinity, bool]:
    """The class of the path between the PCI functions `a` and `b` of `topo`, and whether it
    is the NCCL topology file's instead of sysfs's: sysfs's class, unless that is NODE or SYS
    (no common host bridge: on a flat VM, every pair) and the file places both. The one rule
    for the spec's assignment, its warnings, `topo` and GPUDirect."""
    sysfs = classify(topo.pci[a], topo.pci[b], topo.single_numa_node)
    places = topo.nccl_places
    if sysfs >= Affinity.NODE and a in places and b in places:
        said = file_class(places[a], places[b])
        return said, said != sysfs
    return sysfs, False


def adapter(f: PciFunction) -> str:
    """The adapter a function belongs to: its PCI device (domain:bus:device), whose functions
    are the ports of one card (a dual-port ConnectX-7: 0000:41:00.0 and 0000:41:00.1)."""
    return f.bdf.rpartition(".")[0]


def assign(
    gpus: list[PciFunction],
    nics: list[PciFunction],
    limit: Affinity = Affinity.PXB,
    single_numa_node: bool = False,
    split_ports: bool = False,
    link: Callable[[PciFunction, PciFunction], Affinity] | None = None,
) -> dict[str, list[str]]:
    """Give each NIC to at most one GPU: nearest first, balanced, deterministic.

    The unit handed out is an adapter: all NICs of one PCI device (its ports) go to the same
    GPU, as NCCL would use them all from one GPU; with `split_ports` each NIC is a unit of its
    own. Rounds: in each round every GPU may take one more unit, so no GPU gets a second one
    while another that could use one has none. Within a round the candidate pairs are taken
    in order of (class, GPU order, unit order): the nearest pairs first, ties broken by the
    order of the inputs (callers pass PCI order). Only pairs of class <= `limit` count.
    `link`: the class of a pair (default: `classify`). Returns {gpu bdf: [nic bdf, ...]}
    with every GPU present."""
    link = link or (lambda g, n: classify(g, n, single_numa_node))
    out: dict[str, list[str]] = {g.bdf: [] for g in gpus}
    units: dict[str, list[PciFunction]] = {}
    for n in nics:
        units.setdefault(n.bdf if split_ports else adapter(n), []).append(n)
    members = list(units.values())
    pairs = []
    for gi, g in enumerate(gpus):
        for ui, unit in enumerate(members):
            nearest = min(link(g, n) for n in unit)
            if nearest <= limit and nearest != Affinity.X:
                pairs.append((nearest, gi, ui))
    pairs.sort()
    taken: set[int] = set()
    while pairs:
        this_round: set[int] = set()
        for _affinity, gi, ui in pairs:
            if gi not in this_round and ui not in taken:
                this_round.add(gi)
                taken.add(ui)
                out[gpus[gi].bdf].extend(n.bdf for n in members[ui])
        if not this_round:
            break
        pairs = [p for p in pairs if p[2] not in taken]
    return out
