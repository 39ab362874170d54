"""The typer app. Commands live one module per stage (scan.py; specs.py for validate and list);
each only parses options, calls one plain function and renders its result. Heavy modules are
imported inside the command functions so that `--help` stays fast. The hot-path commands (apply,
hook, dan, runtime, cni, netdev restore) are parsed by hand and dispatched by cdigen/entry.py;
`cdigen --help` lists them with the summary of their own help (HAND_PARSED)."""

import typer

from cdigen.cli import apply, dan, hook, netdev

app = typer.Typer(
    name="cdigen",
    help="CDI specs for GPUs and their RDMA NICs; apply them to OCI bundles; configure netdevs as an OCI hook.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# The commands that entry.py runs without typer, by their words, with their summary.
HAND_PARSED = {
    ("apply",): apply.SUMMARY,
    ("hook",): hook.SUMMARY,
    ("dan",): dan.SUMMARY,
    # cli/runtime.py's own help is the real runtime's, cli/cni.py's its USAGE.
    ("runtime",): "OCI runtime shim (also as `cdigen-runtime`): on create, inject the CDI devices that "
    "config.json asks for, then exec the real runtime (runc) with the same arguments.",
    ("cni",): "CNI plugin `type: cdigen` (also as `cdigen` with CNI_COMMAND set): records the chained "
    "result's interface facts, and Kata's DAN file with dan_dir.",
    ("netdev", "restore"): netdev.RESTORE_SUMMARY,
}


def run_app(argv: list[str]) -> int:
    try:
        app(args=argv, prog_name="cdigen")
    except SystemExit as e:  # click exits with the code itself
        code = e.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


def _forward(words: tuple[str, ...]):
    """The callback of a hand-parsed command: its arguments, --help included, go to entry.py."""

    def forward(ctx: typer.Context) -> None:
        from cdigen.entry import main

        raise typer.Exit(main([*words, *ctx.args]))

    return forward


def _register() -> None:
    """Import the command modules; their order is the order of `cdigen --help`."""
    # Imported for their @app.command side effect.
    from cdigen.cli import specs  # noqa: F401 (registers validate, list)

    # isort: split
    from cdigen.cli import scan  # noqa: F401 (registers scan, topo)

    groups = {(): app, ("netdev",): netdev.register(app)}
    for words, summary in HAND_PARSED.items():
        groups[words[:-1]].command(
            name=words[-1],
            help=summary,
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
        )(_forward(words))


_register()
