"""What the start-up benchmarks share: interleaved timing against `python -I -S -c pass`, and
an installed layout of cdigen.

Interleaving: each round runs the baseline and every scenario once, in turn, so that a busy
machine slows them alike; the medians of the rounds are reported with their ratio.

The installed layout: the development venv installs cdigen editable (`pip install -e`), and
setuptools' editable finder, run by site at every interpreter start, imports pathlib,
importlib.util, fnmatch, re and more: 20-45 ms on the 2-core VM before cdigen's first line, a
cost that a wheel install (a package directory in site-packages) does not have. `installed()`
makes a throwaway venv whose site-packages has cdigen as a package directory (a link to the
checkout's) and the development venv's site-packages for the dependencies (a path in a .pth
file: its own .pth files, the editable finder among them, are not run), plus the `cdigen`
console script as pip writes it and the `cdigen-runtime` script (bin/) as pip installs it.
That is what a container host runs.
"""

import compileall
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

PYTHON = sys.executable  # the development venv's interpreter (never the pyenv shim)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEV_CDIGEN = os.path.join(os.path.dirname(PYTHON), "cdigen")
BASELINE = [PYTHON, "-I", "-S", "-c", "pass"]
CONSOLE_SCRIPT = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from cdigen.entry import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


def compile_cdigen(repo: str = REPO) -> None:
    """cdigen's bytecode, as an installed package has it: this environment sets
    PYTHONDONTWRITEBYTECODE, which would otherwise recompile every module on every run."""
    compileall.compile_dir(os.path.join(repo, "cdigen"), quiet=1)


def environment() -> dict:
    """The benchmarks' environment: bytecode is read (compiled first), CDIGEN_* unset."""
    compile_cdigen()
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("CDIGEN_")}


def installed(directory: str, repo: str = REPO) -> str:
    """A venv under `directory` with cdigen (of the checkout `repo`) installed as a wheel
    would be; its `cdigen`."""
    venv = os.path.join(directory, "venv")
    subprocess.run([sys.base_prefix + "/bin/python3", "-m", "venv", "--without-pip", venv], check=True)
    site = subprocess.run(
        [os.path.join(venv, "bin", "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    os.symlink(os.path.join(repo, "cdigen"), os.path.join(site, "cdigen"))
    with open(os.path.join(site, "cdigen-deps.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")  # the dev venv's: typer, ruamel.yaml, jsonpatch...
    python = os.path.join(venv, "bin", "python")
    script = os.path.join(venv, "bin", "cdigen")
    with open(script, "w") as f:
        f.write(CONSOLE_SCRIPT.format(python=python))
    with open(os.path.join(repo, "bin", "cdigen-runtime")) as f:  # pyproject's script-files, as pip installs them
        shim = f.read().replace("#!python", "#!" + python, 1)
    with open(os.path.join(venv, "bin", "cdigen-runtime"), "w") as f:
        f.write(shim)
    os.chmod(script, 0o755)
    os.chmod(os.path.join(venv, "bin", "cdigen-runtime"), 0o755)
    return script


def runc_bundle(tmp: str) -> tuple[str, str, bytes]:
    """A bundle with `runc spec`'s config.json: (bundle, config.json's path, its bytes)."""
    bundle = os.path.join(tmp, "bundle")
    os.makedirs(bundle)
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    config = os.path.join(bundle, "config.json")
    with open(config, "rb") as f:
        return bundle, config, f.read()


def sh(*argv: str) -> None:
    """Run a set-up or tear-down command (not timed); its failure ends the benchmark."""
    subprocess.run(argv, check=True, capture_output=True)


def timed(
    argv: list[str], env: dict | None = None, stdin: bytes | None = None, ok=(0,), cwd: str | None = None
) -> float:
    """Milliseconds of one whole process; SystemExit when its exit code is not in `ok`.
    Its stdout and stderr are files, not pipes: a container that `runc create` leaves behind
    inherits them, and would hold a pipe open."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.run(argv, input=stdin, stdout=out, stderr=err, env=env, cwd=cwd)
        elapsed = (time.perf_counter() - start) * 1000
        if proc.returncode not in ok:
            err.seek(0)
            raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {err.read().decode().strip()[:500]}")
    return elapsed


def rounds(scenarios: dict, runs: int, env: dict) -> dict[str, float]:
    """Medians (ms) of `runs` interleaved rounds (one warm-up round first). `scenarios`: name ->
    a function of env returning milliseconds; "pass" (the baseline) is added."""
    every = {"pass": lambda e: timed(BASELINE, e), **scenarios}
    samples: dict[str, list[float]] = {name: [] for name in every}
    for i in range(runs + 1):
        for name, run in every.items():
            ms = run(env)
            if i:
                samples[name].append(ms)
    return {name: statistics.median(values) for name, values in samples.items()}


def row(name: str, ms: float, base: float, extra: str = "") -> str:
    return f"{name:58} {ms:8.1f} {base:8.1f} {ms / base:6.1f}  {extra}"


HEADER = f"{'scenario':58} {'median':>8} {'pass':>8} {'ratio':>6}"
