"""Whole-process wall time of `cdigen scan` (median of N runs), against `python -I -S -c pass`.

Trees: the HGX example (8 GPUs, 10 NICs) and the synthetic 10x tree (80 GPUs, 80 NICs with
8 VFs each, 20 storage NICs), built once into a temp dir (memory-backed where possible) before
timing; plus `scan --example hgx-h100`, which builds its tree on every run.
Usage: python bench/bench_scan.py [RUNS]   (use the venv's interpreter, not a pyenv shim)
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from common import compile_cdigen

from cdigen.examples import EXAMPLES, fakesys, synthetic


def median_wall(cmd: list[str], runs: int) -> float:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)  # warm the page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    compile_cdigen()
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    py = sys.executable
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    tmp = tempfile.mkdtemp(prefix="cdigen-bench-", dir=shm)
    try:
        hgx = fakesys.build(EXAMPLES["hgx-h100"], os.path.join(tmp, "hgx"))
        big = fakesys.build(synthetic(10), os.path.join(tmp, "big"))
        scan = [py, "-m", "cdigen", "scan", "--hook-path", "/usr/bin/cdigen", "--output", os.path.join(tmp, "out.yaml")]
        base = median_wall([py, "-I", "-S", "-c", "pass"], runs)
        results = {
            "python -I -S -c pass": base,
            "scan --root <hgx-h100 tree>": median_wall(scan + ["--root", hgx], runs),
            "scan --root <10x synthetic tree>": median_wall(scan + ["--root", big], runs),
            "scan --example hgx-h100": median_wall(scan + ["--example", "hgx-h100"], runs),
        }
    finally:
        shutil.rmtree(tmp)
    print(f"{runs} runs each, median wall time ({py})")
    for name, t in results.items():
        print(f"  {name:<34} {t * 1000:7.1f} ms  {t / base:5.1f}x pass")
    hgx_t, big_t = results["scan --root <hgx-h100 tree>"], results["scan --root <10x synthetic tree>"]
    print(f"  10x tree / hgx tree: {big_t / hgx_t:.2f} (target <= 4); hgx target <= 150 ms")


if __name__ == "__main__":
    main()
