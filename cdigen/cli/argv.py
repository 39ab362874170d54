"""The command line of the commands that skip typer: the one parser (cdigen/argv.py), its
mistakes in one form (`cdigen: error: COMMAND: MESSAGE (see cdigen COMMAND --help)`, exit 2),
and the `--help` text made from the same table. `layout` is the one form of every command's
help, typer's commands included (cdigen/cli/app.py)."""

from cdigen import argv as grammar
from cdigen.argv import Command
from cdigen.errors import UsageError

WIDTH = 80  # columns of every help text, in a terminal of any width or a pipe
COLUMN = 28  # where an option's help starts
HELP_ROW = ("-h, --help", "Show this message and exit.")


def usage_error(command: Command, message: str) -> UsageError:
    return command_error(command.name, message)


def command_error(words: str, message: str) -> UsageError:
    """`WORDS: MESSAGE (see cdigen WORDS --help)`; no words: a mistake of `cdigen` itself."""
    if not words:
        return UsageError(f"{message} (see cdigen --help)")
    return UsageError(f"{words}: {message} (see cdigen {words} --help)")


def parse(argv: list[str], command: Command) -> dict | None:
    """cdigen.argv.parse, its mistakes naming the command."""
    try:
        return grammar.parse(argv, command)
    except UsageError as e:
        raise usage_error(command, str(e)) from None


def help_text(command: Command, summary: str, description: str = "") -> str:
    """The usage line, the summary, the description, then every argument and option with its
    help; whether an option repeats and its default come from the table."""
    usage = " ".join(
        [f"usage: cdigen {command.name}"]
        + ["[OPTIONS]"] * bool(command.options)
        + [f"[{a.name}]..." if a.repeated else a.name if a.required else f"[{a.name}]" for a in command.arguments]
    )
    sections = [("arguments", [(a.name, a.help) for a in command.arguments])] * bool(command.arguments)
    options = [(f"{o.name} {o.metavar}" if o.metavar else o.name, _option_help(o)) for o in command.options]
    sections.append(("options", [*options, HELP_ROW]))
    return layout(usage, summary, description, sections)


def layout(usage: str, summary: str, description: str, sections: list[tuple[str, list[tuple[str, str]]]]) -> str:
    """The one form of a --help: the usage line; the summary and the description, their
    paragraphs filled to WIDTH (an indented one, an example, as written); then each section,
    `TITLE:` and its rows, `  LEFT  help` with the help in its column."""
    parts = [usage, *_paragraphs(summary), *_paragraphs(description)]
    for title, rows in sections:
        parts.append("\n".join([f"{title}:"] + [_row(left, text) for left, text in rows]))
    return "\n\n".join(parts) + "\n"


def _option_help(option: grammar.Option) -> str:
    return (
        option.help
        + " Repeatable." * option.repeated
        + (f" Default: {option.default}." if option.metavar and option.default else "")
    )


def _paragraphs(text: str) -> list[str]:
    paragraphs = [p.strip("\n") for p in text.split("\n\n") if p.strip()]
    return [p if "\n " in f"\n{p}" else "\n".join(_wrap(p, WIDTH)) for p in paragraphs]


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
