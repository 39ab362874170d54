"""The command line of `cdigen dan`, parsed by hand (cdigen/argv.py): it runs at every Kata
sandbox creation, and typer's import alone costs more than the work. cdigen/entry.py
dispatches here.
"""

import sys

from cdigen.argv import Argument, Command, Option
from cdigen.cli.argv import help_text, parse, usage_error
from cdigen.errors import UsageError
from cdigen.values import quoted

SUMMARY = "Write Kata's DAN file for a pod sandbox from its network facts."
DESCRIPTION = """\
Writes Kata's DAN file DAN_DIR/SANDBOX_ID.json (atomic, mode 0600) for the pod sandbox of
BUNDLE, from the network facts in its config.json annotations (Multus network-status, OVN
pod-networks), the device-info files and the CNI result cache, matched to the host's devices
(sysfs under --root). A VFIO NIC becomes a `vfio` device (Go runtime), a tap a `host-tap`
one and a vhost-user socket a `vhost-user` one (runtime-rs). With --hypervisor or
--kata-config, a device type that hypervisor cannot attach is refused (vfio: QEMU and Cloud
Hypervisor; vhost-user: Dragonball only; docs/vm.md). A workload container's bundle (CRI
container-type "container") is skipped.

With --hook, no BUNDLE: it comes from the OCI state on stdin.
"""

COMMAND = Command(
    "dan",
    (
        Option("--root", "DIR", "Read sys/, var/run/ and var/lib/cni/ under DIR.", default="/"),
        Option("--dan-dir", "DIR", "Kata's dan_conf.", default="/run/kata-containers/dans"),
        Option(
            "--sandbox-id",
            "ID",
            "The sandbox id. Default: the io.kubernetes.cri.sandbox-id or io.kubernetes.cri-o.SandboxID "
            "annotation; both given must agree.",
        ),
        Option(
            "--hypervisor",
            "NAME",
            "The sandbox's hypervisor, as Kata's configuration names it ([hypervisor.NAME]: qemu, clh, "
            "dragonball...): a network whose DAN device type it cannot attach is refused.",
        ),
        Option(
            "--kata-config",
            "FILE",
            "Kata's configuration file (and its config.d/): the hypervisor is the one it runs the sandbox "
            "under. Not with --hypervisor.",
        ),
        Option("--delete", None, "Remove the file instead (when the sandbox ends; absent is fine)."),
        Option(
            "--hook",
            None,
            "Run as an OCI hook: the bundle comes from the state on stdin. As the sandbox's poststop "
            "hook with --delete. Kata looks for the file before it runs the sandbox's createRuntime "
            "hooks, so write it earlier (the pod's CNI ADD, or before the sandbox task is created).",
        ),
    ),
    (Argument("BUNDLE", "OCI bundle directory of the pod sandbox (holds config.json).", required=False),),
    once=True,
)


def parse_args(argv: list[str]) -> dict | None:
    """The options and BUNDLE by key (cdigen.argv.parse); None when help was asked for.
    UsageError (2) for anything else."""
    args = parse(argv, COMMAND)
    if args is None:
        return None
    for option in COMMAND.options:
        if args[option.key] == "":
            raise usage_error(COMMAND, f"{option.name} is empty")
    if args["hypervisor"] is not None and args["kata_config"] is not None:
        raise usage_error(COMMAND, "--hypervisor and --kata-config: give one of them")
    if args["hypervisor"] is not None:
        from cdigen.pod.kataconfig import HYPERVISORS

        if args["hypervisor"] not in HYPERVISORS:
            raise usage_error(
                COMMAND, f"--hypervisor {quoted(args['hypervisor'])}: expected one of {', '.join(HYPERVISORS)}"
            )
    if args["hook"]:
        if args["bundle"] is not None:
            raise usage_error(COMMAND, "--hook takes the bundle from the OCI state on stdin, not BUNDLE")
        if args["sandbox_id"] is not None:
            raise usage_error(COMMAND, "--hook takes the sandbox id from the bundle's annotations, not --sandbox-id")
    elif args["bundle"] is None:
        raise usage_error(COMMAND, "missing argument BUNDLE (or --hook)")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args is None:
        sys.stdout.write(help_text(COMMAND, SUMMARY, DESCRIPTION))
        return 0
    bundle = args["bundle"]
    if args["hook"]:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("dan --hook: reads the OCI container state on stdin; a runtime runs it as a hook")
        from cdigen.oci.state import parse_state

        bundle = parse_state(sys.stdin.buffer.read()).bundle
    from cdigen.pod import dan

    if args["delete"]:
        result = dan.delete_dan(bundle, args["dan_dir"], args["sandbox_id"])
    else:
        result = dan.write_dan(
            bundle, args["root"], args["dan_dir"], args["sandbox_id"], args["hypervisor"], args["kata_config"]
        )
    if not args["hook"]:  # a runtime does not read a hook's stdout
        sys.stdout.write(render(result))
    return 0


def render(result) -> str:
    if result.action == "skipped":
        return f"{result.path}: not the sandbox container (CRI container-type), nothing done\n"
    lines = [f"{name}: {kind} {target} ({runtime})\n" for name, kind, target, runtime in result.devices]
    return "".join(lines) + f"{result.path}: {result.action}\n"
