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
- hook, 1 veth: `cdigen hook` moving, renaming, addressing a veth end into a netns and bringing
  it up (bench_hook.Scene: set-up and tear-down not timed), as config.json's createRuntime
  entry; once as a container without RDMA port, once as a RoCE container's (`--roce`, its root
  a directory with /etc), where a checkout that folds NCCL's and UCX's files into the hook
  writes /etc/nccl.conf;
- shim pass-through: `cdigen-runtime --version` (execs runc);
- CNI VERSION: the plugin answering `CNI_COMMAND=VERSION`.
Run by a tree that has it (the base, 3165b77): `cdigen hook nccl` of that RoCE container, the
createContainer process an engine started besides the hook; its /etc/nccl.conf removed before
each run (not timed), so that every run writes it. The engine path's cost of a RoCE container
is then the hook plus that process against the hook alone.

usage: bench/bench_ab.py --base DIR [--runs N]   (DIR: e.g. `git worktree add /tmp/base REV`)
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from bench_hook import Scene
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
                for names in ("net{n}", "net{index}"):  # a tree before issue 18 has no {n}
                    scanned = subprocess.run(
                        [cdigen, "scan", "--example", example, "--cdi-version", "1.1.0", *options]
                        + ["--netdev-name", names, "--hook-path", HOOK_PATH, "-o", out],
                        env=env,
                        capture_output=True,
                    )
                    if scanned.returncode == 0:
                        break
                else:
                    sys.exit(scanned.stderr.decode())
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
        hook_env = dict(env, CDIGEN_STATE_DIR=tmp)  # the hook's record files go with the rest

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
                "hook, 1 veth": veth_hook(cdigen, tmp, hook_env, roce=False, writes=False),
                "hook, 1 veth, RoCE": veth_hook(cdigen, tmp, hook_env, roce=knows_roce[name], writes=folded[name]),
                "shim pass-through (--version)": lambda e: timed([shim, "--version"], e),
                "CNI VERSION": lambda e: timed([cdigen], cni_env, stdin=cni_conf),
            }

        # A tree before issue 20 has no --roce: its RoCE container's hook is the plain one.
        knows_roce = {
            name: "--roce" in subprocess.run([cdigen, "hook", "--help"], capture_output=True, text=True).stdout
            for name, cdigen in trees.items()
        }
        separate = {name: nccl_hook(cdigen, os.path.join(tmp, name)) for name, cdigen in trees.items()}
        # the hook writes the files itself
        folded = {name: knows_roce[name] and run is None for name, run in separate.items()}
        every = {}
        for name in trees:
            every |= {f"{scenario} [{name}]": run for scenario, run in scenarios(name).items()}
        every |= {f"hook nccl, 1 RoCE device [{name}]": run for name, run in separate.items() if run}
        medians = rounds(every, args.runs, env)
    print(f"python: {PYTHON}; base: {args.base}; median of {args.runs} interleaved rounds")
    print(HEADER)
    for name, ms in medians.items():
        print(row(name, ms, medians["pass"]))
    for scenario in scenarios("this"):
        base, this = medians[f"{scenario} [base]"], medians[f"{scenario} [this]"]
        print(f"{scenario:40} this/base {this / base:5.2f}")
    engine = {  # what an engine runs for a RoCE container: the hook, and the base's separate process
        name: medians[f"hook, 1 veth, RoCE [{name}]"] + medians.get(f"hook nccl, 1 RoCE device [{name}]", 0)
        for name in trees
    }
    print(f"{'engine path, 1 RoCE device (hooks)':40} base {engine['base']:.1f} ms, this {engine['this']:.1f} ms")


def roce_entry(bundle: str, host: str, roce: bool) -> list[str]:
    """The arguments (after `hook`) of the bundle's createRuntime entry for the veth end
    `host`, written into its config.json with a root directory holding /etc; with `roce`, the
    NIC's RDMA port too."""
    argv = ["--netdev", host] + (["--roce", "mlx5_0:1"] if roce else [])
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    os.makedirs(os.path.join(bundle, "rootfs", "etc"))
    config["root"] = {"path": "rootfs"}
    config["hooks"] = {"createRuntime": [{"path": HOOK_PATH, "args": ["cdigen", "hook", *argv]}]}
    with open(path, "w") as f:
        json.dump(config, f)
    return argv


def veth_hook(cdigen: str, tmp: str, env: dict, roce: bool, writes: bool):
    """A run of `cdigen hook` moving a fresh scene's veth end, as its config.json's entry;
    `writes`: the tree's hook writes /etc/nccl.conf (checked)."""

    def run(_: dict) -> float:
        scene = Scene(tmp)
        try:
            ms = timed([cdigen, "hook", *roce_entry(scene.bundle, scene.end, roce)], env, scene.state)
            scene.check()
            if os.path.exists(os.path.join(scene.bundle, "rootfs", "etc", "nccl.conf")) != writes:
                raise SystemExit(f"{cdigen} hook: /etc/nccl.conf {'not ' if writes else ''}written")
        finally:
            scene.teardown()
        return ms

    return run


def nccl_hook(cdigen: str, directory: str):
    """A run of `cdigen hook nccl` for a configured RoCE container's config.json, its
    /etc/nccl.conf removed first (not timed); None for a tree without that hook."""
    usage = subprocess.run([cdigen, "hook", "nccl", "--help"], capture_output=True, text=True).stdout
    if not usage.startswith("usage: cdigen hook nccl"):
        return None
    bundle = os.path.join(directory, "nccl-bundle")
    os.makedirs(bundle)
    config = {"linux": {"netDevices": {"cdgbv0": {"name": "net0", "address": "192.0.2.10", "mask": "255.255.255.0"}}}}
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    roce_entry(bundle, "cdgbv0", roce=True)
    conf = os.path.join(bundle, "rootfs", "etc", "nccl.conf")
    state = json.dumps({"ociVersion": "1.0.2", "id": "x", "status": "creating", "bundle": bundle}).encode()

    def run(e: dict) -> float:
        if os.path.exists(conf):
            os.unlink(conf)
        ms = timed([cdigen, "hook", "nccl"], e, stdin=state)
        if not os.path.exists(conf):
            raise SystemExit(f"{cdigen} hook nccl: /etc/nccl.conf not written")
        return ms

    return run


if __name__ == "__main__":
    main()
