"""`cdigen topo`: the GPU/NIC matrix and the assignment, as plain data and as the table that
`nvidia-smi topo -m` users know."""

from cdigen.scan.affinity import LEGEND, Affinity, classify
from cdigen.scan.build import assignment
from cdigen.scan.model import Topology, nic_label


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
        "gpus": [{"name": names[g.bdf], "pciAddress": g.bdf, "numaNode": numa(g.bdf), "minor": g.minor,
                  "device": f"gpu{g.minor}" if g.minor is not None else None, "uuid": g.uuid,
                  "driver": g.driver, "nics": [names[n.bdf] for n in chosen.get(g.bdf, [])]} for g in gpus],
        "nics": [{"name": names[n.bdf], "pciAddress": n.bdf, "numaNode": numa(n.bdf),
                  "rdma": [r.name for r in n.rdma],
                  "netdevs": [{"name": d.name, "linkLayer": d.link_layer, "mtu": d.mtu} for d in n.netdevs],
                  "vfs": list(n.vfs)} for n in nics],
        "matrix": matrix,
    }


def print_table(report: dict) -> None:
    """The report as `nvidia-smi topo -m` prints it, with cdigen's assignment marked."""
    from rich.console import Console
    from rich.table import Table, box

    cols = [g["name"] for g in report["gpus"]] + [n["name"] for n in report["nics"]]
    assigned = {(g["name"], n) for g in report["gpus"] for n in g["nics"]}
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("")
    for c in cols:
        table.add_column(c, justify="center")
    table.add_column("NUMA", justify="center")
    for row in report["gpus"] + report["nics"]:
        r = row["name"]
        cells = [report["matrix"][r][c] + ("*" if (r, c) in assigned or (c, r) in assigned else "")
                 for c in cols]
        numa = row["numaNode"]
        table.add_row(r, *cells, "N/A" if numa is None else str(numa))
    console = Console(highlight=False)
    if not console.is_terminal:  # a pipe or file: never fold the matrix into unreadable columns
        natural = console.width
        console.width = 10_000
        console.width = max(natural, console.measure(table).maximum)
    console.print(table)
    console.print("Legend:\n")
    for key, text in LEGEND:
        console.print(f"  {key:<4} = {text}")
    console.print(f"  *    = NIC assigned to this GPU by `cdigen scan --nic-affinity "
                  f"{report['nicAffinity'].lower()}`\n")
    console.print("GPU Legend:\n")
    for g in report["gpus"]:
        where = f"/dev/nvidia{g['minor']}" if g["minor"] is not None else f"no nvidia driver (driver: {g['driver'] or 'none'})"
        console.print(f"  {g['name']}: {g['pciAddress']} {where}")
    if report["nics"]:
        console.print("\nNIC Legend:\n")
    for n in report["nics"]:
        netdev_names = [d["name"] for d in n["netdevs"]]
        label = nic_label(n["rdma"], netdev_names, n["pciAddress"])
        netdevs = ",".join(netdev_names) or "no netdev"
        vfs = f", {len(n['vfs'])} VFs" if n["vfs"] else ""
        console.print(f"  {n['name']}: {label} ({n['pciAddress']}, {netdevs}{vfs})")
