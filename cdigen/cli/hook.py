"""The command line of `cdigen hook`, parsed by hand: a runtime starts it at every container
creation, and typer's import alone would cost more than the hook's work (docs/benchmarks.md).
cdigen/entry.py dispatches here; `cdigen --help` lists the command through cdigen/cli/app.py.
"""

import sys

from cdigen import hookentry, netdev
from cdigen.errors import UsageError
from cdigen.netdev import NetdevError, NetdevSettings

USAGE = """\
usage: cdigen hook [--poststop] [--netdev HOSTIF=name=NAME,address=ADDR,mask=MASK,mtu=MTU]...

OCI createRuntime hook: reads the container state (JSON) on stdin, loads BUNDLE/config.json
and moves each host interface into the container's network namespace, renamed, with its
address, mask and MTU, and up. It first records each device's host name, MTU and up state in
its interface alias ("cdigen host=HOSTIF mtu=MTU up=0|1"). Undoes everything on failure
(exit 1).

With --poststop, the OCI poststop hook: brings each interface home after the container ended
(out of its network namespace if that still exists, else waiting up to 3 s for the kernel to
return a physical NIC), under its host name, with its host MTU, up state and alias. Exit 1,
one line, if any could not be brought home.

Interfaces: those named by --netdev, else every key of config.json linux.netDevices.
Settings: the linux.netDevices entry's keys (name, address, mask, mtu) where present, else
the --netdev value's. The address may be CIDR (address=192.0.2.10/24) instead of a mask.

options:
  --netdev HOSTIF=SETTINGS  an interface and its settings (repeatable)
  --poststop                bring the interfaces home (the poststop hook entry)
  -h, --help                show this message and exit

`cdigen hook ldcache ...` is the createContainer hook of the driver files (its own --help).
"""


def parse_args(argv: list[str]) -> list[NetdevSettings] | None:
    """The --netdev settings in argument order; None when help was asked for."""
    try:
        values = hookentry.parse_hook_argv(argv)  # --poststop: see main
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
    if argv[:1] == [hookentry.LDCACHE]:  # the driver libraries' createContainer hook
        from cdigen.cli.ldcache import main as ldcache_main

        return ldcache_main(argv[1:])
    args = parse_args(argv)
    if args is None:
        sys.stdout.write(USAGE)
        return 0
    poststop = hookentry.is_poststop(argv)
    if sys.stdin is None or sys.stdin.isatty():
        phase = "a poststop" if poststop else "a createRuntime"
        raise UsageError(f"hook: reads the OCI container state on stdin; a container runtime runs it as {phase} hook")
    if poststop:
        from cdigen.hook import run_poststop

        run_poststop(sys.stdin.buffer.read(), args)  # quiet when every interface is home
        return 0
    from cdigen.hook import run

    for note in run(sys.stdin.buffer.read(), args):
        sys.stderr.write(f"cdigen: {note}\n")
    return 0
