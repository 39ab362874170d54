"""`cdigen validate` and `cdigen list`: typer commands that read the spec directories and change
nothing. (`apply`, on the hot path, is parsed by hand in cdigen/cli/apply.py.) The loader and
rich are imported inside the commands.
"""

import sys
from typing import Annotated

import typer

from cdigen.cli import target_version
from cdigen.cli.app import app
from cdigen.errors import InvalidInput

SpecDirOption = Annotated[
    list[str] | None,
    typer.Option(
        "--spec-dir",
        metavar="DIR",
        help="CDI spec directory, repeatable, later ones win (default: /etc/cdi then /var/run/cdi).",
    ),
]


def _spec_dirs(spec_dirs: list[str] | None) -> list[str]:
    from cdigen.cdi.load import DEFAULT_SPEC_DIRS

    return list(spec_dirs) if spec_dirs else list(DEFAULT_SPEC_DIRS)


@app.command()
def validate(
    files: Annotated[
        list[str] | None,
        typer.Argument(metavar="[FILE|DIR]...", help="Spec files or directories (default: the spec directories)."),
    ] = None,
    spec_dir: SpecDirOption = None,
    cdi_version: Annotated[
        str | None,
        typer.Option(
            "--cdi-version",
            metavar="V",
            help="Check as a CDI library of version V loads specs (its versions and fields). "
            "Default: the newest (1.1.0).",
        ),
    ] = None,
    for_engine: Annotated[
        str | None,
        typer.Option(
            "--for",
            metavar="ENGINE-VERSION",
            help="Check as that engine release loads specs, e.g. podman-4, containerd-1.7, docker-28, crio-1.35.",
        ),
    ] = None,
) -> None:
    """Check CDI spec files as container runtimes load them; report every problem, and which engines load each file."""
    from cdigen.cdi.spec import LIBRARY_VERSION
    from cdigen.validate import readers, validate_paths

    loader = target_version(cdi_version, for_engine) or LIBRARY_VERSION
    registry, problems = validate_paths(files, _spec_dirs(spec_dir), loader)
    for where, message in problems:
        sys.stdout.write(f"{where}: {message}\n")
    for spec in registry.specs:
        sys.stdout.write(f"{spec.path}: {readers(spec)}\n")
    count = len(registry.files)
    if problems:
        bad = len({where for where, _ in problems})
        raise InvalidInput(
            f"{len(problems)} problem{'s' * (len(problems) != 1)} in {bad} of {count} spec file{'s' * (count != 1)}"
        )
    sys.stdout.write(f"{count} spec file{'s' * (count != 1)}, {len(registry.devices)} devices: valid\n")


@app.command("list")
def list_devices(
    spec_dir: SpecDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Show the CDI devices found, per kind (broken files are reported on stderr)."""
    from cdigen.cdi import load

    registry = load.load_registry(_spec_dirs(spec_dir))
    kinds = registry.kinds()
    if as_json:
        import json

        out = {
            "kinds": {kind: [_device_row(d) for d in devices] for kind, devices in kinds.items()},
            "errors": registry.errors,
        }
        sys.stdout.write(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table("KIND", "DEVICE", "NETDEVS", "SPEC FILE", box=None, pad_edge=False)
        for kind, devices in kinds.items():
            for device in devices:
                row = _device_row(device)
                table.add_row(
                    kind, row["name"], " ".join(f"{h}>{n}" for h, n in row["netDevices"].items()), row["spec"]
                )
        console = Console(highlight=False)
        if kinds:
            console.print(table)
        else:
            console.print("no CDI devices found")
        for where, messages in registry.errors.items():
            for message in messages:
                sys.stderr.write(f"cdigen: warning: {where}: {message}\n")


def _device_row(device) -> dict:
    from cdigen.cdi.edits import net_device_names

    nets = net_device_names(device.spec.data.get("containerEdits") or {}) | net_device_names(
        device.data.get("containerEdits") or {}
    )
    return {"name": device.name, "qualifiedName": device.qualified_name, "spec": device.spec.path, "netDevices": nets}
