"""`cdigen scan` (host topology -> CDI spec); the discovery and options it shares with
`cdigen topo` (cli/topo.py).

Thin: parse options, call the scan stage (cdigen/scan/), render. Heavy modules (ruamel.yaml)
are imported inside the commands.
"""

import contextlib
import enum
import os
import sys
from typing import Annotated

import typer

from cdigen.cdi.consumers import targets_help
from cdigen.cli import OPTION_NAMES, target_version
from cdigen.cli.app import app
from cdigen.errors import BadArgument, CdigenError, UsageError
from cdigen.examples import EXAMPLES
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
EXAMPLE_HELP = f"Scan a topology shipped with cdigen instead of the host ({', '.join(EXAMPLES)})."
# Each option's help is a line or two at 80 columns; the long story is in docs/.
AFFINITY_HELP = (
    "Farthest GPU-NIC relation that may pair them: pix, pxb (same PCIe switch tree), phb (same host "
    "bridge), node (same NUMA node), sys (any)."
)
NETDEV_CONFIG_HELP = (
    "YAML: host interface -> its name, address, mask and MTU in the container (docs/netdev.md, "
    "'The --netdev-config file')."
)
MODE_HELP = (
    "container: GPUs on the nvidia driver with their NICs; vm: only the GPUs and NICs bound to vfio-pci, "
    "for a VM runtime such as Kata (docs/vm.md)."
)
SPLIT_PORTS_HELP = "Let the ports of a multi-port adapter go to different GPUs. Default: all to one GPU."
NCCL_TOPO_HELP = (
    "NCCL topology file: which GPU and NIC share a PCIe switch where sysfs cannot tell (flat cloud VMs, "
    "docs/topology.md). Default: NCCL_TOPO_FILE in /etc/nccl.conf under --root."
)

AffinityOption = Annotated[AffinityChoice, typer.Option(help=AFFINITY_HELP)]
SplitPortsOption = Annotated[bool, typer.Option("--split-ports", help=SPLIT_PORTS_HELP)]
NcclTopoOption = Annotated[str | None, typer.Option(metavar="FILE", help=NCCL_TOPO_HELP)]
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
    root: str,
    example: str | None,
    driver_root: str | None = None,
    driver_files: bool = True,
    vm: bool = False,
    nccl_topo: str | None = None,
):
    """(topology with its driver files and GPUDirect facts, prefix for warning paths). The
    warnings are printed here. An example looks for driver files only where it describes a
    driver; its tree is shown as / in the spec's host paths. `vm`: only the VFIO functions
    matter (no driver files, no GPUDirect facts, no warning about a GPU on vfio-pci)."""
    from cdigen.scan import sysfs

    if vm:
        from cdigen.examples import example_tree

        with example_tree(example) if example else contextlib.nullcontext(root) as tree:
            topo = sysfs.discover(tree, nccl_topo)
        prefix = f"<example {example}>" if example else root.rstrip("/")
        on_vfio = {f"/sys/bus/pci/devices/{f.bdf}" for f in topo.vfio}
        _warn([w for w in topo.warnings if w.path not in on_vfio], prefix)
        return topo, prefix
    if example is None:
        topo, prefix = sysfs.discover(root, nccl_topo), root.rstrip("/")
        _warn(topo.warnings, prefix)
        _gpu_side(topo, root, prefix, driver_root if driver_files else None, driver_files, None)
        return topo, prefix
    if driver_root is not None:
        raise BadArgument("driver_root", "not with --example (an example is its own driver root)")
    from cdigen.examples import describes_driver, example_tree

    prefix = f"<example {example}>"
    with example_tree(example) as tree:
        topo = sysfs.discover(tree, nccl_topo, "/")
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
    root: Annotated[str, typer.Option(metavar="DIR", help=ROOT_HELP)] = "/",
    example: Annotated[str | None, typer.Option(metavar="NAME", help=EXAMPLE_HELP)] = None,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write the spec to FILE (atomically, mode 0644; a missing directory is made, 0755); - = stdout.",
        ),
    ] = "-",
    fmt: Annotated[FormatChoice, typer.Option("--format", help="Output format.")] = FORMATS[0],
    vendor: Annotated[str, typer.Option(metavar="NAME", help="CDI vendor of the kind.")] = DEFAULT_VENDOR,
    cls: Annotated[str, typer.Option("--class", metavar="NAME", help="CDI class of the kind.")] = DEFAULT_CLASS,
    device_name_strategy: Annotated[
        list[NameStrategyChoice] | None,
        typer.Option(
            help="Device names: index (gpu0, by /dev/nvidia minor), uuid (GPU-...), pci (0000:13:00.0); "
            "repeat for several names per GPU. Default: index."
        ),
    ] = None,
    nic_affinity: AffinityOption = "pxb",
    split_ports: SplitPortsOption = False,
    nccl_topo: NcclTopoOption = None,
    netdev_config: Annotated[str | None, typer.Option(help=NETDEV_CONFIG_HELP, metavar="FILE")] = None,
    netdev_name: Annotated[
        str | None,
        typer.Option(
            help="Container interface names: 'net{n}' numbers each container's NICs net0, net1...; {index} "
            "numbers all NICs of the spec, {gpu} is the GPU's minor (docs/netdev.md, 'Names'). "
            "Default: the host name.",
            metavar="TEMPLATE",
        ),
    ] = None,
    hook_path: Annotated[
        str | None,
        typer.Option(metavar="PATH", help="Absolute path of the cdigen that the hook entries run. Default: this one."),
    ] = None,
    cdi_version: Annotated[
        str | None,
        typer.Option(
            "--cdi-version",
            metavar="V",
            help="Write for CDI loaders of version V: only the fields V knows (docs/cdi-conformance.md). "
            f"Default: {DEFAULT_CDI_VERSION}, which every engine release with CDI loads.",
        ),
    ] = None,
    for_engine: Annotated[
        str | None,
        typer.Option(
            "--for",
            metavar="ENGINE-VERSION",
            help=f"Write for that engine release and later ones: {targets_help()}. Default: any.",
        ),
    ] = None,
    driver_root: Annotated[
        str | None,
        typer.Option(
            metavar="DIR",
            help="Where the NVIDIA driver's files are (a driver container's root, such as /run/nvidia/driver). "
            "Default: --root.",
        ),
    ] = None,
    no_driver_files: Annotated[
        bool,
        typer.Option(
            "--no-driver-files",
            help="Leave out the driver's libraries, programs, firmware and sockets (another spec, such as "
            "nvidia-ctk's, brings them).",
        ),
    ] = False,
    mode: Annotated[ModeChoice, typer.Option(help=MODE_HELP)] = MODES[0],
    nic_only: Annotated[
        bool,
        typer.Option(
            "--nic-only",
            help="Only the NICs, in devices named after their GPUs, for GPUs from nvidia-ctk's spec (request "
            "both devices).",
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
    topo, _prefix = _discover(root, example, driver_root, not (no_driver_files or nic_only), vm, nccl_topo)
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
        _write(output, data)


def _write(path: str, data: bytes) -> None:
    """The spec written atomically, mode 0644; a missing directory (/etc/cdi on a fresh host)
    made first, 0755 as the engines' own spec directories, whatever the umask."""
    from cdigen.files import atomic_write

    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        umask = os.umask(0o022)
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
        except OSError as e:  # FileExistsError: a file where a directory of the path should be
            reason = "Not a directory" if isinstance(e, FileExistsError) else e.strerror
            raise CdigenError(f"cannot write {path}: {directory}: {reason}") from None
        finally:
            os.umask(umask)
    atomic_write(path, data, 0o644)


# topo takes the options and discovery above: imported here, it finds them defined whichever of
# the two modules is imported first.
from cdigen.cli import topo as topo_command  # noqa: E402, F401 (registers topo)
