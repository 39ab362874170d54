"""The command line of `cdigen hook`, parsed by hand (cdigen/argv.py, the table
hookentry.HOOK): a runtime starts it at every container creation, and typer's import alone
would cost more than the hook's work. cdigen/entry.py dispatches here.
"""

import sys

from cdigen import hookentry
from cdigen.cli.argv import help_text, parse
from cdigen.errors import UsageError

SUMMARY = (
    "OCI createRuntime hook: move, rename, address, set the MTU of and bring up netdevs in the "
    "container's network namespace (state JSON on stdin), rolled back on failure, and tell NCCL "
    "and UCX in it which NICs it got. With --poststop, the poststop hook that brings them home."
)
DESCRIPTION = """\
As the createRuntime hook: reads the container state (JSON) on stdin, loads
BUNDLE/config.json and moves each host interface into the container's network namespace,
renamed, with its address, mask and MTU, and up. It first records each device's host name,
MTU and up state in its interface alias ("cdigen host=HOSTIF mtu=MTU up=0|1"). Undoes
everything on failure (exit 1).

With --poststop, the OCI poststop hook: brings each interface home after the container ended
(out of its network namespace if that still exists, else waiting up to 3 s for the kernel to
return a physical NIC), under its host name, with its host MTU, up state and alias. Exit 1,
one line, if any could not be brought home.

Interfaces: those named by --netdev, else every key of config.json linux.netDevices
(none when only --ib or --roce is given: a device whose NICs have no netdev).
Settings: the linux.netDevices entry's keys (name, address, mask, mtu) where present, else
the --netdev value's. The address may be CIDR (address=192.0.2.10/24) instead of a mask.

NCCL and UCX (docs/nccl.md): --ib and --roce name the NICs' RDMA ports. From every
`cdigen hook` createRuntime entry of config.json (one per device, in the order of the
devices), the hook adds to the container's /etc/nccl.conf (under config.json root.path)
what its environment does not set: NCCL_IB_HCA, NCCL_SOCKET_IFNAME and, from the last
entry, for RoCE NICs, NCCL_IB_GID_INDEX; and UCX_NET_DEVICES to the image's ucx.conf. A
problem there is one warning line, never a failure.

`cdigen hook ldcache ...` is the createContainer hook of the driver files (its own --help).
"""


def parse_args(argv: list[str]) -> dict | None:
    """{"netdev": settings in argument order, "ib": [DEV:PORT], "roce": [DEV:PORT], "poststop":
    bool}; None when help was asked for. UsageError (2) for anything else."""
    from cdigen import netdev  # not for --help

    args = parse(argv, hookentry.HOOK)
    if args is None:
        return None
    try:
        args["netdev"] = netdev.parse_args(args["netdev"])
    except netdev.NetdevError as e:
        raise UsageError(f"hook: --netdev {e}") from None
    try:
        for flag in ("ib", "roce"):
            for value in args[flag]:
                hookentry.check_rdma_port(value, f"--{flag}")
    except hookentry.HookArgsError as e:
        raise UsageError(f"hook: {e}") from None
    return args


def main(argv: list[str]) -> int:
    if argv[:1] == [hookentry.LDCACHE]:  # the driver libraries' createContainer hook
        from cdigen.cli.ldcache import main as ldcache_main

        return ldcache_main(argv[1:])
    args = parse_args(argv)
    if args is None:
        sys.stdout.write(help_text(hookentry.HOOK, SUMMARY, DESCRIPTION))
        return 0
    poststop = args["poststop"]
    if sys.stdin is None or sys.stdin.isatty():
        phase = "a poststop" if poststop else "a createRuntime"
        raise UsageError(f"hook: reads the OCI container state on stdin; a container runtime runs it as {phase} hook")
    moves = bool(args["netdev"]) or not (args["ib"] or args["roce"])  # not the entry of an HCA without netdev
    if poststop:
        state = sys.stdin.buffer.read()  # the runtime's write must not fail
        if moves:
            from cdigen.hook import run_poststop

            run_poststop(state, args["netdev"])  # quiet when every interface is home
        return 0
    from cdigen.hook import run

    for note in run(sys.stdin.buffer.read(), args["netdev"], argv, moves):
        sys.stderr.write(f"cdigen: {note}\n")
    return 0
