"""GPU–NIC affinity the way `nvidia-smi topo -m` reports it, and exclusive NIC assignment.

Pure functions over `PciFunction`s (docs/topology.md):
PIX one PCIe switch between the two, PXB several switches but no host bridge, PHB the same
host bridge (different root ports), NODE different host bridges on one NUMA node, SYS across
NUMA nodes.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command line imports Affinity; keep that import free of the model
    from cdigen.scan.model import PciFunction


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
    sa, sb = a.switches, b.switches
    common = 0
    for x, y in zip(sa, sb, strict=False):  # compare the common prefix
        if x != y:
            break
        common += 1
    if common == 0:
        return Affinity.PHB  # they meet only at the root complex
    below = (len(sa) - common) + (len(sb) - common)  # switches under the common one
    return Affinity.PIX if below == 0 else Affinity.PXB


def assign(
    gpus: list[PciFunction], nics: list[PciFunction], limit: Affinity = Affinity.PXB, single_numa_node: bool = False
) -> dict[str, list[str]]:
    """Give each NIC to at most one GPU: nearest first, balanced, deterministic.

    Rounds: in each round every GPU may take one more NIC, so no GPU gets a second NIC while
    another that could use one has none. Within a round the candidate pairs are taken in
    order of (class, GPU order, NIC order): the nearest pairs first, ties broken by the
    order of the inputs (callers pass PCI order). Only pairs of class <= `limit` count.
    Returns {gpu bdf: [nic bdf, ...]} with every GPU present."""
    out: dict[str, list[str]] = {g.bdf: [] for g in gpus}
    pairs = []
    for gi, g in enumerate(gpus):
        for ni, n in enumerate(nics):
            link = classify(g, n, single_numa_node)
            if link <= limit and link != Affinity.X:
                pairs.append((link, gi, ni))
    pairs.sort()
    taken: set[int] = set()
    while pairs:
        this_round: set[int] = set()
        for _affinity, gi, ni in pairs:
            if gi not in this_round and ni not in taken:
                this_round.add(gi)
                taken.add(ni)
                out[gpus[gi].bdf].append(nics[ni].bdf)
        if not this_round:
            break
        pairs = [p for p in pairs if p[2] not in taken]
    return out
