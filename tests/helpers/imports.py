"""What a whole `cdigen` process imports: the hot paths must not pay for typer, rich or dataclasses."""

import subprocess
import sys


def imported(argv: list[str], stdin: str = "", env: dict | None = None) -> set[str]:
    """The top-level modules loaded by the time `cdigen ARGV` returns (or execs)."""
    code = (
        "import os, sys\n"
        "def report():\n"
        "    sys.stderr.write('MODULES ' + ' '.join(sorted({m.split('.')[0] for m in sys.modules})) + '\\n')\n"
        "os.execv = lambda *a: (report(), os._exit(0))\n"  # the runtime shim's exec
        f"sys.argv = ['cdigen', *{argv!r}]\n"
        "from cdigen.entry import main\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    report()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], input=stdin, capture_output=True, text=True, env=env)
    line = next(line for line in proc.stderr.splitlines() if line.startswith("MODULES "))
    return set(line.split()[1:])


# typer/rich/click: about 40 ms; dataclasses (with inspect, ast, dis...): about 29 ms (docs/benchmarks.md).
SLOW_IMPORTS = {"typer", "rich", "click", "dataclasses", "inspect"}
