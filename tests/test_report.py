"""`cdigen topo`'s report as plain data: NIC numbering as nvidia-smi's (pure, no tree)."""

from cdigen.scan.model import CharDev, Nic, RdmaDevice, Topology
from cdigen.scan.report import rdma_order


def rdma(name: str, uverbs: int | None) -> RdmaDevice:
    nodes = (CharDev(f"/dev/infiniband/uverbs{uverbs}", 231, 192 + uverbs),) if uverbs is not None else ()
    return RdmaDevice(name, "0000:00:00.0", "Ethernet", nodes)


def test_rdma_devices_in_registration_order_then_by_name():
    # nvidia-smi's NIC legends: mlx5_9 before mlx5_10 (not lexical), mlx5_ib0..7 before
    # mlx5_eth0 (not alphabetical), mlx5_bond_0 after mlx5_17: the order the kernel
    # registered them in, which their uverbs numbers follow.
    devices = [
        rdma("mlx5_eth0", 2),
        rdma("mlx5_bond_0", 5),
        rdma("mlx5_11", None),
        rdma("mlx5_10", 4),
        rdma("mlx5_ib1", 1),
        rdma("mlx5_2", None),
        rdma("mlx5_9", 3),
        rdma("mlx5_ib0", 0),
    ]
    topo = Topology(nics=[Nic(f"0000:{i:02x}:00.0", rdma=(d,)) for i, d in enumerate(devices)])
    assert [r.name for r in rdma_order(topo)] == [
        "mlx5_ib0",
        "mlx5_ib1",
        "mlx5_eth0",
        "mlx5_9",
        "mlx5_10",
        "mlx5_bond_0",
        "mlx5_2",  # without a uverbs device (ib_uverbs not loaded): by name, digits as numbers
        "mlx5_11",
    ]
