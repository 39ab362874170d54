"""`cdigen topo` as the user sees it: the names `--device` takes, nvidia-smi's numbers beside
them, SR-IOV VFs listed as nvidia-smi lists them, and no matrix on a host without a GPU."""

import json

import pytest
from ruamel.yaml import YAML

from cdigen.examples import EXAMPLES
from tests.helpers.proc import run_cdigen, run_in_process


def test_gpus_are_named_as_device_takes_them_with_nvidia_smi_index_beside():
    # switch-pair: the GPU first in PCI order (nvidia-smi's GPU0) is /dev/nvidia1, which scan names gpu1.
    lines = run_cdigen("topo", "--example", "switch-pair", env={"COLUMNS": "80"}, check=0).stdout.splitlines()
    header = next(line for line in lines if "NUMA" in line)
    assert header.split() == ["gpu1", "gpu0", "NIC0", "NIC1", "NUMA"]
    rows = [line.split() for line in lines if line.startswith(" gpu")]
    assert rows == [
        ["gpu1", "(GPU0)", "X", "PIX", "PIX*", "PIX", "0"],
        ["gpu0", "(GPU1)", "PIX", "X", "PIX", "PIX*", "0"],
    ]
    assert "  gpu1 (GPU0): 0000:45:00.0 /dev/nvidia1" in lines
    legend = lines.index("  gpu0 (GPU1): 0000:46:00.0 /dev/nvidia0") + 1
    assert lines[legend : legend + 2] == [
        "  gpuN = the device name `cdigen scan` writes (N: the /dev/nvidiaN minor), as in",
        "         --device cdigen.io/gpu=gpu1; GPUk = nvidia-smi's index (by PCI address)",
    ]
    assert all(len(line) <= 80 for line in lines[lines.index("Legend:") :])
    report = json.loads(run_cdigen("topo", "--example", "switch-pair", "--json", check=0).stdout)
    assert [(g["name"], g["nvidiaSmiIndex"], g["device"], g["nics"]) for g in report["gpus"]] == [
        ("gpu1", 0, "gpu1", ["NIC0"]),
        ("gpu0", 1, "gpu0", ["NIC1"]),
    ]
    assert list(report["matrix"]) == ["gpu1", "gpu0", "NIC0", "NIC1"]


def test_a_gpu_without_a_device_name_is_labelled_by_its_address_and_not_counted_by_nvidia_smi():
    report = json.loads(run_in_process("topo", "--example", "no-driver", "--json", check=0).stdout)
    assert [(g["name"], g["nvidiaSmiIndex"], g["device"]) for g in report["gpus"]] == [
        ("gpu0", 0, "gpu0"),
        ("0000:75:00.0", None, None),
    ]
    lines = run_in_process("topo", "--example", "no-driver", check=0).stdout.splitlines()
    assert "  0000:75:00.0: no nvidia driver (driver: none), no device name" in lines


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_the_nics_topo_marks_are_those_scan_gives_the_device_of_that_name(example):
    report = json.loads(run_in_process("topo", "--example", example, "--json", check=0).stdout)
    scan = run_in_process(
        "scan", "--hook-path", "/usr/bin/cdigen", "--cdi-version", "1.1.0", "--example", example, check=0
    )
    spec = YAML(typ="safe", pure=True).load(scan.stdout)
    given = {
        d["name"]: [n["hostInterfaceName"] for n in d["containerEdits"].get("netDevices", [])] for d in spec["devices"]
    }
    netdevs = {n["name"]: [d["name"] for d in n["netdevs"]] for n in report["nics"]}
    marked = {g["device"]: [d for n in g["nics"] for d in netdevs[n]] for g in report["gpus"] if g["device"]}
    assert marked and set(marked) <= set(given)
    assert marked == {name: given[name] for name in marked}


def test_vfs_rdma_devices_are_listed_as_nvidia_smi_lists_them_and_never_assigned():
    # 8x A100, four ConnectX-6 Dx PFs, each with a VF made after boot: nvidia-smi shows eight NICs.
    report = json.loads(run_cdigen("topo", "--example", "a100-sriov", "--json", check=0).stdout)
    pfs = ["0000:15:00.0", "0000:18:00.0", "0000:95:00.0", "0000:98:00.0"]
    assert [(n["name"], n["rdma"], n["pciAddress"], n["physfn"]) for n in report["nics"]] == [
        *[(f"NIC{k}", [f"mlx5_{k}"], pf, None) for k, pf in enumerate(pfs)],
        *[(f"NIC{k + 4}", [f"mlx5_{k + 4}"], pf[:-1] + "2", pf) for k, pf in enumerate(pfs)],
    ]
    assert [n["vfs"] for n in report["nics"][:4]] == [[pf[:-1] + "2"] for pf in pfs]
    assert [g["nics"] for g in report["gpus"]] == [["NIC0"], ["NIC1"], [], [], ["NIC2"], ["NIC3"], [], []]
    assert report["matrix"]["gpu0"]["NIC4"] == "PIX" and report["matrix"]["gpu4"]["NIC4"] == "SYS"
    lines = run_cdigen("topo", "--example", "a100-sriov", check=0).stdout.splitlines()
    header = next(line for line in lines if "NUMA" in line)
    assert header.split() == [f"gpu{i}" for i in range(8)] + [f"NIC{i}" for i in range(8)] + ["NUMA"]
    assert not any("*" in line for line in lines if line.startswith((" NIC4", " NIC5", " NIC6", " NIC7")))
    assert "  NIC0: mlx5_0 (0000:15:00.0, enp21s0np0, 1 VF)" in lines
    assert "  NIC4: mlx5_4 (0000:15:00.2, enp21s0f2; VF of NIC0)" in lines
    assert "  (a VF is never assigned: it stays with its PF's user, such as an SR-IOV device plugin)" in lines


@pytest.mark.parametrize("args", [(), ("--json",)])
def test_a_host_without_a_gpu_exits_4_with_scans_message(tree, args):
    root = tree("numa 0\npci 0000:00 numa=0 ports: switch(roce ib) eth")
    topo = run_cdigen("topo", "--root", root, *args, check=4)
    scan = run_cdigen("scan", "--root", root, check=4)
    assert topo.stdout == ""
    assert (
        topo.stderr
        == scan.stderr
        == (
            "cdigen: error: no NVIDIA GPU with the nvidia driver bound "
            "(no PCI function of vendor 0x10de, class 0x0300/0x0302)\n"
        )
    )


def test_gpus_without_a_driver_still_get_a_matrix(tree):
    # scan has nothing to write for them (exit 4); topo shows where they sit (for a VM, say).
    root = tree("numa 0\npci 0000:00 numa=0 ports: switch(gpu:driver=vfio-pci roce)")
    report = json.loads(run_cdigen("topo", "--root", root, "--json", check=0).stdout)
    assert [(g["name"], g["nvidiaSmiIndex"], g["nics"]) for g in report["gpus"]] == [("0000:03:00.0", None, [])]
    assert run_cdigen("scan", "--root", root, check=4).stderr.endswith("(found without: 0000:03:00.0)\n")
