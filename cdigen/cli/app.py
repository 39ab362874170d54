"""The typer app. Commands live one module per stage (scan.py; specs.py for validate and list);
each only parses options, calls one plain function and renders its result. Heavy modules are
imported inside the command functions so that `--help` stays fast. The hot-path commands (apply,
hook, dan, runtime, cni) are parsed by hand and dispatched by cdigen/entry.py; their entries
here exist only so that `cdigen --help` lists them."""

from typing import Annotated

import typer

from cdigen.cli.apply import SUMMARY as APPLY_SUMMARY

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


# `apply` runs at every container creation: cdigen/entry.py parses it by hand (cli/apply.py)
# and never routes it here; this entry exists for `cdigen --help`, and forwards its arguments.
@app.command(
    help=APPLY_SUMMARY,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
)
def apply(ctx: typer.Context) -> None:
    from cdigen.cli.apply import main

    raise typer.Exit(main(list(ctx.args)))


def _register() -> None:
    """Import the command modules; their order is the order of `cdigen --help`."""
    # Imported for their @app.command side effect.
    from cdigen.cli import specs  # noqa: F401 (registers validate, list)

    # isort: split
    from cdigen.cli import scan  # noqa: F401 (registers scan, topo)
    from cdigen.cli.netdev import register as register_netdev

    register_netdev(app)  # the `netdev` group (restore); entry.py runs `netdev restore` by hand


_register()

HOOK_HELP = (
    "OCI createRuntime hook: move, rename, address, set the MTU of and bring up netdevs in the "
    "container's network namespace (state JSON on stdin); rolls back on failure. With "
    "--poststop, the poststop hook that brings them home."
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
    poststop: Annotated[bool, typer.Option("--poststop", help="The poststop hook: bring the interfaces home.")] = False,
) -> None:
    # cdigen/entry.py never routes `hook` here; this entry exists for `cdigen --help`.
    from cdigen.cli.hook import main

    flags = ["--poststop"] if poststop else []
    raise typer.Exit(main(flags + [a for value in netdev or [] for a in ("--netdev", value)]))


# `dan` runs at every Kata sandbox creation: cdigen/entry.py parses it by hand (cli/dan.py) and
# never routes it here; this entry exists for `cdigen --help`, and forwards its arguments.
@app.command(
    help="Write Kata's DAN file for a pod sandbox from its network facts (cdigen dan --help).",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
)
def dan(ctx: typer.Context) -> None:
    from cdigen.cli.dan import main

    raise typer.Exit(main(list(ctx.args)))


# `runtime` and `cni` run at every container start: cdigen/entry.py dispatches them by hand
# (cli/runtime.py, cli/cni.py) and never routes them here; these entries exist for
# `cdigen --help`, and forward their arguments.
@app.command(
    help="OCI runtime shim (also as `cdigen-runtime`): on create, inject the CDI devices that "
    "config.json asks for, then exec the real runtime (runc) with the same arguments.",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
)
def runtime(ctx: typer.Context) -> None:
    from cdigen.cli.runtime import main

    raise typer.Exit(main(list(ctx.args)))


@app.command(
    help="CNI plugin `type: cdigen` (also as `cdigen` with CNI_COMMAND set): records the chained "
    "result's interface facts, and Kata's DAN file with dan_dir (cdigen cni --help).",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
)
def cni(ctx: typer.Context) -> None:
    from cdigen.cli.cni import main

    raise typer.Exit(main(list(ctx.args)))
