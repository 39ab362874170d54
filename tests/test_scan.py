"""`cdigen scan` and `cdigen topo` as whole processes, on the shipped example topologies."""

import functools
import json
import os
import stat

import pytest

from cdigen.cdi.spec import check_spec
from cdigen.examples import EXAMPLES
from tests.helpers.proc import run_cdigen, run_in_process
from tests.helpers.specs import SCAN_HOOK, load_yaml

HOOK = SCAN_HOOK


def scan(*args, check=0, runner=run_in_process, **kw):
    """`cdigen scan` writing for the newest loader (1.1.0: netDevices and annotations), unless
    the test names its own target."""
    named = any(str(a).partition("=")[0] in ("--cdi-version", "--for") for a in args)
    target = () if named else ("--cdi-version", "1.1.0")
    return runner("scan", *HOOK, *target, *args, check=check, **kw)


@functools.cache
def example_output(*args) -> str:
    """What a read-only command prints for an example, once per session, in this process
    (test_cli_in_a_process_prints_what_it_prints_here shows that a process prints the same)."""
    return run_in_process(*args, check=0).stdout


def without_newer_fields(spec: dict, cdi_version: str) -> dict:
    """The 1.1.0 spec as a writer for an older loader must produce it: the same devices, nodes
    and hooks (whose arguments carry the netdev settings), without netDevices (1.1.0) and, below
    0.6.0, without device annotations; cdiVersion as given."""
    out = json.loads(json.dumps(spec))
    out["cdiVersion"] = cdi_version
    for device in out["devices"]:
        device["containerEdits"].pop("netDevices", None)
        if cdi_version < "0.6.0":
            device.pop("annotations", None)
    return out


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_spec_snapshot(example, snapshot):
    text = example_output("scan", *HOOK, "--cdi-version", "1.1.0", "--example", example)
    spec = load_yaml(text)
    check_spec(spec)  # the reference loader's rules: it loads
    assert load_yaml(text, (1, 1)) == spec  # and reads the same under YAML 1.1
    snapshot.assert_match(text, "spec.yaml")


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_default_target_is_every_engine_with_cdi(example, snapshot):
    """Without --cdi-version the spec loads in podman 4.3 (CDI library 0.5.x): no field that
    library does not know, cdiVersion the lowest the fields need, the settings in the hook."""
    text = example_output("scan", *HOOK, "--example", example, "--for", "any")
    assert example_output("scan", *HOOK, "--example", example) == text
    spec = load_yaml(text)
    check_spec(spec, "0.5.0")  # the podman 4.3 / containerd 1.7.0 loader accepts it
    newest = load_yaml(example_output("scan", *HOOK, "--cdi-version", "1.1.0", "--example", example))
    assert spec == without_newer_fields(newest, "0.3.0")
    snapshot.assert_match(text, "spec.yaml")


@pytest.mark.parametrize(
    "target, version, annotations",
    [
        ("--cdi-version=0.6.0", "0.6.0", True),
        ("--for=podman-4.7", "0.6.0", True),
        ("--for=docker-28", "0.6.0", True),
        ("--for=containerd-2.2.1", "1.1.0", True),
        ("--for=podman-5.5", "0.6.0", True),
        ("--cdi-version=0.5.0", "0.3.0", False),
    ],
)
def test_targets_keep_only_the_fields_their_loader_knows(target, version, annotations):
    spec = load_yaml(scan("--example", "switch-pair", target).stdout)
    newest = load_yaml(scan("--example", "switch-pair").stdout)
    if version == "1.1.0":
        assert spec == newest
    else:
        assert spec == without_newer_fields(newest, version)
        assert all(("annotations" in d) == annotations for d in spec["devices"])


def test_pci_names_need_0_5_0():
    proc = scan("--example", "switch-pair", "--device-name-strategy", "pci", "--cdi-version", "0.3.0", check=2)
    assert proc.stderr == "cdigen: error: --cdi-version 0.3.0 is too old for this spec: its device names need 0.5.0\n"
    spec = load_yaml(scan("--example", "switch-pair", "--device-name-strategy", "pci", "--for", "podman-4").stdout)
    assert spec["cdiVersion"] == "0.5.0"


@pytest.mark.parametrize(
    "args, message",
    [
        (("--cdi-version", "1.2.0"), "--cdi-version '1.2.0': not one of 0.3.0, "),
        (("--cdi-version", "0.2.0"), "--cdi-version '0.2.0': not one of 0.3.0, "),
        (("--for", "docker-20.10"), "--for 'docker-20.10': docker loads CDI specs from 25.0.0 on"),
        (("--for", "runc-1.1"), "--for 'runc-1.1': expected ENGINE-VERSION"),
        (("--for", "podman-4", "--cdi-version", "0.5.0"), "--cdi-version and --for: give one of them"),
    ],
)
def test_bad_targets(args, message):
    proc = scan("--example", "switch-pair", *args, check=2)
    assert proc.stdout == "" and proc.stderr.startswith("cdigen: error: " + message) and proc.stderr.count("\n") == 1


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_topo_json_snapshot(example, snapshot):
    text = example_output("topo", "--example", example, "--json")
    report = json.loads(text)
    assert set(report) == {"nicAffinity", "splitPorts", "gpus", "nics", "otherNics", "matrix", "gpudirectRdma"}
    snapshot.assert_match(text, "topo.json")


@pytest.mark.parametrize("args", [("scan", *HOOK, "--example", "hgx-h100"), ("topo", "--example", "cascade", "--json")])
def test_cli_in_a_process_prints_what_it_prints_here(args):
    proc = run_cdigen(*args, check=0)
    assert proc.stdout == example_output(*args) and proc.stdout


def test_hgx_assignment_and_edits():
    spec = load_yaml(scan("--example", "hgx-h100").stdout)
    devices = {d["name"]: d for d in spec["devices"]}
    assert list(devices) == [f"gpu{i}" for i in range(8)] + ["all"]
    assert spec["cdiVersion"] == "1.1.0" and spec["kind"] == "cdigen.io/gpu"
    # Each GPU gets exactly its PIX NIC; the storage NICs (PHB) stay out.
    hosts = [d["containerEdits"]["netDevices"] for d in spec["devices"][:8]]
    assert [[n["hostInterfaceName"] for n in h] for h in hosts] == [
        ["ibp20s0"],
        ["ibp22s0"],
        ["ibp52s0"],
        ["ibp54s0"],
        ["ibp148s0"],
        ["ibp150s0"],
        ["ibp180s0"],
        ["ibp182s0"],
    ]
    gpu0 = devices["gpu0"]
    assert gpu0["annotations"] == {"netdev.cdigen.io/ibp20s0": "name=ibp20s0,mtu=4092"}
    assert gpu0["containerEdits"]["hooks"] == [
        {
            "hookName": "createRuntime",
            "path": "/usr/bin/cdigen",
            "args": ["cdigen", "hook", "--netdev", "ibp20s0=name=ibp20s0,mtu=4092", "--ib", "mlx5_0:1"],
        },
        {
            "hookName": "poststop",
            "path": "/usr/bin/cdigen",
            "args": ["cdigen", "hook", "--poststop", "--netdev", "ibp20s0=name=ibp20s0,mtu=4092", "--ib", "mlx5_0:1"],
        },
    ]
    assert [n["path"] for n in gpu0["containerEdits"]["deviceNodes"]] == [
        "/dev/nvidia0",
        "/dev/dri/card0",
        "/dev/dri/renderD128",
        "/dev/infiniband/uverbs0",
        "/dev/infiniband/umad0",
        "/dev/infiniband/issm0",
        "/dev/infiniband/rdma_cm",  # with the NIC: RDMA connection setup
    ]
    # `all` is the union, with a single hook entry (and its poststop twin) for every netdev.
    alldev = devices["all"]["containerEdits"]
    assert len(alldev["netDevices"]) == 8 and len(alldev["deviceNodes"]) == 49
    assert alldev["deviceNodes"][-1]["path"] == "/dev/infiniband/rdma_cm"  # once
    assert [h["hookName"] for h in alldev["hooks"]] == ["createRuntime", "poststop"]
    assert [h["args"].count("--netdev") for h in alldev["hooks"]] == [8, 8]
    assert [n["path"] for n in spec["containerEdits"]["deviceNodes"]] == [
        "/dev/nvidiactl",
        "/dev/nvidia-modeset",
        "/dev/nvidia-uvm",
        "/dev/nvidia-uvm-tools",
    ]


def test_nic_affinity_widens_the_assignment():
    spec = load_yaml(scan("--example", "hgx-h100", "--nic-affinity", "phb").stdout)
    gpu0 = spec["devices"][0]["containerEdits"]["netDevices"]
    assert [n["hostInterfaceName"] for n in gpu0] == ["ibp20s0", "enp23s0np0"]  # + its storage NIC
    proc = scan("--example", "cloud-vm")
    cloud = load_yaml(proc.stdout)
    assert not any("netDevices" in d["containerEdits"] for d in cloud["devices"])  # no PIX/PXB at all
    assert cloud["cdiVersion"] == "0.3.0"
    assert "rdma_cm" not in proc.stdout  # no NIC, no RDMA connection manager
    assert proc.stderr == (  # not silent
        "cdigen: warning: --nic-affinity pxb: no RDMA NIC is within PXB of any GPU (4 left out): the PCI tree "
        "is flat (every GPU and RDMA NIC is on a PCI host bridge of its own, as in cloud VMs), so the nearest "
        "are NODE: widen it to node to pair them (`cdigen topo` shows every pair)\n"
    )
    proc = scan("--example", "cloud-vm", "--nic-affinity", "node")
    assert proc.stderr == ""
    cloud = load_yaml(proc.stdout)
    assert [
        [n["hostInterfaceName"] for n in d["containerEdits"].get("netDevices", [])] for d in cloud["devices"][:4]
    ] == [["ibP3p0s0"], ["ibP4p0s0"], ["ibP7p0s0"], ["ibP8p0s0"]]


def test_deterministic_bytes(tree):
    root = tree(EXAMPLES["hgx-h100-roce"])
    first = scan("--root", root).stdout
    assert scan("--root", root).stdout == first
    assert scan("--example", "hgx-h100-roce").stdout == first


def test_json_format_is_the_same_spec():
    as_yaml = load_yaml(scan("--example", "sriov").stdout)
    as_json = json.loads(scan("--example", "sriov", "--format", "json").stdout)
    assert as_json == as_yaml


def test_name_strategies_and_quoting():
    out = scan(
        "--example",
        "switch-pair",
        "--device-name-strategy",
        "pci",
        "--device-name-strategy",
        "uuid",
        "--device-name-strategy",
        "index",
    ).stdout
    spec = load_yaml(out)
    names = [d["name"] for d in spec["devices"]]
    assert names[:2] == ["0000:46:00.0", "0000:45:00.0"]  # by minor: gpu0 is 0000:46:00.0
    assert names[2].startswith("GPU-") and names[4:] == ["gpu0", "gpu1", "all"]
    # A BDF is a sexagesimal float in YAML 1.1: it must be quoted to stay a string for Go.
    assert '- name: "0000:46:00.0"' in out
    assert [d["name"] for d in load_yaml(out, (1, 1))["devices"]] == names
    check_spec(spec)
    # The same GPU under every name carries the same NIC.
    nets = {d["name"]: d["containerEdits"]["netDevices"] for d in spec["devices"]}
    assert nets["gpu0"] == nets["0000:46:00.0"] == nets[names[2]]


def test_netdev_config_and_name_template(tmp_path):
    config = tmp_path / "netdevs.yaml"
    config.write_text(
        "ibp20s0: {address: 192.0.2.10/24, mtu: 2044}\n"
        "ibp22s0:\n  name: fast0\n  address: 192.0.2.11\n  mask: 255.255.255.0\n"
        "enp23s0np0: {address: 198.51.100.1/24}\n"
        "nosuch0: {mtu: 1500}\n"
    )
    proc = scan("--example", "hgx-h100", "--netdev-config", config, "--netdev-name", "net{index}")
    spec = load_yaml(proc.stdout)
    check_spec(spec)
    gpu0, gpu1 = spec["devices"][0], spec["devices"][1]
    assert gpu0["annotations"] == {
        "netdev.cdigen.io/ibp20s0": "name=net0,address=192.0.2.10,mask=255.255.255.0,mtu=2044"
    }
    assert gpu0["containerEdits"]["netDevices"] == [{"hostInterfaceName": "ibp20s0", "name": "net0"}]
    assert gpu1["containerEdits"]["hooks"][0]["args"][-4:] == [
        "--netdev",
        "ibp22s0=name=fast0,address=192.0.2.11,mask=255.255.255.0,mtu=4092",
        "--ib",
        "mlx5_1:1",
    ]
    assert [n["name"] for n in spec["devices"][-1]["containerEdits"]["netDevices"]] == [
        "net0",
        "fast0",
        "net2",
        "net3",
        "net4",
        "net5",
        "net6",
        "net7",
    ]
    assert proc.stderr.splitlines() == [
        f"cdigen: warning: --netdev-config {config}: enp23s0np0: not assigned to any GPU (NIC affinity PXB); ignored",
        f"cdigen: warning: --netdev-config {config}: nosuch0: no such network interface; ignored",
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        ("ibp20s0: {address: 300.1.2.3}\n", "invalid IP address '300.1.2.3'"),
        ("ibp20s0: {mtu: 20}\n", "MTU 20 is outside 68..65535"),
        ("ibp20s0: {colour: blue}\n", "ibp20s0: unknown key(s) colour"),
        ("- ibp20s0\n", "expected a mapping of host interface -> settings"),
        ("ibp20s0: [\n", "not YAML"),
        ("ibp20s0: {name: net0}\nibp22s0: {name: net0}\n", "both map to container name net0"),
    ],
)
def test_bad_netdev_config_is_invalid_input(tmp_path, content, message):
    config = tmp_path / "netdevs.yaml"
    config.write_text(content)
    out = tmp_path / "spec.yaml"
    proc = scan("--example", "hgx-h100", "--netdev-config", config, "--output", out, check=3)
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("cdigen: error: ") and message in line
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (("--netdev-name", "net0"), "must contain {n} or {index}"),
        (("--netdev-name", "n{index}{colour}"), "only {n}, {index} and {gpu} (with a width like :02) may be used"),
        (("--netdev-name", "{index}{gpu.foo}"), "--netdev-name '{index}{gpu.foo}': only {n}, {index} and {gpu}"),
        (("--netdev-name", "{index}{gpu:>1000000}"), "only {n}, {index} and {gpu} (with a width like :02)"),
        (("--netdev-name", "{index!r}"), "only {n}, {index} and {gpu}"),
        (("--netdev-name", "{index"), "expected '}' before end of string"),
        (("--netdev-name", "verylongprefix_{index}"), "longer than 15 bytes"),
        (("--vendor", "-bad"), "--vendor invalid vendor '-bad'"),
        (("--class", "gpu/x"), "--class invalid class 'gpu/x'"),
    ],
)
def test_bad_options(args, message):
    proc = scan("--example", "hgx-h100", *args, check=None)
    assert proc.returncode in (2, 3) and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("cdigen: error: ") and message in line
    assert (proc.returncode == 3) == ("longer than" in message)


def test_bad_hook_path_and_example():
    proc = run_cdigen("scan", "--example", "workstation", "--hook-path", "cdigen", check=2)
    assert proc.stderr == "cdigen: error: --hook-path must be absolute (OCI requires it): 'cdigen'\n"
    proc = scan("--example", "nonesuch", check=2)
    assert proc.stderr.startswith("cdigen: error: --example 'nonesuch' is unknown; known: hgx-h100, ")


def test_no_gpu_exit_4(tree):
    proc = scan("--root", tree("numa 0\npci 0000:00 numa=0 ports: eth roce"), check=4)
    assert proc.stdout == ""
    assert proc.stderr == (
        "cdigen: error: no NVIDIA GPU with the nvidia driver bound "
        "(no PCI function of vendor 0x10de, class 0x0300/0x0302)\n"
    )
    proc = scan("--root", tree("pci 0000:00 numa=0 ports: gpu:nodrv"), check=4)
    assert "(found without: 0000:01:00.0)" in proc.stderr.splitlines()[-1]


def test_warnings_keep_exit_0():
    proc = scan("--example", "no-driver")
    assert proc.stderr == (
        "cdigen: warning: <example no-driver>/sys/bus/pci/devices/0000:75:00.0: NVIDIA GPU "
        "without the nvidia driver bound (driver: none); left out of the spec\n"
    )
    assert [d["name"] for d in load_yaml(proc.stdout)["devices"]] == ["gpu0", "all"]


def test_warning_paths_name_the_real_file(tree):
    root = tree(EXAMPLES["workstation"])
    os.unlink(os.path.join(root, "proc/devices"))
    proc = scan("--root", root, "--no-driver-files")  # the tree has no driver userspace: another warning
    assert proc.stderr == f"cdigen: warning: {root}/proc/devices: missing\n"


def test_output_file_is_atomic_and_0644(tmp_path):
    out = tmp_path / "cdigen.yaml"
    out.write_text("old")
    os.chmod(out, 0o600)
    proc = scan("--example", "workstation", "--output", out)
    assert proc.stdout == ""
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert out.read_text() == scan("--example", "workstation").stdout
    assert os.listdir(tmp_path) == ["cdigen.yaml"]  # no temp file left behind
    proc = scan("--example", "workstation", "--output", tmp_path / "cdigen.yaml" / "x.yaml", check=1)
    assert proc.stderr.startswith("cdigen: error: cannot write ") and len(proc.stderr.splitlines()) == 1


def test_topo_table():
    # Piped into a file with an 80-column default: the matrix must not be folded or elided.
    proc = run_cdigen("topo", "--example", "hgx-h100", env={"COLUMNS": "80"}, check=0)
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if "gpu0" in line and "NIC9" in line)
    assert header.split() == [f"gpu{i}" for i in range(8)] + [f"NIC{i}" for i in range(10)] + ["NUMA"]
    gpu0 = next(line.split() for line in lines if line.split()[:3] == ["gpu0", "(GPU0)", "X"])
    assert gpu0 == [
        "gpu0",
        "(GPU0)",
        "X",
        "PIX",
        "NODE",
        "NODE",
        "SYS",
        "SYS",
        "SYS",
        "SYS",
        "PIX*",
        "PIX",
        "PHB",
        "NODE",
        "NODE",
        "SYS",
        "SYS",
        "SYS",
        "SYS",
        "SYS",
        "0",
    ]
    assert "  PIX  = Connection traversing at most a single PCIe bridge" in lines
    assert "  NIC2: mlx5_2 (0000:17:00.0, enp23s0np0)" in lines
    assert "  gpu0 (GPU0): 0000:13:00.0 /dev/nvidia0" in lines


# ---------------------------------------------------------------------------- topologies of issue 13


def topo_json(*args) -> dict:
    return json.loads(run_cdigen("topo", *args, "--json", check=0).stdout)


def nets(spec: dict) -> dict[str, list[str]]:
    """device name -> its host interfaces."""
    return {
        d["name"]: [n["hostInterfaceName"] for n in d["containerEdits"].get("netDevices", [])] for d in spec["devices"]
    }


def nodes(spec: dict, device: str) -> list[str]:
    return [n["path"] for d in spec["devices"] if d["name"] == device for n in d["containerEdits"]["deviceNodes"]]


def test_dual_port_adapter_on_a_root_port():
    report = topo_json("--example", "dual-port")
    m = report["matrix"]
    assert m["NIC0"]["NIC1"] == m["NIC1"]["NIC0"] == "PIX"  # they share the root port: nvidia-smi says PIX
    assert m["gpu0"]["NIC0"] == m["gpu0"]["NIC1"] == "PHB"  # another root port of the host bridge
    assert [(n["name"], n["pciAddress"], n["rdma"]) for n in report["nics"]] == [
        ("NIC0", "0000:02:00.0", ["mlx5_0"]),
        ("NIC1", "0000:02:00.1", ["mlx5_1"]),
    ]
    assert report["gpus"][0]["nics"] == []
    proc = scan("--example", "dual-port")
    spec = load_yaml(proc.stdout)
    assert nets(spec) == {"gpu0": [], "all": []} and "rdma_cm" not in proc.stdout
    # Not a flat tree (GPU and NIC share a host bridge): the warning names the nearest class.
    assert proc.stderr == (
        "cdigen: warning: --nic-affinity pxb: no RDMA NIC is within PXB of any GPU (2 left out); the nearest "
        "are PHB, e.g. GPU 0000:01:00.0 and mlx5_0 (0000:02:00.0): widen it to phb to pair them "
        "(`cdigen topo` shows every pair)\n"
    )
    proc = scan("--example", "dual-port", "--nic-affinity", "phb")
    assert proc.stderr == ""
    spec = load_yaml(proc.stdout)
    assert nets(spec)["gpu0"] == ["enp2s0f0np0", "enp2s0f1np1"]  # both ports of the card
    assert nodes(spec, "gpu0")[-1] == "/dev/infiniband/rdma_cm"


def test_bare_metal_with_nothing_within_pxb():
    report = topo_json("--example", "node-only")
    m = report["matrix"]
    assert [m["gpu0"][c] for c in ("gpu1", "gpu2", "NIC0", "NIC1", "NIC2", "NIC3")] == [
        "PIX",
        "SYS",
        "NODE",
        "NODE",
        "SYS",
        "SYS",
    ]
    assert m["NIC0"]["NIC1"] == m["NIC2"]["NIC3"] == "PIX"  # ports of one adapter, on one root port
    assert all(g["nics"] == [] for g in report["gpus"])
    proc = scan("--example", "node-only")
    assert "rdma_cm" not in proc.stdout and not any(nets(load_yaml(proc.stdout)).values())
    # GPUs share switches: not flat, and it does not say so.
    assert proc.stderr == (
        "cdigen: warning: --nic-affinity pxb: no RDMA NIC is within PXB of any GPU (4 left out); the nearest "
        "are NODE, e.g. GPU 0000:13:00.0 and mlx5_0 (0000:21:00.0): widen it to node to pair them "
        "(`cdigen topo` shows every pair)\n"
    )
    # Widened to NODE: each adapter's two ports go to one GPU of its node.
    proc = scan("--example", "node-only", "--nic-affinity", "node")
    assert proc.stderr == ""
    assert nets(load_yaml(proc.stdout)) == {
        "gpu0": ["ibp33s0f0", "ibp33s0f1"],
        "gpu1": [],
        "gpu2": ["ibp161s0f0", "ibp161s0f1"],
        "gpu3": [],
        "all": ["ibp33s0f0", "ibp33s0f1", "ibp161s0f0", "ibp161s0f1"],
    }
    # Split on request: one port per GPU.
    spec = load_yaml(scan("--example", "node-only", "--nic-affinity", "node", "--split-ports").stdout)
    assert [nets(spec)[f"gpu{i}"] for i in range(4)] == [["ibp33s0f0"], ["ibp33s0f1"], ["ibp161s0f0"], ["ibp161s0f1"]]


def test_roce_and_ib_ports_of_one_adapter_stay_together():
    report = topo_json("--example", "vpi-ports")
    assert {n["name"]: [d["linkLayer"] for d in n["netdevs"]] for n in report["nics"]} == {
        "NIC0": ["InfiniBand"],
        "NIC1": ["Ethernet"],
    }
    assert {v for row in report["matrix"].values() for v in row.values()} == {"X", "PIX"}
    assert [(g["name"], g["nics"]) for g in report["gpus"]] == [("gpu0", ["NIC0", "NIC1"]), ("gpu1", [])]
    spec = load_yaml(scan("--example", "vpi-ports").stdout)
    assert nets(spec) == {
        "gpu0": ["ibp85s0f0", "enp85s0f1np1"],
        "gpu1": [],
        "all": ["ibp85s0f0", "enp85s0f1np1"],
    }
    assert "/dev/infiniband/rdma_cm" in nodes(spec, "gpu0") and "/dev/infiniband/rdma_cm" not in nodes(spec, "gpu1")
    split = topo_json("--example", "vpi-ports", "--split-ports")
    assert split["splitPorts"] is True
    assert [(g["name"], g["nics"]) for g in split["gpus"]] == [("gpu0", ["NIC0"]), ("gpu1", ["NIC1"])]
    spec = load_yaml(scan("--example", "vpi-ports", "--split-ports").stdout)
    assert nets(spec) == {"gpu0": ["ibp85s0f0"], "gpu1": ["enp85s0f1np1"], "all": ["ibp85s0f0", "enp85s0f1np1"]}
    assert all("/dev/infiniband/rdma_cm" in nodes(spec, d) for d in ("gpu0", "gpu1", "all"))
    table = run_cdigen("topo", "--example", "vpi-ports", "--split-ports", check=0).stdout
    assert "  *    = NIC assigned to this GPU by `cdigen scan --nic-affinity pxb --split-ports`" in table.splitlines()


def test_gpu_behind_a_nic_switch_is_pxb_to_that_nic():
    report = topo_json("--example", "nic-switch")
    m = report["matrix"]
    assert [m[f"gpu{i}"][f"NIC{i}"] for i in range(4)] == ["PXB"] * 4  # the CX-7 switch + the GPU's own
    assert [m["gpu0"][c] for c in ("gpu1", "gpu2", "NIC1", "NIC2")] == ["NODE", "SYS", "NODE", "SYS"]
    assert [(g["pciAddress"], g["nics"]) for g in report["gpus"]] == [
        ("0000:06:00.0", ["NIC0"]),
        ("0000:26:00.0", ["NIC1"]),
        ("0000:a6:00.0", ["NIC2"]),
        ("0000:c6:00.0", ["NIC3"]),
    ]
    proc = scan("--example", "nic-switch")
    assert proc.stderr == ""
    assert nets(load_yaml(proc.stdout))["gpu0"] == ["enp3s0np0"]


def test_topo_numbers_nics_as_nvidia_smi(tree):
    # Plain Ethernet first in PCI order, then an IB HCA, a RoCE PF with 2 VFs, another HCA:
    # nvidia-smi numbers and lists RDMA devices only, VFs included: mlx5_0 NIC0, mlx5_1 NIC1
    # (PF), mlx5_2/3 NIC2/3 (its VFs), mlx5_4 NIC4.
    root = tree("numa 0\npci 0000:00 numa=0 ports: eth switch(gpu ib) roce:vf2 ib")
    report = topo_json("--root", root)
    assert [(n["name"], n["rdma"], n["physfn"]) for n in report["nics"]] == [
        ("NIC0", ["mlx5_0"], None),
        ("NIC1", ["mlx5_1"], None),
        ("NIC2", ["mlx5_2"], "0000:06:00.0"),
        ("NIC3", ["mlx5_3"], "0000:06:00.0"),
        ("NIC4", ["mlx5_4"], None),
    ]
    assert list(report["matrix"]) == ["gpu0", "NIC0", "NIC1", "NIC2", "NIC3", "NIC4"]
    assert report["otherNics"] == [
        {
            "pciAddress": "0000:01:00.0",
            "numaNode": 0,
            "netdevs": [{"name": "enp1s0", "linkLayer": "Ethernet", "mtu": 1500}],
        }
    ]
    lines = run_cdigen("topo", "--root", root, check=0).stdout.splitlines()
    header = next(line for line in lines if "gpu0" in line and "NUMA" in line)
    assert header.split() == ["gpu0", "NIC0", "NIC1", "NIC2", "NIC3", "NIC4", "NUMA"]
    assert "  NIC0: mlx5_0 (0000:05:00.0, ibp5s0)" in lines
    assert "  NIC1: mlx5_1 (0000:06:00.0, enp6s0np0, 2 VFs)" in lines
    assert "  NIC2: mlx5_2 (0000:06:00.2, enp6s0f2; VF of NIC1)" in lines
    assert "  NIC4: mlx5_4 (0000:07:00.0, ibp7s0)" in lines
    assert "Without RDMA (not in nvidia-smi's matrix, never assigned):" in lines
    assert "  0000:01:00.0 (enp1s0)" in lines
