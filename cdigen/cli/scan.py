"""`cdigen scan` (host topology -> CDI spec) and `cdigen topo` (the GPU/NIC matrix).

Thin: parse options, call the scan stage (cdigen/scan/), render. Heavy modules (ruamel.yaml,
rich) are imported inside the commands.
"""

import contextlib
import enum
import sys
from typing import Annotated

import typer

from cdigen.cli import OPTION_NAMES, target_version
from cdigen.cli.app import app
from cdigen.errors import BadArgument, UsageError
from cdigen.scan import DEFAULT_CDI_VERSION, DEFAULT_CLASS, DEFAULT_VENDOR, FORMATS, MODES, NAME_STRATEGIES
from cdigen.scan.affinity import Affinity


def _choices(name: str, values) -> type[enum.Enum]:
    """typer takes choices as a str Enum: one made from the library's own values, so that the
    CLI never keeps a copy of them."""
    return enum.Enum(name, {v: v for v in values}, type=str)


AffinityChoice = _choices("AffinityChoice", (a.name.lower() for a in Affinity if a is not Affinity.X))
FormatChoice = _choices("FormatChoice", FORMATS)
NameStrategyChoice = _choices("NameStrategyChoice", NAME_STRATEGIES)
ModeChoice = _choices("ModeChoice", MODES)

ROOT_HELP = "Host root to read sys/ and proc/ from (a fake tree for tests)."
EXAMPLE_HELP = (
    "Scan a topology shipped with cdigen instead of the host (hgx-h100, hgx-h100-driver, hgx-h100-roce, "
    "workstation, switch-pair, cascade, cloud-vm, sriov, no-driver, dual-port, node-only, "
    "vpi-ports, nic-switch, sriov-vfio, vfio-gpu)."
)
AFFINITY_HELP = (
    "Farthest GPU-NIC relation that may pair them: pix, pxb (default: same PCIe switch "
    "hierarchy), phb (same host bridge), node (same NUMA node), sys (anywhere)."
)
NETDEV_CONFIG_HELP = """YAML file: host interface -> settings applied inside the container.
Example:

\b
  ibp20s0: {name: net0, address: 192.0.2.10/24, mtu: 4092}
  ibp22s0:
    address: 192.0.2.11
    mask: 255.255.255.0

Keys (all optional): name (container interface name), address (IPv4/IPv6, plain or CIDR),
mask (dotted IPv4 mask or prefix length), mtu. It overrides the sysfs MTU and the default
name. Interfaces not on the host or not assigned to a GPU are warned about and ignored."""

MODE_HELP = (
    "container: devices for containers (GPUs on the nvidia driver with their NICs' netdevs and RDMA nodes). "
    "vm: only the GPUs and NICs bound to vfio-pci, as VFIO devices for a VM runtime such as Kata "
    "(vfio-gpu<k> with its nearest VFIO NICs, vfio-nic<k>, all; /dev/vfio nodes, PCI addresses)."
)
SPLIT_PORTS_HELP = (
    "Hand out the ports (PCI functions) of a multi-port adapter one by one, so that they may go "
    "to different GPUs. Default: all ports of an adapter go to the same GPU."
)

AffinityOption = Annotated[AffinityChoice, typer.Option(help=AFFINITY_HELP)]
SplitPortsOption = Annotated[bool, typer.Option("--split-ports", help=SPLIT_PORTS_HELP)]
# What to read next, after a warning about an option's value.
SEE_ALSO = {"nic_affinity": "`cdigen topo` shows every pair"}


def _warn(warnings, prefix: str = "") -> None:
    """One stderr line per warning: a file's path (below `prefix`, the scanned root), or an
    option and its value, then the reason."""
    for w in warnings:
        if w.argument is None:
            sys.stderr.write(f"cdigen: warning: {prefix}{w.path}: {w.reason}\n")
            continue
        option = OPTION_NAMES.get(w.argument, w.argument)
        see = f" ({SEE_ALSO[w.argument]})" if w.argument in SEE_ALSO else ""
        sys.stderr.write(f"cdigen: warning: {option}{' ' + w.path if w.path else ''}: {w.reason}{see}\n")


def _discover(
    root: str, example: str | None, driver_root: str | None = None, driver_files: bool = True, vm: bool = False
):
    """(topology with its driver files and GPUDirect facts, prefix for warning paths). The
    warnings are printed here. An example looks for driver files only where it describes a
    driver; its tree is shown as / in the spec's host paths. `vm`: only the VFIO functions
    matter (no driver files, no GPUDirect facts, no warning about a GPU on vfio-pci)."""
    from cdigen.scan import sysfs

    if vm:
        from cdigen.examples import example_tree

        with example_tree(example) if example else contextlib.nullcontext(root) as tree:
            topo = sysfs.discover(tree)
        prefix = f"<example {example}>" if example else root.rstrip("/")
        on_vfio = {f"/sys/bus/pci/devices/{f.bdf}" for f in topo.vfio}
        _warn([w for w in topo.warnings if w.path not in on_vfio], prefix)
        return topo, prefix
    if example is None:
        topo, prefix = sysfs.discover(root), root.rstrip("/")
        _warn(topo.warnings, prefix)
        _gpu_side(topo, root, prefix, driver_root if driver_files else None, driver_files, None)
        return topo, prefix
    if driver_root is not None:
        raise BadArgument("driver_root", "not with --example (an example is its own driver root)")
    from cdigen.examples import describes_driver, example_tree

    prefix = f"<example {example}>"
    with example_tree(example) as tree:
        topo = sysfs.discover(tree)
        _warn(topo.warnings, prefix)
        _gpu_side(topo, tree, prefix, tree, driver_files and describes_driver(example), "/")
    return topo, prefix


def _gpu_side(topo, root: str, prefix: str, driver_root, driver_files: bool, host_prefix) -> None:
    """The driver files (unless not wanted) and the GPUDirect facts of a host with GPUs."""
    if not topo.usable_gpus:
        return
    from cdigen.scan.driver import discover_driver
    from cdigen.scan.gpudirect import discover_gpudirect

    if driver_files:
        label = prefix if host_prefix else None
        topo.driver, warnings = discover_driver(root, driver_root, host_prefix, label)
        _warn(warnings)
    topo.gpudirect, warnings = discover_gpudirect(root, topo, driver_root, host_prefix)
    _warn(warnings, prefix)


def _netdev_config(path: str) -> dict[str, dict]:
    from cdigen.errors import InvalidInput
    from cdigen.scan.netdev_config import load_netdev_config

    try:
        return load_netdev_config(path)
    except InvalidInput as e:
        raise InvalidInput(f"--netdev-config {path}: {e}") from None


@app.command(
    help="Scan the host's GPUs and RDMA NICs and write a CDI spec: one device per GPU carrying its nearest "
    "NICs (RDMA char devices, netdevs, their settings and the hook that applies them)."
)
def scan(
    root: Annotated[str, typer.Option(help=ROOT_HELP)] = "/",
    example: Annotated[str | None, typer.Option(help=EXAMPLE_HELP)] = None,
    output: Annotated[
        str, typer.Option("--output", "-o", help="Write the spec here (atomically, mode 0644); - = stdout.")
    ] = "-",
    fmt: Annotated[FormatChoice, typer.Option("--format", help="Output format.")] = FORMATS[0],
    vendor: Annotated[str, typer.Option(help="CDI vendor of the kind.")] = DEFAULT_VENDOR,
    cls: Annotated[str, typer.Option("--class", help="CDI class of the kind.")] = DEFAULT_CLASS,
    device_name_strategy: Annotated[
        list[NameStrategyChoice] | None,
        typer.Option(
            help="Device names: index (gpu0, by /dev/nvidia minor), uuid (GPU-...), pci (0000:13:00.0). "
            "Repeat to get each GPU under several names.  [default: index]"
        ),
    ] = None,
    nic_affinity: AffinityOption = "pxb",
    split_ports: SplitPortsOption = False,
    netdev_config: Annotated[str | None, typer.Option(help=NETDEV_CONFIG_HELP, metavar="FILE")] = None,
    netdev_name: Annotated[
        str | None,
        typer.Option(
            help="Container interface name template, e.g. 'net{index}': {index} numbers all netdevs "
            "of the spec (required, so names never collide), {gpu} is the GPU's minor. "
            "Default: keep the host name.",
            metavar="TEMPLATE",
        ),
    ] = None,
    hook_path: Annotated[
        str | None, typer.Option(help="Absolute path of the cdigen executable the hook entries run. Default: this one.")
    ] = None,
    cdi_version: Annotated[
        str | None,
        typer.Option(
            "--cdi-version",
            metavar="V",
            help="Write for CDI loaders of version V: only the fields V knows (device annotations from 0.6.0, "
            "netDevices from 1.1.0; the hook arguments always carry the netdev settings). "
            f"[default: {DEFAULT_CDI_VERSION}, which every engine release with CDI loads]",
        ),
    ] = None,
    for_engine: Annotated[
        str | None,
        typer.Option(
            "--for",
            metavar="ENGINE-VERSION",
            help="Write for that engine release and later ones: podman-4, podman-5.5, containerd-1.7, "
            "containerd-2.2.1, docker-28, crio-1.35, nerdctl-2.2.1, or any (the default).",
        ),
    ] = None,
    driver_root: Annotated[
        str | None,
        typer.Option(
            metavar="DIR",
            help="Where the NVIDIA driver's userspace is (a driver container's root, such as "
            "/run/nvidia/driver); its files are mounted from there. [default: --root]",
        ),
    ] = None,
    no_driver_files: Annotated[
        bool,
        typer.Option(
            "--no-driver-files",
            help="Leave the driver's libraries, programs, firmware and sockets out of the spec "
            "(another spec, such as nvidia-ctk's, brings them).",
        ),
    ] = False,
    mode: Annotated[ModeChoice, typer.Option(help=MODE_HELP)] = MODES[0],
    nic_only: Annotated[
        bool,
        typer.Option(
            "--nic-only",
            help="Only the NICs, in devices named after their GPUs: no GPU nodes, driver files or GPUDirect "
            "devices. For hosts whose GPUs come from nvidia-ctk's spec; request both devices.",
        ),
    ] = False,
) -> None:
    from cdigen import hookentry
    from cdigen.scan.build import BuildOptions, build_spec, render

    if hook_path is None:
        hook_path = hookentry.default_hook_path()
    config = _netdev_config(netdev_config) if netdev_config else {}
    if nic_only and driver_root is not None:
        raise UsageError("--nic-only and --driver-root: a NIC-only spec has no driver files")
    vm = mode.value == "vm"
    if vm:
        given = [
            name
            for name, value in (
                ("--nic-only", nic_only),
                ("--driver-root", driver_root is not None),
                ("--no-driver-files", no_driver_files),
                ("--netdev-config", netdev_config is not None),
                ("--netdev-name", netdev_name is not None),
            )
            if value
        ]
        if given:
            raise UsageError(f"--mode vm and {given[0]}: a VFIO function has no netdev and the spec no driver files")
    topo, _prefix = _discover(root, example, driver_root, not (no_driver_files or nic_only), vm)
    opts = BuildOptions(
        hook_path=hook_path,
        vendor=vendor,
        cls=cls,
        name_strategies=tuple(s.value for s in device_name_strategy or []) or NAME_STRATEGIES[:1],
        nic_affinity=Affinity[nic_affinity.value.upper()],
        split_ports=split_ports,
        netdev_config=config,
        netdev_config_path=netdev_config or "",
        netdev_name=netdev_name,
        cdi_version=target_version(cdi_version, for_engine) or DEFAULT_CDI_VERSION,
        nic_only=nic_only,
        mode=mode.value,
    )
    spec, warnings = build_spec(topo, opts)
    _warn(warnings)
    data = render(spec, fmt.value)
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        from cdigen.files import atomic_write

        atomic_write(output, data, 0o644)


@app.command(
    help="Show how GPUs and NICs are connected, like `nvidia-smi topo -m`, and which NICs `cdigen scan` "
    "gives to each GPU."
)
def topo(
    root: Annotated[str, typer.Option(help=ROOT_HELP)] = "/",
    example: Annotated[str | None, typer.Option(help=EXAMPLE_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the matrix and assignment as JSON.")] = False,
    nic_affinity: AffinityOption = "pxb",
    split_ports: SplitPortsOption = False,
) -> None:
    from cdigen.scan.gpudirect import report_section
    from cdigen.scan.report import topo_report

    topology, _prefix = _discover(root, example, driver_files=False)
    report = topo_report(topology, Affinity[nic_affinity.value.upper()], split_ports)
    report["gpudirectRdma"] = report_section(topology, report)
    if as_json:
        import json

        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        _print_table(report)


def _print_table(report: dict) -> None:
    """The report as `nvidia-smi topo -m` prints it, with cdigen's assignment marked."""
    from rich.console import Console
    from rich.table import Table, box

    from cdigen.scan.affinity import LEGEND
    from cdigen.scan.model import nic_label

    cols = [g["name"] for g in report["gpus"]] + [n["name"] for n in report["nics"]]
    assigned = {(g["name"], n) for g in report["gpus"] for n in g["nics"]}
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("")
    for c in cols:
        table.add_column(c, justify="center")
    table.add_column("NUMA", justify="center")
    for row in report["gpus"] + report["nics"]:
        r = row["name"]
        cells = [report["matrix"][r][c] + ("*" if (r, c) in assigned or (c, r) in assigned else "") for c in cols]
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
    split = " --split-ports" if report["splitPorts"] else ""
    console.print(
        f"  *    = NIC assigned to this GPU by `cdigen scan --nic-affinity {report['nicAffinity'].lower()}{split}`\n"
    )
    console.print("GPU Legend:\n")
    for g in report["gpus"]:
        where = (
            f"/dev/nvidia{g['minor']}"
            if g["minor"] is not None
            else f"no nvidia driver (driver: {g['driver'] or 'none'})"
        )
        console.print(f"  {g['name']}: {g['pciAddress']} {where}")
    if report["nics"]:
        console.print("\nNIC Legend:\n")
    for n in report["nics"]:
        netdev_names = [d["name"] for d in n["netdevs"]]
        label = nic_label(n["rdma"], netdev_names, n["pciAddress"])
        netdevs = ",".join(netdev_names) or "no netdev"
        vfs = f", {len(n['vfs'])} VFs" if n["vfs"] else ""
        console.print(f"  {n['name']}: {label} ({n['pciAddress']}, {netdevs}{vfs})")
    numbers = sorted(int(n["name"][3:]) for n in report["nics"])
    if numbers != list(range(len(numbers))) or any(n["vfs"] or len(n["rdma"]) > 1 for n in report["nics"]):
        console.print("  (numbers as nvidia-smi's; VFs and a NIC's extra RDMA devices are not shown)")
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
    console.print(f"\nGPUDirect RDMA ({way}); yes = peer-to-peer below the CPU, cpu = through the root complex:\n")
    for g, n in pairs:
        verdict = gd["matrix"].get(g, {}).get(n, "no")
        note = gd["notes"].get(f"{g}-{n}")
        console.print(f"  {g} - {n}: {verdict}" + (f" ({note})" if note else ""))
