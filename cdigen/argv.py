"""The one option parser of the commands that skip typer (`apply`, `hook`, `hook ldcache`, `dan`,
`netdev restore`): they run at every container or sandbox start, where typer's import costs
more than their work. Each command is one table, a `Command`, from which both the parse and
its `--help` text (cdigen/cli/argv.py) are made, so the two cannot disagree. Layer 1, so that
cdigen.hookentry reads the hook arguments of a spec with the same rules.

The rules are click's for these shapes: options and arguments in any order, `--opt VALUE` or
`--opt=VALUE` (a value may start with '-'), everything after `--` is an argument, `-h` or
`--help` anywhere asks for help. A mistake is a UsageError whose message quotes the input cut
short (values.quoted); an unknown option names the nearest known one, as click does.
"""

from cdigen.errors import UsageError
from cdigen.values import quoted

HELP = ("-h", "--help")


class Option:
    """`NAME METAVAR` (an option with a value), or `NAME` alone when there is no metavar (a
    flag: True when given). A repeated option collects its values in a list."""

    __slots__ = ("name", "metavar", "help", "repeated", "default", "key")

    def __init__(
        self, name: str, metavar: str | None, help: str, repeated: bool = False, default: str | None = None
    ) -> None:
        self.name = name
        self.metavar = metavar
        self.help = help
        self.repeated = repeated
        self.default = default if metavar else False
        self.key = name.lstrip("-").replace("-", "_")


class Argument:
    """A positional argument: required, optional, or any number of them (`repeated`)."""

    __slots__ = ("name", "help", "required", "repeated", "key")

    def __init__(self, name: str, help: str, required: bool = True, repeated: bool = False) -> None:
        self.name = name
        self.help = help
        self.required = required and not repeated
        self.repeated = repeated
        self.key = name.lower()


class Command:
    """A command's options and arguments. A value option given twice keeps the last value
    (click's rule), or with `once` is a mistake."""

    __slots__ = ("name", "options", "arguments", "once")

    def __init__(
        self, name: str, options: tuple[Option, ...], arguments: tuple[Argument, ...] = (), once: bool = False
    ) -> None:
        self.name = name
        self.options = options
        self.arguments = arguments
        self.once = once


def parse(argv: list[str], command: Command) -> dict | None:
    """{key: value} of every option and argument of `command`, defaults filled in (a flag
    False, a repeated option [], an absent optional argument None); None when help is asked
    for. UsageError naming the mistake."""
    options = {option.name: option for option in command.options}
    out: dict = {option.key: [] if option.repeated else option.default for option in command.options}
    given = set()
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positional += argv[i:]
            break
        if arg in HELP:
            return None
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        name, eq, value = arg.partition("=")
        option = options.get(name)
        if option is None:
            raise UsageError(no_such_option(name, options))
        if option.metavar is None:
            if eq:
                raise UsageError(f"option {name} does not take a value")
            out[option.key] = True
            continue
        if not eq:
            if i == len(argv):
                raise UsageError(f"option {name} requires an argument ({option.metavar})")
            value = argv[i]
            i += 1
        if option.repeated:
            out[option.key].append(value)
            continue
        if command.once and name in given:
            raise UsageError(f"option {name} given twice")
        given.add(name)
        out[option.key] = value
    for argument in command.arguments:
        if argument.repeated:
            out[argument.key], positional = positional, []
        elif positional:
            out[argument.key] = positional.pop(0)
        elif argument.required:
            raise UsageError(f"missing argument {argument.name}")
        else:
            out[argument.key] = None
    if positional:
        raise UsageError(f"unexpected argument {quoted(positional[0])}")
    return out


def no_such_option(name: str, known) -> str:
    """The message for an unknown option, with the nearest of `known` when one is close
    (difflib's measure, as click's, but without the dashes, which every option shares:
    `--frobnicate` is not close to `--roce`)."""
    from difflib import get_close_matches

    bare = {option.lstrip("-"): option for option in known}
    close = get_close_matches(name.lstrip("-"), list(bare), 1)
    return f"no such option: {quoted(name)}" + (f"; did you mean {bare[close[0]]}?" if close else "")
