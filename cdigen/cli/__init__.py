"""The command line: typer commands (app.py, scan.py, apply.py) and the hand-parsed hot-path
commands (hook.py). Importing this package imports no typer: cdigen/entry.py uses
`error_line` on every path.

Library code raises domain errors; this is the one place that names their command-line
options (`BadArgument.argument` -> option) and the exit code is the error's own.
"""

from cdigen.errors import BadArgument, CdigenError

OPTION_NAMES = {
    "bundle": "bundle",
    "device": "--device",
    "example": "--example",
    "format": "--format",
    "hook_path": "--hook-path",
    "name_strategy": "--device-name-strategy",
    "netdev": "--netdev",
    "netdev_name": "--netdev-name",
    "vendor": "--vendor",
    "class": "--class",
}


def error_line(error: CdigenError) -> str:
    """The one-line message for an error, naming the option a BadArgument is about."""
    if isinstance(error, BadArgument):
        return f"{OPTION_NAMES.get(error.argument, error.argument)} {error}"
    return str(error)
