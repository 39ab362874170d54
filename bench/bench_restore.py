#!/usr/bin/env python3
"""Whole-process wall time of bringing one NIC home: the poststop hook and `cdigen netdev restore`.

Each timed run: a NIC is set up as the kernel returns one from a dead container namespace (not
timed): a veth end in the host namespace under its container name, MTU 9000, cdigen's alias
record (`cdigen host=HOST mtu=1500 up=1`), no address, down. Then (timed) the console script
renames it back to HOST, restores MTU 1500, brings it up and clears the alias: as the poststop
hook (`cdigen hook --poststop`, the OCI state on stdin, config.json listing HOST), or as
`cdigen netdev restore HOST`. The result is checked after every run and torn down (not timed).
The baseline `python -I -S -c pass` is timed in the same loop, interleaved, with the same
interpreter. Reports medians and their ratio.

    sudo .venv/bin/python bench/bench_restore.py [--runs 21] [--compare]

--compare also times `netdev restore` routed through the typer app (cdigen/cli/app.py), which
cdigen/entry.py does not do: the reason it dispatches `netdev restore` by hand.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid

from common import compile_cdigen, sh, timed

PYTHON = sys.executable  # the real interpreter, never the pyenv shim
CDIGEN = os.path.join(os.path.dirname(PYTHON), "cdigen")


class Returned:
    """One NIC as the kernel returns it, plus a bundle whose config.json lists it."""

    def __init__(self, workdir: str):
        tag = uuid.uuid4().hex[:6]
        self.host, self.inside, self.peer = f"cdgbh{tag}", f"cdgbn{tag}", f"cdgbp{tag}"
        self.bundle = os.path.join(workdir, tag)
        os.mkdir(self.bundle)
        sh("ip", "link", "add", self.inside, "type", "veth", "peer", "name", self.peer)
        sh("ip", "link", "set", "dev", self.inside, "mtu", "9000", "alias", f"cdigen host={self.host} mtu=1500 up=1")
        config = {"linux": {"namespaces": [{"type": "network"}], "netDevices": {self.host: {"name": self.inside}}}}
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            json.dump(config, f)
        self.state = json.dumps({"ociVersion": "1.0.2", "id": tag, "status": "stopped", "bundle": self.bundle}).encode()

    def check(self) -> None:
        out = subprocess.run(["ip", "-d", "-j", "link", "show", self.host], capture_output=True, check=True).stdout
        info = json.loads(out)[0]
        assert info["mtu"] == 1500 and "UP" in info["flags"] and "ifalias" not in info, info

    def teardown(self) -> None:
        subprocess.run(["ip", "link", "del", self.peer], capture_output=True)


TYPER_ROUTE = "import sys; from cdigen.cli.app import run_app; sys.exit(run_app(sys.argv[1:]))"


def command(kind: str, scene: Returned) -> tuple[list[str], bytes | None]:
    if kind == "poststop":
        return [CDIGEN, "hook", "--poststop"], scene.state
    if kind == "restore":
        return [CDIGEN, "netdev", "restore", scene.host], None
    return [PYTHON, "-c", TYPER_ROUTE, "netdev", "restore", scene.host], None


def main() -> None:
    compile_cdigen()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--compare", action="store_true", help="also time netdev restore through typer")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (veth pairs, renames)")

    names = {
        "poststop": "cdigen hook --poststop (console script)",
        "restore": "cdigen netdev restore HOST (console script)",
        "typer": "python -c 'run_app([netdev, restore, HOST])' (typer)",
    }
    kinds = ["poststop", "restore"] + (["typer"] if args.compare else [])
    times: dict[str, list[float]] = {"python -I -S -c pass": [], **{names[k]: [] for k in kinds}}
    with tempfile.TemporaryDirectory() as workdir:
        env = dict(os.environ, CDIGEN_STATE_DIR=os.path.join(workdir, "state"))
        for _ in range(args.runs):
            times["python -I -S -c pass"].append(timed([PYTHON, "-I", "-S", "-c", "pass"]))
            for kind in kinds:
                scene = Returned(workdir)
                try:
                    argv, stdin = command(kind, scene)
                    times[names[kind]].append(timed(argv, env, stdin))
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
