#!/usr/bin/env python3
"""Whole-process wall time of `cdigen dan`: a pod sandbox bundle with 8 SR-IOV networks
(Multus network-status with bare IPs and device-info, OVN pod-networks with CIDR addresses and
routes) on 8 VFs bound to vfio-pci in a fake sysfs tree, written as an 8-device DAN file.

Every number is the median of --runs runs of a fresh process; the DAN file is removed before
each run (outside the timing), so every run really reads, matches and writes. Each scenario is
compared with `python -I -S -c pass` measured in the same invocation. Scenarios:
- the console script (what a runtime or hook runs) and `python -m cdigen`;
- the same with the 8 networks' CNI result cache files to read as well;
- `--delete`;
- "through typer": the same `dan` run by cdigen/cli/app.py's typer stub, i.e. what it would
  cost without the hand-parsed dispatch in cdigen/entry.py;
- "floor": `python -c pass` with site (and, for an editable install, its import finder),
  which every console-script start pays before cdigen's first import;
- "reference": `cdigen hook --help`, the start-up of the other hand-dispatched hot-path
  command (it imports cdigen.netdev's rules too).

Bytecode caching is on (PYTHONDONTWRITEBYTECODE is removed) and one warm-up run precedes
each scenario, as for an installed package.

usage: bench/bench_dan.py [--runs N] [--json FILE]
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PYTHON = sys.executable
CONSOLE = os.path.join(os.path.dirname(PYTHON), "cdigen")
SANDBOX = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
NETWORKS = 8
PARENT = "sys/devices/pci0000:80/0000:80:01.0"


def vf(i: int) -> str:
    return f"0000:85:02.{i}" if i < 8 else f"0000:85:03.{i - 8}"


def build_root(root: str, cache: bool) -> None:
    """8 VFs bound to vfio-pci (the kernel's layout: bus link -> device dir, driver link)."""
    os.makedirs(os.path.join(root, "sys/bus/pci/drivers/vfio-pci"))
    for i in range(NETWORKS):
        device = os.path.join(root, PARENT, vf(i))
        os.makedirs(device)
        os.makedirs(os.path.join(root, "sys/bus/pci/devices"), exist_ok=True)
        os.symlink(f"../../../../{PARENT}/{vf(i)}", os.path.join(root, "sys/bus/pci/devices", vf(i)))
        os.symlink("../../../../bus/pci/drivers/vfio-pci", os.path.join(device, "driver"))
        if cache:
            d = os.path.join(root, "var/lib/cni/results")
            os.makedirs(d, exist_ok=True)
            result = {
                "cniVersion": "1.1.0",
                "interfaces": [{"name": f"net{i + 1}", "sandbox": "/var/run/netns/x", "mtu": 9000, "pciID": vf(i)}],
                "ips": [{"address": f"10.{i}.0.5/24", "gateway": f"10.{i}.0.1", "interface": 0}],
                "routes": [{"dst": "0.0.0.0/0"}] if i == 0 else [{"dst": f"10.{100 + i}.0.0/16"}],
            }
            doc = {"kind": "cniCacheV1", "containerId": SANDBOX, "ifName": f"net{i + 1}", "result": result}
            with open(os.path.join(d, f"sriov-{i}-{SANDBOX}-net{i + 1}"), "w") as f:
                json.dump(doc, f)


def annotations() -> dict:
    status, ovn = [], {}
    for i in range(NETWORKS):
        name, mac = f"default/sriov-{i}", f"0a:58:0a:{i:02x}:00:05"
        status.append(
            {
                "name": name,
                "interface": f"net{i + 1}",
                "ips": [f"10.{i}.0.5"],
                "mac": mac,
                "mtu": 9000,
                "dns": {},
                "device-info": {"type": "pci", "version": "1.1.0", "pci": {"pci-address": vf(i)}},
            }
        )
        ovn[name] = {
            "ip_addresses": [f"10.{i}.0.5/24"],
            "mac_address": mac,
            "routes": [{"dest": f"10.{100 + i}.0.0/16", "nextHop": f"10.{i}.0.1"}],
        }
        if i == 0:
            ovn[name]["gateway_ips"] = ["10.0.0.1"]
    return {
        "io.kubernetes.cri.sandbox-id": SANDBOX,
        "io.kubernetes.cri.container-type": "sandbox",
        "k8s.v1.cni.cncf.io/network-status": json.dumps(status),
        "k8s.ovn.org/pod-networks": json.dumps(ovn),
    }


def median_ms(cmd: list[str], runs: int, env: dict, before=None) -> tuple[float, float]:
    """(median wall time, median CPU time of the process: user + system) in ms. The CPU time
    says what the work costs when other processes load the machine and the wall time swells."""
    times, cpu = [], []
    for _ in range(runs + 1):  # the first run warms caches and writes bytecode
        if before:
            before()
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append((time.perf_counter() - start) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((after.ru_utime - used.ru_utime + after.ru_stime - used.ru_stime) * 1000)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed: {proc.stderr.decode()}")
    return statistics.median(times[1:]), statistics.median(cpu[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "CDIGEN_DEBUG")}
    results = {"python": PYTHON, "runs": args.runs, "networks": NETWORKS, "scenarios": []}
    results["load_before"] = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(
        prefix="cdigen-bench-", dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    ) as tmp:
        roots = {}
        for cache in (False, True):
            roots[cache] = os.path.join(tmp, f"root-cache{int(cache)}")
            build_root(roots[cache], cache)
        bundle = os.path.join(tmp, "bundle")
        os.makedirs(bundle)
        config = {"ociVersion": "1.0.2", "process": {"args": ["/pause"]}, "linux": {}, "annotations": annotations()}
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(config, f, indent="\t")
        dan_dir = os.path.join(tmp, "dans")
        dan_file = os.path.join(dan_dir, f"{SANDBOX}.json")

        def remove():
            shutil.rmtree(dan_dir, ignore_errors=True)

        def present():
            if not os.path.exists(dan_file):
                cmd = [CONSOLE, "dan", bundle, "--root", roots[False], "--dan-dir", dan_dir]
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

        common = [bundle, "--root", roots[False], "--dan-dir", dan_dir]
        typer_call = (
            "import sys; from cdigen.cli.app import run_app; "
            f"sys.exit(run_app(['dan', {bundle!r}, '--root', {roots[False]!r}, '--dan-dir', {dan_dir!r}]))"
        )
        scenarios = [
            ("dan, 8 networks (console script)", [CONSOLE, "dan", *common], remove),
            ("dan, 8 networks (python -m cdigen)", [PYTHON, "-m", "cdigen", "dan", *common], remove),
            (
                "dan, 8 networks + 8 CNI result files",
                [CONSOLE, "dan", bundle, "--root", roots[True], "--dan-dir", dan_dir],
                remove,
            ),
            ("dan --delete", [CONSOLE, "dan", *common, "--delete"], present),
            ("dan through typer (cli/app.py stub)", [PYTHON, "-c", typer_call], remove),
            ("floor: python -c pass (site, this install)", [PYTHON, "-c", "pass"], None),
            ("reference: cdigen hook --help", [CONSOLE, "hook", "--help"], None),
        ]
        for name, cmd, before in scenarios:
            base, base_cpu = median_ms([PYTHON, "-I", "-S", "-c", "pass"], args.runs, env)
            ms, cpu = median_ms(cmd, args.runs, env, before=before)
            results["scenarios"].append(
                {
                    "name": name,
                    "median_ms": round(ms, 1),
                    "python_pass_ms": round(base, 1),
                    "ratio": round(ms / base, 1),
                    "cpu_ms": round(cpu, 1),
                    "python_pass_cpu_ms": round(base_cpu, 1),
                }
            )
    print(f"python: {PYTHON}; median of {args.runs} runs; load average {os.getloadavg()[0]:.2f}")
    print(f"{'scenario':44} {'median ms':>10} {'pass ms':>8} {'ratio':>6} {'CPU ms':>7} {'pass CPU':>8}")
    for r in results["scenarios"]:
        print(
            f"{r['name']:44} {r['median_ms']:10.1f} {r['python_pass_ms']:8.1f} {r['ratio']:6.1f}"
            f" {r['cpu_ms']:7.1f} {r['python_pass_cpu_ms']:8.1f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
