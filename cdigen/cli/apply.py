"""`cdigen apply`, parsed by hand (cdigen/argv.py): it may run at every container creation, and
importing typer alone costs more than the whole apply of a JSON spec. cdigen/entry.py
dispatches here.

The work is `cdigen.apply.apply_devices`; this module only parses and renders. rich is imported
for `--dry-run`'s diff only. Exit 2 for every command-line mistake, one line on stderr.
"""

import sys

from cdigen.argv import Argument, Command, Option
from cdigen.cli.argv import help_text, parse, usage_error
from cdigen.errors import UsageError
from cdigen.values import quoted

SUMMARY = "Inject CDI devices into BUNDLE/config.json as a JSON Patch (locked, atomic)."

COMMAND = Command(
    "apply",
    (
        Option(
            "--device",
            "VENDOR/CLASS=NAME",
            "CDI device to inject. Devices named in the cdi.k8s.io/* annotations of config.json are "
            "injected too, first.",
            repeated=True,
        ),
        Option(
            "--netdev",
            "HOSTIF=name=..,address=..[/len],mask=..,mtu=..",
            "Override the settings of a host interface that a requested device carries.",
            repeated=True,
        ),
        Option(
            "--spec-dir",
            "DIR",
            "CDI spec directory, later ones win. Default: /etc/cdi then /var/run/cdi.",
            repeated=True,
        ),
        Option(
            "--hook-path",
            "PATH",
            "Absolute path of the cdigen executable for the createRuntime hook. Default: this one.",
        ),
        Option("--no-hook", None, "Do not add the cdigen createRuntime hook for linux.netDevices."),
        Option(
            "--root",
            "DIR",
            "Read the pod network facts' sysfs, device-info files and CNI results under DIR; used "
            "when config.json carries network-status or pod-networks annotations.",
            default="/",
        ),
        Option(
            "--lock-timeout",
            "SECONDS",
            "Longest wait for the bundle lock, then exit 1 with nothing changed. Default: 10.",
        ),
        Option(
            "--allow-insecure-specs",
            None,
            "As root, also load spec files and directories that other users can change (refused by "
            "default: a spec can add a root hook and bind-mount /).",
        ),
        Option("--print-patch", None, "Print the RFC 6902 JSON Patch on stdout (still applies it)."),
        Option("--dry-run", None, "Show a diff of config.json and write nothing."),
    ),
    (Argument("BUNDLE", "OCI bundle directory (holds config.json)."),),
)


def parse_args(argv: list[str]) -> dict | None:
    """The options and BUNDLE by key (cdigen.argv.parse), --lock-timeout as seconds; None when
    help is asked for. UsageError (2) for anything else."""
    args = parse(argv, COMMAND)
    if args is None or args["lock_timeout"] is None:
        return args
    text = args["lock_timeout"]
    try:
        args["lock_timeout"] = float(text)
    except ValueError:
        args["lock_timeout"] = -1.0
    if not 0 <= args["lock_timeout"] <= 86400:  # NaN fails this too
        raise usage_error(COMMAND, f"--lock-timeout {quoted(text)}: expected seconds, 0 to 86400")
    return args


def overrides(values: list[str]) -> list:
    """--netdev values as settings, each host interface once."""
    from cdigen import netdev

    try:
        return netdev.parse_args(values)
    except netdev.NetdevError as e:
        raise UsageError(f"--netdev {e}") from None


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args is None:
        sys.stdout.write(help_text(COMMAND, SUMMARY))
        return 0
    from cdigen.apply import apply_devices

    result = apply_devices(
        args["bundle"],
        args["device"],
        overrides(args["netdev"]),
        args["spec_dir"] or None,
        hook=not args["no_hook"],
        hook_path=args["hook_path"],
        dry_run=args["dry_run"],
        pod_root=args["root"],
        allow_insecure_specs=args["allow_insecure_specs"],
        **({"lock_timeout": args["lock_timeout"]} if args["lock_timeout"] is not None else {}),
    )
    if args["print_patch"]:
        import json

        sys.stdout.write(json.dumps(result.patch, indent=2, ensure_ascii=False) + "\n")
    if args["dry_run"]:
        _print_diff(result)
    return 0


def _print_diff(result) -> None:
    import difflib

    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=True)
    old = result.old.decode("utf-8", "replace").splitlines()
    new = result.new.decode("utf-8", "replace").splitlines()
    lines = list(difflib.unified_diff(old, new, result.path, f"{result.path} (after apply)", lineterm=""))
    if not lines:
        console.print(f"{result.path}: no change")
    styles = {"+++": "bold", "---": "bold", "@@": "cyan", "+": "green", "-": "red"}
    for line in lines:
        style = next((s for p, s in styles.items() if line.startswith(p)), "")
        console.print(Text(line, style=style))
