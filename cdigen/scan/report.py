"""`cdigen topo`: the GPU/NIC matrix and the assignment as plain data (the CLI renders it as
the table that `nvidia-smi topo -m` users know, or prints it as JSON)."""

from cdigen.scan.affinity import Affinity, classify
from cdigen.scan.build import assignment
from cdigen.scan.model import Topology


def topo_report(topo: Topology, limit: Affinity) -> dict:
    """The matrix and assignment as plain data (what `topo --json` prints)."""
    single = topo.single_numa_node
    gpus = list(topo.gpus)  # PCI order, like nvidia-smi's GPU index
    nics = [n for n in topo.nics if not n.is_vf]
    names = {g.bdf: f"GPU{i}" for i, g in enumerate(gpus)} | {n.bdf: f"NIC{i}" for i, n in enumerate(nics)}
    chosen = assignment(topo, limit)
    items = [g.bdf for g in gpus] + [n.bdf for n in nics]
    matrix = {names[a]: {names[b]: classify(topo.pci[a], topo.pci[b], single).name for b in items} for a in items}

    def numa(bdf):
        n = topo.pci[bdf].numa_node
        return n if n >= 0 else (0 if single else None)

    return {
        "nicAffinity": limit.name.lower(),
        "gpus": [
            {
                "name": names[g.bdf],
                "pciAddress": g.bdf,
                "numaNode": numa(g.bdf),
                "minor": g.minor,
                "device": f"gpu{g.minor}" if g.minor is not None else None,
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
                "netdevs": [{"name": d.name, "linkLayer": d.link_layer, "mtu": d.mtu} for d in n.netdevs],
                "vfs": list(n.vfs),
            }
            for n in nics
        ],
        "matrix": matrix,
    }
