"""The typer app. Commands live one module per capability (scan, apply, hook); each only
parses options, calls one plain function and renders its result. Heavy modules are imported
inside the command functions so that `--help` and the hot paths stay fast."""

import typer

app = typer.Typer(
    name="cdigen",
    help="CDI specs for GPUs and their RDMA NICs; apply them to OCI bundles; configure netdevs as an OCI hook.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Registration order is the order of `cdigen --help`.
from cdigen.cli import scan as _scan  # noqa: E402,F401
from cdigen.cli import apply as _apply  # noqa: E402,F401
from cdigen.cli import hook as _hook  # noqa: E402,F401


def run_app(argv: list[str]) -> int:
    try:
        app(args=argv, prog_name="cdigen")
    except SystemExit as e:  # click exits with the code itself
        code = e.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
