"""The typer app. Commands live one module per stage (scan.py; specs.py for validate and list);
each only parses options, calls one plain function and renders its result. Heavy modules are
imported inside the command functions so that `--help` stays fast. The hot-path commands (apply,
hook, dan, runtime, cni, netdev restore) are parsed by hand and dispatched by cdigen/entry.py;
`cdigen --help` lists them with the summary of their own help (HAND_PARSED).

typer and click only parse here: every help is cli/argv.py's `layout` (the hand-parsed
commands' form, plain text, 80 columns) and every command-line mistake is the hand-parsed
commands' one line, exit 2 (`run_app`)."""

import sys
from typing import Annotated

import typer

# typer 0.26-0.28 vendor click as typer._click (pyproject.toml bounds typer): its exceptions
# are what typer's parser raises.
from typer._click.exceptions import NoArgsIsHelpError, NoSuchOption
from typer._click.exceptions import UsageError as ClickUsageError

from cdigen.cli import apply, dan, deviceplugin, hook, netdev, runtime
from cdigen.cli.argv import command_error, layout
from cdigen.errors import EXIT_USAGE

app = typer.Typer(
    name="cdigen",
    help="CDI specs for GPUs and their RDMA NICs; apply them to OCI bundles; configure netdevs as an OCI hook.",
    no_args_is_help=True,
    # --install-completion / --show-completion: the shell asks the typer path for words; the
    # hot-path commands never see them.
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _cdigen(
    version: Annotated[bool, typer.Option("--version", "-V", help="Print cdigen's version and exit.")] = False,
) -> None:
    """Declares -V/--version for `cdigen --help`; cdigen/entry.py answers it before typer."""


# The commands that entry.py runs without typer, by their words, with their summary.
HAND_PARSED = {
    ("apply",): apply.SUMMARY,
    ("hook",): hook.SUMMARY,
    ("dan",): dan.SUMMARY,
    ("runtime",): runtime.SUMMARY,
    ("cni",): "CNI plugin `type: cdigen` (also as `cdigen` with CNI_COMMAND set): records the chained "
    "result's interface facts, and Kata's DAN file with dan_dir.",
    ("netdev", "restore"): netdev.RESTORE_SUMMARY,
    ("device-plugin",): deviceplugin.DEVICE_PLUGIN_SUMMARY,
    ("refresh",): deviceplugin.REFRESH_SUMMARY,
}


class PlainHelp(typer.Context):
    """A context whose help is in the hand-parsed commands' form (cli/argv.py `layout`)."""

    def get_help(self) -> str:
        command = self.command
        summary, _, description = (command.help or "").strip().partition("\n\n")
        rows: dict[str, list] = {"argument": [], "option": []}
        for param in command.get_params(self):
            record = param.get_help_record(self)
            if record is not None:
                rows[param.param_type_name].append((record[0], _default_as_prose(record[1])))
        sections = [("arguments", rows["argument"])] * bool(rows["argument"]) + [("options", rows["option"])]
        if hasattr(command, "list_commands"):  # a group
            names = command.list_commands(self)
            summaries = [(command.get_command(self, name).help or "").partition("\n\n")[0] for name in names]
            sections.append(("commands", list(zip(names, summaries, strict=True))))
        usage = " ".join([f"usage: {self.command_path}", *command.collect_usage_pieces(self)])
        return layout(usage, summary, description, sections).rstrip("\n")


def _default_as_prose(text: str) -> str:
    """typer's `help  [default: X]` as the hand-parsed commands say it: `help Default: X.`"""
    text, marker, default = text.partition("  [default: ")
    return f"{text} Default: {default.removesuffix(']')}." if marker else text


def _plain(command) -> None:
    """`command` and every command below it render their help as PlainHelp."""
    command.context_class = PlainHelp
    for sub in getattr(command, "commands", {}).values():
        _plain(sub)


def run_app(argv: list[str]) -> int:
    """Run the typer app; a command-line mistake is a cdigen UsageError (one line, exit 2)
    naming the command, as in the hand-parsed commands."""
    command = typer.main.get_command(app)
    _plain(command)
    try:
        code = command.main(args=argv, prog_name="cdigen", standalone_mode=False)
    except NoArgsIsHelpError as e:  # `cdigen`, `cdigen netdev`: what there is, on stderr
        sys.stderr.write(e.format_message() + "\n")
        return EXIT_USAGE
    except ClickUsageError as e:
        raise _usage_error(e, _words(command, argv)) from None
    except SystemExit as e:  # shell completion exits with its code itself
        code = e.code
    return code if isinstance(code, int) else 0


def _words(command, argv: list[str]) -> str:
    """The command words that begin `argv` ("netdev udev-rule"): click leaves a missing
    option value without its command."""
    words = []
    for arg in argv:
        command = getattr(command, "commands", {}).get(arg)
        if command is None:
            break
        words.append(arg)
    return " ".join(words)


def _usage_error(error: ClickUsageError, words: str):
    """click's message in the hand-parsed commands' words: lower case, no full stop, the input
    cut short, and an unknown option's nearest known one."""
    from cdigen.argv import no_such_option
    from cdigen.values import one_line

    if isinstance(error, NoSuchOption):
        message = no_such_option(error.option_name, error.possibilities or ())
    else:
        message = one_line(error.format_message(), 200).removesuffix(".")
        message = message[:1].lower() + message[1:]
    return command_error(words, message)


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
