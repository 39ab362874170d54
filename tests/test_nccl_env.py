"""NCCL and UCX use the NICs a container got (docs/nccl.md): the spec's `--ib`/`--roce` hook
arguments; `apply` (and so the runtime shim) adding NCCL_IB_HCA, UCX_NET_DEVICES,
NCCL_SOCKET_IFNAME to process.env in the order of the container's devices,
never over the user's; the `cdigen hook` createRuntime entries writing what the environment
lacks, and the RoCE GID index, into the container's /etc/nccl.conf and ucx.conf. Whole
processes where the user sees them (an entry without netdev needs no network namespace); the
file step and the GID lookup in-process on fake sysfs trees."""

import json
import os
import threading
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from cdigen import hookentry
from cdigen.errors import InvalidInput
from cdigen.hook import nccl
from cdigen.netdev import NetdevSettings
from tests.helpers.proc import run_cdigen, run_in_process
from tests.helpers.specs import HOOK_PATH, base_config, make_bundle

KIND = "cdigen.io/gpu"
# hgx-h100-roce: gpu0 gets enp20s0np0 (mlx5_0), gpu1 enp22s0np0 (mlx5_1).
NICS = {"enp20s0np0": "192.0.2.10/24", "enp22s0np0": "192.0.2.11/24"}
LIBRARY_KEYS = ("NCCL_IB_HCA", "UCX_NET_DEVICES", "NCCL_SOCKET_IFNAME", "NCCL_TOPO_FILE")  # the last: never set


def scanned(tmp_path, example: str = "hgx-h100-roce", *options: str) -> dict:
    """`cdigen scan --example EXAMPLE` into tmp_path/cdi, the two NICs addressed, named net{n}."""
    cdi = tmp_path / "cdi"
    cdi.mkdir(exist_ok=True)
    config = tmp_path / "nics.yaml"
    config.write_text(json.dumps({host: {"address": address} for host, address in NICS.items()}))
    out = cdi / "cdigen.yaml"
    run_in_process(
        "scan", "--example", example, "--netdev-config", config, "--netdev-name", "net{n}",
        "--hook-path", HOOK_PATH, *options, "-o", out, check=0,
    )  # fmt: skip
    with open(out) as f:
        return YAML(typ="safe", pure=True).load(f)


def applied(tmp_path, devices: list[str], config: dict | None = None, name: str = "bundle") -> dict:
    bundle = make_bundle(tmp_path, config, name)
    run_cdigen("apply", bundle, "--spec-dir", tmp_path / "cdi", *[f"--device={KIND}={d}" for d in devices], check=0)
    return json.loads((bundle / "config.json").read_text())


def library_env(config: dict) -> dict[str, str]:
    pairs = (var.partition("=") for var in config["process"]["env"])
    return {key: value for key, _, value in pairs if key in LIBRARY_KEYS}


def test_scan_carries_each_nics_rdma_port_and_no_entry_of_its_own(tmp_path):
    spec = scanned(tmp_path)
    devices = {d["name"]: d["containerEdits"] for d in spec["devices"]}
    create, poststop = devices["gpu1"]["hooks"]
    assert create["args"][-2:] == ["--roce", "mlx5_1:1"] and poststop["args"][-2:] == ["--roce", "mlx5_1:1"]
    assert "hooks" not in spec["containerEdits"]  # the createRuntime entries do it: no process more
    # An HCA without a netdev still names its port, in a createRuntime entry that moves nothing.
    cascade = scanned(tmp_path, "cascade")
    assert cascade["devices"][0]["containerEdits"]["hooks"] == [
        {"hookName": "createRuntime", "path": HOOK_PATH, "args": ["cdigen", "hook", "--ib", "mlx5_0:1"]}
    ]
    workstation = scanned(tmp_path, "workstation")
    assert "hooks" not in workstation.get("containerEdits", {})


def test_apply_two_devices_name_both_nics_in_each_list_in_request_order(tmp_path):
    scanned(tmp_path)
    config = applied(tmp_path, ["gpu1", "gpu0"])
    assert library_env(config) == {
        "NCCL_IB_HCA": "=mlx5_1:1,mlx5_0:1",
        "UCX_NET_DEVICES": "mlx5_1:1,mlx5_0:1",
        "NCCL_SOCKET_IFNAME": "=net0,net1",
    }
    assert {h: e["name"] for h, e in config["linux"]["netDevices"].items()} == {
        "enp22s0np0": "net0",
        "enp20s0np0": "net1",
    }
    assert "createContainer" not in config["hooks"]


def test_after_apply_the_hook_writes_no_file_for_infiniband(tmp_path):
    """The environment says everything: the createRuntime entries leave the image alone."""
    scanned(tmp_path, "hgx-h100")
    config = applied(tmp_path, ["gpu0", "gpu1"])
    assert library_env(config) == {"NCCL_IB_HCA": "=mlx5_0:1,mlx5_1:1", "UCX_NET_DEVICES": "mlx5_0:1,mlx5_1:1"}
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc" / "ucx").mkdir(parents=True)
    (rootfs / "etc" / "ucx" / "ucx.conf").write_text("UCX_TLS=rc\n")
    config["root"] = {"path": str(rootfs)}
    for argv in hookentry.runtime_entries(config):
        assert tell(tmp_path, config, argv) == []
    assert os.listdir(rootfs / "etc") == ["ucx"] and (rootfs / "etc" / "ucx" / "ucx.conf").read_text() == "UCX_TLS=rc\n"


def test_apply_one_device_names_only_its_own(tmp_path):
    scanned(tmp_path)
    config = applied(tmp_path, ["gpu0"])
    assert library_env(config) == {
        "NCCL_IB_HCA": "=mlx5_0:1",
        "UCX_NET_DEVICES": "mlx5_0:1",
        "NCCL_SOCKET_IFNAME": "=net0",
    }


def test_the_users_variables_win_and_a_second_apply_changes_nothing(tmp_path):
    scanned(tmp_path)
    config = base_config()
    config["process"]["env"] += ["NCCL_IB_HCA=mlx5_7", "NCCL_SOCKET_IFNAME=eth0"]
    first = applied(tmp_path, ["gpu0", "gpu1"], config)
    assert library_env(first) == {
        "NCCL_IB_HCA": "mlx5_7",
        "NCCL_SOCKET_IFNAME": "eth0",
        "UCX_NET_DEVICES": "mlx5_0:1,mlx5_1:1",
    }
    bundle = tmp_path / "bundle"
    before = (bundle / "config.json").read_bytes()
    run_cdigen(
        "apply", bundle, "--spec-dir", tmp_path / "cdi", f"--device={KIND}=gpu0", f"--device={KIND}=gpu1", check=0
    )
    assert (bundle / "config.json").read_bytes() == before


def test_a_nic_without_address_is_left_out_of_the_socket_list(tmp_path):
    """NCCL_SOCKET_IFNAME restricts NCCL's bootstrap too: an interface without an address
    would leave it none."""
    scanned(tmp_path, "cascade")  # gpu0: an HCA without netdev; gpu1: a RoCE NIC without address
    config = applied(tmp_path, ["gpu0", "gpu1"])
    assert library_env(config) == {"NCCL_IB_HCA": "=mlx5_0:1,mlx5_1:1", "UCX_NET_DEVICES": "mlx5_0:1,mlx5_1:1"}


def test_a_spec_from_before_gets_nothing(tmp_path):
    """A spec scanned before cdigen named RDMA ports (no `--roce`, no topology file): apply
    adds no variable, and no hook writes any file."""
    spec = scanned(tmp_path)
    for d in spec["devices"]:
        for hook in d["containerEdits"].get("hooks", []):
            hook["args"] = [a for i, a in enumerate(hook["args"]) if "--roce" not in hook["args"][i - 1 : i + 1]]
    (tmp_path / "cdi" / "cdigen.yaml").write_text(json.dumps(spec))
    config = applied(tmp_path, ["gpu0", "gpu1"])
    assert library_env(config) == {}
    nics, ports = hookentry.container_nics(config)
    assert [c.container_name for c in nics] == ["net0", "net1"] and ports == {}
    assert hookentry.library_variables(nics, ports) == {}
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    config["root"] = {"path": str(rootfs)}
    assert tell(tmp_path, config, hookentry.runtime_entries(config)[-1]) == []
    assert os.listdir(rootfs / "etc") == []


def test_topology_file_is_mounted_where_nccl_reads_it(tree, tmp_path):
    """A flat VM scanned with Azure's ND A100 v4 file: the file is mounted read-only where NCCL
    reads it when NCCL_TOPO_FILE is unset, so no variable is set (a user's NCCL_TOPO_FILE
    wins), and each GPU's NIC is named."""
    from tests.helpers.nccltopo import DATA, flat_tree

    xml = DATA / "azure-ndv4-topo.xml"
    (tmp_path / "cdi").mkdir()
    out = tmp_path / "cdi" / "cdigen.yaml"
    run_cdigen("scan", "--root", tree(flat_tree(xml)), "--nccl-topo", xml, "--hook-path", HOOK_PATH, "-o", out, check=0)
    with open(out) as f:
        common = YAML(typ="safe", pure=True).load(f)["containerEdits"]
    assert "hooks" not in common
    assert common["mounts"][-1] == {
        "hostPath": str(xml),
        "containerPath": "/var/run/nvidia-topologyd/virtualTopology.xml",
        "options": ["ro", "nosuid", "nodev", "bind"],
    }
    config = applied(tmp_path, ["gpu0", "gpu1"])
    assert library_env(config) == {
        "NCCL_IB_HCA": "=mlx5_0:1,mlx5_1:1",
        "UCX_NET_DEVICES": "mlx5_0:1,mlx5_1:1",
    }
    mount = next(m for m in config["mounts"] if m["destination"] == "/var/run/nvidia-topologyd/virtualTopology.xml")
    assert mount["source"] == str(xml) and "ro" in mount["options"]


# ---------------------------------------------------------------------------- the arguments


@pytest.mark.parametrize(
    "value", ["mlx5_0", "mlx5_0:0", "mlx5_0:256", "mlx5_0:1x", ":1", "a,b:1", "a/b:1", "..:1", "x" * 64 + ":1"]
)
def test_bad_rdma_ports_are_refused(tmp_path, value):
    for flag in ("--ib", "--roce"):
        with pytest.raises(hookentry.HookArgsError):
            hookentry.parse_hook_args([flag, value])
    proc = run_cdigen("hook", "--roce", value, input="{}", check=2)
    assert proc.stderr.startswith("cdigen: error: hook: --roce ") and proc.stderr.count("\n") == 1


def test_an_entry_with_only_rdma_ports_moves_nothing_and_never_fails(tmp_path):
    state = json.dumps({"ociVersion": "1.0.2", "id": "x", "status": "creating", "bundle": str(tmp_path / "nope")})
    proc = run_cdigen("hook", "--ib", "mlx5_0:1", input=state, check=0)
    assert proc.stderr == (
        f"cdigen: warning: hook: {tmp_path}/nope/config.json: cannot read: No such file or directory;"
        " NCCL and UCX not told\n"
    )
    assert run_cdigen("hook", "--poststop", "--ib", "mlx5_0:1", input=state, check=0).stderr == ""


def test_container_nics_reads_every_entry_in_order_and_numbers_them():
    config = base_config()
    config["hooks"] = {
        "createRuntime": [
            {"path": HOOK_PATH, "args": ["cdigen", "hook", "--netdev", "b=name=net{n},address=192.0.2.2/24"]},
            {"path": HOOK_PATH, "args": ["cdigen", "hook", "--ib", "mlx5_9:1"]},
            {"path": HOOK_PATH, "args": ["cdigen", "hook", "--netdev", "a=name=net{n}", "--roce", "mlx5_0:1"]},
            {"path": HOOK_PATH, "args": ["cdigen", "hook", "--ib", "bad"]},  # its own hook refuses it
            {"path": HOOK_PATH, "args": ["cdigen", "hook", "ldcache", "--folder", "/x"]},
        ]
    }
    nics, ports = hookentry.container_nics(config)
    assert [(c.host, c.name, c.address) for c in nics] == [("b", "net0", "192.0.2.2"), ("a", "net1", None)]
    assert ports == {"mlx5_9:1": False, "mlx5_0:1": True}
    assert hookentry.library_variables(nics, ports) == {
        "NCCL_IB_HCA": "=mlx5_9:1,mlx5_0:1",
        "UCX_NET_DEVICES": "mlx5_9:1,mlx5_0:1",
        "NCCL_SOCKET_IFNAME": "=net0",
    }
    config["linux"]["netDevices"] = "nope"
    with pytest.raises(InvalidInput):
        hookentry.container_nics(config)


# ---------------------------------------------------------------------------- the hook's files


def engine_config(spec: dict, devices: list[str], rootfs) -> dict:
    """config.json as a CDI engine leaves it: the spec's own hook entries, then each requested
    device's appended in request order, no variable of ours, `{n}` unresolved."""
    config = base_config()
    config["root"] = {"path": str(rootfs)}
    hooks: dict = {}
    by_name = {d["name"]: d for d in spec["devices"]}
    for edits in [spec["containerEdits"], *(by_name[d]["containerEdits"] for d in devices)]:
        for hook in edits.get("hooks", []):
            hooks.setdefault(hook["hookName"], []).append({"path": hook["path"], "args": hook["args"]})
    config["hooks"] = hooks
    return config


def tell(tmp_path, config: dict, argv: list[str], gid_wait: float = 0) -> list[str]:
    """The hook's file step, as the entry with arguments `argv`, on a sysfs without RDMA devices."""
    return nccl.tell_libraries(str(tmp_path), config, argv, str(tmp_path), gid_wait)


def run_ports_only_entry(bundle, check=0):
    """`cdigen hook --ib mlx5_0:1` as the runtime runs cascade's gpu0 entry (an HCA without
    netdev): a whole hook process that moves nothing, so it needs no network namespace."""
    state = json.dumps({"ociVersion": "1.0.2", "id": "x", "status": "creating", "bundle": str(bundle)})
    return run_cdigen("hook", "--ib", "mlx5_0:1", input=state, check=check)


def test_hook_writes_both_nics_keeps_the_images_lines_and_changes_nothing_the_second_time(tmp_path):
    spec = scanned(tmp_path)
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc" / "ucx").mkdir(parents=True)
    (rootfs / "etc" / "nccl.conf").write_text("NCCL_DEBUG=WARN\nNCCL_SOCKET_IFNAME=eth0\n")
    (rootfs / "etc" / "ucx" / "ucx.conf").write_text("[Grace Hopper]\nCPU model=Grace\nUCX_IB_ODP_MEM_TYPES=host\n")
    config = engine_config(spec, ["gpu1", "gpu0"], rootfs)
    first, last = hookentry.runtime_entries(config)

    assert tell(tmp_path, config, first) == []

    assert (rootfs / "etc" / "nccl.conf").read_text() == (
        f"{nccl.BEGIN}NCCL_IB_HCA==mlx5_1:1,mlx5_0:1\n{nccl.END}NCCL_DEBUG=WARN\nNCCL_SOCKET_IFNAME=eth0\n"
    )
    # UCX applies lines before the first [section] everywhere; after it, only on that CPU.
    assert (rootfs / "etc" / "ucx" / "ucx.conf").read_text() == (
        f"{nccl.BEGIN}UCX_NET_DEVICES=mlx5_1:1,mlx5_0:1\n{nccl.END}"
        "[Grace Hopper]\nCPU model=Grace\nUCX_IB_ODP_MEM_TYPES=host\n"
    )
    before = {p: (p.read_bytes(), p.stat().st_ino) for p in (rootfs / "etc").rglob("*.conf")}
    assert tell(tmp_path, config, last) == []  # no GID of these addresses here: the same block
    assert tell(tmp_path, config, last) == []
    assert {p: (p.read_bytes(), p.stat().st_ino) for p in (rootfs / "etc").rglob("*.conf")} == before


def test_the_containers_environment_wins_over_the_files(tmp_path):
    spec = scanned(tmp_path)
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    config = engine_config(spec, ["gpu0"], rootfs)
    config["process"]["env"].append("NCCL_IB_HCA=mlx5_7")  # podman -e
    assert tell(tmp_path, config, hookentry.runtime_entries(config)[0]) == []
    assert (rootfs / "etc" / "nccl.conf").read_text() == f"{nccl.BEGIN}NCCL_SOCKET_IFNAME==net0\n{nccl.END}"


def test_hook_in_a_shared_root_replaces_its_own_earlier_block(tmp_path):
    spec = scanned(tmp_path)
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    both = engine_config(spec, ["gpu0", "gpu1"], rootfs)
    alone = engine_config(spec, ["gpu1"], rootfs)
    tell(tmp_path, both, hookentry.runtime_entries(both)[-1])
    tell(tmp_path, alone, hookentry.runtime_entries(alone)[-1])
    assert (rootfs / "etc" / "nccl.conf").read_text() == (
        f"{nccl.BEGIN}NCCL_IB_HCA==mlx5_1:1\nNCCL_SOCKET_IFNAME==net0\n{nccl.END}"
    )
    assert not (rootfs / "etc" / "ucx").exists()  # no ucx.conf in the image: none made there


@pytest.mark.parametrize("home", ["/root", "/home/alice"])
def test_ucx_without_a_system_file_gets_the_users_ucx_conf(tmp_path, home):
    """No ucx.conf where UCX's build reads it: UCX (1.12+) also reads $HOME/ucx.conf
    (ucs_config_parse_config_files), so the hook puts UCX_NET_DEVICES there, keeping the
    user's lines; HOME from config.json, else /root for uid 0. No home directory: nothing."""
    spec = scanned(tmp_path)
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    config = engine_config(spec, ["gpu1", "gpu0"], rootfs)
    env = [v for v in config["process"]["env"] if not v.startswith("HOME=")]
    config["process"]["env"] = env + ([f"HOME={home}"] if home != "/root" else [])
    entry = hookentry.runtime_entries(config)[-1]

    block = f"{nccl.BEGIN}UCX_NET_DEVICES=mlx5_1:1,mlx5_0:1\n{nccl.END}"
    user = rootfs / home.lstrip("/")
    assert tell(tmp_path, config, entry) == []
    assert not user.exists()  # no home directory in the image: none made

    user.mkdir(parents=True)
    (user / "ucx.conf").write_text("UCX_TLS=rc\n")
    assert tell(tmp_path, config, entry) == []
    assert (user / "ucx.conf").read_text() == block + "UCX_TLS=rc\n"
    (user / "ucx.conf").unlink()
    assert tell(tmp_path, config, entry) == []
    assert (user / "ucx.conf").read_text() == block

    (rootfs / "etc" / "ucx").mkdir()
    (rootfs / "etc" / "ucx" / "ucx.conf").write_text("")  # a system file: that one, not the user's
    (user / "ucx.conf").unlink()
    assert tell(tmp_path, config, entry) == []
    assert not (user / "ucx.conf").exists()
    assert "UCX_NET_DEVICES=mlx5_1:1,mlx5_0:1" in (rootfs / "etc" / "ucx" / "ucx.conf").read_text()


def test_an_entry_without_netdev_writes_the_whole_containers_block(tmp_path):
    """cascade: gpu1 a RoCE NIC, gpu0 an HCA without netdev, whose entry runs last here."""
    spec = scanned(tmp_path, "cascade")
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    bundle = make_bundle(tmp_path, engine_config(spec, ["gpu1", "gpu0"], rootfs))
    assert run_ports_only_entry(bundle).stderr == ""
    assert (rootfs / "etc" / "nccl.conf").read_text() == f"{nccl.BEGIN}NCCL_IB_HCA==mlx5_1:1,mlx5_0:1\n{nccl.END}"


@pytest.mark.parametrize(
    "change, message",
    [
        ("no config.json", "config.json: cannot read"),
        ("no root", "root.path: expected a non-empty string"),
        ("read-only root", "the container's root is read-only; NCCL and UCX not told"),
    ],
)
def test_hook_never_fails_the_container_for_the_files(tmp_path, change, message):
    spec = scanned(tmp_path, "cascade")
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    config = engine_config(spec, ["gpu0"], rootfs)
    if change == "no root":
        del config["root"]
    if change == "read-only root":
        config["root"]["readonly"] = True  # runc would remount it read-only only in the container's namespace
    bundle = make_bundle(tmp_path, config)
    if change == "no config.json":
        (bundle / "config.json").unlink()
    proc = run_ports_only_entry(bundle)
    assert proc.stderr.startswith("cdigen: warning: hook: ") and message in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert not (rootfs / "etc" / "nccl.conf").exists()


def test_hook_on_a_read_only_filesystem_is_one_warning(tmp_path, read_only_dir):
    if os.geteuid() != 0:
        pytest.skip("needs root: a read-only bind mount")
    spec = scanned(tmp_path, "cascade")
    rootfs = read_only_dir({})
    (tmp_path / "ro-src" / "etc").mkdir()  # through the writable source
    proc = run_ports_only_entry(make_bundle(tmp_path, engine_config(spec, ["gpu0"], rootfs)))
    assert proc.stderr == "cdigen: warning: hook: /etc/nccl.conf: not written (Read-only file system)\n"
    assert not (rootfs / "etc" / "nccl.conf").exists()


def test_hook_stays_inside_the_root_and_leaves_odd_files_alone(tmp_path):
    """The hook runs in the runtime's mount namespace, where the host's files are: an image's
    link to a host file is followed inside the container's root, never out of it."""
    spec = scanned(tmp_path, "cascade")
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    host_file = tmp_path / "host" / "nccl.conf"
    host_file.parent.mkdir()
    host_file.write_text("NCCL_DEBUG=INFO\n")
    bundle = make_bundle(tmp_path, engine_config(spec, ["gpu0"], rootfs))

    (rootfs / "etc" / "nccl.conf").symlink_to(host_file)  # absolute: starts again at the root
    proc = run_ports_only_entry(bundle)
    assert proc.stderr == "cdigen: warning: hook: /etc/nccl.conf: not written (No such file or directory)\n"
    inside = rootfs / str(host_file).lstrip("/")
    inside.parent.mkdir(parents=True)
    assert run_ports_only_entry(bundle).stderr == ""
    assert inside.read_text().startswith(nccl.BEGIN)
    assert host_file.read_text() == "NCCL_DEBUG=INFO\n"

    (rootfs / "etc" / "nccl.conf").unlink()
    (rootfs / "etc" / "nccl.conf").symlink_to("../../../../outside.conf")  # climbs no further than the root
    outside = (rootfs / "etc" / "../../../../outside.conf").resolve()
    assert run_ports_only_entry(bundle).stderr == ""
    assert not outside.exists()
    assert (rootfs / "outside.conf").read_text().startswith(nccl.BEGIN)

    (rootfs / "etc" / "nccl.conf").unlink()
    (rootfs / "etc" / "nccl.conf").mkdir()
    proc = run_ports_only_entry(bundle)
    assert proc.stderr == "cdigen: warning: hook: /etc/nccl.conf: left alone (not a regular file)\n"


# ---------------------------------------------------------------------------- the RoCE GID index


def roce_tree(tree) -> tuple[str, list[str], list[str]]:
    """A fake tree of two RoCE NICs; (root, their RDMA devices, their netdevs), PCI order."""
    root = tree("numa 0\npci 0000:40 numa=0 ports: switch(gpu roce gpu roce)")
    devices = sorted(os.listdir(f"{root}/sys/class/infiniband"))
    ndevs = [Path(f"{root}/sys/class/infiniband/{d}/ports/1/gid_attrs/ndevs/0") for d in devices]
    netdevs = [path.read_text().strip() for path in ndevs]
    return root, devices, netdevs


def gid_table(root: str, device: str, netdev: str, entries: dict[int, tuple[str, str]]) -> None:
    """Write GID `entries` ({index: (gid, type)}) of port 1, each of `netdev`."""
    base = f"{root}/sys/class/infiniband/{device}/ports/1"
    for sub in ("gids", "gid_attrs/types", "gid_attrs/ndevs"):
        os.makedirs(f"{base}/{sub}", exist_ok=True)
    for index, (gid, kind) in entries.items():
        for sub, text in (("gids", gid), ("gid_attrs/types", kind), ("gid_attrs/ndevs", netdev)):
            with open(f"{base}/{sub}/{index}", "w") as f:
                f.write(text + "\n")


LINK_LOCAL = "fe80:0000:0000:0000:0000:00ff:fe00:0001"


def usual_table(address_gid: str) -> dict[int, tuple[str, str]]:
    """The table mlx5 makes for one address: link-local v1, v2, then the address v1, v2."""
    return {
        0: (LINK_LOCAL, "IB/RoCE v1"),
        1: (LINK_LOCAL, "RoCE v2"),
        2: (address_gid, "IB/RoCE v1"),
        3: (address_gid, "RoCE v2"),
    }


def test_gid_index_of_the_containers_address(tree):
    root, devices, netdevs = roce_tree(tree)
    gid_table(root, devices[0], netdevs[0], usual_table("0000:0000:0000:0000:0000:ffff:c000:020a"))
    gid_table(root, devices[1], netdevs[1], usual_table("2001:0db8:0000:0000:0000:0000:0000:0002"))
    nics = [NetdevSettings(netdevs[0], address="192.0.2.10"), NetdevSettings(netdevs[1], address="2001:db8::2")]
    ports = [f"{d}:1" for d in devices]
    assert nccl.roce_gid_index(nics, ports, root, wait=0) == (3, [])
    # Another container's address: no GID of it here, no index.
    other = [NetdevSettings(netdevs[0], address="192.0.2.99")]
    index, notes = nccl.roce_gid_index(other, ports[:1], root, wait=0)
    assert index is None and notes == [
        f"{devices[0]}:1: no RoCE v2 GID of {netdevs[0]}'s address 192.0.2.99; NCCL_IB_GID_INDEX not set"
    ]
    # A NIC without an address: not looked at.
    assert nccl.roce_gid_index([NetdevSettings(netdevs[0])], ports, root, wait=0) == (None, [])


def test_gid_indices_that_differ_give_none(tree):
    root, devices, netdevs = roce_tree(tree)
    gid_table(root, devices[0], netdevs[0], usual_table("0000:0000:0000:0000:0000:ffff:c000:020a"))
    table = usual_table("0000:0000:0000:0000:0000:ffff:c000:020b")
    table[5] = table.pop(3)
    gid_table(root, devices[1], netdevs[1], table)
    nics = [NetdevSettings(n, address=a) for n, a in zip(netdevs, ("192.0.2.10", "192.0.2.11"), strict=True)]
    index, notes = nccl.roce_gid_index(nics, [f"{d}:1" for d in devices], root, wait=0)
    assert index is None and notes == [
        f"the RoCE v2 GIDs of the container's addresses have different indices ({devices[0]}:1 3, {devices[1]}:1 5)"
        "; NCCL_IB_GID_INDEX not set"
    ]


def test_gid_that_the_kernel_adds_a_moment_later_is_waited_for(tree):
    root, devices, netdevs = roce_tree(tree)
    gid_table(root, devices[0], netdevs[0], {0: (LINK_LOCAL, "IB/RoCE v1")})
    later = threading.Timer(
        0.05, gid_table, (root, devices[0], netdevs[0], usual_table("0000:0000:0000:0000:0000:ffff:c000:020a"))
    )
    later.start()
    start = time.monotonic()
    assert nccl.roce_gid_index([NetdevSettings(netdevs[0], address="192.0.2.10")], [f"{devices[0]}:1"], root)[0] == 3
    assert time.monotonic() - start < nccl.GID_WAIT_S
    later.join()


def test_the_last_entry_writes_the_gid_index_in_nccl_conf(tree, tmp_path):
    """Each entry writes the block once its own NICs are addressed; only the last one, which
    finds every NIC addressed, looks for the GID index (and waits for it)."""
    root, devices, netdevs = roce_tree(tree)
    gid_table(root, devices[0], netdevs[0], usual_table("0000:0000:0000:0000:0000:ffff:c000:020a"))
    gid_table(root, devices[1], netdevs[1], usual_table("0000:0000:0000:0000:0000:ffff:c000:020b"))
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    config = base_config() | {"root": {"path": str(rootfs)}}
    config["hooks"] = {
        "createRuntime": [
            {"path": HOOK_PATH, "args": ["cdigen", "hook", "--netdev", f"{netdev}=address=192.0.2.{10 + i}/24"]
             + ["--roce", f"{device}:1"]}
            for i, (device, netdev) in enumerate(zip(devices, netdevs, strict=True))
        ],
    }  # fmt: skip
    first, last = hookentry.runtime_entries(config)
    conf = rootfs / "etc" / "nccl.conf"
    block = f"NCCL_IB_HCA=={devices[0]}:1,{devices[1]}:1\nNCCL_SOCKET_IFNAME=={netdevs[0]},{netdevs[1]}\n"

    start = time.monotonic()
    assert nccl.tell_libraries(str(tmp_path), config, first, root, gid_wait=5) == []
    assert time.monotonic() - start < 1  # the second NIC has no address yet: not waited for
    assert conf.read_text() == f"{nccl.BEGIN}{block}{nccl.END}"
    assert nccl.tell_libraries(str(tmp_path), config, last, root, gid_wait=0) == []
    assert conf.read_text() == f"{nccl.BEGIN}{block}NCCL_IB_GID_INDEX=3\n{nccl.END}"

    # After apply or the shim: the environment has the rest, the file only the GID index.
    conf.unlink()
    config["process"]["env"] += ["NCCL_IB_HCA=x", "NCCL_SOCKET_IFNAME=x", "UCX_NET_DEVICES=x"]
    assert nccl.tell_libraries(str(tmp_path), config, first, root, gid_wait=0) == []
    assert not conf.exists()
    assert nccl.tell_libraries(str(tmp_path), config, last, root, gid_wait=0) == []
    assert conf.read_text() == f"{nccl.BEGIN}NCCL_IB_GID_INDEX=3\n{nccl.END}"
    config["process"]["env"].append("NCCL_IB_GID_INDEX=-1")  # the user's: no file, no GID looked for
    conf.unlink()
    assert nccl.tell_libraries(str(tmp_path), config, last, root, gid_wait=5) == [] and not conf.exists()


def test_hook_path_imports_no_typer_rich_or_dataclasses(tmp_path):
    from tests.helpers.imports import SLOW_IMPORTS, imported

    spec = scanned(tmp_path, "cascade")
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    bundle = make_bundle(tmp_path, engine_config(spec, ["gpu0"], rootfs))
    state = json.dumps({"ociVersion": "1.0.2", "id": "x", "status": "creating", "bundle": str(bundle)})
    modules = imported(["hook", "--ib", "mlx5_0:1"], stdin=state)
    assert not (SLOW_IMPORTS | {"ruamel", "jsonpatch"}) & modules
    assert (rootfs / "etc" / "nccl.conf").exists()  # it did the work
