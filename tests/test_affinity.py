"""The PIX/PXB/PHB/NODE/SYS classifier and exclusive NIC assignment (pure functions)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from cdigen.scan.affinity import Affinity, adapter, assign, bridge_hops, classify
from cdigen.scan.model import PciFunction


def fn(bdf: str, *bridges: str, root: str = "pci0000:10", numa: int = 0) -> PciFunction:
    """A function below `bridges` (root port first, then switch up/down port pairs)."""
    return PciFunction(bdf=bdf, root=root, chain=(*bridges, bdf), numa_node=numa)


RP, USP, DSP0, DSP1 = "0000:10:01.0", "0000:11:00.0", "0000:12:00.0", "0000:12:01.0"
GPU = fn("0000:13:00.0", RP, USP, DSP0)
NIC = fn("0000:14:00.0", RP, USP, DSP1)


def test_self_is_x():
    assert classify(GPU, GPU) == Affinity.X


def test_same_switch_is_pix():
    assert classify(GPU, NIC) == classify(NIC, GPU) == Affinity.PIX


def test_cascaded_switches_are_pxb():
    # GPU below a second-level switch hanging off DSP0 of the first switch.
    deep = fn("0000:16:00.0", RP, USP, DSP0, "0000:14:00.0", "0000:15:00.0")
    assert classify(deep, NIC) == Affinity.PXB
    # Two sibling second-level switches under one top switch.
    other = fn("0000:19:00.0", RP, USP, DSP1, "0000:17:00.0", "0000:18:00.0")
    assert classify(deep, other) == Affinity.PXB


def test_functions_on_one_root_port_are_pix():
    # Both ports of a dual-port adapter directly on a root port cross that one bridge:
    # nvidia-smi reports PIX (forums.developer.nvidia.com/t/68452: mlx5_0-mlx5_1 PIX).
    port0, port1 = fn("0000:41:00.0", "0000:40:01.0"), fn("0000:41:00.1", "0000:40:01.0")
    assert classify(port0, port1) == classify(port1, port0) == Affinity.PIX
    # A function on the root port and one behind a switch below it: two bridges, PXB.
    behind = fn("0000:43:00.0", "0000:40:01.0", "0000:41:00.0", "0000:42:00.0")
    assert classify(port0, behind) == Affinity.PXB


def test_port_types_decide_not_depth():
    # A switch directly on a root bus (no root port above it, as in some VMs): by depth its
    # upstream port would be a root port and its downstream ports switches (PXB).
    usp, dsp0, dsp1 = "0001:00:00.0", "0001:01:00.0", "0001:01:01.0"
    kinds = {usp: "upstream", dsp0: "downstream", dsp1: "downstream"}
    gpu, nic = (usp, dsp0, "0001:02:00.0"), (usp, dsp1, "0001:03:00.0")
    assert bridge_hops(gpu) == (usp, dsp0)  # the depth rule
    assert bridge_hops(gpu, kinds) == bridge_hops(nic, kinds) == (usp,)
    a = PciFunction("0001:02:00.0", "pci0001:00", gpu, hops=bridge_hops(gpu, kinds))
    b = PciFunction("0001:03:00.0", "pci0001:00", nic, hops=bridge_hops(nic, kinds))
    assert classify(a, b) == Affinity.PIX
    # A PCIe-to-PCI bridge is one bridge of its own, and what it parents is not a switch.
    p2p = (RP, USP, DSP0, "0000:13:00.0", "0000:14:00.0")
    assert bridge_hops(p2p, {RP: "root", USP: "upstream", DSP0: "downstream", "0000:13:00.0": "bridge"}) == (
        RP,
        USP,
        "0000:13:00.0",
    )
    # Unknown kinds below known ones: a bridge below an upstream port is a downstream port.
    assert bridge_hops(GPU.chain, {RP: "root", USP: "upstream"}) == bridge_hops(GPU.chain) == (RP, USP)


def test_different_root_ports_of_one_host_bridge_are_phb():
    storage = fn("0000:17:00.0", "0000:10:02.0")
    assert classify(GPU, storage) == Affinity.PHB
    # Directly on the root bus, no root port at all (integrated devices).
    integrated = fn("0000:10:03.0")
    assert classify(GPU, integrated) == Affinity.PHB


def test_other_host_bridge_same_numa_is_node():
    far = fn("0000:34:00.0", "0000:30:01.0", "0000:31:00.0", "0000:32:01.0", root="pci0000:30", numa=0)
    assert classify(GPU, far) == Affinity.NODE


def test_other_numa_node_is_sys():
    far = fn("0000:94:00.0", "0000:90:01.0", root="pci0000:90", numa=1)
    assert classify(GPU, far) == Affinity.SYS


def test_unknown_numa_node():
    a = fn("0001:00:00.0", root="pci0001:00", numa=-1)
    b = fn("0002:00:00.0", root="pci0002:00", numa=-1)
    assert classify(a, b) == Affinity.SYS  # several nodes: unknown is never "the same"
    assert classify(a, b, single_numa_node=True) == Affinity.NODE


def test_pix_only_at_the_same_deepest_switch():
    # A NIC on the top switch and a GPU one level down: two switches -> PXB, not PIX.
    top_nic = fn("0000:14:00.0", RP, USP, DSP1)
    deep_gpu = fn("0000:16:00.0", RP, USP, DSP0, "0000:14:00.0", "0000:15:00.0")
    assert classify(top_nic, deep_gpu) == Affinity.PXB


# ---------------------------------------------------------------------------- assignment


def switch(n: int, *names: str, numa: int = 0) -> list[PciFunction]:
    """Functions named `names` behind switch number `n` (its own host bridge)."""
    root = f"pci0000:{n:02x}"
    rp, usp = f"0000:{n:02x}:01.0", f"0000:{n + 1:02x}:00.0"
    return [
        fn(f"0000:{n + 3 + i:02x}:00.0", rp, usp, f"0000:{n + 2:02x}:{i:02x}.0", root=root, numa=numa)
        for i, _ in enumerate(names)
    ]


def test_one_nic_per_gpu_at_pix():
    g0, n0, g1, n1 = switch(0x10, "g0", "n0", "g1", "n1")
    assert assign([g0, g1], [n0, n1]) == {g0.bdf: [n0.bdf], g1.bdf: [n1.bdf]}


def test_more_gpus_than_nics():
    g0, g1, g2, n0 = switch(0x10, "g0", "g1", "g2", "n0")
    out = assign([g0, g1, g2], [n0])
    assert out == {g0.bdf: [n0.bdf], g1.bdf: [], g2.bdf: []}  # first GPU in order wins the tie


def test_more_nics_than_gpus_all_go_and_stay_balanced():
    g0, n0, n1, g1, n2, n3 = switch(0x10, "g0", "n0", "n1", "g1", "n2", "n3")
    out = assign([g0, g1], [n0, n1, n2, n3])
    assert out == {g0.bdf: [n0.bdf, n2.bdf], g1.bdf: [n1.bdf, n3.bdf]}


def test_balanced_before_nearest():
    # g0 is PIX to both NICs, g1 only PXB: g1 still gets one before g0 takes a second.
    rp, usp = "0000:10:01.0", "0000:11:00.0"
    g0 = fn("0000:13:00.0", rp, usp, "0000:12:00.0")
    n0 = fn("0000:14:00.0", rp, usp, "0000:12:01.0")
    n1 = fn("0000:15:00.0", rp, usp, "0000:12:02.0")
    g1 = fn("0000:18:00.0", rp, usp, "0000:12:03.0", "0000:16:00.0", "0000:17:00.0")
    assert assign([g0, g1], [n0, n1]) == {g0.bdf: [n0.bdf], g1.bdf: [n1.bdf]}


def test_nics_on_another_numa_node_only_with_sys():
    (g0,) = switch(0x10, "g0", numa=0)
    (n0,) = switch(0x90, "n0", numa=1)
    assert assign([g0], [n0]) == {g0.bdf: []}
    assert assign([g0], [n0], Affinity.NODE) == {g0.bdf: []}
    assert assign([g0], [n0], Affinity.SYS) == {g0.bdf: [n0.bdf]}


def test_limit_pix_excludes_pxb_and_phb_needs_widening():
    rp, usp = "0000:10:01.0", "0000:11:00.0"
    g0 = fn("0000:13:00.0", rp, usp, "0000:12:00.0")
    deep = fn("0000:16:00.0", rp, usp, "0000:12:01.0", "0000:14:00.0", "0000:15:00.0")
    storage = fn("0000:17:00.0", "0000:10:02.0")
    assert assign([g0], [deep, storage], Affinity.PIX) == {g0.bdf: []}
    assert assign([g0], [deep, storage]) == {g0.bdf: [deep.bdf]}
    assert assign([g0], [deep, storage], Affinity.PHB) == {g0.bdf: [deep.bdf, storage.bdf]}


def test_nearest_first_within_a_round():
    # g0's nearest NIC is n1 (PIX), n0 is only PHB: g0 takes n1 even though n0 comes first.
    (g0, n1), (n0,) = switch(0x10, "g0", "n1"), [fn("0000:1a:00.0", "0000:10:02.0")]
    assert assign([g0], [n0, n1], Affinity.PHB)[g0.bdf] == [n1.bdf, n0.bdf]


def test_ports_of_one_adapter_go_together():
    # Two GPUs and one dual-port adapter (RoCE + IB, say) on another host bridge of the node:
    # both ports go to the first GPU, as NCCL would use them both from one GPU.
    g0, g1 = switch(0x10, "g0", "g1")
    p0, p1 = (fn(f"0000:21:00.{f}", "0000:20:01.0", root="pci0000:20") for f in (0, 1))
    assert adapter(p0) == adapter(p1) == "0000:21:00"
    assert classify(g0, p0) == Affinity.NODE
    assert assign([g0, g1], [p0, p1], Affinity.NODE) == {g0.bdf: [p0.bdf, p1.bdf], g1.bdf: []}
    # Split: one port each, as before.
    assert assign([g0, g1], [p0, p1], Affinity.NODE, split_ports=True) == {g0.bdf: [p0.bdf], g1.bdf: [p1.bdf]}
    # Two adapters: one each, before either GPU takes a second.
    q0 = fn("0000:31:00.0", "0000:30:01.0", root="pci0000:30")
    assert assign([g0, g1], [p0, p1, q0], Affinity.NODE) == {g0.bdf: [p0.bdf, p1.bdf], g1.bdf: [q0.bdf]}


@st.composite
def trees(draw):
    """Random small PCIe trees: adapters (one or two functions) at random depths under random
    switches."""
    funcs = []
    for i in range(draw(st.integers(2, 12))):
        root = draw(st.sampled_from(["pci0000:00", "pci0000:40", "pci0000:80"]))
        bridges = tuple(f"0000:{draw(st.integers(0, 3)):02x}:{k:02x}.0" for k in range(draw(st.integers(0, 5))))
        numa = draw(st.sampled_from([-1, 0, 1]))
        for f in range(draw(st.integers(1, 2))):
            bdf = f"0000:f{i:x}:00.{f}"
            funcs.append(PciFunction(bdf=bdf, root=root, chain=(*bridges, bdf), numa_node=numa))
    split = draw(st.integers(1, len(funcs) - 1))
    return funcs[:split], funcs[split:], draw(st.sampled_from(list(Affinity)[1:]))


@settings(max_examples=200, deadline=None)
@given(trees(), st.booleans())
def test_assignment_is_exclusive_within_limit_and_balanced(case, split_ports):
    gpus, nics, limit = case
    out = assign(gpus, nics, limit, split_ports=split_ports)
    assert list(out) == [g.bdf for g in gpus]
    given_out = [n for ns in out.values() for n in ns]
    assert len(given_out) == len(set(given_out))  # never the same NIC twice
    by_bdf = {f.bdf: f for f in gpus + nics}
    for g, ns in out.items():
        assert all(classify(by_bdf[g], by_bdf[n]) <= limit for n in ns)
    # The unit handed out: an adapter (all its functions, to one GPU), or a single function.
    unit_of = (lambda f: f.bdf) if split_ports else adapter
    units: dict[str, list[str]] = {}
    for n in nics:
        units.setdefault(unit_of(n), []).append(n.bdf)
    held = {g: list(dict.fromkeys(unit_of(by_bdf[n]) for n in ns)) for g, ns in out.items()}
    for g, us in held.items():
        assert out[g] == [n for u in us for n in units[u]]  # whole units, in input order
    # Balanced: a GPU left without a NIC has no free unit in range, and no GPU holds two
    # units while one of them could have gone to the empty-handed GPU.
    free = [u for u in units if not any(u in us for us in held.values())]
    for g in gpus:
        if not out[g.bdf]:
            assert not any(classify(g, by_bdf[n]) <= limit for u in free for n in units[u])
            for us in held.values():
                assert not any(classify(g, by_bdf[n]) <= limit for u in us[1:] for n in units[u])
    assert assign(gpus, nics, limit, split_ports=split_ports) == out  # deterministic
