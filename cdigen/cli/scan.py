"""`cdigen scan` (host topology -> CDI spec) and `cdigen topo` (the GPU/NIC matrix).

Thin: parse options, call the scan stage (cdigen/scan/), render. Heavy modules (ruamel.yaml,
rich) are imported inside the commands.
"""

import enum
import sys
from typing import Annotated

import typer

from cdigen.cli import target_version
from cdigen.cli.app import app
from cdigen.scan import DEFAULT_CDI_VERSION, DEFAULT_CLASS, DEFAULT_VENDOR, FORMATS, NAME_STRATEGIES
from cdigen.scan.affinity import Affinity


def _choices(name: str, values) -> type[enum.Enum]:
    """typer takes choices as a str Enum: one made from the library's own values, so that the
    CLI never keeps a copy of them."""
    return enum.Enum(name, {v: v for v in values}, type=str)


AffinityChoice = _choices("AffinityChoice", (a.name.lower() for a in Affinity if a is not Affinity.X))
FormatChoice = _choices("FormatChoice", FORMATS)
NameStrategyChoice = _choices("NameStrategyChoice", NAME_STRATEGIES)

ROOT_HELP = "Host root to read sys/ and proc/ from (a fake tree for tests)."
EXAMPLE_HELP = (
    "Scan a topology shipped with cdigen instead of the host (hgx-h100, hgx-h100-roce, "
    "workstation, switch-pair, cascade, cloud-vm, sriov, no-driver)."
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

AffinityOption = Annotated[AffinityChoice, typer.Option(help=AFFINITY_HELP)]


def _warn(warnings, prefix: str = "") -> None:
    for w in warnings:
        sys.stderr.write(f"cdigen: warning: {prefix}{w.path}: {w.reason}\n")


def _discover(root: str, example: str | None):
    """(topology, prefix for warning paths)."""
    from cdigen.scan import sysfs

    if example is None:
        return sysfs.discover(root), root.rstrip("/")
    return sysfs.discover_example(example), f"<example {example}>"


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
) -> None:
    from cdigen import hookentry
    from cdigen.scan.build import BuildOptions, build_spec, render

    if hook_path is None:
        hook_path = hookentry.default_hook_path()
    config = _netdev_config(netdev_config) if netdev_config else {}
    topo, prefix = _discover(root, example)
    _warn(topo.warnings, prefix)
    opts = BuildOptions(
        hook_path=hook_path,
        vendor=vendor,
        cls=cls,
        name_strategies=tuple(s.value for s in device_name_strategy or []) or NAME_STRATEGIES[:1],
        nic_affinity=Affinity[nic_affinity.value.upper()],
        netdev_config=config,
        netdev_config_path=netdev_config or "",
        netdev_name=netdev_name,
        cdi_version=target_version(cdi_version, for_engine) or DEFAULT_CDI_VERSION,
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
) -> None:
    from cdigen.scan.report import topo_report

    topology, prefix = _discover(root, example)
    _warn(topology.warnings, prefix)
    report = topo_report(topology, Affinity[nic_affinity.value.upper()])
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
    console.print(
        f"  *    = NIC assigned to this GPU by `cdigen scan --nic-affinity {report['nicAffinity'].lower()}`\n"
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
