#!/usr/bin/env python3
"""Whole-process start of cdigen per packaging: today's install (a venv holding cdigen as a
wheel would install it, bench/common.py's `installed`) against the frozen builds given on the
command line (PyInstaller, cx_Freeze, Nuitka...), the same invocations for each.

Scenarios, per candidate:
- `--version`: the start alone;
- `apply` of one device (gpu0) of the HGX example spec (YAML, as scan writes it) onto a
  `runc spec` bundle, config.json restored before each run (not timed);
- as root, `cdigen hook` with the OCI state on stdin moving a veth end into a netns, renaming,
  addressing and bringing it up (bench_hook.Scene; set-up and tear-down not timed).

Every number is the median of --runs interleaved rounds (bench/common.py), each round also
timing `python -I -S -c pass`. The size is what the node must hold: a frozen build's directory;
for a venv, the venv (the interpreter it needs comes on top, docs/benchmarks.md says how much).

usage: bench/bench_packaging.py [NAME=EXECUTABLE...] [--runs N] [--no-hook] [--json FILE]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from bench_apply import HOOK_PATH, KIND, hgx_specs
from bench_hook import Scene
from common import HEADER, environment, installed, rounds, row, runc_bundle, timed


def footprint_mb(executable: str) -> float:
    """MiB on disk: the venv of a script (its shebang names the venv's python), else the
    directory of the (frozen) executable."""
    path = os.path.realpath(executable)
    with open(path, "rb") as f:
        script = f.read(2) == b"#!"
    top = os.path.dirname(os.path.dirname(path)) if script else os.path.dirname(path)
    out = subprocess.run(["du", "-sk", top], check=True, capture_output=True, text=True).stdout
    return int(out.split()[0]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("candidates", nargs="*", metavar="NAME=EXECUTABLE", help="a frozen cdigen to compare")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-hook", action="store_true", help="skip the hook (it needs root, veth and netns)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    hook = not args.no_hook
    if hook and os.geteuid() != 0:
        raise SystemExit("the hook scenario needs root (veth pairs and network namespaces); or --no-hook")
    env = environment()
    with tempfile.TemporaryDirectory(prefix="cdigen-bench-") as tmp:
        candidates = {"venv (wheel layout)": installed(tmp)}
        for given in args.candidates:
            name, sep, executable = given.partition("=")
            if not sep or not os.access(executable, os.X_OK):
                raise SystemExit(f"not NAME=EXECUTABLE, or not executable: {given}")
            candidates[name] = os.path.abspath(executable)
        bundle, config, pristine = runc_bundle(tmp)
        hgx_yaml = hgx_specs(tmp)[0]
        hook_env = {**env, "CDIGEN_STATE_DIR": tmp}  # the hook's record files go with the rest

        def version(cdigen: str):
            return lambda e: timed([cdigen, "--version"], e)

        def apply(cdigen: str):
            argv = [cdigen, "apply", bundle, "--spec-dir", hgx_yaml, "--device", f"{KIND}=gpu0"]

            def run(e: dict) -> float:
                with open(config, "wb") as f:
                    f.write(pristine)
                return timed([*argv, "--hook-path", HOOK_PATH], e)

            return run

        def hook_run(cdigen: str):
            def run(_: dict) -> float:
                scene = Scene(tmp)
                try:
                    ms = timed([cdigen, "hook"], hook_env, scene.state)
                    scene.check()
                finally:
                    scene.teardown()
                return ms

            return run

        scenarios = {}
        for name, cdigen in candidates.items():
            scenarios[f"{name}: --version"] = version(cdigen)
            scenarios[f"{name}: apply, HGX yaml, 1 device"] = apply(cdigen)
            if hook:
                scenarios[f"{name}: hook, 1 veth"] = hook_run(cdigen)
        medians = rounds(scenarios, args.runs, env)
        # the wheel layout links to the checkout and the dev venv: its size means nothing
        sizes = {name: footprint_mb(cdigen) for name, cdigen in list(candidates.items())[1:]}
    base = medians.pop("pass")
    print(f"median of {args.runs} interleaved rounds")
    print(HEADER)
    for name, ms in medians.items():
        print(row(name, ms, base))
    for name, mb in sizes.items():
        print(f"size on disk, {name}: {mb:.1f} MiB")
    if args.json:
        results = [{"name": n, "median_ms": round(ms, 1)} for n, ms in medians.items()]
        with open(args.json, "w") as f:
            json.dump({"runs": args.runs, "python_pass_ms": round(base, 1), "scenarios": results, "mib": sizes}, f)


if __name__ == "__main__":
    sys.exit(main())
