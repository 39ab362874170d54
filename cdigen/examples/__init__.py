"""Example topologies shipped with cdigen (`cdigen scan --example NAME`), also the test fixtures.

Each is a short description in the language of `cdigen.examples.fakesys` (read its docstring);
`build_example(name, root)` writes the fake sysfs/procfs tree.
"""

import contextlib

EXAMPLES = {
    # HGX-class H100 server: 8 GPUs + 8 ConnectX-7 (InfiniBand), two PCIe switches per NUMA node
    # (each switch: GPU, NIC, GPU, NIC), plus one storage NIC per NUMA node on its own root port.
    "hgx-h100": """
        numa 0-1
        pci 0000:10 numa=0 ports: switch(gpu ib gpu ib) roce
        pci 0000:30 numa=0 ports: switch(gpu ib gpu ib)
        pci 0000:90 numa=1 ports: switch(gpu ib gpu ib) roce
        pci 0000:b0 numa=1 ports: switch(gpu ib gpu ib)
    """,
    # The same server with its driver userspace (550.90.07, the open kernel module) and the
    # devices around the GPUs: GDRCopy, GPUDirect Storage (4 nvidia-fs nodes, cufile.json),
    # two IMEX channels, and two MIG instances on GPU 7 (docs/gpu.md).
    "hgx-h100-driver": """
        numa 0-1
        pci 0000:10 numa=0 ports: switch(gpu ib gpu ib) roce
        pci 0000:30 numa=0 ports: switch(gpu ib gpu ib)
        pci 0000:90 numa=1 ports: switch(gpu ib gpu ib) roce
        pci 0000:b0 numa=1 ports: switch(gpu ib gpu ib)
        driver 550.90.07 open
        gdrcopy
        gds 4
        imex 2
        mig 7:1:0 7:2:0
    """,
    # The same server with a RoCE (Ethernet) compute fabric.
    "hgx-h100-roce": """
        numa 0-1
        pci 0000:10 numa=0 ports: switch(gpu roce gpu roce) roce
        pci 0000:30 numa=0 ports: switch(gpu roce gpu roce)
        pci 0000:90 numa=1 ports: switch(gpu roce gpu roce) roce
        pci 0000:b0 numa=1 ports: switch(gpu roce gpu roce)
    """,
    # Workstation: one GeForce GPU, an onboard Ethernet NIC, no RDMA.
    "workstation": """
        numa 0
        pci 0000:00 numa=-1 ports: gpu:vga eth
    """,
    # One switch with two GPUs and two NICs; the GPUs' minors are the reverse of PCI order
    # (docs/topology.md: never assume minor == PCI order).
    "switch-pair": """
        numa 0
        pci 0000:40 numa=0 ports: switch(ib ib gpu:minor=1 gpu:minor=0)
    """,
    # Cascaded switches: a GPU and a NIC under different second-level switches (PXB), and
    # an IB HCA without an IPoIB netdev.
    "cascade": """
        numa 0
        pci 0000:20 numa=0 ports: switch(switch(gpu) switch(ib:nonet) switch(gpu roce))
    """,
    # Cloud VM: every device on its own PCI domain, directly on the root bus: no PIX at all.
    "cloud-vm": """
        numa 0-1
        pci 0001:00 numa=0 bus: gpu
        pci 0002:00 numa=0 bus: gpu
        pci 0003:00 numa=0 bus: ib
        pci 0004:00 numa=0 bus: ib
        pci 0005:00 numa=1 bus: gpu
        pci 0006:00 numa=1 bus: gpu
        pci 0007:00 numa=1 bus: ib
        pci 0008:00 numa=1 bus: ib
        pci 0009:00 numa=0 bus: eth
    """,
    # A RoCE NIC with 4 SR-IOV VFs next to a GPU.
    "sriov": """
        numa 0
        pci 0000:60 numa=0 ports: switch(gpu roce:vf4)
    """,
    # An 8x A100 server whose ConnectX-6 Dx cards each have an SR-IOV VF with its own RDMA
    # device, made after boot (the VFs are mlx5_4..mlx5_7), as in NVIDIA/nccl issue 1405:
    # `nvidia-smi topo -m` lists all eight RDMA devices; `topo` lists the VFs as such and
    # never assigns them. One PCIe switch per NUMA node, with four GPUs and two NICs.
    "a100-sriov": """
        numa 0-1
        pci 0000:10 numa=0 ports: switch(gpu:a100 gpu:a100 roce:cx6dx:vf1 gpu:a100 gpu:a100 roce:cx6dx:vf1)
        pci 0000:90 numa=1 ports: switch(gpu:a100 gpu:a100 roce:cx6dx:vf1 gpu:a100 gpu:a100 roce:cx6dx:vf1)
        late-vfs
    """,
    # A GPU without a driver bound (reported, left out of the spec) next to a working one.
    "no-driver": """
        numa 0
        pci 0000:70 numa=0 ports: switch(gpu roce gpu:nodrv roce)
    """,
    # A dual-port ConnectX-7 directly on a root port, a GPU on another root port of the same
    # host bridge: the two ports are PIX to each other (they share the root port), the GPU is
    # PHB to both, so nothing is within PXB (a workstation or a small server).
    "dual-port": """
        numa 0
        pci 0000:00 numa=0 ports: gpu adapter(roce roce)
    """,
    # Bare metal where no RDMA NIC is within PXB of any GPU: the GPUs share switches, the
    # dual-port InfiniBand adapters sit on host bridges of their own, NODE to the GPUs of
    # their NUMA node (not a flat tree: the warning says so, and names the nearest class).
    "node-only": """
        numa 0-1
        pci 0000:10 numa=0 ports: switch(gpu gpu)
        pci 0000:20 numa=0 ports: adapter(ib ib)
        pci 0000:90 numa=1 ports: switch(gpu gpu)
        pci 0000:a0 numa=1 ports: adapter(ib ib)
    """,
    # A VPI adapter with one InfiniBand and one Ethernet (RoCE) port in a switch with two GPUs:
    # both ports go to the first GPU (an adapter's ports stay together unless split).
    "vpi-ports": """
        numa 0
        pci 0000:50 numa=0 ports: switch(gpu gpu adapter(ib roce))
    """,
    # GPUs behind the PCIe switch built into a ConnectX-7 (bridges 15b3:1979), as in a Lenovo
    # SD665-N V3: root port -> CX-7 upstream port -> downstream port -> the NIC, and downstream
    # port -> a second CX-7 upstream/downstream pair -> the GPU (buses 01-06, as `lspci -t`
    # shows on that machine). Two switches between GPU and NIC: PXB.
    "nic-switch": """
        numa 0-1
        pci 0000:00 numa=0 ports: switch:cx7(roce switch:cx7(gpu))
        pci 0000:20 numa=0 ports: switch:cx7(roce switch:cx7(gpu))
        pci 0000:a0 numa=1 ports: switch:cx7(roce switch:cx7(gpu))
        pci 0000:c0 numa=1 ports: switch:cx7(roce switch:cx7(gpu))
    """,
    # A RoCE NIC whose 4 SR-IOV VFs are bound to vfio-pci (for VMs, as an SR-IOV device plugin
    # configured for Kata leaves them), next to a GPU; the PF keeps mlx5_core and its netdev.
    # `scan --mode vm`: one VFIO device per VF (docs/vm.md, "VFIO devices").
    "sriov-vfio": """
        numa 0
        pci 0000:60 numa=0 ports: switch(gpu roce:vf4:vfio=vfs)
    """,
    # Whole-GPU passthrough: one switch with a GPU and a NIC on vfio-pci (for a VM), another
    # with a GPU and a NIC on their drivers (for containers). `scan --mode vm`: the VFIO GPU
    # carries the VFIO NIC in its switch.
    "vfio-gpu": """
        numa 0
        pci 0000:80 numa=0 ports: switch(gpu roce) switch(gpu:driver=vfio-pci roce:vfio)
    """,
}


def synthetic(domains: int = 10) -> str:
    """The benchmark's large tree: `domains` copies of the HGX server, each on its own PCI
    domain, with RoCE NICs carrying 8 VFs each (10 copies: 80 GPUs, 80 NICs, 640 VFs)."""
    lines = ["numa 0-1"]
    for d in range(domains):
        for bus, numa, extra in (("10", 0, " roce"), ("30", 0, ""), ("90", 1, " roce"), ("b0", 1, "")):
            lines.append(f"pci {d:04x}:{bus} numa={numa} ports: switch(gpu roce:vf8 gpu roce:vf8){extra}")
    return "\n".join(lines)


def describes_driver(name: str) -> bool:
    """Does the example describe a driver userspace (a `driver` line)? The others describe
    only sysfs and procfs: `scan --example` looks for no driver files there."""
    from cdigen.examples import fakesys

    return name in EXAMPLES and fakesys.parse(EXAMPLES[name]).driver is not None


@contextlib.contextmanager
def example_tree(name: str):
    """The example's tree in a temporary directory (in memory where possible), removed after."""
    import os
    import tempfile

    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="cdigen-example-", dir=shm) as tmp:
        build_example(name, tmp)
        yield tmp


def build_example(name: str, root: str) -> str:
    from cdigen.errors import BadArgument
    from cdigen.examples import fakesys

    if name not in EXAMPLES:
        raise BadArgument("example", f"{name!r} is unknown; known: {', '.join(EXAMPLES)}")
    return fakesys.build(EXAMPLES[name], root)
