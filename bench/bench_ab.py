#!/usr/bin/env python3
"""A/B of the container-start paths: this checkout against another (the code before a change),
both installed as a wheel would be (bench/common.py, `installed`), interleaved in one invocation
so that a busy machine slows both alike.

Scenarios, each run by both trees:
- apply: one device of the HGX example spec (YAML, as `cdigen scan --cdi-version 1.1.0` writes
  it), config.json restored before each run (not timed);
- hook: `cdigen hook` with the OCI state on stdin and a config.json without netdevs (start-up,
  argument and state parsing, config.json read: everything before the netlink work);
- shim pass-through: `cdigen-runtime --version` (execs runc);
- CNI VERSION: the plugin answering `CNI_COMMAND=VERSION`.

usage: bench/bench_ab.py --base DIR [--runs N]   (DIR: e.g. `git worktree add /tmp/base REV`)
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from common import HEADER, PYTHON, compile_cdigen, environment, installed, rounds, row, timed

HOOK_PATH = "/usr/local/bin/cdigen"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="checkout of the code to compare against")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    runc = shutil.which("runc")
    if not runc:
        sys.exit("needs runc")
    env = environment()
    compile_cdigen(os.path.abspath(args.base))
    with tempfile.TemporaryDirectory(prefix="cdigen-bench-ab-") as tmp:
        trees = {
            "base": installed(os.path.join(tmp, "base"), os.path.abspath(args.base)),
            "this": installed(os.path.join(tmp, "this")),
        }
        spec_dir = os.path.join(tmp, "cdi")
        os.makedirs(spec_dir)
        subprocess.run(
            [PYTHON, "-m", "cdigen", "scan", "--example", "hgx-h100", "--cdi-version", "1.1.0"]
            + ["--hook-path", HOOK_PATH, "-o", os.path.join(spec_dir, "cdigen-gpu.yaml")],
            check=True,
        )
        bundle = os.path.join(tmp, "bundle")
        os.makedirs(bundle)
        subprocess.run([runc, "spec", "--bundle", bundle], check=True)
        config = os.path.join(bundle, "config.json")
        with open(config, "rb") as f:
            pristine = f.read()
        hook_bundle = os.path.join(tmp, "hook-bundle")
        shutil.copytree(bundle, hook_bundle)
        state = json.dumps({"ociVersion": "1.0.2", "id": "x", "status": "creating", "pid": os.getpid(),
                            "bundle": hook_bundle}).encode()  # fmt: skip
        runtime_config = os.path.join(tmp, "runtime.json")
        with open(runtime_config, "w") as f:
            json.dump({"runtime": runc}, f)
        env["CDIGEN_RUNTIME_CONFIG"] = runtime_config
        cni_env = dict(env, CNI_COMMAND="VERSION")
        cni_conf = b'{"cniVersion": "1.0.0", "name": "bench", "type": "cdigen"}'

        def scenarios(cdigen: str) -> dict:
            shim = os.path.join(os.path.dirname(cdigen), "cdigen-runtime")

            def apply(e: dict) -> float:
                with open(config, "wb") as f:
                    f.write(pristine)
                return timed([cdigen, "apply", bundle, "--spec-dir", spec_dir, "--device", "cdigen.io/gpu=gpu0"], e)

            return {
                "apply, 1 HGX device": apply,
                "hook, no netdevs": lambda e: timed([cdigen, "hook"], e, stdin=state),
                "shim pass-through (--version)": lambda e: timed([shim, "--version"], e),
                "CNI VERSION": lambda e: timed([cdigen], cni_env, stdin=cni_conf),
            }

        every = {}
        for name, cdigen in trees.items():
            every |= {f"{scenario} [{name}]": run for scenario, run in scenarios(cdigen).items()}
        medians = rounds(every, args.runs, env)
    print(f"python: {PYTHON}; base: {args.base}; median of {args.runs} interleaved rounds")
    print(HEADER)
    for name, ms in medians.items():
        print(row(name, ms, medians["pass"]))
    for scenario in scenarios(trees["this"]):
        base, this = medians[f"{scenario} [base]"], medians[f"{scenario} [this]"]
        print(f"{scenario:40} this/base {this / base:5.2f}")


if __name__ == "__main__":
    main()
