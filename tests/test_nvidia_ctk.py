"""Living beside nvidia-ctk (docs/gpu.md, "Beside nvidia-ctk"): a spec shaped like `nvidia-ctk
cdi generate`'s (v1.20: docs of the shared reference, §1.7-1.12) for the same fake host, and
cdigen's, in one spec directory. Both load together; a container given `nvidia.com/gpu=0`
and a cdigen device gets exactly what each gives alone, with no device node, mount or
variable of one contradicting the other."""

import json

import pytest
from ruamel.yaml import YAML

from tests.helpers import driver
from tests.helpers.proc import run_cdigen
from tests.helpers.specs import make_bundle, write_spec

HOOK = "/usr/bin/cdigen"
LIB = "/usr/lib/x86_64-linux-gnu"
HOST = "numa 0\npci 0000:40 numa=0 ports: switch(gpu ib gpu ib)"
RO = ["ro", "nosuid", "nodev", "rbind", "rprivate"]


def nvidia_ctk_spec(drv: str) -> dict:
    """nvidia-ctk's spec of this host: GPUs by index, control nodes, the driver's mounts and
    its createContainer hooks, NVIDIA_VISIBLE_DEVICES=void. Device nodes point at /dev/null
    (a dev root), so that apply can stat them here."""

    def node(path, minor, major=195):
        return {"path": path, "hostPath": "/dev/null", "major": major, "minor": minor, "permissions": "rwm"}

    def hook(*args):
        return {
            "hookName": "createContainer",
            "path": "/usr/bin/nvidia-cdi-hook",
            "args": ["nvidia-cdi-hook", *args],
            "env": ["NVIDIA_CTK_DEBUG=false"],
        }

    gpus = [{"name": str(i), "containerEdits": {"deviceNodes": [node(f"/dev/nvidia{i}", i)]}} for i in range(2)]
    all_nodes = [n for d in gpus for n in d["containerEdits"]["deviceNodes"]]
    libs = [f"{LIB}/libcuda.so.{driver.VERSION}", f"{LIB}/libnvidia-ml.so.{driver.VERSION}"]
    return {
        "cdiVersion": "0.5.0",
        "kind": "nvidia.com/gpu",
        "devices": [*gpus, {"name": "all", "containerEdits": {"deviceNodes": all_nodes}}],
        "containerEdits": {
            "env": [f"NVIDIA_CTK_LIBCUDA_DIR={LIB}", "NVIDIA_VISIBLE_DEVICES=void"],
            "deviceNodes": [
                node("/dev/nvidiactl", 255),
                node("/dev/nvidia-uvm", 0, 508),
                node("/dev/nvidia-uvm-tools", 1, 508),
            ],
            "hooks": [
                hook("create-symlinks", "--link", f"libcuda.so.1::{LIB}/libcuda.so"),
                hook("update-ldcache", "--folder", LIB),
            ],
            "mounts": [{"hostPath": f"{drv}{p}", "containerPath": p, "options": RO} for p in libs],
        },
    }


@pytest.fixture
def host(tree, tmp_path):
    """(host root, driver root, spec directory holding nvidia-ctk's spec)."""
    root = tree(HOST)
    driver.kernel_version(root)
    drv = driver.driver_root(tmp_path / "driver", second_dir=None)
    spec_dir = tmp_path / "cdi"
    spec_dir.mkdir()
    write_spec(spec_dir, "nvidia.yaml", nvidia_ctk_spec(drv))
    return root, drv, spec_dir


def scan_into(spec_dir, *args) -> dict:
    out = spec_dir / "cdigen.yaml"
    run_cdigen("scan", "--hook-path", HOOK, "--cdi-version", "1.1.0", *args, "-o", out, check=0)
    return YAML(typ="safe", pure=True).load(out.read_text())


def applied(tmp_path, spec_dir, name: str, *devices: str) -> dict:
    bundle = make_bundle(tmp_path, name=name)
    args = [a for d in devices for a in ("--device", d)]
    run_cdigen("apply", bundle, "--spec-dir", spec_dir, "--hook-path", HOOK, *args, check=0)
    return json.loads((bundle / "config.json").read_text())


def entries(config: dict) -> dict[str, list[str]]:
    """Every list (and netDevices) apply edits, as comparable JSON texts."""
    out = {
        "devices": config["linux"].get("devices", []),
        "rules": config["linux"].get("resources", {}).get("devices", []),
        "mounts": config.get("mounts", []),
        "env": config["process"]["env"],
        "netDevices": sorted((config["linux"].get("netDevices") or {}).items()),
    }
    out |= {f"hooks.{k}": v for k, v in (config.get("hooks") or {}).items()}
    return {k: [json.dumps(e, sort_keys=True) for e in v] for k, v in out.items()}


def assert_union(together: dict, *alone: dict) -> None:
    """Together = the union of each alone: nothing lost, nothing twice."""
    t = entries(together)
    each = [entries(a) for a in alone]
    for key in set(t) | {k for e in each for k in e}:
        union = set().union(*(set(e.get(key, [])) for e in each))
        assert set(t.get(key, [])) == union, key
        assert len(t.get(key, [])) == len(set(t.get(key, []))), key


def test_nic_only_spec_beside_nvidia_ctk(host, tmp_path):
    root, _drv, spec_dir = host
    spec = scan_into(spec_dir, "--root", root, "--nic-only")
    assert [d["name"] for d in spec["devices"]] == ["gpu0", "gpu1", "all"]
    assert "containerEdits" not in spec  # no control nodes, no driver files, no hook of its own
    paths = [n["path"] for d in spec["devices"] for n in d["containerEdits"]["deviceNodes"]]
    assert paths and all(p.startswith("/dev/infiniband/") for p in paths)
    assert run_cdigen("validate", spec_dir, check=0).returncode == 0

    nvidia = applied(tmp_path, spec_dir, "nv", "nvidia.com/gpu=0")
    nics = applied(tmp_path, spec_dir, "cd", "cdigen.io/gpu=gpu0")
    both = applied(tmp_path, spec_dir, "both", "nvidia.com/gpu=0", "cdigen.io/gpu=gpu0")
    assert_union(both, nvidia, nics)
    assert [d["path"] for d in both["linux"]["devices"]] == [
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
        "/dev/nvidia-uvm-tools",
        "/dev/nvidia0",
        "/dev/infiniband/uverbs0",
        "/dev/infiniband/umad0",
        "/dev/infiniband/issm0",
        "/dev/infiniband/rdma_cm",
    ]
    assert list(both["linux"]["netDevices"]) == ["ibp68s0"]


def test_full_spec_beside_nvidia_ctk(host, tmp_path):
    """Both specs give the GPU, its control nodes and the driver's libraries: the same nodes
    (same numbers) and the same files at the same places, so whichever is applied last, the
    container is the same; cdigen adds no variable."""
    root, drv, spec_dir = host
    spec = scan_into(spec_dir, "--root", root, "--driver-root", drv)
    assert "env" not in spec["containerEdits"]
    nv = nvidia_ctk_spec(drv)
    ours = {
        n["path"]: (n["major"], n["minor"])
        for d in [spec, *spec["devices"]]
        for n in d["containerEdits"].get("deviceNodes", [])
    }
    theirs = {
        n["path"]: (n["major"], n["minor"]) for d in [nv, *nv["devices"]] for n in d["containerEdits"]["deviceNodes"]
    }
    shared = set(ours) & set(theirs)
    assert shared == {"/dev/nvidia0", "/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"}
    assert {p: ours[p] for p in shared} == {p: theirs[p] for p in shared}
    our_mounts = {m["containerPath"]: m["hostPath"] for m in spec["containerEdits"]["mounts"]}
    for m in nv["containerEdits"]["mounts"]:
        assert our_mounts[m["containerPath"]] == m["hostPath"]
    assert run_cdigen("validate", spec_dir, check=0).returncode == 0

    nvidia = applied(tmp_path, spec_dir, "nv", "nvidia.com/gpu=0")
    gpu = applied(tmp_path, spec_dir, "cd", "cdigen.io/gpu=gpu0")
    both = applied(tmp_path, spec_dir, "both", "nvidia.com/gpu=0", "cdigen.io/gpu=gpu0")
    paths = [d["path"] for d in both["linux"]["devices"]]
    assert len(paths) == len(set(paths))  # one node per path
    assert set(paths) == {d["path"] for c in (nvidia, gpu) for d in c["linux"]["devices"]}
    destinations = [m["destination"] for m in both["mounts"]]
    assert len(destinations) == len(set(destinations))
    # cdigen adds only what NCCL and UCX read (docs/nccl.md)
    assert set(both["process"]["env"]) - set(nvidia["process"]["env"]) == {
        "NCCL_IB_HCA==mlx5_0:1",
        "UCX_NET_DEVICES=mlx5_0:1",
    }
    hooks = [h["args"][:3] for h in both["hooks"]["createContainer"]]
    assert hooks == [
        ["nvidia-cdi-hook", "create-symlinks", "--link"],
        ["nvidia-cdi-hook", "update-ldcache", "--folder"],
        ["cdigen", "hook", "ldcache"],
    ]
