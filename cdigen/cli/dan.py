"""The command line of `cdigen dan`, parsed by hand: it runs at every Kata sandbox creation,
and typer's import alone costs more than the work (docs/benchmarks.md, "dan").
cdigen/entry.py dispatches here; `cdigen --help` lists the command through cdigen/cli/app.py.
"""

import sys

from cdigen.cli.argv import parse as argv_parse
from cdigen.errors import UsageError

USAGE = """\
usage: cdigen dan BUNDLE [--root DIR] [--dan-dir DIR] [--sandbox-id ID] [--delete]
       cdigen dan --hook [--root DIR] [--dan-dir DIR] [--delete]    (OCI state on stdin)

Writes Kata's DAN file DAN_DIR/SANDBOX_ID.json (atomic, mode 0600) for the pod sandbox of
BUNDLE, from the network facts in its config.json annotations (Multus network-status, OVN
pod-networks), the device-info files and the CNI result cache, matched to the host's devices
(sysfs under --root). A VFIO NIC becomes a `vfio` device (Go runtime), a tap a `host-tap`
one and a vhost-user socket a `vhost-user` one (runtime-rs). A workload container's bundle
(CRI container-type "container") is skipped.

options:
  --root DIR        read sys/, var/run/ and var/lib/cni/ under DIR (default /)
  --dan-dir DIR     Kata's dan_conf (default /run/kata-containers/dans)
  --sandbox-id ID   the sandbox id (default: the io.kubernetes.cri.sandbox-id or
                    io.kubernetes.cri-o.SandboxID annotation; both given must agree)
  --delete          remove the file instead (when the sandbox ends; absent is fine)
  --hook            run as an OCI hook: the bundle comes from the state on stdin.
                    As the sandbox's poststop hook with --delete. Kata looks for the
                    file before it runs the sandbox's createRuntime hooks, so write it
                    earlier (the pod's CNI ADD, or before the sandbox task is created)
  -h, --help        show this message and exit
"""

_VALUED = {"--root": "root", "--dan-dir": "dan_dir", "--sandbox-id": "sandbox_id"}
_FLAGS = {"--delete": "delete", "--hook": "hook"}


class DanArgs:
    """The parsed options."""

    def __init__(self) -> None:
        self.bundle: str | None = None
        self.root = "/"
        self.dan_dir = "/run/kata-containers/dans"
        self.sandbox_id: str | None = None
        self.delete = False
        self.hook = False


def parse_args(argv: list[str]) -> DanArgs | None:
    """The options; None when help was asked for. UsageError (2) for anything else."""
    parsed = argv_parse(argv, "dan", _VALUED, _FLAGS, once=True)
    if parsed is None:
        return None
    given, positional = parsed
    args = DanArgs()
    for key, value in given.items():
        if value == "":
            option = next(name for name, k in _VALUED.items() if k == key)
            raise UsageError(f"dan: {option} is empty")
        setattr(args, key, value)
    if len(positional) > 1:
        raise UsageError(f"dan: one BUNDLE only, got {len(positional)}")
    args.bundle = positional[0] if positional else None
    if args.hook:
        if args.bundle is not None:
            raise UsageError("dan: --hook takes the bundle from the OCI state on stdin, not BUNDLE")
        if args.sandbox_id is not None:
            raise UsageError("dan: --hook takes the sandbox id from the bundle's annotations, not --sandbox-id")
    elif args.bundle is None:
        raise UsageError("dan: missing BUNDLE (or --hook)")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args is None:
        sys.stdout.write(USAGE)
        return 0
    bundle = args.bundle
    if args.hook:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("dan --hook: reads the OCI container state on stdin; a runtime runs it as a hook")
        from cdigen.oci.state import parse_state

        bundle = parse_state(sys.stdin.buffer.read()).bundle
    from cdigen import dan

    if args.delete:
        result = dan.delete_dan(bundle, args.dan_dir, args.sandbox_id)
    else:
        result = dan.write_dan(bundle, args.root, args.dan_dir, args.sandbox_id)
    if not args.hook:  # a runtime does not read a hook's stdout
        sys.stdout.write(render(result))
    return 0


def render(result) -> str:
    if result.action == "skipped":
        return f"{result.path}: not the sandbox container (CRI container-type), nothing done\n"
    lines = [f"{name}: {kind} {target} ({runtime})\n" for name, kind, target, runtime in result.devices]
    return "".join(lines) + f"{result.path}: {result.action}\n"
