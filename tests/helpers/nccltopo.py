"""The NCCL topology files a cloud publishes (tests/data/nccl-topo/) and fake trees of the VMs they describe."""

import xml.etree.ElementTree as ET
from pathlib import Path

DATA = Path(__file__).parent.parent / "data" / "nccl-topo"


def flat_tree(xml: Path, numa: bool = True, extra: str = "") -> str:
    """A fake tree description of the VM a topology file describes: every GPU (class 0x03) and
    NIC (0x02: an InfiniBand HCA) at the file's address, on a root bus of its own, on the NUMA
    node of its <cpu> (numa=False: unknown, -1)."""
    system = ET.parse(xml).getroot()
    lines = []
    for cpu in system.iter("cpu"):
        for pci in cpu.iter("pci"):
            kind = {"0x03": "gpu", "0x02": "ib"}.get(pci.get("class")[:4])
            if kind:
                lines.append(f"pci {pci.get('busid')[:4]}:00 numa={cpu.get('numaid') if numa else -1} bus: {kind}")
    nodes = max(int(c.get("numaid")) for c in system.iter("cpu"))
    return "\n".join([f"numa 0-{nodes}", *sorted(lines)]) + "\n" + extra  # PCI order: minors follow it
