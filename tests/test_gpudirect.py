"""GPUDirect and friends (cdigen/scan/gpudirect.py, docs/gpu.md): GDRCopy, GPUDirect Storage,
IMEX channels and MIG instances as devices of their own, and whether GPUDirect RDMA can work
between each GPU and NIC (`topo`) with `scan`'s warnings where it cannot."""

import json
import os
import struct

import pytest
from ruamel.yaml import YAML

from cdigen.examples import fakesys
from cdigen.scan import gpudirect, sysfs
from tests.helpers.driver import kernel_version, put
from tests.helpers.proc import run_cdigen, run_in_process

HOOK = ("--hook-path", "/usr/bin/cdigen")
SWITCH = "numa 0\npci 0000:40 numa=0 ports: switch{mods}(gpu ib gpu ib)"


def spec_of(*args, check=0) -> tuple[dict, str]:
    proc = run_in_process("scan", *HOOK, *args, check=check)
    return YAML(typ="safe", pure=True).load(proc.stdout), proc.stderr


def device(spec: dict, name: str) -> dict:
    return next(d["containerEdits"] for d in spec["devices"] if d["name"] == name)


def nodes(edits: dict) -> list[tuple[str, int, int]]:
    return [(n["path"], n["major"], n["minor"]) for n in edits["deviceNodes"]]


def rdma(root: str):
    topo = sysfs.discover(root)
    gd, warnings = gpudirect.discover_gpudirect(root, topo)
    return topo, gd, warnings


def test_devices_around_the_gpus():
    spec, stderr = spec_of("--example", "hgx-h100-driver")
    assert stderr == ""
    names = [d["name"] for d in spec["devices"]]
    assert names[names.index("all") + 1 :] == [
        "gdrcopy",
        "gds",
        "imex-channel0",
        "imex-channel1",
        "gpu7-gi1-ci0",
        "gpu7-gi2-ci0",
    ]
    assert nodes(device(spec, "gdrcopy")) == [("/dev/gdrdrv", fakesys.GDRDRV_MAJOR, 0)]
    gds = device(spec, "gds")
    assert nodes(gds) == [(f"/dev/nvidia-fs{n}", fakesys.NVIDIA_FS_MAJOR, n) for n in range(4)]
    assert [m["containerPath"] for m in gds["mounts"]] == ["/etc/cufile.json"]
    assert nodes(device(spec, "imex-channel1")) == [("/dev/nvidia-caps-imex-channels/channel1", fakesys.IMEX_MAJOR, 1)]
    mig = nodes(device(spec, "gpu7-gi1-ci0"))
    assert mig[0] == ("/dev/nvidia7", 195, 7)
    # mig-minors of the tree: gpu7/gi1/access and gpu7/gi1/ci0/access
    minors = dict(line.rsplit(" ", 1) for line in fakesys_mig_minors().splitlines())
    keys = ("gpu7/gi1/access", "gpu7/gi1/ci0/access")
    assert mig[1:] == [
        (f"/dev/nvidia-caps/nvidia-cap{minors[k]}", fakesys.NVIDIA_CAPS_MAJOR, int(minors[k])) for k in keys
    ]
    # Not in `all`: each is asked for by name (IMEX channels are an authorisation).
    all_paths = [n[0] for n in nodes(device(spec, "all"))]
    assert not any(p.startswith(("/dev/gdrdrv", "/dev/nvidia-fs", "/dev/nvidia-caps")) for p in all_paths)
    # Under each name strategy, the MIG instances follow their GPU's name.
    spec, _ = spec_of("--example", "hgx-h100-driver", "--device-name-strategy", "pci")
    gpu7 = next(
        d["name"]
        for d in spec["devices"]
        if "-gi" not in d["name"] and ("/dev/nvidia7", 195, 7) in nodes(d["containerEdits"])
    )
    assert [d["name"] for d in spec["devices"]][-2:] == [f"{gpu7}-gi1-ci0", f"{gpu7}-gi2-ci0"]


def fakesys_mig_minors() -> str:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        fakesys.build("numa 0\npci 0000:10 numa=0 ports: " + " ".join(["gpu"] * 8) + "\nmig 7:1:0", tmp)
        with open(os.path.join(tmp, "proc/driver/nvidia-caps/mig-minors")) as f:
            return f.read()


def test_nothing_around_the_gpus_is_no_device(tree):
    root = tree(SWITCH.format(mods=""))
    topo, gd, warnings = rdma(root)
    assert (gd.gdrdrv, gd.nvidia_fs, gd.imex, gd.mig, warnings) == (None, (), (), (), [])
    assert gd.peermem is True and gd.dmabuf is None  # no /proc/driver/nvidia/version: unknown


def test_imex_channels_and_mig_without_their_majors_are_warnings(tree):
    root = tree(SWITCH.format(mods="") + "\nimex 2\nmig 0:1:0")
    with open(os.path.join(root, "proc/devices")) as f:
        text = f.read()
    with open(os.path.join(root, "proc/devices"), "w") as f:
        f.write("\n".join(line for line in text.splitlines() if "nvidia-caps" not in line))
    _topo, gd, warnings = rdma(root)
    assert (gd.imex, gd.mig) == ((), ())
    assert [(w.path, w.reason) for w in warnings] == [
        ("/proc/devices", "no nvidia-caps-imex-channels major; 2 IMEX channels left out"),
        (
            "/proc/driver/nvidia/capabilities",
            "MIG instances without minors (no nvidia-caps major in /proc/devices); left out",
        ),
    ]


# ---------------------------------------------------------------------------- GPUDirect RDMA


def test_without_peermem_scan_warns_and_topo_says_no(tree):
    root = tree(SWITCH.format(mods="") + "\nnopeermem")
    spec, stderr = spec_of("--root", root, "--no-driver-files")
    assert stderr == (
        "cdigen: warning: /sys/module/nvidia_peermem: missing: GPUDirect RDMA will not work for the 2 GPU-NIC "
        "pairs of this spec (load it: modprobe nvidia_peermem; DMA-BUF unknown: no /proc/driver/nvidia/version)\n"
    )
    report = json.loads(run_in_process("topo", "--root", root, "--json", check=0).stdout)["gpudirectRdma"]
    assert report == {
        "peermem": False,
        "dmabuf": None,
        "matrix": {"gpu0": {"NIC0": "no", "NIC1": "no"}, "gpu1": {"NIC0": "no", "NIC1": "no"}},
        "notes": {},
    }
    table = run_cdigen("topo", "--root", root, check=0).stdout.splitlines()
    assert "  gpu0 - NIC0: no" in table


@pytest.mark.parametrize(
    "open_module, release, dmabuf", [(True, "6.1.0-28-amd64", True), (False, "6.1.0", False), (True, "5.10.0", False)]
)
def test_dmabuf_is_the_open_module_on_linux_5_12(tree, open_module, release, dmabuf):
    root = tree(SWITCH.format(mods="") + "\nnopeermem")
    kernel_version(root, open_module=open_module)
    put(root, "/proc/sys/kernel/osrelease", release.encode())
    _topo, gd, _ = rdma(root)
    assert gd.dmabuf is dmabuf
    assert {v[0] for v in gd.rdma.values()} == ({"yes"} if dmabuf else {"no"})


def test_acs_redirect_sends_the_pair_through_the_cpu(tree):
    root = tree(SWITCH.format(mods=":acs"))
    spec, stderr = spec_of("--root", root, "--no-driver-files")
    topo, gd, _ = rdma(root)
    ports = sorted({p for v in gd.rdma.values() for p in v[2]})
    assert ports == ["0000:42:00.0", "0000:42:01.0", "0000:42:02.0", "0000:42:03.0"]
    assert stderr.splitlines() == [
        "cdigen: warning: /sys/bus/pci/devices/0000:42:00.0/config: ACS P2P Request Redirect is on: GPUDirect RDMA "
        "between GPU 0000:43:00.0 and mlx5_0 goes through the root complex (disable ACS redirection on this switch "
        "port, or enable ATS on the NIC)",
        "cdigen: warning: /sys/bus/pci/devices/0000:42:01.0/config: ACS P2P Request Redirect is on: GPUDirect RDMA "
        "between GPU 0000:43:00.0 and mlx5_0 goes through the root complex (disable ACS redirection on this switch "
        "port, or enable ATS on the NIC)",
        "cdigen: warning: /sys/bus/pci/devices/0000:42:02.0/config: ACS P2P Request Redirect is on: GPUDirect RDMA "
        "between GPU 0000:45:00.0 and mlx5_1 goes through the root complex (disable ACS redirection on this switch "
        "port, or enable ATS on the NIC)",
        "cdigen: warning: /sys/bus/pci/devices/0000:42:03.0/config: ACS P2P Request Redirect is on: GPUDirect RDMA "
        "between GPU 0000:45:00.0 and mlx5_1 goes through the root complex (disable ACS redirection on this switch "
        "port, or enable ATS on the NIC)",
    ]
    report = json.loads(run_in_process("topo", "--root", root, "--json", check=0).stdout)["gpudirectRdma"]
    assert report["matrix"]["gpu0"] == {"NIC0": "cpu", "NIC1": "cpu"}
    assert report["notes"]["gpu0-NIC0"] == (
        "ACS P2P Request Redirect on 0000:42:00.0, 0000:42:01.0: through the root complex"
    )


def test_ats_lets_translated_requests_pass(tree):
    """ACS redirect with Direct Translated P2P on the ports and ATS enabled on the NIC: the
    NIC's translated requests go straight to the GPU."""
    root = tree(SWITCH.format(mods=":acs"))
    devices = os.path.join(root, "sys/bus/pci/devices")
    for port in ("0000:42:00.0", "0000:42:01.0"):
        path = os.path.join(devices, port, "config")
        with open(path, "r+b") as f:
            f.seek(0x106)
            (control,) = struct.unpack("<H", f.read(2))
            f.seek(0x106)
            f.write(struct.pack("<H", control | gpudirect.ACS_DIRECT_TRANSLATED))
    nic = bytearray(4096)
    nic[0x100:0x108] = struct.pack("<IHH", gpudirect.ATS_CAP | 1 << 16, 0, gpudirect.ATS_ENABLE)
    with open(os.path.join(devices, "0000:44:00.0", "config"), "wb") as f:
        f.write(bytes(nic))
    _topo, gd, _ = rdma(root)
    verdict, why, ports = gd.rdma[("0000:43:00.0", "0000:44:00.0")]
    assert (verdict, ports) == ("yes", ())
    assert why == "ACS redirects on 0000:42:00.0, 0000:42:01.0; ATS lets translated requests pass"


def test_acs_unreadable_without_root_is_a_note(tree):
    """Only root reads past the first 256 bytes of config: the verdict stays yes, with a note."""
    root = tree(SWITCH.format(mods=":acs"))
    for port in ("0000:42:00.0", "0000:42:01.0"):
        path = os.path.join(root, "sys/bus/pci/devices", port, "config")
        with open(path, "r+b") as f:
            f.truncate(256)
    _topo, gd, _ = rdma(root)
    assert gd.rdma[("0000:43:00.0", "0000:44:00.0")] == (
        "yes",
        "ACS of 0000:42:00.0, 0000:42:01.0 unknown (its extended config space needs root)",
        (),
    )


def test_relations_decide_the_rest():
    report = json.loads(run_in_process("topo", "--example", "hgx-h100", "--json", check=0).stdout)
    gd, matrix = report["gpudirectRdma"], report["matrix"]
    for gpu, row in gd["matrix"].items():
        for nic, verdict in row.items():
            relation = matrix[gpu][nic]
            assert verdict == {"PIX": "yes", "PXB": "yes", "PHB": "cpu", "NODE": "no", "SYS": "no"}[relation]
