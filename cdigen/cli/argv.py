"""The one hand-written option parser of the commands that skip typer (`apply`, `dan`): they
run at every container or sandbox start, where typer's import costs more than their work.
Parses as click does for these shapes: options and arguments in any order, `--opt VALUE` or
`--opt=VALUE` (a value may start with '-'), everything after `--` is an argument, `-h`/`--help`
anywhere asks for help. Every mistake is a UsageError (exit 2) naming the command."""

from cdigen.errors import UsageError


def usage_error(command: str, message: str) -> UsageError:
    return UsageError(f"{command}: {message} (see cdigen {command} --help)")


def parse(
    argv: list[str],
    command: str,
    values: dict[str, str],
    flags: dict[str, str],
    repeated: tuple[str, ...] = (),
    once: bool = False,
) -> tuple[dict, list[str]] | None:
    """(options, arguments), or None when help is asked for. `values`/`flags`: option -> key;
    a key in `repeated` collects a list; any other value option given twice keeps the last
    (click's rule), or is an error with `once`."""
    options: dict = {key: [] for key in repeated}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positional += argv[i:]
            break
        if arg in ("-h", "--help"):
            return None
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        name, eq, value = arg.partition("=")
        if name in flags:
            if eq:
                raise usage_error(command, f"option {name} does not take a value")
            options[flags[name]] = True
        elif name in values:
            if not eq:
                if i >= len(argv):
                    raise usage_error(command, f"option {name} requires an argument")
                value = argv[i]
                i += 1
            key = values[name]
            if key in repeated:
                options[key].append(value)
                continue
            if once and key in options:
                raise usage_error(command, f"option {name} given twice")
            options[key] = value
        else:
            raise usage_error(command, f"no such option: {name}")
    return options, positional
