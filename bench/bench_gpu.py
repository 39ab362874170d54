#!/usr/bin/env python3
"""Whole-process wall time of the GPU device's two costs (docs/gpu.md): `cdigen scan` with the
driver files, and the createContainer hook `cdigen hook ldcache`, each against
`python -I -S -c pass` timed in the same rounds (bench/common.py: interleaved, medians).

scan: the HGX example with its driver (`hgx-h100-driver`: 8 GPUs, 10 NICs, 26 libraries,
programs, firmware, socket, GDRCopy/GDS/IMEX/MIG devices), its tree built once in a temporary
directory (in memory where possible) and scanned with `--root`; the same with
`--no-driver-files`, and `--example hgx-h100-driver`, which builds the tree on every run.

hook: a bundle whose rootfs holds the example driver's 26 libraries where the spec mounts
them, Debian's static ldconfig at /sbin/ldconfig and an empty /etc/ld.so.conf; the OCI state
on stdin and the spec's own hook arguments (2 folders, 22 links). Before each timed run the
links and the ld cache are removed (a fresh container), not timed. Also timed: that ldconfig
alone, as the hook runs it (`chroot ROOTFS /sbin/ldconfig FOLDERS`), and the hook with links
only (no folder: no ldconfig), and the start-up floor (`cdigen hook ldcache --help`). The
hook's own part is the hook minus ldconfig alone.

    sudo .venv/bin/python bench/bench_gpu.py [--runs 21]     (root: chroot)
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import HEADER, environment, installed, rounds, row, timed

from cdigen import hookentry
from cdigen.examples import build_example
from cdigen.examples.fakedriver import LIBDIR
from cdigen.scan.driver import discover_driver


def hook_bundle(work: str, example_root: str) -> tuple[str, list[str], list[tuple[str, str]], bytes]:
    """(rootfs, folders, links, OCI state) of a container given the example's driver files."""
    files, _ = discover_driver(example_root)
    bundle = os.path.join(work, "bundle")
    rootfs = os.path.join(bundle, "rootfs")
    for m in files.mounts:
        if m.container.startswith("/usr/lib/"):
            os.makedirs(os.path.dirname(rootfs + m.container), exist_ok=True)
            shutil.copy2(m.host, rootfs + m.container)  # where the bind mount would put it
    os.makedirs(os.path.join(rootfs, "sbin"))
    shutil.copy2("/sbin/ldconfig", os.path.join(rootfs, "sbin/ldconfig"))
    os.makedirs(os.path.join(rootfs, "etc"))
    open(os.path.join(rootfs, "etc/ld.so.conf"), "w").close()
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump({"root": {"path": "rootfs"}, "linux": {}}, f)
    state = json.dumps({"ociVersion": "1.0.2", "id": "b", "status": "creating", "pid": 1, "bundle": bundle})
    return rootfs, files.folders, files.links, state.encode()


def fresh(rootfs: str, links: list[tuple[str, str]]) -> None:
    """The rootfs as a new container has it: no links, no ld cache."""
    for link, _ in links:
        if os.path.islink(rootfs + link):
            os.unlink(rootfs + link)
    if os.path.exists(os.path.join(rootfs, "etc/ld.so.cache")):
        os.unlink(os.path.join(rootfs, "etc/ld.so.cache"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    runs = parser.parse_args().runs
    env = environment()
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    work = tempfile.mkdtemp(prefix="cdigen-bench-gpu-", dir=shm)
    try:
        cdigen = installed(work)
        tree = build_example("hgx-h100-driver", os.path.join(work, "hgx"))
        out = os.path.join(work, "spec.yaml")
        scan = [cdigen, "scan", "--hook-path", "/usr/bin/cdigen", "-o", out]
        rootfs, folders, links, state = hook_bundle(work, tree)
        argv = [cdigen, *hookentry.ldcache_args(folders, links)[1:]]
        links_only = [cdigen, *hookentry.ldcache_args([], links)[1:]]
        ldconfig = ["chroot", rootfs, "/sbin/ldconfig", *folders]

        def hook(argv):
            def run(e):
                fresh(rootfs, links)
                return timed(argv, e, state)

            return run

        results = rounds(
            {
                "scan --root <hgx-h100-driver tree>": lambda e: timed([*scan, "--root", tree], e),
                "scan --root <same tree> --no-driver-files": lambda e: timed(
                    [*scan, "--root", tree, "--no-driver-files"], e
                ),
                "scan --example hgx-h100-driver (builds the tree)": lambda e: timed(
                    [*scan, "--example", "hgx-h100-driver"], e
                ),
                "cdigen hook ldcache (links + ldconfig)": hook(argv),
                "ldconfig alone (chroot ROOTFS /sbin/ldconfig FOLDERS)": hook(ldconfig),
                "cdigen hook ldcache, links only (no ldconfig)": hook(links_only),
                "floor: cdigen hook ldcache --help (start-up only)": lambda e: timed(
                    [cdigen, "hook", "ldcache", "-h"], e
                ),
            },
            runs,
            env,
        )
        fresh(rootfs, links)
        subprocess.run([*argv], input=state, check=True, env=env)  # the result, checked once
        assert os.readlink(rootfs + "/usr/lib/x86_64-linux-gnu/libcuda.so.1").startswith("libcuda.so.")
        assert os.path.getsize(os.path.join(rootfs, "etc/ld.so.cache")) > 0
    finally:
        shutil.rmtree(work)
    base = results.pop("pass")
    print(f"{runs} rounds, medians; {len(links)} links, folders {' '.join(folders)} ({LIBDIR} layout)")
    print(HEADER)
    print(row("python -I -S -c pass", base, base))
    for name, ms in results.items():
        print(row(name, ms, base))
    own = (
        results["cdigen hook ldcache (links + ldconfig)"]
        - results["ldconfig alone (chroot ROOTFS /sbin/ldconfig FOLDERS)"]
    )
    print(f"hook minus ldconfig alone: {own:.1f} ms (target <= 60); scan with driver files target <= 150 ms")


if __name__ == "__main__":
    main()
