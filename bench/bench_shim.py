#!/usr/bin/env python3
"""Overhead of the runtime shim (`cdigen-runtime`) over calling Debian's runc directly, whole
processes, as containerd's runc shim calls the runtime.

- `create`, one CDI device asked for in the container's environment (CDIGEN_DEVICES; a GPU-like
  device: 4 device nodes, env; no netdev, so that no hook runs): the shim injects, then execs
  runc. Compared with `runc create` of the already injected config.json, so both runc runs do
  the same work; config.json is restored before each shim run, the container deleted after
  each run (neither timed).
- `create` with no device asked for: the shim reads config.json and execs runc.
- pass-through: `state ID` of a created container, and `--version`: exec at once.

Every number is the median of --runs interleaved rounds (bench/common.py), each also timing
`python -I -S -c pass`. The shim is the installed layout's `cdigen-runtime` script
(bench/common.py); one more row runs `--version` through a `cdigen-runtime` link to the `cdigen`
console script, the other way to install it, whose pip wrapper imports `re`. Run as root.

usage: sudo bench/bench_shim.py [--runs N]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

from common import HEADER, environment, installed, rounds, row, timed

TARGETS = {"create": 50, "pass-through": 15}
SPEC = {
    "cdiVersion": "0.5.0",
    "kind": "bench.cdigen.io/gpu",
    "containerEdits": {"deviceNodes": [{"path": "/dev/nvidiactl", "type": "c", "major": 195, "minor": 255}]},
    "devices": [
        {
            "name": "gpu0",
            "containerEdits": {
                "env": ["BENCH_GPU=0"],
                "deviceNodes": [
                    {"path": "/dev/nvidia0", "type": "c", "major": 195, "minor": 0},
                    {"path": "/dev/dri/card0", "type": "c", "major": 226, "minor": 0},
                    {"path": "/dev/infiniband/uverbs0", "type": "c", "major": 231, "minor": 192},
                ],
            },
        }
    ],
}


def bundle_dir(tmp: str, name: str, env_devices: str | None) -> str:
    bundle = os.path.join(tmp, name)
    rootfs = os.path.join(bundle, "rootfs", "bin")
    os.makedirs(rootfs)
    shutil.copy2(shutil.which("busybox"), os.path.join(rootfs, "busybox"))
    os.symlink("busybox", os.path.join(rootfs, "true"))
    subprocess.run(["runc", "spec", "--bundle", bundle], check=True)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["process"]["args"] = ["true"]
    config["process"]["terminal"] = False
    if env_devices:
        config["process"]["env"].append(f"CDIGEN_DEVICES={env_devices}")
    with open(path, "w") as f:
        json.dump(config, f, indent="\t")
    return bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("runc") or not shutil.which("busybox"):
        sys.exit("needs root, runc and busybox-static")
    env = environment()
    runc = shutil.which("runc")
    with tempfile.TemporaryDirectory(prefix="cdigen-bench-shim-") as tmp:
        cdigen = installed(tmp)
        shim = os.path.join(os.path.dirname(cdigen), "cdigen-runtime")
        link = os.path.join(tmp, "link", "cdigen-runtime")
        os.makedirs(os.path.dirname(link))
        os.symlink(cdigen, link)
        spec_dir = os.path.join(tmp, "cdi")
        os.makedirs(spec_dir)
        with open(os.path.join(spec_dir, "bench.json"), "w") as f:
            json.dump(SPEC, f)
        config = os.path.join(tmp, "runtime.json")
        with open(config, "w") as f:
            json.dump({"runtime": runc, "spec_dirs": [spec_dir]}, f)
        env["CDIGEN_RUNTIME_CONFIG"] = config
        state = os.path.join(tmp, "state")
        with_device = bundle_dir(tmp, "with-device", "bench.cdigen.io/gpu=gpu0")
        without = bundle_dir(tmp, "without", None)
        with open(os.path.join(with_device, "config.json"), "rb") as f:
            pristine = f.read()
        # The injected config.json, for the direct runc run: the shim's result.
        injected_bundle = bundle_dir(tmp, "injected", "bench.cdigen.io/gpu=gpu0")
        probe = f"probe-{uuid.uuid4().hex[:6]}"
        subprocess.run([shim, "--root", state, "create", "--bundle", injected_bundle, probe], env=env, check=True)
        subprocess.run([runc, "--root", state, "delete", "--force", probe], check=True)

        def create(runtime: str, bundle: str, restore: bool):
            def run(e: dict) -> float:
                if restore:
                    with open(os.path.join(bundle, "config.json"), "wb") as f:
                        f.write(pristine)
                cid = f"bench-{uuid.uuid4().hex[:8]}"
                argv = [runtime, "--root", state, "--log", os.path.join(bundle, "log.json"), "--log-format", "json"]
                ms = timed([*argv, "create", "--bundle", bundle, "--pid-file", f"{bundle}/init.pid", cid], e)
                subprocess.run([runc, "--root", state, "delete", "--force", cid], check=True)
                return ms

            return run

        standing = f"bench-{uuid.uuid4().hex[:8]}"
        subprocess.run([runc, "--root", state, "create", "--bundle", without, standing], check=True)
        try:
            scenarios = {
                "runc create (the injected config.json)": create(runc, injected_bundle, False),
                "shim create, 1 device injected (CDIGEN_DEVICES)": create(shim, with_device, True),
                "runc create, no device": create(runc, without, False),
                "shim create, no device asked for": create(shim, without, False),
                "runc state": lambda e: timed([runc, "--root", state, "state", standing], e),
                "shim state (pass-through)": lambda e: timed([shim, "--root", state, "state", standing], e),
                "runc --version": lambda e: timed([runc, "--version"], e),
                "shim --version (pass-through)": lambda e: timed([shim, "--version"], e),
                "runc --version ": lambda e: timed([runc, "--version"], e),
                "shim --version, link to the console script": lambda e: timed([link, "--version"], e),
            }
            medians = rounds(scenarios, args.runs, env)
        finally:
            subprocess.run([runc, "--root", state, "delete", "--force", standing], capture_output=True)
    base = medians.pop("pass")
    print(f"median of {args.runs} interleaved rounds; shim overhead = shim - runc")
    print(HEADER)
    names = list(medians)
    for direct, via in zip(names[::2], names[1::2], strict=True):
        overhead = medians[via] - medians[direct]
        kind = "create" if "create" in via else "pass-through"
        print(row(direct, medians[direct], base))
        print(row(via, medians[via], base, f"overhead {overhead:5.1f} ms (target <= {TARGETS[kind]} ms)"))


if __name__ == "__main__":
    sys.exit(main())
