"""Whole-process wall time of `cdigen scan` (median of N runs), against `python -I -S -c pass`.

Trees: the HGX example (8 GPUs, 10 NICs) and the synthetic 10x tree (80 GPUs, 80 NICs with
8 VFs each, 20 storage NICs), built once into a temp dir (memory-backed where possible) before
timing; plus `scan --example hgx-h100`, which builds its tree on every run. Then, interleaved,
`scan` of a flat ND A100 v4 tree without and with its NCCL topology file (target: within 10 %);
without it no GPU gets a NIC, so it runs at `--nic-affinity sys` too, where each GPU gets one
as with the file: the same spec, and the file's own cost.
Usage: python bench/bench_scan.py [RUNS]   (use the venv's interpreter, not a pyenv shim)
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from common import REPO, compile_cdigen, environment, rounds, timed

from cdigen.examples import EXAMPLES, fakesys, synthetic

# ND A100 v4 as its VM sees it: each GPU and NIC on a root bus of its own, at the addresses of
# Azure's topology file, on the NUMA node of its <cpu> there.
NDV4 = """
    numa 0-3
    pci 0001:00 numa=1 bus: gpu
    pci 0002:00 numa=1 bus: gpu
    pci 0003:00 numa=0 bus: gpu
    pci 0004:00 numa=0 bus: gpu
    pci 000b:00 numa=3 bus: gpu
    pci 000c:00 numa=3 bus: gpu
    pci 000d:00 numa=2 bus: gpu
    pci 000e:00 numa=2 bus: gpu
    pci 0101:00 numa=1 bus: ib
    pci 0102:00 numa=1 bus: ib
    pci 0103:00 numa=0 bus: ib
    pci 0104:00 numa=0 bus: ib
    pci 0105:00 numa=3 bus: ib
    pci 0106:00 numa=3 bus: ib
    pci 0107:00 numa=2 bus: ib
    pci 0108:00 numa=2 bus: ib
"""
NDV4_FILE = os.path.join(REPO, "tests", "data", "nccl-topo", "azure-ndv4-topo.xml")


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
        ndv4 = fakesys.build(NDV4, os.path.join(tmp, "ndv4"))
        flat = rounds(
            {
                "scan --root <ND A100 v4 tree>": lambda e: timed(scan + ["--root", ndv4], e),
                "  the same, --nic-affinity sys": lambda e: timed(scan + ["--root", ndv4, "--nic-affinity", "sys"], e),
                "  the same, --nccl-topo <its file>": lambda e: timed(
                    scan + ["--root", ndv4, "--nccl-topo", NDV4_FILE], e
                ),
            },
            runs,
            environment(),
        )
    finally:
        shutil.rmtree(tmp)
    print(f"{runs} runs each, median wall time ({py})")
    for name, t in results.items():
        print(f"  {name:<34} {t * 1000:7.1f} ms  {t / base:5.1f}x pass")
    hgx_t, big_t = results["scan --root <hgx-h100 tree>"], results["scan --root <10x synthetic tree>"]
    print(f"  10x tree / hgx tree: {big_t / hgx_t:.2f} (target <= 4); hgx target <= 150 ms")
    print(f"{runs} interleaved rounds, medians")
    for name, ms in flat.items():
        print(f"  {name:<34} {ms:7.1f} ms")
    without, paired, with_file = (flat[k] for k in list(flat)[1:])
    print(f"  with the file / without: {with_file / without:.3f}; / without at sys: {with_file / paired:.3f} (<= 1.10)")


if __name__ == "__main__":
    main()
