"""The typer app. Commands live one module per stage (scan, apply); each only parses options,
calls one plain function and renders its result. Heavy modules are imported inside the command
functions so that `--help` and the hot paths stay fast."""

from typing import Annotated

import typer

app = typer.Typer(
    name="cdigen",
    help="CDI specs for GPUs and their RDMA NICs; apply them to OCI bundles; configure netdevs as an OCI hook.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def run_app(argv: list[str]) -> int:
    try:
        app(args=argv, prog_name="cdigen")
    except SystemExit as e:  # click exits with the code itself
        code = e.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


def _register() -> None:
    """Import the command modules; their order is the order of `cdigen --help`."""
    # Imported for their @app.command side effect.
    from cdigen.cli import (
        apply,  # noqa: F401 (registers apply, validate, list)
        scan,  # noqa: F401 (registers scan, topo)
    )


_register()

HOOK_HELP = (
    "OCI createRuntime hook: move, rename, address, set the MTU of and bring up netdevs in the "
    "container's network namespace (state JSON on stdin); rolls back on failure."
)


@app.command(help=HOOK_HELP)
def hook(
    netdev: Annotated[
        list[str] | None,
        typer.Option(
            "--netdev",
            metavar="HOSTIF=name=..,address=..,mask=..,mtu=..",
            help="A host interface and its container settings (repeatable). Without it: every "
            "linux.netDevices entry of config.json; that entry's keys win over these.",
        ),
    ] = None,
) -> None:
    # cdigen/entry.py never routes `hook` here; this entry exists for `cdigen --help`.
    from cdigen.cli.hook import main

    raise typer.Exit(main([a for value in netdev or [] for a in ("--netdev", value)]))
