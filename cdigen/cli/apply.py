"""`cdigen apply`, parsed by hand: it may run at every container creation, and importing typer
alone costs more than the whole apply of a JSON spec (docs/benchmarks.md). cdigen/entry.py
dispatches here; `cdigen --help` lists the command through a stub in cdigen/cli/app.py.

The work is `cdigen.apply.apply_devices`; this module only parses and renders. rich is imported
for `--dry-run`'s diff only. The options and their errors are those the typer command had:
exit 2 for every command-line mistake, one line on stderr.
"""

import sys

from cdigen.cli.argv import parse as argv_parse
from cdigen.cli.argv import usage_error
from cdigen.errors import UsageError

SUMMARY = "Inject CDI devices into BUNDLE/config.json as a JSON Patch (locked, atomic)."

USAGE = f"""\
usage: cdigen apply [OPTIONS] BUNDLE

{SUMMARY}

arguments:
  BUNDLE                          OCI bundle directory (holds config.json).

options:
  --device VENDOR/CLASS=NAME      CDI device to inject, repeatable. Devices named in the
                                  cdi.k8s.io/* annotations of config.json are injected too,
                                  first.
  --netdev HOSTIF=name=..,address=..[/len],mask=..,mtu=..
                                  Override the settings of a host interface that a requested
                                  device carries.
  --spec-dir DIR                  CDI spec directory, repeatable, later ones win (default:
                                  /etc/cdi then /var/run/cdi).
  --hook-path PATH                Absolute path of the cdigen executable for the
                                  createRuntime hook (default: this one).
  --no-hook                       Do not add the cdigen createRuntime hook for
                                  linux.netDevices.
  --root DIR                      Read the pod network facts' sysfs, device-info files and
                                  CNI results under DIR (default /); used when config.json
                                  carries network-status or pod-networks annotations.
  --lock-timeout SECONDS          Longest wait for the bundle lock (default 10); then exit 1
                                  with nothing changed.
  --allow-insecure-specs          As root, also load spec files and directories that other
                                  users can change (refused by default: a spec can add a root
                                  hook and bind-mount /).
  --print-patch                   Print the RFC 6902 JSON Patch on stdout (still applies it).
  --dry-run                       Show a diff of config.json and write nothing.
  -h, --help                      Show this message and exit.
"""

_VALUES = {
    "--device": "device",
    "--netdev": "netdev",
    "--spec-dir": "spec_dir",
    "--hook-path": "hook_path",
    "--root": "root",
    "--lock-timeout": "lock_timeout",
}
_REPEATED = ("device", "netdev", "spec_dir")
_FLAGS = {
    "--no-hook": "no_hook",
    "--print-patch": "print_patch",
    "--dry-run": "dry_run",
    "--allow-insecure-specs": "allow_insecure_specs",
}


def parse_args(argv: list[str]) -> dict | None:
    """The options as a dict (keys: bundle, device, netdev, spec_dir, hook_path, root,
    lock_timeout, no_hook, print_patch, dry_run, allow_insecure_specs); None when help is asked
    for. UsageError (2) for anything else (cdigen.cli.argv)."""
    parsed = argv_parse(argv, "apply", _VALUES, _FLAGS, _REPEATED)
    if parsed is None:
        return None
    given, positional = parsed
    out = dict.fromkeys(_FLAGS.values(), False) | {"hook_path": None, "root": "/", "lock_timeout": None} | given
    if not positional:
        raise usage_error("apply", "missing argument BUNDLE")
    if len(positional) > 1:
        raise usage_error(
            "apply", f"unexpected extra argument{'s' * (len(positional) > 2)} ({' '.join(positional[1:])})"
        )
    out["bundle"] = positional[0]
    if out["lock_timeout"] is not None:
        text = out["lock_timeout"]
        try:
            out["lock_timeout"] = float(text)
        except ValueError:
            out["lock_timeout"] = -1.0
        if not 0 <= out["lock_timeout"] <= 86400:  # NaN fails this too
            raise usage_error("apply", f"--lock-timeout {text[:20]!r}: expected seconds, 0 to 86400")
    return out


def overrides(args: list[str]) -> list:
    """--netdev values as settings, each host interface once."""
    from cdigen import netdev

    out = []
    for arg in args:
        try:
            out.append(netdev.parse_arg(arg))
        except netdev.NetdevError as e:
            raise UsageError(f"--netdev {arg!r}: {e}") from None
    try:
        netdev.by_host(out)
    except netdev.NetdevError as e:
        raise UsageError(f"--netdev {e}") from None
    return out


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args is None:
        sys.stdout.write(USAGE)
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
