"""Discovery on fake sysfs/procfs trees built from the shipped descriptions."""

import os
import re
import shutil

import pytest

from cdigen.examples import EXAMPLES, fakesys
from cdigen.scan.affinity import Affinity, classify
from cdigen.scan.model import CharDev
from cdigen.scan.sysfs import _bridge_kind, discover
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
    assert [(g.bdf, g.minor) for g in topo.gpus] == [("0000:01:00.0", 0)]
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
    assert warned[f"/{nic0}/net/ibp20s0/mtu"] == "unreadable: not a regular file"
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


# ---------------------------------------------------------------------------- bridge port types


def test_bridge_kinds_are_read_from_config(trees):
    topo = discover(trees["hgx-h100"])
    pci = topo.pci
    assert [pci[b].bridge_kind for b in ("0000:10:01.0", "0000:11:00.0", "0000:12:00.0")] == [
        "root",
        "upstream",
        "downstream",
    ]
    assert pci["0000:13:00.0"].hops == ("0000:10:01.0", "0000:11:00.0")  # root port, switch
    assert pci["0000:17:00.0"].hops == ("0000:10:02.0",)  # storage NIC: its root port only


def test_gpu_behind_a_nic_switch(trees):
    """Lenovo SD665-N V3 shape: root port -> CX-7 upstream 01:00.0 -> downstream 02:00.0 -> NIC
    03:00.0, and downstream 02:01.0 -> CX-7 upstream 04:00.0 -> downstream 05:00.0 -> GPU 06:00.0."""
    topo = discover(trees["nic-switch"])
    assert topo.warnings == []
    pci = topo.pci
    gpu, nic = pci["0000:06:00.0"], pci["0000:03:00.0"]
    assert gpu.chain == ("0000:00:01.0", "0000:01:00.0", "0000:02:01.0", "0000:04:00.0", "0000:05:00.0", gpu.bdf)
    assert [pci[b].bridge_kind for b in gpu.chain[:-1]] == ["root", "upstream", "downstream", "upstream", "downstream"]
    assert {pci[b].vendor for b in gpu.chain[1:-1]} == {0x15B3}  # the ConnectX-7's own bridges
    assert gpu.hops == ("0000:00:01.0", "0000:01:00.0", "0000:04:00.0")
    assert nic.hops == ("0000:00:01.0", "0000:01:00.0")
    assert classify(gpu, nic) == Affinity.PXB  # the CX-7 switch and the one in front of the GPU
    assert classify(gpu, pci["0000:23:00.0"]) == Affinity.NODE


def test_dual_port_adapter_functions_share_the_root_port(trees):
    topo = discover(trees["dual-port"])
    pci = topo.pci
    port0, port1, gpu = pci["0000:02:00.0"], pci["0000:02:00.1"], pci["0000:01:00.0"]
    assert port0.hops == port1.hops == ("0000:00:02.0",)
    assert classify(port0, port1) == Affinity.PIX
    assert classify(gpu, port0) == classify(gpu, port1) == Affinity.PHB
    assert [(n.bdf, [d.name for d in n.netdevs]) for n in topo.nics] == [
        ("0000:02:00.0", ["enp2s0f0np0"]),
        ("0000:02:00.1", ["enp2s0f1np1"]),
    ]


def _configs(root: str) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(os.path.join(root, "sys/devices")):
        out += [os.path.join(dirpath, "config")] if "config" in files else []
    return sorted(out)


def test_switch_on_a_root_bus_needs_the_port_types(tree):
    # No root port above the switch (as in some VMs): the depth rule would take its upstream
    # port for a root port and its downstream ports for switches.
    root = tree("numa 0\npci 0001:00 numa=0 bus: switch(gpu ib)")
    topo = discover(root)
    assert topo.warnings == []
    gpu, nic = topo.pci["0001:02:00.0"], topo.pci["0001:03:00.0"]
    assert classify(gpu, nic) == Affinity.PIX
    configs = _configs(root)
    assert len(configs) == 3
    for path in configs:
        os.unlink(path)
    topo = discover(root)
    assert [(w.path, w.reason) for w in topo.warnings] == [
        (
            "/sys/devices/pci0001:00/0001:00:00.0/config",
            "no PCIe port type (missing); it and 2 other bridges were classified by depth "
            "(root port, then switch upstream/downstream port pairs)",
        )
    ]
    assert classify(topo.pci["0001:02:00.0"], topo.pci["0001:03:00.0"]) == Affinity.PXB  # the old rule


def test_short_or_broken_config_falls_back_to_depth(tree):
    root = tree(EXAMPLES["hgx-h100"])
    rp = "sys/devices/pci0000:10/0000:10:01.0"
    with open(os.path.join(root, rp, "config"), "r+b") as f:  # what a reader without root gets
        f.truncate(64)
    usp = f"{rp}/0000:11:00.0"
    with open(os.path.join(root, usp, "config"), "r+b") as f:  # a capability list that loops
        f.seek(0x60 + 1)
        f.write(bytes((0x60,)))
        f.seek(0x60)
        f.write(bytes((0x11,)))
    topo = discover(root)
    assert [(w.path, w.reason) for w in topo.warnings] == [
        (
            f"/{rp}/config",
            "no PCIe port type (64 bytes, the capabilities are beyond them (reading them needs root)); "
            "it and 1 other bridge were classified by depth (root port, then switch upstream/downstream port pairs)",
        )
    ]
    pci = topo.pci
    assert pci["0000:10:01.0"].bridge_kind is None and pci["0000:11:00.0"].bridge_kind is None
    assert pci["0000:12:00.0"].bridge_kind == "downstream"
    # The depth rule agrees with the port types on this tree: the classes stay.
    assert classify(pci["0000:13:00.0"], pci["0000:14:00.0"]) == Affinity.PIX
    assert classify(pci["0000:13:00.0"], pci["0000:17:00.0"]) == Affinity.PHB


def test_bridge_kind_from_config_bytes():
    ids = fakesys.PEX_SWITCH
    for port_type, kind in ((fakesys.ROOT, "root"), (fakesys.UPSTREAM, "upstream"), (fakesys.DOWNSTREAM, "downstream")):
        assert _bridge_kind(fakesys.bridge_config(ids, port_type, 0, 1, 2)) == kind
    pcie_to_pci = fakesys.bridge_config(ids, 0x7, 0, 1, 2)
    assert _bridge_kind(pcie_to_pci) == "bridge"
    conventional = bytearray(pcie_to_pci)
    conventional[0x06] = 0  # Status: no capability list (a PCI-to-PCI bridge without PCIe)
    assert _bridge_kind(bytes(conventional)) == "bridge"
    no_pcie = bytearray(pcie_to_pci)
    no_pcie[0x49] = 0  # MSI is the last capability
    assert _bridge_kind(bytes(no_pcie)) == "bridge"
    for bad, message in (
        (pcie_to_pci[:63], "63 bytes, not even the header"),
        (pcie_to_pci[:0x62], "98 bytes, the capabilities are beyond them"),
        (pcie_to_pci[:0x34] + b"\x20" + pcie_to_pci[0x35:], "broken capability list (pointer 0x20)"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            _bridge_kind(bad)


def test_adapter_descriptions_are_checked():
    for bad in ("adapter(gpu)", "adapter(roce:vf2)", "adapter()", "adapter ib"):
        with pytest.raises(fakesys.DescriptionError):
            fakesys.parse(f"pci 0000:00 numa=0 ports: {bad}")
