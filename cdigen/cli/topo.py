"""`cdigen topo`: the GPU/NIC matrix as `nvidia-smi topo -m` prints it, under the names
`--device` takes, with the NICs `cdigen scan` gives to each GPU.

Thin: discover (as scan does, without driver files), build the report (cdigen/scan/report.py),
render it. rich is imported inside the command.
"""

import sys
from typing import Annotated

import typer

from cdigen.cli.app import app
from cdigen.cli.scan import EXAMPLE_HELP, ROOT_HELP, AffinityOption, NcclTopoOption, SplitPortsOption, _discover
from cdigen.scan.affinity import Affinity

TOPO_HELP = (
    "Show how GPUs and NICs are connected, like `nvidia-smi topo -m` (SR-IOV VFs with an RDMA device "
    "included), and which NICs `cdigen scan` gives to each GPU. GPUs are named as `--device` takes them "
    "(gpuN, N = the /dev/nvidiaN minor), nvidia-smi's index beside. Exit code 4 on a host without an "
    "NVIDIA GPU."
)
# build.py's message for a host without any NVIDIA GPU: topo and scan say the same.
FROM_FILE = "~"  # the mark of a class that the NCCL topology file decided


@app.command(help=TOPO_HELP)
def topo(
    root: Annotated[str, typer.Option(help=ROOT_HELP)] = "/",
    example: Annotated[str | None, typer.Option(help=EXAMPLE_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the matrix and assignment as JSON.")] = False,
    nic_affinity: AffinityOption = "pxb",
    split_ports: SplitPortsOption = False,
    nccl_topo: NcclTopoOption = None,
) -> None:
    from cdigen.scan.build import no_gpu
    from cdigen.scan.gpudirect import report_section
    from cdigen.scan.report import topo_report

    topology, _prefix = _discover(root, example, driver_files=False, nccl_topo=nccl_topo)
    if not topology.gpus:  # GPUs without a driver still get a matrix: they may be for VMs
        raise no_gpu(topology)
    report = topo_report(topology, Affinity[nic_affinity.value.upper()], split_ports)
    report["gpudirectRdma"] = report_section(topology, report)
    if as_json:
        import json

        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        _print_table(report)


def _row_label(gpu: dict) -> str:
    index = gpu["nvidiaSmiIndex"]
    return gpu["name"] if index is None else f"{gpu['name']} (GPU{index})"


def _print_table(report: dict) -> None:
    """The report as `nvidia-smi topo -m` prints it, with cdigen's names and assignment."""
    from rich.console import Console
    from rich.table import Table, box

    from cdigen.scan import DEFAULT_CLASS, DEFAULT_VENDOR
    from cdigen.scan.affinity import LEGEND
    from cdigen.scan.model import nic_label

    cols = [g["name"] for g in report["gpus"]] + [n["name"] for n in report["nics"]]
    assigned = {(g["name"], n) for g in report["gpus"] for n in g["nics"]}
    nccl = report.get("ncclTopoFile")
    from_file = {(r, c) for r, cs in nccl["decided"].items() for c in cs} if nccl else set()
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("")
    for c in cols:
        table.add_column(c, justify="center")
    table.add_column("NUMA", justify="center")
    labels = {g["name"]: _row_label(g) for g in report["gpus"]}
    for row in report["gpus"] + report["nics"]:
        r = row["name"]
        cells = [
            report["matrix"][r][c]
            + (FROM_FILE if (r, c) in from_file else "")
            + ("*" if (r, c) in assigned or (c, r) in assigned else "")
            for c in cols
        ]
        numa = row["numaNode"]
        table.add_row(labels.get(r, r), *cells, "N/A" if numa is None else str(numa))
    console = Console(highlight=False)
    if not console.is_terminal:  # a pipe or file: never fold the matrix into unreadable columns
        natural = console.width
        console.width = 10_000
        console.width = max(natural, console.measure(table).maximum)
    console.print(table)
    console.print("Legend:\n")
    for key, text in LEGEND:
        _print_wrapped(console, f"  {key:<4} = {text}", 9)
    split = " --split-ports" if report["splitPorts"] else ""
    console.print(
        f"  *    = NIC assigned to this GPU by `cdigen scan --nic-affinity {report['nicAffinity'].lower()}{split}`"
    )
    if nccl:
        _print_wrapped(
            console,
            f"  {FROM_FILE}    = class from the NCCL topology file {nccl['path']} (sysfs says only NODE or SYS)",
            9,
        )
    console.print()
    console.print("GPU Legend:\n")
    for g in report["gpus"]:
        if g["device"] is None:
            console.print(f"  {_row_label(g)}: no nvidia driver (driver: {g['driver'] or 'none'}), no device name")
        else:
            console.print(f"  {_row_label(g)}: {g['pciAddress']} /dev/nvidia{g['minor']}")
    named = [g["device"] for g in report["gpus"] if g["device"]]
    example = f", as in --device {DEFAULT_VENDOR}/{DEFAULT_CLASS}={named[0]}" if named else ""
    _print_wrapped(
        console,
        f"  gpuN = the device name `cdigen scan` writes (N: the /dev/nvidiaN minor){example}; "
        "GPUk = nvidia-smi's index (by PCI address)",
        9,
    )
    if report["nics"]:
        console.print("\nNIC Legend:\n")
    nic_names = {n["pciAddress"]: n["name"] for n in report["nics"]}
    for n in report["nics"]:
        netdev_names = [d["name"] for d in n["netdevs"]]
        label = nic_label(n["rdma"], netdev_names, n["pciAddress"])
        netdevs = ",".join(netdev_names) or "no netdev"
        vfs = f", {len(n['vfs'])} VF{'s' if len(n['vfs']) > 1 else ''}" if n["vfs"] else ""
        pf = f"; VF of {nic_names.get(n['physfn'], n['physfn'])}" if n["physfn"] else ""
        console.print(f"  {n['name']}: {label} ({n['pciAddress']}, {netdevs}{vfs}{pf})")
    if any(n["physfn"] for n in report["nics"]):
        _print_wrapped(
            console, "  (a VF is never assigned: it stays with its PF's user, such as an SR-IOV device plugin)", 3
        )
    if any(len(n["rdma"]) > 1 for n in report["nics"]):
        console.print("  (numbers as nvidia-smi's; a NIC's extra RDMA devices get no column of their own)")
    if report["otherNics"]:
        console.print("\nWithout RDMA (not in nvidia-smi's matrix, never assigned):\n")
    for n in report["otherNics"]:
        netdevs = ",".join(d["name"] for d in n["netdevs"]) or "no netdev"
        console.print(f"  {n['pciAddress']} ({netdevs})")
    _print_gpudirect(console, report)


def _print_gpudirect(console, report: dict) -> None:
    """GPUDirect RDMA: the way in, and the verdict of each assigned pair (docs/gpu.md)."""
    gd = report.get("gpudirectRdma")
    pairs = [(g["name"], n) for g in report["gpus"] for n in g["nics"]]
    if not gd or not pairs:
        return
    if gd["peermem"]:
        way = "nvidia_peermem loaded"
    elif gd["dmabuf"]:
        way = "DMA-BUF (open kernel module)"
    else:
        way = "neither nvidia_peermem nor DMA-BUF: NICs reach GPU memory only through host memory"
    console.print()
    _print_wrapped(
        console, f"GPUDirect RDMA ({way}); yes = peer-to-peer below the CPU, cpu = through the root complex:", 2
    )
    console.print()
    for g, n in pairs:
        verdict = gd["matrix"].get(g, {}).get(n, "no")
        note = gd["notes"].get(f"{g}-{n}")
        console.print(f"  {g} - {n}: {verdict}" + (f" ({note})" if note else ""))


def _print_wrapped(console, text: str, indent: int) -> None:
    """A legend line folded to the console's width, its continuation lines indented under
    its text (rich would start them at column 0)."""
    import textwrap

    console.print(textwrap.fill(text, max(console.width, 40), subsequent_indent=" " * indent), soft_wrap=True)
