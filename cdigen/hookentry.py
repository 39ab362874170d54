"""The hook entries that point container runtimes at `cdigen hook`.

One shape for CDI specs (written by scan) and one for config.json (added by apply), so that
the hook finds the same arguments whichever injector put it there. Two entries each: the
createRuntime hook (`cdigen hook --netdev ...`) puts the interfaces into the container, the
poststop hook (`cdigen hook --poststop --netdev ...`, same arguments) brings them home.
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
        Option(POSTSTOP_FLAG, None, "Bring the interfaces home (the poststop hook entry)."),
    ),
)


def parse_hook_argv(argv: list[str]) -> list[str] | None:
    """The `--netdev` values of `cdigen hook` arguments (those after `hook`), in order; None
    when help is asked for. `--poststop` is accepted. HookArgsError for anything else."""
    try:
        parsed = parse(argv, HOOK)
    except UsageError as e:
        raise HookArgsError(str(e)) from None
    return None if parsed is None else parsed["netdev"]


def hook_args(netdev_args: list[str], poststop: bool = False) -> list[str]:
    """argv of the hook: ``cdigen hook [--poststop] [--netdev HOSTIF=name=..,address=..,mask=..,mtu=..]...``"""
    args = ["cdigen", "hook"] + ([POSTSTOP_FLAG] if poststop else [])
    for a in netdev_args:
        args += ["--netdev", a]
    return args


def cdi_hook(path: str, netdev_args: list[str], poststop: bool = False) -> dict:
    """A CDI `containerEdits.hooks` entry: createRuntime, or poststop."""
    name = POSTSTOP_HOOK_NAME if poststop else HOOK_NAME
    return {"hookName": name, "path": path, "args": hook_args(netdev_args, poststop)}


def cdi_hooks(path: str, netdev_args: list[str]) -> list[dict]:
    """Both CDI entries, createRuntime then poststop, with the same arguments."""
    return [cdi_hook(path, netdev_args), cdi_hook(path, netdev_args, poststop=True)]


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
