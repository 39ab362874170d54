"""`cdigen topo`: the GPU/NIC matrix and the assignment as plain data (the CLI renders it as
the table that `nvidia-smi topo -m` users know, or prints it as JSON)."""

import re

from cdigen.scan.affinity import Affinity, pair_class
from cdigen.scan.build import assignment
from cdigen.scan.model import RdmaDevice, Topology
from cdigen.scan.sysfs import decimal


def _uverbs(r: RdmaDevice) -> int | None:
    for c in r.chardevs:
        number = c.path.removeprefix("/dev/infiniband/uverbs")
        if number != c.path and decimal(number) is not None:
            return decimal(number)
    return None


def rdma_order(topo: Topology) -> list[RdmaDevice]:
    """Every RDMA device (VFs' too) in the order nvidia-smi numbers them NIC0, NIC1, ...: the
    order the kernel registered them in, which their uverbs numbers follow (mlx5_9 before
    mlx5_10, a bond made later after both), then by name, digits as numbers
    (docs/topology.md, "cdigen topo")."""

    def key(r: RdmaDevice):
        uverbs = _uverbs(r)
        natural = tuple(int(p) if i % 2 else p for i, p in enumerate(re.split(r"(\d+)", r.name)))
        return (uverbs is None, uverbs or 0, natural)

    return sorted((r for n in topo.nics for r in n.rdma), key=key)


def topo_report(topo: Topology, limit: Affinity, split_ports: bool = False) -> dict:
    """The matrix and assignment as plain data (what `topo --json` prints).

    Rows and columns: the GPUs in PCI order (nvidia-smi's order), each named as `--device`
    names it in scan's spec (gpu<minor>: scan's default index names; a GPU without one by its
    PCI address), with nvidia-smi's index beside it (`nvidiaSmiIndex`: the GPUs on the nvidia
    driver, in PCI order). Then every function with an RDMA device, VFs included as in
    nvidia-smi's matrix (`physfn` set; never assigned), each named NICk after nvidia-smi's
    number for its (first) RDMA device, in that order. Functions without an RDMA device (plain
    Ethernet) are not in nvidia-smi's matrix: they are listed apart, unnumbered. With an NCCL
    topology file, `ncclTopoFile` names it and the cells whose class it decided (by row)."""
    single = topo.single_numa_node
    gpus = list(topo.gpus)  # PCI order, like nvidia-smi's GPU index
    smi_index = {g.bdf: k for k, g in enumerate(g for g in gpus if g.driver == "nvidia")}
    number = {r.name: k for k, r in enumerate(rdma_order(topo))}
    nics = sorted((n for n in topo.nics if n.rdma), key=lambda n: min(number[r.name] for r in n.rdma))
    device = {g.bdf: f"gpu{g.minor}" for g in gpus if g.minor is not None}  # build.py's index names
    names = {g.bdf: device.get(g.bdf, g.bdf) for g in gpus} | {
        n.bdf: f"NIC{min(number[r.name] for r in n.rdma)}" for n in nics
    }
    chosen = assignment(topo, limit, split_ports)
    items = [g.bdf for g in gpus] + [n.bdf for n in nics]
    matrix: dict[str, dict[str, str]] = {}
    from_file: dict[str, list[str]] = {}
    for a in items:
        row = matrix[names[a]] = {}
        for b in items:
            affinity, decided = pair_class(topo, a, b)
            row[names[b]] = affinity.name
            if decided:
                from_file.setdefault(names[a], []).append(names[b])

    def numa(bdf):
        n = topo.pci[bdf].numa_node
        return n if n >= 0 else (0 if single else None)

    def netdevs(nic):
        return [{"name": d.name, "linkLayer": d.link_layer, "mtu": d.mtu} for d in nic.netdevs]

    report = {
        "nicAffinity": limit.name.lower(),
        "splitPorts": split_ports,
        "gpus": [
            {
                "name": names[g.bdf],
                "nvidiaSmiIndex": smi_index.get(g.bdf),
                "pciAddress": g.bdf,
                "numaNode": numa(g.bdf),
                "minor": g.minor,
                "device": device.get(g.bdf),
                "uuid": g.uuid,
                "driver": g.driver,
                "nics": [names[n.bdf] for n in chosen.get(g.bdf, [])],
            }
            for g in gpus
        ],
        "nics": [
            {
                "name": names[n.bdf],
                "pciAddress": n.bdf,
                "numaNode": numa(n.bdf),
                "rdma": [r.name for r in n.rdma],
                "netdevs": netdevs(n),
                "physfn": n.physfn,
                "vfs": list(n.vfs),
            }
            for n in nics
        ],
        "otherNics": [
            {"pciAddress": n.bdf, "numaNode": numa(n.bdf), "netdevs": netdevs(n)}
            for n in topo.nics
            if not n.rdma and not n.is_vf
        ],
        "matrix": matrix,
    }
    if topo.nccl_topo_path is not None:
        report["ncclTopoFile"] = {"path": topo.nccl_topo_path, "decided": from_file}
    return report
