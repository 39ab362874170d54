"""The hook entries that point container runtimes at `cdigen hook`.

One shape for CDI specs (written by scan) and one for config.json (added by apply), so that
the hook finds the same arguments whichever injector put it there.
"""

import os
import shutil
import sys

from cdigen.errors import BadArgument, InvalidInput

HOOK_NAME = "createRuntime"  # runs in the runtime's namespaces, after the container netns exists


def default_hook_path() -> str:
    """Absolute path of the installed `cdigen` executable (the console script of this
    interpreter's environment, else the first on PATH)."""
    beside = os.path.join(os.path.dirname(sys.executable), "cdigen")
    if os.access(beside, os.X_OK):
        return os.path.abspath(beside)
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


def parse_hook_argv(argv: list[str]) -> list[str] | None:
    """The `--netdev` values of `cdigen hook` arguments (those after `hook`), in order; None
    when help is asked for. HookArgsError for anything else."""
    values = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            return None
        if arg == "--netdev":
            if i + 1 >= len(argv):
                raise HookArgsError("--netdev needs a value HOSTIF=name=..,address=..,mask=..,mtu=..")
            values.append(argv[i + 1])
            i += 2
        elif arg.startswith("--netdev="):
            values.append(arg[len("--netdev=") :])
            i += 1
        else:
            raise HookArgsError(f"unexpected argument {arg!r} (see cdigen hook --help)")
    return values


def hook_args(netdev_args: list[str]) -> list[str]:
    """argv of the hook: ``cdigen hook [--netdev HOSTIF=name=..,address=..,mask=..,mtu=..]...``"""
    args = ["cdigen", "hook"]
    for a in netdev_args:
        args += ["--netdev", a]
    return args


def cdi_hook(path: str, netdev_args: list[str]) -> dict:
    """A CDI `containerEdits.hooks` entry."""
    return {"hookName": HOOK_NAME, "path": path, "args": hook_args(netdev_args)}


def oci_hook(path: str, netdev_args: list[str] = ()) -> dict:
    """An OCI `hooks.createRuntime` entry."""
    return {"path": path, "args": hook_args(list(netdev_args))}


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
    """True for an OCI hook entry that runs `cdigen hook`."""
    if not isinstance(entry, dict):
        return False
    args = entry.get("args") or []
    return (
        isinstance(args, list)
        and len(args) >= 2
        and args[1] == "hook"
        and os.path.basename(str(entry.get("path", ""))) == "cdigen"
    )
