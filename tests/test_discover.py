"""Discovery on fake sysfs/procfs trees built from the shipped descriptions."""

import os
import shutil

import pytest

from cdigen.examples import EXAMPLES, fakesys
from cdigen.scan.affinity import Affinity, classify
from cdigen.scan.model import CharDev
from cdigen.scan.sysfs import discover
from tests.helpers.proc import fast_tmpdir


@pytest.fixture(scope="module")
def trees():
    roots = {name: fakesys.build(desc, fast_tmpdir()) for name, desc in EXAMPLES.items()}
    yield roots
    for root in roots.values():
        shutil.rmtree(root)


def test_hgx_gpus(trees):
    topo = discover(trees["hgx-h100"])
    assert topo.warnings == []
    assert [(g.bdf, g.minor) for g in topo.gpus] == [
        ("0000:13:00.0", 0),
        ("0000:15:00.0", 1),
        ("0000:33:00.0", 2),
        ("0000:35:00.0", 3),
        ("0000:93:00.0", 4),
        ("0000:95:00.0", 5),
        ("0000:b3:00.0", 6),
        ("0000:b5:00.0", 7),
    ]
    g0 = topo.gpus[0]
    assert g0.model == "NVIDIA H100 80GB HBM3"
    assert g0.uuid.startswith("GPU-") and len(g0.uuid) == 40
    assert g0.node == CharDev("/dev/nvidia0", 195, 0)
    assert g0.drm == (CharDev("/dev/dri/card0", 226, 0), CharDev("/dev/dri/renderD128", 226, 128))
    assert topo.control == [
        CharDev("/dev/nvidiactl", 195, 255),
        CharDev("/dev/nvidia-modeset", 195, 254),
        CharDev("/dev/nvidia-uvm", 508, 0),
        CharDev("/dev/nvidia-uvm-tools", 508, 1),
    ]
    assert topo.numa_nodes == (0, 1)


def test_hgx_nics_and_rdma(trees):
    topo = discover(trees["hgx-h100"])
    assert [(n.bdf, n.label, [d.name for d in n.netdevs]) for n in topo.nics][:3] == [
        ("0000:14:00.0", "mlx5_0", ["ibp20s0"]),
        ("0000:16:00.0", "mlx5_1", ["ibp22s0"]),
        ("0000:17:00.0", "mlx5_2", ["enp23s0np0"]),
    ]
    assert len(topo.nics) == 10
    nic0, storage = topo.nics[0], topo.nics[2]
    assert nic0.netdevs[0].link_layer == "InfiniBand" and nic0.netdevs[0].mtu == 4092
    assert nic0.rdma[0].link_layer == "InfiniBand"
    assert storage.netdevs[0].link_layer == "Ethernet" and storage.rdma[0].link_layer == "Ethernet"
    assert nic0.chardevs == (
        CharDev("/dev/infiniband/uverbs0", 231, 192),
        CharDev("/dev/infiniband/umad0", 231, 0),
        CharDev("/dev/infiniband/issm0", 231, 64),
    )
    assert topo.rdma_cm == CharDev("/dev/infiniband/rdma_cm", 10, 58)
    assert "lo" not in {d.name for n in topo.nics for d in n.netdevs}  # virtual netdevs skipped


def test_hgx_classes_match_the_reference(trees):
    """reference/netdev-topology.md §4: GPU0-NIC0/1 PIX, NIC2/3 NODE, NIC4..7 SYS, GPU0-GPU1 PIX..."""
    topo = discover(trees["hgx-h100"])
    pci = topo.pci
    gpu0 = pci["0000:13:00.0"]
    assert [
        classify(gpu0, pci[b]).name
        for b in ("0000:14:00.0", "0000:16:00.0", "0000:34:00.0", "0000:36:00.0", "0000:94:00.0", "0000:b6:00.0")
    ] == ["PIX", "PIX", "NODE", "NODE", "SYS", "SYS"]
    assert classify(gpu0, pci["0000:15:00.0"]) == Affinity.PIX
    assert classify(gpu0, pci["0000:33:00.0"]) == Affinity.NODE
    assert classify(gpu0, pci["0000:93:00.0"]) == Affinity.SYS
    assert classify(gpu0, pci["0000:17:00.0"]) == Affinity.PHB  # storage NIC, own root port
    assert pci["0000:13:00.0"].chain == ("0000:10:01.0", "0000:11:00.0", "0000:12:00.0", "0000:13:00.0")
    assert pci["0000:13:00.0"].root == "pci0000:10"


def test_roce_variant(trees):
    topo = discover(trees["hgx-h100-roce"])
    nd = topo.nics[0].netdevs[0]
    assert (nd.name, nd.link_layer, nd.mtu) == ("enp20s0np0", "Ethernet", 9000)
    assert topo.nics[0].rdma[0].link_layer == "Ethernet"


def test_workstation_without_rdma(trees):
    topo = discover(trees["workstation"])
    assert topo.warnings == []
    assert [(g.minor, g.model) for g in topo.gpus] == [(0, "NVIDIA GeForce RTX 4090")]
    assert [(n.bdf, n.rdma, [d.name for d in n.netdevs]) for n in topo.nics] == [("0000:02:00.0", (), ["enp2s0"])]
    assert topo.rdma_cm is None
    assert topo.pci["0000:01:00.0"].numa_node == -1 and topo.single_numa_node


def test_sriov_vfs_are_linked_to_their_pf(trees):
    topo = discover(trees["sriov"])
    pf = next(n for n in topo.nics if not n.is_vf)
    vfs = [n for n in topo.nics if n.is_vf]
    assert pf.bdf == "0000:64:00.0"
    assert pf.vfs == ("0000:64:00.2", "0000:64:00.3", "0000:64:00.4", "0000:64:00.5")
    assert [v.physfn for v in vfs] == [pf.bdf] * 4
    assert topo.pci[pf.bdf].virtfns == pf.vfs
    assert [v.netdevs[0].name for v in vfs] == ["enp100s0f2", "enp100s0f3", "enp100s0f4", "enp100s0f5"]
    assert all(v.rdma for v in vfs)


def test_ib_hca_without_netdev_counts(trees):
    topo = discover(trees["cascade"])
    hca = next(n for n in topo.nics if not n.netdevs)
    assert hca.label == "mlx5_0" and hca.rdma[0].link_layer == "InfiniBand" and hca.chardevs


def test_cloud_vm_every_device_on_its_own_domain(trees):
    topo = discover(trees["cloud-vm"])
    roots = [topo.pci[g.bdf].root for g in topo.gpus] + [topo.pci[n.bdf].root for n in topo.nics]
    assert len(roots) == len(set(roots)) == 9
    links = {classify(topo.pci[g.bdf], topo.pci[n.bdf]) for g in topo.gpus for n in topo.nics}
    assert links == {Affinity.NODE, Affinity.SYS}


def test_gpu_without_driver_is_reported(trees):
    topo = discover(trees["no-driver"])
    assert [(g.bdf, g.minor, g.driver) for g in topo.gpus] == [
        ("0000:73:00.0", 0, "nvidia"),
        ("0000:75:00.0", None, None),
    ]
    assert [(w.path, w.reason) for w in topo.warnings] == [
        (
            "/sys/bus/pci/devices/0000:75:00.0",
            "NVIDIA GPU without the nvidia driver bound (driver: none); left out of the spec",
        )
    ]


def test_gpu_bound_to_vfio_is_reported(tree):
    topo = discover(tree("pci 0000:10 numa=0 ports: gpu:driver=vfio-pci"))
    assert [(g.minor, g.driver) for g in topo.gpus] == [(None, "vfio-pci")]
    assert "driver: vfio-pci" in topo.warnings[0].reason


def _write(root: str, rel: str, content: str) -> None:
    path = os.path.join(root, rel)
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    with open(path, "w") as f:
        f.write(content)


def test_garbage_missing_and_unreadable_files_are_warnings(tree):
    root = tree(EXAMPLES["hgx-h100"])
    gpu1 = "sys/devices/pci0000:10/0000:10:01.0/0000:11:00.0/0000:12:02.0/0000:15:00.0"
    nic0 = "sys/devices/pci0000:10/0000:10:01.0/0000:11:00.0/0000:12:01.0/0000:14:00.0"
    _write(root, f"{gpu1}/numa_node", "banana\n")
    _write(root, "proc/driver/nvidia/gpus/0000:33:00.0/information", "Model: x\nDevice Minor: \t lots\n")
    os.unlink(os.path.join(root, "proc/driver/nvidia/gpus/0000:35:00.0/information"))
    _write(root, f"{nic0}/infiniband_verbs/uverbs0/dev", "231-192\n")
    os.unlink(os.path.join(root, f"{nic0}/net/ibp20s0/mtu"))
    os.mkdir(os.path.join(root, f"{nic0}/net/ibp20s0/mtu"))  # a directory where a file should be
    os.unlink(os.path.join(root, "proc/devices"))
    os.symlink("../../devices/nowhere/net/ghost0", os.path.join(root, "sys/class/net/ghost0"))
    os.symlink("../../../devices/elsewhere/0000:ff:00.0", os.path.join(root, "sys/bus/pci/devices/0000:ff:00.0"))
    os.unlink(os.path.join(root, "sys/class/misc/rdma_cm"))

    topo = discover(root)

    warned = {w.path: w.reason for w in topo.warnings}
    assert len(warned) == len(topo.warnings) == 8
    assert (
        warned["/sys/class/misc/rdma_cm"] == "missing (module rdma_ucm not loaded?); /dev/infiniband/rdma_cm left out"
    )
    assert topo.rdma_cm is None
    assert warned[f"/{gpu1}/numa_node"] == "not a number: 'banana'"
    assert warned["/proc/driver/nvidia/gpus/0000:33:00.0/information"] == "no valid 'Device Minor' (got 'lots')"
    assert warned["/proc/driver/nvidia/gpus/0000:35:00.0/information"] == "missing"
    assert warned["/sys/class/infiniband_verbs/uverbs0/dev"] == "not MAJOR:MINOR: '231-192'"
    assert warned[f"/{nic0}/net/ibp20s0/mtu"] == "unreadable: Is a directory"
    assert warned["/proc/devices"] == "missing"
    assert warned["/sys/bus/pci/devices/0000:ff:00.0"] == "no PCI root bus in sys/devices/elsewhere/0000:ff:00.0"
    # The rest is still scanned.
    assert [g.minor for g in topo.gpus] == [0, 1, None, None, 4, 5, 6, 7]
    assert topo.pci["0000:15:00.0"].numa_node == -1
    assert topo.nics[0].netdevs[0].mtu is None
    assert [c.path for c in topo.nics[0].chardevs] == ["/dev/infiniband/umad0", "/dev/infiniband/issm0"]
    assert topo.nics[1].chardevs[0] == CharDev("/dev/infiniband/uverbs1", 231, 193)
    assert [c.path for c in topo.control] == ["/dev/nvidiactl", "/dev/nvidia-modeset"]


def test_empty_root_is_not_an_error(tree):
    root = tree("")
    shutil.rmtree(os.path.join(root, "sys"))
    topo = discover(root)
    assert topo.gpus == [] and topo.nics == []
    assert [(w.path, w.reason) for w in topo.warnings] == [
        ("/sys/bus/pci/devices", "missing"),
        ("/sys/class/net", "missing"),
    ]


def test_minor_is_read_not_assumed(trees):
    topo = discover(trees["switch-pair"])
    assert [(g.bdf, g.minor) for g in topo.gpus] == [("0000:45:00.0", 1), ("0000:46:00.0", 0)]
