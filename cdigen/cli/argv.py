"""The command line of the commands that skip typer: the one parser (cdigen/argv.py), its
mistakes in one form (`cdigen: error: COMMAND: MESSAGE (see cdigen COMMAND --help)`, exit 2),
and the `--help` text made from the same table."""

from cdigen import argv as grammar
from cdigen.argv import Command
from cdigen.errors import UsageError

WIDTH = 92  # columns of the help text
COLUMN = 28  # where an option's help starts


def usage_error(command: Command, message: str) -> UsageError:
    return UsageError(f"{command.name}: {message} (see cdigen {command.name} --help)")


def parse(argv: list[str], command: Command) -> dict | None:
    """cdigen.argv.parse, its mistakes naming the command."""
    try:
        return grammar.parse(argv, command)
    except UsageError as e:
        raise usage_error(command, str(e)) from None


def help_text(command: Command, summary: str, description: str = "") -> str:
    """The usage line, the summary, the description (paragraphs as written), then every
    argument and option with its help; whether an option repeats and its default come from
    the table."""
    usage = " ".join(
        [f"usage: cdigen {command.name}"]
        + ["[OPTIONS]"] * bool(command.options)
        + [f"[{a.name}]..." if a.repeated else a.name if a.required else f"[{a.name}]" for a in command.arguments]
    )
    parts = [usage, "\n".join(_wrap(summary, WIDTH))] + [description.strip("\n")] * bool(description)
    if command.arguments:
        parts.append("\n".join(["arguments:"] + [_row(a.name, a.help) for a in command.arguments]))
    options = [_row(f"{o.name} {o.metavar}" if o.metavar else o.name, _option_help(o)) for o in command.options]
    parts.append("\n".join(["options:", *options, _row("-h, --help", "Show this message and exit.")]))
    return "\n\n".join(parts) + "\n"


def _option_help(option: grammar.Option) -> str:
    return (
        option.help
        + " Repeatable." * option.repeated
        + (f" Default: {option.default}." if option.metavar and option.default else "")
    )


def _row(left: str, text: str) -> str:
    """`  LEFT  help...`, the help wrapped in its column; a LEFT too wide for the column puts
    the help on the next lines."""
    lines = _wrap(text, WIDTH - COLUMN)
    head = f"  {left}"
    if len(head) + 2 <= COLUMN and lines:
        head = head.ljust(COLUMN) + lines.pop(0)
    return "\n".join([head] + [" " * COLUMN + line for line in lines])


def _wrap(text: str, width: int) -> list[str]:
    """Words filled into lines of at most `width` columns (textwrap imports re: not here)."""
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines
