#!/usr/bin/env python3
"""Whole-process wall time of `cdigen apply`: 2 devices from a 10-device spec onto a bundle
made by `runc spec`, with 1 and with 100 spec files in the spec directory, YAML and JSON.

Every number is the median of --runs runs of a fresh process; config.json is restored before
each run (outside the timing), so every run really patches and writes. Each scenario is
compared with `python -I -S -c pass` measured in the same invocation. Also measured:
- "typer floor": `cdigen apply /nonexistent` (start-up, typer parses, error): what the CLI
  costs before apply does anything;
- "apply_devices only": the same apply without the CLI (`python -c` calling
  cdigen.apply.apply_devices), i.e. what a typer-free dispatch (like `hook`'s) would cost.

The 99 other files define other kinds (vendorN.example/gpu), as on a host with several
vendors' specs: `apply` does not parse them (the kind pre-filter of cdigen.cdi.load).

Bytecode caching is on (PYTHONDONTWRITEBYTECODE is removed) and one warm-up run precedes
each scenario, as for an installed package.

usage: bench/bench_apply.py [--runs N] [--json FILE]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

PYTHON = sys.executable
HOOK_PATH = "/usr/local/bin/cdigen"
KIND = "cdigen.io/gpu"


def gpu_device(i: int) -> dict:
    """One device shaped like `cdigen scan` output: GPU, DRM and RDMA nodes, a netdev with its
    settings in an annotation, and the `cdigen hook` createRuntime hook."""
    host, settings = f"ens{i}f0np0", f"name=net{i},address=192.0.2.{10 + i},mask=255.255.255.0,mtu=9000"
    nodes = [
        (f"/dev/nvidia{i}", 195, i),
        (f"/dev/dri/card{i}", 226, i),
        (f"/dev/dri/renderD{128 + i}", 226, 128 + i),
        (f"/dev/infiniband/uverbs{i}", 231, 192 + i),
        (f"/dev/infiniband/umad{i}", 231, i),
        (f"/dev/infiniband/issm{i}", 231, 64 + i),
    ]
    return {
        "name": f"gpu{i}",
        "annotations": {f"netdev.cdigen.io/{host}": settings},
        "containerEdits": {
            "deviceNodes": [{"path": p, "type": "c", "major": ma, "minor": mi} for p, ma, mi in nodes],
            "netDevices": [{"hostInterfaceName": host, "name": f"net{i}"}],
            "hooks": [
                {
                    "hookName": "createRuntime",
                    "path": HOOK_PATH,
                    "args": ["cdigen", "hook", "--netdev", f"{host}={settings}"],
                }
            ],
        },
    }


def spec(kind: str, count: int = 10) -> dict:
    return {
        "cdiVersion": "1.1.0",
        "kind": kind,
        "containerEdits": {
            "deviceNodes": [
                {"path": "/dev/nvidiactl", "type": "c", "major": 195, "minor": 255},
                {"path": "/dev/nvidia-uvm", "type": "c", "major": 510, "minor": 0},
            ]
        },
        "devices": [gpu_device(i) for i in range(count)],
    }


def to_yaml(doc: dict) -> str:
    from cdigen.cdi.goyaml import render  # the renderer `cdigen scan` uses

    return render(doc)


def write_specs(directory: str, fmt: str, others: int) -> None:
    os.makedirs(directory)
    render = to_yaml if fmt == "yaml" else (lambda d: json.dumps(d, indent=2))
    with open(os.path.join(directory, f"cdigen-gpu.{fmt}"), "w") as f:
        f.write(render(spec(KIND)))
    for n in range(others):
        with open(os.path.join(directory, f"vendor{n:02d}-gpu.{fmt}"), "w") as f:
            f.write(render(spec(f"vendor{n:02d}.example/gpu")))


def median_ms(cmd: list[str], runs: int, env: dict, before=None) -> float:
    times = []
    for _ in range(runs + 1):  # the first run warms caches and writes bytecode
        if before:
            before()
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append((time.perf_counter() - start) * 1000)
        if proc.returncode not in (0, 2):
            sys.exit(f"{' '.join(cmd)} failed: {proc.stderr.decode()}")
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "CDIGEN_DEBUG")}
    try:
        import ruamel.yaml.main as ruamel_main

        yaml_parser = "C (ruamel.yaml.clib)" if ruamel_main.CParser is not None else "pure Python"
    except ImportError:
        yaml_parser = "?"
    results = {"python": PYTHON, "runs": args.runs, "yaml_parser": yaml_parser, "scenarios": []}
    with tempfile.TemporaryDirectory(prefix="cdigen-bench-") as tmp:
        bundle = os.path.join(tmp, "bundle")
        os.makedirs(bundle)
        subprocess.run(["runc", "spec"], cwd=bundle, check=True)
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            pristine = f.read()

        def restore():
            with open(os.path.join(bundle, "config.json"), "wb") as f:
                f.write(pristine)

        devices = ["--device", f"{KIND}=gpu3", "--device", f"{KIND}=gpu7"]
        scenarios = []
        for fmt in ("yaml", "json"):
            for others in (0, 99):
                d = os.path.join(tmp, f"{fmt}-{others + 1}")
                write_specs(d, fmt, others)
                scenarios.append(
                    (
                        f"apply, {fmt}, {others + 1} spec file{'s' * bool(others)}",
                        [PYTHON, "-m", "cdigen", "apply", bundle, "--spec-dir", d, "--hook-path", HOOK_PATH, *devices],
                    )
                )
        d1 = os.path.join(tmp, "yaml-1")
        call = (
            f"from cdigen.apply import apply_devices; apply_devices({bundle!r}, "
            f"[{KIND + '=gpu3'!r}, {KIND + '=gpu7'!r}], spec_dirs=[{d1!r}], hook_path={HOOK_PATH!r})"
        )
        scenarios.append(("apply_devices only (no CLI), yaml, 1 spec file", [PYTHON, "-c", call]))
        scenarios.append(("typer floor: cdigen apply /nonexistent", [PYTHON, "-m", "cdigen", "apply", "/nonexistent"]))
        for name, cmd in scenarios:
            base = median_ms([PYTHON, "-I", "-S", "-c", "pass"], args.runs, env)
            ms = median_ms(cmd, args.runs, env, before=restore)
            results["scenarios"].append(
                {
                    "name": name,
                    "median_ms": round(ms, 1),
                    "python_pass_ms": round(base, 1),
                    "ratio": round(ms / base, 1),
                }
            )
    print(f"python: {PYTHON}; YAML parser: {yaml_parser}; median of {args.runs} runs")
    print(f"{'scenario':52} {'median ms':>10} {'pass ms':>8} {'ratio':>6}")
    for r in results["scenarios"]:
        print(f"{r['name']:52} {r['median_ms']:10.1f} {r['python_pass_ms']:8.1f} {r['ratio']:6.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
