"""The command line of `cdigen hook`, parsed by hand: a runtime starts it at every container
creation, and typer's import alone would cost more than the hook's work (docs/benchmarks.md).
cdigen/entry.py dispatches here; `cdigen --help` lists the command through cdigen/cli/app.py.
"""

import sys

from cdigen import hookentry, netdev
from cdigen.errors import UsageError
from cdigen.netdev import NetdevError, NetdevSettings

USAGE = """\
usage: cdigen hook [--netdev HOSTIF=name=NAME,address=ADDR,mask=MASK,mtu=MTU]...

OCI createRuntime hook: reads the container state (JSON) on stdin, loads BUNDLE/config.json
and moves each host interface into the container's network namespace, renamed, with its
address, mask and MTU, and up. Undoes everything on failure (exit 1).

Interfaces: those named by --netdev, else every key of config.json linux.netDevices.
Settings: the linux.netDevices entry's keys (name, address, mask, mtu) where present, else
the --netdev value's. The address may be CIDR (address=192.0.2.10/24) instead of a mask.

options:
  --netdev HOSTIF=SETTINGS  an interface and its settings (repeatable)
  -h, --help                show this message and exit
"""


def parse_args(argv: list[str]) -> list[NetdevSettings] | None:
    """The --netdev settings in argument order; None when help was asked for."""
    try:
        values = hookentry.parse_hook_argv(argv)
    except hookentry.HookArgsError as e:
        raise UsageError(f"hook: {e}") from None
    if values is None:
        return None
    out = []
    for value in values:
        try:
            out.append(netdev.parse_arg(value))
        except NetdevError as e:
            raise UsageError(f"hook: --netdev {value!r}: {e}") from None
    try:
        netdev.by_host(out)
    except NetdevError as e:
        raise UsageError(f"hook: --netdev {e}") from None
    return out


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args is None:
        sys.stdout.write(USAGE)
        return 0
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError(
            "hook: reads the OCI container state on stdin; a container runtime runs it as a createRuntime hook"
        )
    from cdigen.hook import run

    run(sys.stdin.buffer.read(), args)
    return 0
