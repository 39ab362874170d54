"""The hook entries that point container runtimes at `cdigen hook`.

One shape for CDI specs (written by scan) and one for config.json (added by apply), so that
the hook finds the same arguments whichever injector put it there. Two entries each: the
createRuntime hook (`cdigen hook --netdev ... --ib/--roce ...`) puts the interfaces into the
container, the poststop hook (`cdigen hook --poststop --netdev ...`, same arguments) brings them
home. `container_nics` is the one reader of a container's entries: the hook numbers its NICs
with it, and NCCL's and UCX's variables (`library_variables`) name them in the same order.
"""

import os
import sys

from cdigen.argv import Command, Option, parse
from cdigen.errors import BadArgument, InvalidInput, UsageError
from cdigen.values import quoted, version_tuple

HOOK_NAME = "createRuntime"  # runs in the runtime's namespaces, after the container netns exists
POSTSTOP_HOOK_NAME = "poststop"  # runs after the container is deleted (its processes are gone)
POSTSTOP_FLAG = "--poststop"


def default_hook_path() -> str:
    """Absolute path of the installed `cdigen` executable (the console script of this
    interpreter's environment, else the first on PATH)."""
    beside = os.path.join(os.path.dirname(sys.executable), "cdigen")
    if os.access(beside, os.X_OK):
        return os.path.abspath(beside)
    import shutil  # not at module level: apply and the runtime shim import this module at every start

    found = shutil.which("cdigen")
    if found:
        return os.path.abspath(found)
    raise BadArgument("hook_path", "not given, and no cdigen executable beside this interpreter or on PATH")


def check_hook_path(path: str) -> str:
    if not os.path.isabs(path):
        raise BadArgument("hook_path", f"must be absolute (OCI requires it): {path!r}")
    return path


class HookArgsError(InvalidInput):
    """Arguments of a `cdigen hook` entry that `cdigen hook` would refuse."""


# The arguments of `cdigen hook` (those after `hook`), as hook_args writes them: the one table
# that cdigen.argv parses them with and cdigen/cli/hook.py's --help shows.
HOOK = Command(
    "hook",
    (
        Option(
            "--netdev",
            "HOSTIF=SETTINGS",
            "A host interface and its settings, SETTINGS as name=NAME,address=ADDR,mask=MASK,mtu=MTU (any of them).",
            repeated=True,
        ),
        Option(
            "--ib",
            "DEV:PORT",
            "An InfiniBand port of the interfaces' NICs (mlx5_0:1), for NCCL and UCX (docs/nccl.md).",
            repeated=True,
        ),
        Option("--roce", "DEV:PORT", "A RoCE port of the interfaces' NICs, likewise.", repeated=True),
        Option(POSTSTOP_FLAG, None, "Bring the interfaces home (the poststop hook entry)."),
    ),
)


def parse_hook_args(argv: list[str]) -> dict | None:
    """{"netdev": [...], "ib": [...], "roce": [...], "poststop": bool} of `cdigen hook`
    arguments (those after `hook`), values in order; None when help is asked for.
    HookArgsError for anything `cdigen hook` refuses but a `--netdev` value (netdev.parse_args
    reads those)."""
    try:
        parsed = parse(argv, HOOK)
    except UsageError as e:
        raise HookArgsError(str(e)) from None
    for flag in ("ib", "roce") if parsed else ():
        for value in parsed[flag]:
            check_rdma_port(value, f"--{flag}")
    return parsed


def parse_hook_argv(argv: list[str]) -> list[str] | None:
    """The `--netdev` values of `cdigen hook` arguments, in order; None when help is asked for."""
    parsed = parse_hook_args(argv)
    return None if parsed is None else parsed["netdev"]


_RDMA_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def check_rdma_port(value: str, flag: str) -> str:
    """`mlx5_0:1`: an RDMA device name (at most 63 letters, digits, '_', '.', '-'; it becomes
    part of a sysfs path and of comma-separated lists) and a port number 1-255."""
    name, _, port = value.rpartition(":")
    if (
        not 0 < len(name) < 64
        or not _RDMA_NAME_CHARS.issuperset(name)
        or name in (".", "..")
        or not 0 < len(port) < 4
        or not set(port) <= set("0123456789")
        or not 0 < int(port) < 256
    ):
        raise HookArgsError(f"{flag} {quoted(value)}: expected DEV:PORT, an RDMA device and its port (mlx5_0:1)")
    return value


def hook_args(netdev_args: list[str], poststop: bool = False, ports: dict[str, bool] | None = None) -> list[str]:
    """argv of the hook: ``cdigen hook [--poststop] [--netdev HOSTIF=name=..,address=..,mask=..,mtu=..]...
    [--ib DEV:PORT | --roce DEV:PORT]...``; `ports`: RDMA port -> RoCE (else InfiniBand)."""
    args = ["cdigen", "hook"] + ([POSTSTOP_FLAG] if poststop else [])
    for a in netdev_args:
        args += ["--netdev", a]
    for port, roce in (ports or {}).items():
        args += ["--roce" if roce else "--ib", port]
    return args


def cdi_hook(path: str, netdev_args: list[str], poststop: bool = False, ports: dict[str, bool] | None = None) -> dict:
    """A CDI `containerEdits.hooks` entry: createRuntime, or poststop."""
    name = POSTSTOP_HOOK_NAME if poststop else HOOK_NAME
    return {"hookName": name, "path": path, "args": hook_args(netdev_args, poststop, ports)}


def cdi_hooks(path: str, netdev_args: list[str], ports: dict[str, bool] | None = None) -> list[dict]:
    """The CDI entries of a device's NICs, createRuntime then poststop, with the same arguments;
    createRuntime alone when no NIC has a netdev (nothing to bring home; its RDMA ports are for
    `container_nics`)."""
    create = cdi_hook(path, netdev_args, ports=ports)
    return [create, cdi_hook(path, netdev_args, poststop=True, ports=ports)] if netdev_args else [create]


def oci_hook(path: str, netdev_args: list[str] = (), poststop: bool = False) -> dict:
    """An OCI `hooks.createRuntime` entry, or with `poststop` a `hooks.poststop` entry."""
    return {"path": path, "args": hook_args(list(netdev_args), poststop)}


def with_netdev_args(entry: dict, args_by_host: dict[str, str]) -> dict:
    """`entry` (a cdigen hook, CDI or OCI shape) with the `--netdev` value of every host in
    `args_by_host` replaced by that one; other arguments unchanged."""
    args = list(entry["args"])
    for i in range(2, len(args)):
        previous, value = args[i - 1], args[i]
        if previous == "--netdev" and value.partition("=")[0] in args_by_host:
            args[i] = args_by_host[value.partition("=")[0]]
        elif value.startswith("--netdev=") and value[9:].partition("=")[0] in args_by_host:
            args[i] = "--netdev=" + args_by_host[value[9:].partition("=")[0]]
    return {**entry, "args": args}


def is_cdigen_hook(entry: object) -> bool:
    """True for an OCI (or CDI) hook entry that runs `cdigen hook`, either phase, with netdev
    arguments: not the driver libraries' `cdigen hook ldcache` entry (see below)."""
    if not isinstance(entry, dict):
        return False
    args = entry.get("args") or []
    return (
        isinstance(args, list)
        and len(args) >= 2
        and args[1] == "hook"
        and args[2:3] != [LDCACHE]
        and os.path.basename(str(entry.get("path", ""))) == "cdigen"
    )


def runtime_entries(config: dict) -> list[list[str]]:
    """The arguments (those after `hook`) of config.json's `cdigen hook` createRuntime
    entries, in order: a CDI injector adds one per device, in the order of its devices."""
    hooks = config.get("hooks")
    entries = hooks.get(HOOK_NAME) if isinstance(hooks, dict) else None
    return [
        entry["args"][2:]
        for entry in (entries if isinstance(entries, list) else [])
        if is_cdigen_hook(entry) and all(isinstance(a, str) for a in entry["args"])
    ]


def container_nics(config: dict, wanted: list = ()) -> tuple[list, dict[str, bool]]:
    """The container's NICs as its `cdigen hook` createRuntime entries name them, in entry
    order (a CDI injector adds one per device, in the order of its devices), then `wanted`'s
    (the running hook's own): (their NetdevSettings, each host once, the linux.netDevices
    entry's name and address over the arguments' and `{n}` numbered (netdev.numbered); their
    RDMA ports -> RoCE, each entry's InfiniBand ports before its RoCE ports). An entry whose
    arguments `cdigen hook` refuses is left out (its own hook says why). NetdevError when a
    numbered name is no interface name; InvalidInput for a linux.netDevices that is not an
    object."""
    from cdigen import netdev
    from cdigen.oci.config import net_devices

    devices = net_devices(config)
    nics: dict = {}
    ports: dict[str, bool] = {}
    for args in runtime_entries(config):
        try:
            parsed = parse_hook_args(args)
            settings = netdev.parse_args(parsed["netdev"]) if parsed else []
        except InvalidInput:
            continue
        for flag in ("ib", "roce") if parsed else ():
            ports.update(dict.fromkeys(parsed[flag], flag == "roce"))
        for cfg in settings:
            oci = devices.get(cfg.host)
            if cfg.host not in nics and isinstance(oci, dict):
                name, address = oci.get("name"), oci.get("address")
                cfg = cfg._replace(
                    name=name if isinstance(name, str) and name else cfg.name,
                    address=address if isinstance(address, str) and address else cfg.address,
                )
            nics.setdefault(cfg.host, cfg)
    for cfg in wanted:
        nics.setdefault(cfg.host, cfg)
    return netdev.numbered(nics.values()), ports


def library_variables(nics: list, ports: dict[str, bool]) -> dict[str, str]:
    """What NCCL and UCX read to use the container's NICs (`container_nics`) and no other
    (docs/nccl.md): their RDMA ports in the exact-match form of NCCL_IB_HCA and in
    UCX_NET_DEVICES, and the container names of those cdigen gives an address in
    NCCL_SOCKET_IFNAME; in the order of the container's devices. Nothing for a container whose
    entries name no RDMA port: a spec scanned before cdigen told the libraries anything."""
    if not ports:
        return {}
    out = {"NCCL_IB_HCA": "=" + ",".join(ports), "UCX_NET_DEVICES": ",".join(ports)}
    # A name the kernel picks (%d) is unknown here.
    names = [cfg.container_name for cfg in nics if cfg.address and "%" not in cfg.container_name]
    if names:
        out["NCCL_SOCKET_IFNAME"] = "=" + ",".join(names)
    return out


# Where the spec mounts the host's NCCL topology file: the path NCCL reads when NCCL_TOPO_FILE
# is unset (ncclTopoGetSystem, src/graph/topo.cc), so no variable is needed and a user's wins.
NCCL_TOPO_CONTAINER_PATH = "/var/run/nvidia-topologyd/virtualTopology.xml"


# ---------------------------------------------------------------------------- the driver libraries
# `cdigen hook ldcache [--host-driver-version V] --folder DIR... --link LINK=TARGET...`: the
# createContainer hook that makes the driver libraries mounted into the container findable,
# and the image's CUDA forward-compatibility libcuda preferred when it is newer than the
# host's driver (docs/gpu.md). It carries no netdev settings: is_cdigen_hook() is false for
# it, so apply never rewrites it.

LDCACHE = "ldcache"
LDCACHE_HOOK_NAME = "createContainer"  # in the container's mount namespace, mounts done, before pivot_root


def ldcache_args(folders: list[str], links: list[tuple[str, str]], host_driver_version: str | None = None) -> list[str]:
    """argv of the hook: ``cdigen hook ldcache [--host-driver-version V] [--folder DIR]...
    [--link LINK=TARGET]...``"""
    args = ["cdigen", "hook", LDCACHE]
    if host_driver_version:
        args += ["--host-driver-version", host_driver_version]
    for folder in folders:
        args += ["--folder", folder]
    for link, target in links:
        args += ["--link", f"{link}={target}"]
    return args


def ldcache_hook(
    path: str, folders: list[str], links: list[tuple[str, str]], host_driver_version: str | None = None
) -> dict:
    """The CDI `containerEdits.hooks` entry of the ldcache hook."""
    return {"hookName": LDCACHE_HOOK_NAME, "path": path, "args": ldcache_args(folders, links, host_driver_version)}


LDCACHE_COMMAND = Command(
    "hook ldcache",
    (
        Option(
            "--host-driver-version",
            "V",
            "The host's NVIDIA driver version (550.54.15): enables CUDA forward compatibility.",
        ),
        Option("--folder", "DIR", "A container directory holding driver libraries.", repeated=True),
        Option(
            "--link",
            "LINK=TARGET",
            "A symlink to make: LINK an absolute container path, TARGET a file name in LINK's directory.",
            repeated=True,
        ),
    ),
)


def parse_ldcache_argv(argv: list[str]) -> tuple[list[str], list[tuple[str, str]], str | None] | None:
    """(folders, links, host driver version or None) of `cdigen hook ldcache` arguments (those
    after `ldcache`); None when help is asked for. HookArgsError for anything else: a folder or
    link that is not an absolute path without `..`, a target that is not a plain file name, a
    version that is not dotted decimal numbers."""
    try:
        parsed = parse(argv, LDCACHE_COMMAND)
    except UsageError as e:
        raise HookArgsError(str(e)) from None
    if parsed is None:
        return None
    version = parsed["host_driver_version"]
    if version is not None and not dotted_version(version):
        raise HookArgsError(f"--host-driver-version {quoted(version)}: expected a driver version such as 550.54.15")
    links = []
    for value in parsed["link"]:
        link, sep, target = value.rpartition("=")
        if not sep or not target or "/" in target or target in (".", ".."):
            raise HookArgsError(f"--link {quoted(value)}: expected LINK=TARGET, TARGET a file name in LINK's directory")
        links.append((_container_path(link, "--link"), target))
    return [_container_path(folder, "--folder") for folder in parsed["folder"]], links, version


def dotted_version(text: str) -> bool:
    """`550.54.15`, `570.86`: decimal numbers joined by dots (a driver version), at most 32
    characters."""
    return text[:1].isdigit() and "-" not in text and version_tuple(text) is not None


def _container_path(path: str, flag: str) -> str:
    parts = path.split("/")
    if not path.startswith("/") or ".." in parts or "\0" in path or len(path) > 4096 or not path.strip("/"):
        raise HookArgsError(f"{flag} {quoted(path)}: expected an absolute path inside the container, without '..'")
    return path
