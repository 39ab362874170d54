#!/usr/bin/env python3
"""Whole-process wall time of `cdigen hook` for one netdev with real netlink work.

Each timed run: a fresh veth pair and named netns are set up (not timed), then the hook runs
exactly as a runtime runs it, the console script with the OCI state on stdin, and moves the veth
end into the netns, renames it, adds 192.0.2.10/24, sets MTU 9000 and brings it up (timed),
then everything is torn down (not timed). The baseline `python -I -S -c pass` is timed in the
same loop, interleaved, with the same interpreter. Reports medians and their ratio.

    sudo /tmp/venv/bin/python bench/bench_hook.py [--runs 21] [--compare]

--compare also times the alternatives the hook does not use (see cdigen/hook/rtnetlink.py): importing
pyroute2's IPRoute, and the same work done with iproute2 subprocesses.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from common import compile_cdigen, sh, timed

PYTHON = sys.executable  # the real interpreter, never the pyenv shim
HOOK = os.path.join(os.path.dirname(PYTHON), "cdigen")


class Scene:
    """One veth pair + one named netns + a bundle whose config.json lists the veth end."""

    def __init__(self, workdir: str):
        tag = uuid.uuid4().hex[:6]
        self.end, self.peer, self.ns = f"cdgbv{tag}", f"cdgbp{tag}", f"cdgbns{tag}"
        self.bundle = os.path.join(workdir, tag)
        os.mkdir(self.bundle)
        sh("ip", "link", "add", self.end, "type", "veth", "peer", "name", self.peer)
        sh("ip", "netns", "add", self.ns)
        config = {
            "linux": {
                "namespaces": [{"type": "network", "path": f"/var/run/netns/{self.ns}"}],
                "netDevices": {
                    self.end: {"name": "net0", "address": "192.0.2.10", "mask": "255.255.255.0", "mtu": 9000}
                },
            }
        }
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            json.dump(config, f)
        self.state = json.dumps(
            {"ociVersion": "1.0.2", "id": tag, "status": "creating", "bundle": self.bundle}
        ).encode()

    def check(self) -> None:
        out = subprocess.run(
            ["ip", "-n", self.ns, "-j", "addr", "show", "net0"], capture_output=True, check=True
        ).stdout
        info = json.loads(out)[0]
        assert info["mtu"] == 9000 and "UP" in info["flags"], info
        assert any(a["local"] == "192.0.2.10" and a["prefixlen"] == 24 for a in info["addr_info"]), info

    def teardown(self) -> None:
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.end], capture_output=True)
        # The kernel destroys a netns's devices in deferred work; wait for it so that it does
        # not run during the next timed hook.
        for _ in range(200):
            if subprocess.run(["ip", "link", "show", self.peer], capture_output=True).returncode != 0:
                return
            time.sleep(0.01)


def iproute2_script(scene: Scene) -> list[str]:
    """The hook's work with `ip` processes (lookups in both namespaces, move+rename, mtu,
    address, up), as a subprocess-based hook would have to do it."""
    n = scene.ns
    return [
        "sh",
        "-c",
        f"ip -d -j link show {scene.end} >/dev/null && "
        f"! ip -n {n} link show net0 2>/dev/null && "
        f"ip link set dev {scene.end} netns {n} name net0 && "
        f"ip -n {n} link set net0 mtu 9000 && "
        f"ip -n {n} addr add 192.0.2.10/24 dev net0 && "
        f"ip -n {n} link set net0 up",
    ]


def main() -> None:
    compile_cdigen()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--compare", action="store_true", help="also time pyroute2 import and iproute2")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (veth pairs and network namespaces)")

    times: dict[str, list[float]] = {"python -I -S -c pass": [], "cdigen hook (console script)": []}
    if args.compare:
        times["python -c 'from pyroute2.iproute.linux import IPRoute'"] = []
        times["iproute2 subprocesses (same work)"] = []
    with tempfile.TemporaryDirectory() as workdir:
        os.environ["CDIGEN_STATE_DIR"] = workdir  # the hook's record files go with the rest
        for _ in range(args.runs):
            times["python -I -S -c pass"].append(timed([PYTHON, "-I", "-S", "-c", "pass"]))
            scene = Scene(workdir)
            try:
                times["cdigen hook (console script)"].append(timed([HOOK, "hook"], None, scene.state))
                scene.check()
            finally:
                scene.teardown()
            if args.compare:
                times["python -c 'from pyroute2.iproute.linux import IPRoute'"].append(
                    timed([PYTHON, "-c", "from pyroute2.iproute.linux import IPRoute"])
                )
                scene = Scene(workdir)
                try:
                    times["iproute2 subprocesses (same work)"].append(timed(iproute2_script(scene)))
                    scene.check()
                finally:
                    scene.teardown()

    base = statistics.median(times["python -I -S -c pass"])
    print(f"{args.runs} runs each, {PYTHON}, medians (min..max) in ms:")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"  {name:58s} {med:7.1f}  ({min(values):.1f}..{max(values):.1f})  x{med / base:.2f}")


if __name__ == "__main__":
    main()
