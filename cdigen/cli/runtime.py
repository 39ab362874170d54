"""`cdigen runtime` (also installed as `cdigen-runtime`): the OCI runtime shim's command line.
It reads the runtime's arguments (`shim.parse_runtime_args`: runc's and crun's grammar) and
calls the shim's work (cdigen/shim.py), which execs the real runtime. A failure is one line
on stderr and in the runtime's `--log` file, in that file's format, where containerd reads
the error from; the runtime is then never started."""

import os
import sys

from cdigen import shim
from cdigen.cli import error_line
from cdigen.errors import EXIT_FAILURE, CdigenError
from cdigen.shim import RuntimeArgs, parse_runtime_args


def runtime_log(args: RuntimeArgs, message: str) -> None:
    """The error in the runtime's own --log file and format, where containerd's shim reads the
    reason a `create` failed (the last error of log.json)."""
    if not args.log or args.log.startswith("/dev/") or args.log == "-":
        return  # /dev/stderr: the line on stderr is already there
    import json

    if args.log_format == "json":
        line = json.dumps({"level": "error", "msg": message, "time": shim.timestamp()})
    else:
        line = f"time={json.dumps(shim.timestamp())} level=error msg={json.dumps(message)}"
    shim.append_line(args.log, line)


def fail(args: RuntimeArgs, settings: shim.Settings | None, argv: list[str], message: str, code: int) -> int:
    where = f"runtime {args.command} {args.container_id}" if args.container_id else "runtime"
    line = f"cdigen: error: {where}: {message}"
    sys.stderr.write(line + "\n")
    runtime_log(args, line)
    shim.debug_log(settings, {"argv": argv, "error": message, "exit": code})
    return code


def main(argv: list[str]) -> int:
    """Run as the OCI runtime with `argv` (the runtime's arguments); returns only on failure."""
    args = parse_runtime_args(argv)
    settings = None
    try:
        shim.refuse_loop()
        settings = shim.load_settings()
        path = shim.prepare(args, argv, settings)
    except CdigenError as e:
        return fail(args, settings, argv, error_line(e), e.exit_code)
    except Exception as e:
        if os.environ.get("CDIGEN_DEBUG"):
            raise
        return fail(args, settings, argv, f"internal error: {type(e).__name__}: {e}", EXIT_FAILURE)
    try:
        shim.exec_runtime(path, argv)
    except OSError as e:
        return fail(args, settings, argv, f"cannot execute {path}: {e.strerror}", EXIT_FAILURE)
    return EXIT_FAILURE  # not reached
