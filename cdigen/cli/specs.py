"""`cdigen validate` and `cdigen list`: typer commands that read the spec directories and change
nothing. (`apply`, on the hot path, is parsed by hand in cdigen/cli/apply.py.) The loader is
imported inside the commands.
"""

import os
import sys
from typing import Annotated

import typer

from cdigen.cdi.consumers import targets_help
from cdigen.cli import target_version
from cdigen.cli.app import app
from cdigen.errors import InvalidInput, UsageError
from cdigen.values import one_line

SpecDirOption = Annotated[
    list[str] | None,
    typer.Option(
        "--spec-dir",
        metavar="DIR",
        help="CDI spec directory, repeatable, later ones win (default: /etc/cdi then /var/run/cdi).",
    ),
]


def _spec_dirs(spec_dirs: list[str] | None) -> list[str]:
    """The directories named (each must exist: a mistyped one would read as empty), else the
    default ones."""
    from cdigen.cdi.load import DEFAULT_SPEC_DIRS

    for directory in spec_dirs or []:
        if not os.path.exists(directory):
            raise UsageError(f"--spec-dir {one_line(directory)}: no such directory")
    return list(spec_dirs) if spec_dirs else list(DEFAULT_SPEC_DIRS)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


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
            help=f"Check as that engine release loads specs: {targets_help()}.",
        ),
    ] = None,
) -> None:
    """Check CDI spec files as container runtimes load them; report every problem, and which engines load each file."""
    from cdigen.cdi.spec import LIBRARY_VERSION
    from cdigen.validate import readers, registry_warnings, validate_paths

    loader = target_version(cdi_version, for_engine) or LIBRARY_VERSION
    dirs = _spec_dirs(spec_dir)
    if not files and not spec_dir and not any(os.path.exists(d) for d in dirs):
        sys.stderr.write(f"cdigen: warning: no CDI spec directory: {' and '.join(dirs)} do not exist\n")
    registry, problems = validate_paths(files, dirs, loader)
    for where, message in problems:
        sys.stdout.write(f"{where}: {message}\n")
    for spec in registry.specs:
        sys.stdout.write(f"{spec.path}: {readers(spec)}\n")
    for where, message in registry_warnings(registry):
        sys.stderr.write(f"cdigen: warning: {where}: {message}\n")
    count = len(registry.files)
    if problems:
        bad = len({where for where, _ in problems})
        raise InvalidInput(f"{_plural(len(problems), 'problem')} in {bad} of {_plural(count, 'spec file')}")
    if count == 0:  # nothing was checked: say where nothing was found, not "valid"
        sys.stdout.write(f"0 spec files found in {', '.join(files or dirs)}\n")
        return
    sys.stdout.write(f"{_plural(count, 'spec file')}, {len(registry.devices)} devices: valid\n")


@app.command("list")
def list_devices(
    spec_dir: SpecDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Show the CDI devices found, per kind (broken files are reported on stderr).

    Names are never shortened. Piped, the table is tab-separated (one header line)."""
    from cdigen.cdi import load

    dirs = _spec_dirs(spec_dir)
    registry = load.load_registry(dirs)
    kinds = registry.kinds()
    if as_json:
        import json

        out = {
            "kinds": {kind: [_device_row(d) for d in devices] for kind, devices in kinds.items()},
            "errors": registry.errors,
        }
        sys.stdout.write(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
        return
    rows = [("KIND", "DEVICE", "NETDEVS", "SPEC FILE")]
    for kind, devices in kinds.items():
        for device in devices:
            row = _device_row(device)
            netdevs = " ".join(f"{host}>{name}" if name else host for host, name in row["netDevices"].items())
            rows.append((kind, row["name"], netdevs, row["spec"]))
    sys.stdout.write(_table(rows))
    if not kinds:
        sys.stderr.write(f"no CDI devices found in {', '.join(dirs)}\n")
    for where, messages in registry.errors.items():
        for message in messages:
            sys.stderr.write(f"cdigen: warning: {where}: {message}\n")


def _table(rows: list[tuple]) -> str:
    """Columns padded for a terminal; tab-separated for a pipe, so that scripts can cut them."""
    if not sys.stdout.isatty():
        return "".join("\t".join(row) + "\n" for row in rows)
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n" for row in rows
    )


def _device_row(device) -> dict:
    """A device's names and the NICs it carries (host -> container name as written, None for
    the host's own name): from its spec's edits and its own, whichever field carries them (the
    `cdigen hook` arguments, netDevices, annotations)."""
    from cdigen.cdi.edits import check_part

    spec = device.spec.data
    annotations = spec.get("annotations") or {}
    shared, _ = check_part(spec.get("containerEdits") or {}, annotations)
    own, _ = check_part(device.data.get("containerEdits") or {}, annotations | (device.data.get("annotations") or {}))
    nets = {host: settings.name for host, settings in (shared | own).items()}
    return {"name": device.name, "qualifiedName": device.qualified_name, "spec": device.spec.path, "netDevices": nets}
