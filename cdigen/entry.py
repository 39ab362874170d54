"""Console-script entry point.

`cdigen hook` is started by a container runtime at every container creation, so it is
dispatched here without importing typer/rich (about 40 ms of import time measured on this
machine; see docs/benchmarks.md). Every other command goes through the typer app.
"""

import os
import sys

from cdigen.errors import EXIT_FAILURE, CdigenError


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"cdigen: error: {message}\n")
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["hook"]:
            from cdigen.cli.hook import main as hook_main

            return hook_main(argv[1:])
        from cdigen.cli.app import run_app

        return run_app(argv)
    except CdigenError as e:
        from cdigen.cli import error_line

        return _fail(error_line(e), e.exit_code)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as e:  # never a traceback on the user's terminal
        if os.environ.get("CDIGEN_DEBUG"):
            raise
        return _fail(f"internal error: {type(e).__name__}: {e}", EXIT_FAILURE)


if __name__ == "__main__":
    sys.exit(main())
