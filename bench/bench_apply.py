#!/usr/bin/env python3
"""Whole-process wall time of `cdigen apply` onto a bundle made by `runc spec`.

Scenarios:
- the target: one device (gpu0) of the HGX example spec, `cdigen scan --example hgx-h100
  --cdi-version 1.1.0` (YAML, as scan writes it, which goyaml's own reader takes without
  ruamel.yaml; and the same spec as JSON); and the same YAML behind a `%YAML 1.1` directive,
  outside that reader's subset, so that what ruamel.yaml costs stays visible;
- 2 devices from a 10-device scan-shaped spec, with 1 and with 100 spec files in the
  directory, YAML and JSON (the 99 other files define other kinds, which apply does not parse);
- `apply_devices` alone (`python -c`), and `cdigen apply /nonexistent` (start-up, parsing,
  the error): what the command line costs around the work;
- a typer command (`cdigen list --json` of an empty directory), for what apply no longer pays.

Every number is the median of --runs interleaved rounds of fresh processes, each round also
timing `python -I -S -c pass` (bench/common.py); config.json is restored before each apply
(not timed), so every run really patches and writes. cdigen runs as installed from a wheel
(bench/common.py, `installed`); the rows marked "dev venv" run the editable install's console
script instead, whose start-up pays setuptools' editable finder.

usage: bench/bench_apply.py [--runs N] [--json FILE]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from common import DEV_CDIGEN, HEADER, PYTHON, environment, installed, rounds, row, runc_bundle, timed

HOOK_PATH = "/usr/local/bin/cdigen"
KIND = "cdigen.io/gpu"
TARGET_MS = 40


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


def hgx_specs(tmp: str) -> tuple[str, str, str]:
    """Directories holding the HGX example spec as scan writes it (YAML), as JSON, and as YAML
    that goyaml leaves to ruamel.yaml (the same text after a directive)."""
    dirs = []
    for fmt in ("yaml", "json"):
        d = os.path.join(tmp, f"hgx-{fmt}")
        os.makedirs(d)
        subprocess.run(
            [PYTHON, "-m", "cdigen", "scan", "--example", "hgx-h100", "--cdi-version", "1.1.0", "--format", fmt]
            + ["--hook-path", HOOK_PATH, "-o", os.path.join(d, f"cdigen-gpu.{fmt}")],
            check=True,
        )
        dirs.append(d)
    d = os.path.join(tmp, "hgx-yaml-ruamel")
    os.makedirs(d)
    with open(os.path.join(dirs[0], "cdigen-gpu.yaml")) as f:
        text = f.read()
    with open(os.path.join(d, "cdigen-gpu.yaml"), "w") as f:
        f.write("%YAML 1.1\n---\n" + text)
    return dirs[0], dirs[1], d


def yaml_parser() -> str:
    try:
        import ruamel.yaml.main as ruamel_main

        return "C (ruamel.yaml.clib)" if ruamel_main.CParser is not None else "pure Python"
    except ImportError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    env = environment()
    with tempfile.TemporaryDirectory(prefix="cdigen-bench-") as tmp:
        cdigen = installed(tmp)
        python = os.path.join(os.path.dirname(cdigen), "python")
        bundle, config, pristine = runc_bundle(tmp)

        def apply(argv: list[str], ok=(0,)):
            def run(e: dict) -> float:
                with open(config, "wb") as f:
                    f.write(pristine)
                return timed(argv, e, ok=ok)

            return run

        hgx_yaml, hgx_json, hgx_ruamel = hgx_specs(tmp)
        gpu0 = ["--device", f"{KIND}=gpu0", "--hook-path", HOOK_PATH]
        scenarios = {
            "apply, HGX example spec (yaml), 1 device": apply([cdigen, "apply", bundle, "--spec-dir", hgx_yaml, *gpu0]),
            "apply, HGX example spec (json), 1 device": apply([cdigen, "apply", bundle, "--spec-dir", hgx_json, *gpu0]),
            "apply, HGX example spec (yaml), 1 device, dev venv": apply(
                [DEV_CDIGEN, "apply", bundle, "--spec-dir", hgx_yaml, *gpu0]
            ),
        }
        two = ["--device", f"{KIND}=gpu3", "--device", f"{KIND}=gpu7", "--hook-path", HOOK_PATH]
        for fmt in ("yaml", "json"):
            for others in (0, 99):
                d = os.path.join(tmp, f"{fmt}-{others + 1}")
                write_specs(d, fmt, others)
                name = f"apply, {fmt}, 2 of 10 devices, {others + 1} spec file{'s' * bool(others)}"
                scenarios[name] = apply([cdigen, "apply", bundle, "--spec-dir", d, *two])
        call = (
            f"from cdigen.apply import apply_devices; apply_devices({bundle!r}, [{KIND + '=gpu0'!r}], "
            f"spec_dirs=[{hgx_yaml!r}], hook_path={HOOK_PATH!r})"
        )
        scenarios["apply_devices only (python -c), HGX yaml, 1 device"] = apply([python, "-c", call])
        scenarios["cdigen apply /nonexistent (start-up, parse, error)"] = apply(
            [cdigen, "apply", "/nonexistent"], ok=(2,)
        )
        scenarios["apply, HGX example spec (yaml via ruamel), 1 device"] = apply(
            [cdigen, "apply", bundle, "--spec-dir", hgx_ruamel, *gpu0]
        )
        empty = os.path.join(tmp, "empty")
        os.makedirs(empty)
        scenarios["typer command: cdigen list --json (empty dir)"] = apply(
            [cdigen, "list", "--json", "--spec-dir", empty]
        )
        medians = rounds(scenarios, args.runs, env)
    base = medians.pop("pass")
    print(f"python: {PYTHON}; YAML parser: {yaml_parser()}; median of {args.runs} interleaved rounds")
    print(HEADER)
    results = []
    for name, ms in medians.items():
        target = f"(target <= {TARGET_MS} ms)" if name.startswith("apply, HGX example spec (yaml), 1 device") else ""
        print(row(name, ms, base, target))
        results.append({"name": name, "median_ms": round(ms, 1), "python_pass_ms": round(base, 1)})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"python": PYTHON, "runs": args.runs, "scenarios": results}, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
