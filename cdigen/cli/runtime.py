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

SUMMARY = (
    "OCI runtime shim (also as `cdigen-runtime`): on create, inject the CDI devices that config.json asks "
    "for, then exec the real runtime (runc) with the same arguments."
)
DESCRIPTION = """\
An engine runs it where it would run runc, with runc's arguments. On `create` and `run` it
injects the devices that config.json's cdi.k8s.io/* annotations and the container's
CDIGEN_DEVICES variable name, as `cdigen apply` does (with the pod's network); every other
command goes to the real runtime untouched. When injection fails: one line on stderr and in the
runtime's --log file, and the runtime is never started.

Register it as the engine's runtime: containerd's BinaryName, CRI-O's runtime_path, podman
--runtime, docker's daemon.json "runtimes" (docs/shim.md). Engines often start a
runtime with a cleaned environment: prefer the settings file to the variables. The real
runtime's own help: `runc --help`."""


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


def help_text() -> str:
    from cdigen.cli.argv import HELP_ROW, layout

    settings = [
        (shim.CONFIG_PATH, f"A JSON object with any of {', '.join(shim.CONFIG_KEYS)} (docs/shim.md)."),
        (shim.ENV_CONFIG, "Another settings file in its place."),
        (
            shim.ENV_RUNTIME,
            f"The real runtime, a path or a name on PATH; wins over the file. Default: {shim.DEFAULT_RUNTIME}.",
        ),
        (shim.ENV_LOG, "A debugging log, one JSON line per invocation; wins over the file."),
        (shim.ENV_DEVICES, "In the container's environment (-e): CDI devices to inject, comma-separated."),
    ]
    return layout(
        "usage: cdigen-runtime RUNTIME-ARGS...   (or: cdigen runtime RUNTIME-ARGS...)",
        SUMMARY,
        DESCRIPTION,
        [
            ("arguments", [("RUNTIME-ARGS", "The real runtime's command line, passed on unchanged.")]),
            ("settings", settings),
            ("options", [(HELP_ROW[0], "As the only argument: show this message and exit.")]),
        ],
    )


def main(argv: list[str]) -> int:
    """Run as the OCI runtime with `argv` (the runtime's arguments); returns only on failure.
    `-h`/`--help` alone is the shim's own help: no engine asks a runtime for its help, and the
    real runtime's stays one `runc --help` away."""
    if argv in (["-h"], ["--help"]):
        sys.stdout.write(help_text())
        return 0
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
