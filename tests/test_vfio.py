"""VFIO: functions bound to vfio-pci found by discovery, and `cdigen scan --mode vm`
(docs/vm.md, "VFIO devices")."""

import os

import pytest

from cdigen.cdi.spec import check_spec
from cdigen.examples import EXAMPLES
from cdigen.scan.model import CharDev, VfioFunction
from cdigen.scan.sysfs import discover
from tests.helpers.proc import run_cdigen, run_in_process
from tests.helpers.specs import SCAN_HOOK as HOOK
from tests.helpers.specs import load_yaml

VM_EXAMPLES = ("sriov-vfio", "vfio-gpu")
CONTROL = {"path": "/dev/vfio/vfio", "type": "c", "major": 10, "minor": 196}


def vm(*args, check=0):
    return run_in_process("scan", *HOOK, "--mode", "vm", *args, check=check)


def node(group: int, minor: int) -> dict:
    return {"path": f"/dev/vfio/{group}", "type": "c", "major": 503, "minor": minor}


# ---------------------------------------------------------------------------- discovery


def test_vfs_on_vfio_are_found_with_their_groups(tree):
    topo = discover(tree(EXAMPLES["sriov-vfio"]))
    assert topo.warnings == []
    assert topo.vfio == [
        VfioFunction(f"0000:64:00.{k + 2}", "nic", 6 + k, CharDev(f"/dev/vfio/{6 + k}", 503, k), "0000:64:00.0")
        for k in range(4)
    ]
    assert topo.vfio_control == CharDev("/dev/vfio/vfio", 10, 196)
    # The PF keeps its netdev and RDMA device; the VFs have none, so they are no `Nic`.
    assert [(n.bdf, [d.name for d in n.netdevs], n.vfs) for n in topo.nics] == [("0000:64:00.0", ["enp100s0np0"], ())]


def test_gpu_and_nic_on_vfio(tree):
    topo = discover(tree(EXAMPLES["vfio-gpu"]))
    assert [(f.bdf, f.kind, f.group, f.node, f.physfn) for f in topo.vfio] == [
        ("0000:87:00.0", "gpu", 9, CharDev("/dev/vfio/9", 503, 0), None),
        ("0000:88:00.0", "nic", 11, CharDev("/dev/vfio/11", 503, 1), None),
    ]
    assert [(g.bdf, g.minor, g.driver) for g in topo.gpus] == [
        ("0000:83:00.0", 0, "nvidia"),
        ("0000:87:00.0", None, "vfio-pci"),
    ]
    assert [n.bdf for n in topo.nics] == ["0000:84:00.0"]  # the VFIO NIC has no netdev
    # Discovery still reports the GPU without the nvidia driver (container mode leaves it out).
    assert [w.path for w in topo.warnings] == ["/sys/bus/pci/devices/0000:87:00.0"]


def test_hosts_without_vfio_read_nothing_more(tree):
    topo = discover(tree(EXAMPLES["sriov"]))
    assert topo.vfio == [] and topo.vfio_control is None
    assert not os.path.exists(os.path.join(tree(EXAMPLES["sriov"]), "sys/class/vfio"))


def _vf_root(tree) -> str:
    return tree("numa 0\npci 0000:60 numa=0 ports: switch(gpu roce:vf2:vfio=vfs)")


def test_missing_iommu_group_is_a_warning(tree):
    root = _vf_root(tree)
    os.unlink(os.path.join(root, "sys/bus/pci/devices/0000:64:00.2/iommu_group"))
    topo = discover(root)
    assert [f.bdf for f in topo.vfio] == ["0000:64:00.3"]  # the rest is scanned
    [w] = topo.warnings
    assert w.path == "/sys/bus/pci/devices/0000:64:00.2/iommu_group"
    assert w.reason.startswith("missing (no IOMMU") and "left out of the VM devices" in w.reason


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: os.symlink("../../../kernel/iommu_groups/x7", p), "does not point to a group"),
        (lambda p: os.symlink("../../../kernel/something/6", p), "does not point to a group"),
        (lambda p: open(p, "w").close(), "not a symlink"),
    ],
)
def test_odd_iommu_group_is_a_warning(tree, make, reason):
    root = _vf_root(tree)
    link = os.path.join(root, "sys/bus/pci/devices/0000:64:00.2/iommu_group")
    os.unlink(link)
    make(link)
    topo = discover(root)
    assert [f.bdf for f in topo.vfio] == ["0000:64:00.3"]
    [w] = topo.warnings
    assert w.path == "/sys/bus/pci/devices/0000:64:00.2/iommu_group" and w.reason.startswith(reason)


def test_group_without_vfio_dev_gives_a_node_without_numbers(tree):
    root = _vf_root(tree)
    os.unlink(os.path.join(root, "sys/class/vfio/6"))
    with open(os.path.join(root, "sys/class/vfio/7/dev"), "w") as f:
        f.write("999:1\n")  # not the vfio major of /proc/devices
    topo = discover(root)
    assert [(f.group, f.node) for f in topo.vfio] == [(6, None), (7, None)]
    assert [(w.path, w.reason) for w in topo.warnings] == [
        (
            "/sys/class/vfio/6",
            "missing; /dev/vfio/6 written without numbers (the CDI runtime reads them from the host's node)",
        ),
        (
            "/sys/class/vfio/7/dev",
            "major 999 is not that of vfio in /proc/devices (503); /dev/vfio/7 written without numbers "
            "(the CDI runtime reads them from the host's node)",
        ),
    ]
    spec = load_yaml(vm("--root", root, "--cdi-version", "1.1.0").stdout)
    assert spec["devices"][0]["containerEdits"]["deviceNodes"] == [CONTROL, {"path": "/dev/vfio/6", "type": "c"}]
    check_spec(spec)


def test_group_shared_with_a_function_on_another_driver_is_a_warning(tree):
    root = _vf_root(tree)
    pf = os.path.join(root, "sys/bus/pci/devices/0000:64:00.0")
    os.symlink(
        os.path.relpath(os.path.realpath(pf), os.path.join(root, "sys/kernel/iommu_groups/6/devices")),
        os.path.join(root, "sys/kernel/iommu_groups/6/devices/0000:64:00.0"),
    )
    topo = discover(root)
    assert len(topo.vfio) == 2
    assert [(w.path, w.reason) for w in topo.warnings] == [
        (
            "/sys/kernel/iommu_groups/6/devices/0000:64:00.0",
            "bound to mlx5_core: IOMMU group 6 cannot be opened until every function in it is on vfio-pci (or none)",
        )
    ]


# ---------------------------------------------------------------------------- the VM spec


@pytest.mark.parametrize("example", VM_EXAMPLES)
def test_vm_spec_snapshot(example, snapshot):
    proc = vm("--example", example, "--cdi-version", "1.1.0")
    assert proc.stderr == ""  # no warning about the GPU on vfio-pci: here it is wanted
    spec = load_yaml(proc.stdout)
    check_spec(spec)
    assert load_yaml(proc.stdout, (1, 1)) == spec
    snapshot.assert_match(proc.stdout, "spec.yaml")


def test_vm_spec_field_by_field():
    spec = load_yaml(vm("--example", "vfio-gpu", "--cdi-version", "1.1.0").stdout)
    assert spec["cdiVersion"] == "0.6.0"  # annotations; nothing newer
    assert spec["kind"] == "cdigen.io/gpu" and "containerEdits" not in spec
    assert spec["devices"] == [
        {
            "name": "vfio-gpu0",  # the GPU with the VFIO NIC in its switch (PIX)
            "annotations": {"vfio.cdigen.io/pci-address": "0000:87:00.0,0000:88:00.0"},
            "containerEdits": {
                "env": ["CDIGEN_PCI_VFIO_GPU0=0000:87:00.0,0000:88:00.0"],
                "deviceNodes": [CONTROL, node(9, 0), node(11, 1)],
            },
        },
        {
            "name": "vfio-nic0",
            "annotations": {"vfio.cdigen.io/pci-address": "0000:88:00.0"},
            "containerEdits": {"env": ["CDIGEN_PCI_VFIO_NIC0=0000:88:00.0"], "deviceNodes": [CONTROL, node(11, 1)]},
        },
        {
            "name": "all",
            "annotations": {"vfio.cdigen.io/pci-address": "0000:87:00.0,0000:88:00.0"},
            "containerEdits": {
                "env": ["CDIGEN_PCI_ALL=0000:87:00.0,0000:88:00.0"],
                "deviceNodes": [CONTROL, node(9, 0), node(11, 1)],
            },
        },
    ]
    # Nothing of container mode: no nvidia nodes, netdevs, hooks or driver files.
    text = vm("--example", "vfio-gpu", "--cdi-version", "1.1.0").stdout
    assert "nvidia" not in text and "hooks" not in text and "netDevices" not in text


@pytest.mark.parametrize("example", VM_EXAMPLES)
def test_vm_spec_default_target(example):
    """The default target (0.5.0): the same devices, no annotations (the env var keeps the
    PCI addresses), cdiVersion 0.3.0, loadable by podman 4.3's library."""
    default = load_yaml(vm("--example", example).stdout)
    check_spec(default, "0.5.0")
    assert default["cdiVersion"] == "0.3.0"
    newest = load_yaml(vm("--example", example, "--cdi-version", "1.1.0").stdout)
    for device in newest["devices"]:
        device.pop("annotations")
    assert default == newest | {"cdiVersion": "0.3.0"}


def test_vm_spec_of_vfs_and_names_by_pci_address():
    spec = load_yaml(vm("--example", "sriov-vfio", "--device-name-strategy", "pci").stdout)
    assert spec["cdiVersion"] == "0.5.0"  # device names starting with a digit
    check_spec(spec, "0.5.0")
    assert [d["name"] for d in spec["devices"]] == [f"0000:64:00.{k}" for k in range(2, 6)] + ["all"]
    assert spec["devices"][1]["containerEdits"] == {
        "env": ["CDIGEN_PCI_0000_64_00_3=0000:64:00.3"],
        "deviceNodes": [CONTROL, node(7, 1)],
    }
    assert [n["path"] for n in spec["devices"][-1]["containerEdits"]["deviceNodes"]] == [
        "/dev/vfio/vfio",
        "/dev/vfio/6",
        "/dev/vfio/7",
        "/dev/vfio/8",
        "/dev/vfio/9",
    ]


def test_vfio_nic_in_another_switch_stays_apart(tree):
    root = tree("numa 0\npci 0000:80 numa=0 ports: switch(gpu roce) switch(gpu:driver=vfio-pci) switch(roce:vfio)")
    pxb = load_yaml(vm("--root", root).stdout)
    assert [d["containerEdits"]["env"] for d in pxb["devices"]][:2] == [
        ["CDIGEN_PCI_VFIO_GPU0=0000:87:00.0"],
        ["CDIGEN_PCI_VFIO_NIC0=0000:8a:00.0"],
    ]
    phb = load_yaml(vm("--root", root, "--nic-affinity", "phb").stdout)
    assert phb["devices"][0]["containerEdits"]["env"] == ["CDIGEN_PCI_VFIO_GPU0=0000:87:00.0,0000:8a:00.0"]


@pytest.mark.parametrize(
    "args, code, message",
    [
        (("--example", "sriov"), 2, "--mode vm finds no GPU or network function bound to vfio-pci"),
        (("--example", "vfio-gpu", "--device-name-strategy", "uuid"), 2, "--device-name-strategy uuid: a function"),
        (("--example", "vfio-gpu", "--nic-only"), 2, "--mode vm and --nic-only: "),
        (("--example", "vfio-gpu", "--netdev-name", "net{index}"), 2, "--mode vm and --netdev-name: "),
        (("--example", "vfio-gpu", "--no-driver-files"), 2, "--mode vm and --no-driver-files: "),
        (
            ("--example", "vfio-gpu", "--device-name-strategy", "pci", "--cdi-version", "0.3.0"),
            2,
            "--cdi-version 0.3.0 is too old",
        ),
    ],
)
def test_vm_mode_errors(args, code, message):
    proc = vm(*args, check=code)
    assert proc.stdout == "" and proc.stderr.startswith("cdigen: error: " + message)
    assert proc.stderr.count("\n") == 1


def test_container_mode_leaves_vfio_functions_out():
    proc = run_cdigen("scan", *HOOK, "--example", "vfio-gpu", check=0)
    assert "vfio" not in proc.stdout
    assert proc.stderr == (
        "cdigen: warning: <example vfio-gpu>/sys/bus/pci/devices/0000:87:00.0: NVIDIA GPU without the nvidia "
        "driver bound (driver: vfio-pci); left out of the spec\n"
    )
