#!/usr/bin/env python3
"""A/B of the container-start paths: this checkout against another (the code before a change),
both installed as a wheel would be (bench/common.py, `installed`), interleaved in one invocation
so that a busy machine slows both alike.

Scenarios, each run by both trees, each tree on the spec its own `scan` writes:
- apply: one device of the HGX example spec (YAML, as `cdigen scan --cdi-version 1.1.0` writes
  it), config.json restored before each run (not timed); and two devices of the RoCE HGX
  example (their NICs addressed), where this checkout adds NCCL's and UCX's variables;
- hook: `cdigen hook` with the OCI state on stdin and a config.json without netdevs (start-up,
  argument and state parsing, config.json read: everything before the netlink work);
- shim pass-through: `cdigen-runtime --version` (execs runc);
- CNI VERSION: the plugin answering `CNI_COMMAND=VERSION`.
Run by this checkout alone, when it has it: `cdigen hook nccl` of that RoCE container (the one
hook process a RoCE container starts more; docs/nccl.md), its /etc/nccl.conf removed before each
run (not timed), so that every run writes it.

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
        nics = os.path.join(tmp, "nics.yaml")
        with open(nics, "w") as f:
            json.dump({"enp20s0np0": {"address": "192.0.2.10/24"}, "enp22s0np0": {"address": "192.0.2.11/24"}}, f)
        for name, cdigen in trees.items():  # a tree refuses hook arguments only a later one writes
            for example, options in (("hgx-h100", []), ("hgx-h100-roce", ["--netdev-config", nics])):
                out = os.path.join(tmp, name, f"cdi-{example}", "cdigen-gpu.yaml")
                os.makedirs(os.path.dirname(out))
                subprocess.run(
                    [cdigen, "scan", "--example", example, "--cdi-version", "1.1.0", *options]
                    + ["--netdev-name", "net{n}", "--hook-path", HOOK_PATH, "-o", out],
                    check=True,
                    env=env,
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

        def scenarios(name: str) -> dict:
            cdigen = trees[name]
            shim = os.path.join(os.path.dirname(cdigen), "cdigen-runtime")

            def apply(example: str, *devices: str):
                spec_dir = os.path.join(tmp, name, f"cdi-{example}")
                argv = [cdigen, "apply", bundle, "--spec-dir", spec_dir]
                argv += [f"--device=cdigen.io/gpu={d}" for d in devices]

                def run(e: dict) -> float:
                    with open(config, "wb") as f:
                        f.write(pristine)
                    return timed(argv, e)

                return run

            return {
                "apply, 1 HGX device": apply("hgx-h100", "gpu0"),
                "apply, 2 HGX RoCE devices": apply("hgx-h100-roce", "gpu0", "gpu1"),
                "hook, no netdevs": lambda e: timed([cdigen, "hook"], e, stdin=state),
                "shim pass-through (--version)": lambda e: timed([shim, "--version"], e),
                "CNI VERSION": lambda e: timed([cdigen], cni_env, stdin=cni_conf),
            }

        every = {}
        for name in trees:
            every |= {f"{scenario} [{name}]": run for scenario, run in scenarios(name).items()}
        every |= nccl_hook(trees["this"], tmp, pristine, env)
        medians = rounds(every, args.runs, env)
    print(f"python: {PYTHON}; base: {args.base}; median of {args.runs} interleaved rounds")
    print(HEADER)
    for name, ms in medians.items():
        print(row(name, ms, medians["pass"]))
    for scenario in scenarios("this"):
        base, this = medians[f"{scenario} [base]"], medians[f"{scenario} [this]"]
        print(f"{scenario:40} this/base {this / base:5.2f}")


def nccl_hook(cdigen: str, tmp: str, pristine: bytes, env: dict) -> dict:
    """{name: run} of `cdigen hook nccl` for the RoCE container `cdigen apply` made, in a
    bundle of its own; {} when this checkout has no such hook."""
    if subprocess.run([cdigen, "hook", "nccl", "--help"], capture_output=True, env=env).returncode != 0:
        return {}
    hook_bundle = os.path.join(tmp, "nccl-bundle")
    os.makedirs(os.path.join(hook_bundle, "rootfs", "etc"))
    with open(os.path.join(hook_bundle, "config.json"), "wb") as f:
        f.write(pristine)
    spec_dir = os.path.join(tmp, "this", "cdi-hgx-h100-roce")
    devices = ["--device=cdigen.io/gpu=gpu0", "--device=cdigen.io/gpu=gpu1"]
    subprocess.run([cdigen, "apply", hook_bundle, "--spec-dir", spec_dir, *devices], check=True, env=env)
    conf = os.path.join(hook_bundle, "rootfs", "etc", "nccl.conf")
    state = json.dumps({"ociVersion": "1.0.2", "id": "x", "status": "creating", "bundle": hook_bundle}).encode()

    def run(e: dict) -> float:
        if os.path.exists(conf):
            os.unlink(conf)
        return timed([cdigen, "hook", "nccl"], e, stdin=state)

    return {"hook nccl, 2 HGX RoCE devices [this]": run}


if __name__ == "__main__":
    main()
