"""`cdigen scan` (host topology -> CDI spec) and `cdigen topo` (the GPU/NIC matrix).

Thin: parse options, call discover/build, render. Heavy modules (ruamel.yaml, rich) are
imported inside the commands.
"""

import enum
import os
import sys
from typing import Annotated, Optional

import typer

from cdigen.cli import app


class Format(str, enum.Enum):
    yaml = "yaml"
    json = "json"


class Affinity(str, enum.Enum):
    pix = "pix"
    pxb = "pxb"
    phb = "phb"
    node = "node"
    sys = "sys"


class NameStrategy(str, enum.Enum):
    index = "index"
    uuid = "uuid"
    pci = "pci"


ROOT_HELP = "Host root to read sys/ and proc/ from (a fake tree for tests)."
EXAMPLE_HELP = "Scan a topology shipped with cdigen instead of the host (hgx-h100, hgx-h100-roce, " \
               "workstation, switch-pair, cascade, cloud-vm, sriov, no-driver)."
AFFINITY_HELP = "Farthest GPU-NIC relation that may pair them: pix, pxb (default: same PCIe switch " \
                "hierarchy), phb (same host bridge), node (same NUMA node), sys (anywhere)."
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


def _warn(warnings, prefix: str = "") -> None:
    for w in warnings:
        sys.stderr.write(f"cdigen: warning: {prefix}{w.path}: {w.reason}\n")


def _discover(root: str, example: Optional[str]):
    """(topology, prefix for warning paths). An example is built into a temp dir first."""
    from cdigen.topology.discover import discover

    if example is None:
        return discover(root), root.rstrip("/")
    import tempfile

    from cdigen.examples import build_example

    # A throw-away tree of ~1000 small files: in memory where possible (20 ms, vs 0.5 s on disk here).
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="cdigen-example-", dir=shm) as tmp:
        build_example(example, tmp)
        return discover(tmp), f"<example {example}>"


def _load_netdev_config(path: str) -> dict[str, dict]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    from cdigen import netconf
    from cdigen.errors import InvalidInput

    try:
        with open(path, encoding="utf-8") as f:
            data = YAML(typ="safe", pure=True).load(f)
    except OSError as e:
        raise InvalidInput(f"--netdev-config {path}: {e.strerror}") from None
    except (YAMLError, UnicodeDecodeError) as e:
        raise InvalidInput(f"--netdev-config {path}: not YAML: {str(e).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput(f"--netdev-config {path}: expected a mapping of host interface -> settings")
    out = {}
    for host, entry in data.items():
        entry = {} if entry is None else entry
        if not isinstance(host, str) or not isinstance(entry, dict):
            raise InvalidInput(f"--netdev-config {path}: {host!r}: expected a mapping of settings")
        unknown = set(entry) - {"name", "address", "mask", "mtu"}
        if unknown:
            raise InvalidInput(f"--netdev-config {path}: {host}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        entry = {k: str(v) if k == "address" and v is not None else v for k, v in entry.items()}
        try:
            netconf.make(host, **entry)
        except netconf.NetConfError as e:
            raise InvalidInput(f"--netdev-config {path}: {e}") from None
        out[host] = entry
    return out


@app.command()
def scan(
    root: Annotated[str, typer.Option(help=ROOT_HELP)] = "/",
    example: Annotated[Optional[str], typer.Option(help=EXAMPLE_HELP)] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="Write the spec here (atomically, mode 0644); - = stdout.")] = "-",
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.yaml,
    vendor: Annotated[str, typer.Option(help="CDI vendor of the kind.")] = "cdigen.io",
    cls: Annotated[str, typer.Option("--class", help="CDI class of the kind.")] = "gpu",
    device_name_strategy: Annotated[Optional[list[NameStrategy]], typer.Option(
        help="Device names: index (gpu0, by /dev/nvidia minor), uuid (GPU-...), pci (0000:13:00.0). "
             "Repeat to get each GPU under several names.  [default: index]")] = None,
    nic_affinity: Annotated[Affinity, typer.Option(help=AFFINITY_HELP)] = Affinity.pxb,
    netdev_config: Annotated[Optional[str], typer.Option(help=NETDEV_CONFIG_HELP, metavar="FILE")] = None,
    netdev_name: Annotated[Optional[str], typer.Option(
        help="Container interface name template, e.g. 'net{index}': {index} numbers all netdevs "
             "of the spec (required, so names never collide), {gpu} is the GPU's minor. "
             "Default: keep the host name.", metavar="TEMPLATE")] = None,
    hook_path: Annotated[Optional[str], typer.Option(
        help="Absolute path of the cdigen executable the hook entries run. Default: this one.")] = None,
) -> None:
    """Scan the host's GPUs and RDMA NICs and write a CDI spec: one device per GPU carrying its nearest NICs (RDMA char devices, netdevs, their settings and the hook that applies them)."""
    from cdigen import hookentry
    from cdigen.cdi.build import BuildOptions, build_spec, render
    from cdigen.topology.affinity import Link

    if hook_path is None:
        hook_path = hookentry.default_hook_path()
    config = _load_netdev_config(netdev_config) if netdev_config else {}
    topo, prefix = _discover(root, example)
    _warn(topo.warnings, prefix)
    opts = BuildOptions(hook_path=hook_path, vendor=vendor, cls=cls,
                        name_strategies=tuple(s.value for s in device_name_strategy or [NameStrategy.index]),
                        nic_affinity=Link[nic_affinity.value.upper()], netdev_config=config,
                        netdev_config_path=netdev_config or "", netdev_name=netdev_name)
    spec, warnings = build_spec(topo, opts)
    _warn(warnings)
    data = render(spec, fmt.value)
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        from cdigen.files import atomic_write

        atomic_write(output, data, 0o644)


def topo_report(topo, limit) -> dict:
    """The matrix and assignment as plain data (what `topo --json` prints)."""
    from cdigen.cdi.build import assignment
    from cdigen.topology.affinity import classify

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


def _print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table, box

    from cdigen.topology.affinity import LEGEND

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
        label = ",".join(n["rdma"]) or ",".join(d["name"] for d in n["netdevs"])
        netdevs = ",".join(d["name"] for d in n["netdevs"]) or "no netdev"
        vfs = f", {len(n['vfs'])} VFs" if n["vfs"] else ""
        console.print(f"  {n['name']}: {label} ({n['pciAddress']}, {netdevs}{vfs})")


@app.command()
def topo(
    root: Annotated[str, typer.Option(help=ROOT_HELP)] = "/",
    example: Annotated[Optional[str], typer.Option(help=EXAMPLE_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the matrix and assignment as JSON.")] = False,
    nic_affinity: Annotated[Affinity, typer.Option(help=AFFINITY_HELP)] = Affinity.pxb,
) -> None:
    """Show how GPUs and NICs are connected, like `nvidia-smi topo -m`, and which NICs `cdigen scan` gives to each GPU."""
    from cdigen.topology.affinity import Link

    topology, prefix = _discover(root, example)
    _warn(topology.warnings, prefix)
    report = topo_report(topology, Link[nic_affinity.value.upper()])
    if as_json:
        import json

        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        _print_table(report)
