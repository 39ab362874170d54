"""Exit codes and the domain errors. Every module below the CLI raises these; the CLI turns
them into one line on stderr and the exit code they carry.

Documented in README.md ("Exit codes"); keep the two in step.
"""

EXIT_OK = 0
EXIT_FAILURE = 1  # the operation itself failed (I/O, netlink, hook rolled back)
EXIT_USAGE = 2  # bad command line (typer/click use 2 as well)
EXIT_INVALID = 3  # invalid input data: spec, config.json, state, unresolvable device
EXIT_NO_GPU = 4  # scan found no NVIDIA GPU


class CdigenError(Exception):
    """An error with a one-line message meant for the user and an exit code."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class BadArgument(CdigenError):
    """A value the caller passed (not the content of a file) is wrong. `argument` names it in
    the library's terms ("hook_path", "netdev", "device"...); the CLI puts the option's name in
    front of the message, so no library message spells a command-line option."""

    exit_code = EXIT_USAGE

    def __init__(self, argument: str, message: str):
        super().__init__(message)
        self.argument = argument


class UsageError(CdigenError):
    """A command-line mistake, raised by cdigen/cli/ only."""

    exit_code = EXIT_USAGE


class InvalidInput(CdigenError):
    exit_code = EXIT_INVALID


class NoGPU(CdigenError):
    exit_code = EXIT_NO_GPU
