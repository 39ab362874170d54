"""scan and topo on flat cloud VMs with the NCCL topology files the cloud publishes
(tests/data/nccl-topo/, Azure's, unchanged), against fake trees with the same addresses: each
GPU and NIC in a PCI domain of its own, on a host bridge of its own, as inside the VM."""

import contextlib
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from cdigen.scan import nccltopo, sysfs
from cdigen.scan.affinity import Affinity, file_class, pair_class
from cdigen.scan.build import assignment
from cdigen.scan.model import ScanWarning
from tests.helpers.nccltopo import DATA, flat_tree
from tests.helpers.proc import run_cdigen, run_in_process

HOOK = ("--hook-path", "/usr/bin/cdigen")
NDV4_PAIRS = {f"000{g}:00:00.0": f"010{n}:00:00.0" for g, n in zip("1234bcde", "12345678", strict=True)}
NDV5_PAIRS = {f"000{g}:00:00.0": f"010{n}:00:00.0" for g, n in zip("12389abc", "12345678", strict=True)}


def topo_json(*args) -> dict:
    return json.loads(run_in_process("topo", *args, "--json", check=0).stdout)


def pairs(report: dict) -> dict[str, list[str]]:
    address = {n["name"]: n["pciAddress"] for n in report["nics"]}
    return {g["pciAddress"]: [address[n] for n in g["nics"]] for g in report["gpus"]}


def spec_pairs(stdout: str, root: str) -> dict[str, list[str]]:
    """GPU device -> the PCI addresses of its netdevs, from a spec written for CDI 1.1.0."""
    spec = YAML(typ="safe", pure=True).load(stdout)
    owner = {
        n: os.path.basename(os.path.realpath(f"{root}/sys/class/net/{n}/device"))
        for n in os.listdir(f"{root}/sys/class/net")
        if n != "lo"
    }
    return {
        d["name"]: [owner[n["hostInterfaceName"]] for n in d["containerEdits"].get("netDevices", [])]
        for d in spec["devices"]
        if d["name"] != "all"
    }


@pytest.mark.parametrize("numa", [True, False], ids=["numa-per-cpu", "numa-unknown"])
@pytest.mark.parametrize(("name", "expected"), [("ndv4", NDV4_PAIRS), ("ndv5", NDV5_PAIRS)])
def test_each_gpu_gets_a_nic_of_its_own_virtual_switch(tree, name, expected, numa):
    xml = DATA / f"azure-{name}-topo.xml"
    root = tree(flat_tree(xml, numa))
    without = topo_json("--root", root)
    assert all(g["nics"] == [] for g in without["gpus"])  # sysfs alone: NODE or SYS, nothing within PXB
    report = topo_json("--root", root, "--nccl-topo", xml)
    assert pairs(report) == {g: [n] for g, n in expected.items()}
    assert report["ncclTopoFile"]["path"] == str(xml)
    # The spec gives each GPU device the NIC topo marks (minors follow PCI order here).
    proc = run_in_process("scan", *HOOK, "--cdi-version", "1.1.0", "--root", root, "--nccl-topo", xml, check=0)
    by_minor = {f"gpu{k}": [n] for k, n in enumerate(expected.values())}
    assert spec_pairs(proc.stdout, root) == by_minor
    assert "nccl" not in proc.stderr and "--nic-affinity" not in proc.stderr


def test_ndv4_file_classes_pix_in_a_switch_sys_across_cpus(tree):
    xml = DATA / "azure-ndv4-topo.xml"
    report = topo_json("--root", tree(flat_tree(xml)), "--nccl-topo", xml)
    names = {g["pciAddress"]: g["name"] for g in report["gpus"]} | {n["pciAddress"]: n["name"] for n in report["nics"]}
    m = report["matrix"]
    gpu, mate, nic, far = (names[b] for b in ("0003:00:00.0", "0004:00:00.0", "0104:00:00.0", "0101:00:00.0"))
    assert (m[gpu][mate], m[gpu][nic], m[gpu][far]) == ("PIX", "PIX", "SYS")
    # The mark goes where the file changed sysfs's class (NODE -> PIX), not where both say SYS.
    decided = report["ncclTopoFile"]["decided"]
    assert nic in decided[gpu] and far not in decided[gpu]
    # GPUDirect RDMA: a pair in one switch is peer-to-peer; sysfs alone says they are across host bridges.
    assert report["gpudirectRdma"]["matrix"][gpu][nic] == "yes"
    assert topo_json("--root", tree(flat_tree(xml)))["gpudirectRdma"]["matrix"][gpu][nic] == "no"


def test_one_nic_for_eight_gpus_goes_to_one_gpu_at_most(tree):
    # ND v2: four GPUs and the NIC below CPU 0 without a switch (PHB), four below CPU 1 (SYS).
    xml = DATA / "azure-ndv2-topo.xml"
    root = tree(flat_tree(xml))
    proc = run_in_process("scan", *HOOK, "--cdi-version", "1.1.0", "--root", root, "--nccl-topo", xml, check=0)
    assert all(not nics for nics in spec_pairs(proc.stdout, root).values())
    assert proc.stderr.endswith(
        "cdigen: warning: --nic-affinity pxb: no RDMA NIC is within PXB of any GPU (1 left out); the nearest are "
        f"PHB by the NCCL topology file {xml}, e.g. GPU 0001:00:00.0 and mlx5_0 (0101:00:00.0): widen it to phb "
        "to pair them (`cdigen topo` shows every pair)\n"
    )
    for affinity in ("phb", "sys"):
        proc = run_in_process(
            "scan", *HOOK, "--cdi-version", "1.1.0", "--root", root, "--nccl-topo", xml, "--nic-affinity", affinity
        )
        got = spec_pairs(proc.stdout, root)
        assert got == {"gpu0": ["0101:00:00.0"], **{f"gpu{k}": [] for k in range(1, 8)}}
        assert "warning: --nic-affinity" not in proc.stderr
    report = topo_json("--root", root, "--nccl-topo", xml, "--nic-affinity", "phb")
    assert {report["matrix"][g["name"]]["NIC0"] for g in report["gpus"]} == {"PHB", "SYS"}


def test_a_file_with_gpus_and_a_nic_without_pci_address_parses(tree):
    # NC A100 v4: <gpu>/<nvlink> children, and a <nic><net name="eth0"/> of no PCI address (the
    # VM's Ethernet, no RDMA): nothing to pair, nothing to warn about.
    xml = DATA / "azure-ncv4-topo.xml"
    root = tree(flat_tree(xml, extra="pci 0005:00 numa=0 bus: eth"))
    topo = sysfs.discover(root, str(xml))
    assert topo.warnings == [] and topo.nccl_topo_path == str(xml)
    places = topo.nccl_places
    assert sorted(places) == [f"000{k}:00:00.0" for k in range(1, 5)]
    assert len({cpu for cpu, _ in places.values()}) == 4 and {up for _, up in places.values()} == {()}
    assert all(not nics for nics in assignment(topo, Affinity.SYS).values())
    proc = run_in_process("scan", *HOOK, "--root", root, "--nccl-topo", xml, check=0)
    assert "nccl" not in proc.stderr


def test_the_default_is_the_file_that_etc_nccl_conf_names_under_the_root(tree):
    root = tree(flat_tree(DATA / "azure-ndv5-topo.xml"))
    os.makedirs(f"{root}/etc")
    os.makedirs(f"{root}/opt/microsoft/ndv5")
    Path(f"{root}/opt/microsoft/ndv5-topo.xml").write_bytes((DATA / "azure-ndv5-topo.xml").read_bytes())
    os.symlink("/opt/microsoft/ndv5-topo.xml", f"{root}/opt/microsoft/ndv5/topo.xml")  # taken inside the root
    Path(f"{root}/etc/nccl.conf").write_text(
        "#NCCL_TOPO_FILE=/nowhere.xml\nNCCL_IB_PCI_RELAXED_ORDERING=1\nNCCL_TOPO_FILE=/opt/microsoft/ndv5/topo.xml\n"
        "NCCL_TOPO_FILE=/later/lines/lose.xml\nNCCL_IGNORE_CPU_AFFINITY=1\n"
    )
    topo = sysfs.discover(root)
    assert topo.warnings == [] and topo.nccl_topo_path == f"{root}/opt/microsoft/ndv5-topo.xml"
    assert sysfs.discover(root, host_prefix="/").nccl_topo_path == "/opt/microsoft/ndv5-topo.xml"
    report = topo_json("--root", root)
    assert pairs(report) == {g: [n] for g, n in NDV5_PAIRS.items()}
    # --nccl-topo wins over the default.
    other = topo_json("--root", root, "--nccl-topo", DATA / "azure-ndv4-topo.xml")
    assert all(g["nics"] == [] for g in other["gpus"])  # another machine's file: ignored


def test_nccl_conf_is_read_as_nccl_reads_it():
    read = nccltopo.conf_topo_file
    assert read(b"NCCL_DEBUG=WARN\nNCCL_TOPO_FILE=/a.xml\n") == "/a.xml"
    assert read(b"NCCL_TOPO_FILE=/a.xml\nNCCL_TOPO_FILE=/b.xml") == "/a.xml"  # setenv without overwrite
    assert read(b"# NCCL_TOPO_FILE=/a.xml\n#NCCL_TOPO_FILE=/b.xml\n") is None  # keys of their own
    assert read(b" NCCL_TOPO_FILE=/a.xml\nexport NCCL_TOPO_FILE=/b.xml\nNCCL_TOPO_FILE =/c.xml") is None
    assert read(b"NCCL_TOPO_FILE=/a=b.xml") == "/a=b.xml"  # split at the first '='
    assert read(b"NCCL_TOPO_FILE=\nNCCL_TOPO_FILE=/late.xml") is None  # set, empty
    assert read(b"") is None


NESTED = b"""<system version="1">
  <cpu numaid="0">
    <pci busid="0000:10:00.0" class="0x060400">
      <pci busid="0000:11:00.0" class="0x060400">
        <pci busid="0000:1a:00.0" class="0x030200"/>
        <pci busid="0000:12:01.0" class="0x020700"/>
      </pci>
      <pci busid="0000:13:00.0" class="0x020000"/>
    </pci>
    <pci busid="0000:20:00.0" class="0x020700"/>
  </cpu>
  <cpu numaid="1"><pci busid="0000:90:00.0" class="0x020700"/></cpu>
</system>"""


def test_file_classes_are_nccls_path_types():
    places = {bdf: place[1:] for bdf, place in nccltopo.parse(NESTED).items()}
    gpu = places["0000:1a:00.0"]
    assert [file_class(gpu, places[n]) for n in ("0000:12:01.0", "0000:13:00.0", "0000:20:00.0", "0000:90:00.0")] == [
        Affinity.PIX,  # the same switch
        Affinity.PXB,  # a switch further up
        Affinity.PHB,  # the same CPU only
        Affinity.SYS,  # another CPU
    ]
    assert nccltopo.parse(NESTED.replace(b"1a:00.0", b"1A:00.0"))["0000:1a:00.0"] == (0x03, *gpu)  # any case


def _bad_inputs(tree):
    """(what, file bytes, the reason in the warning) for the files scan must ignore."""
    ndv4 = (DATA / "azure-ndv4-topo.xml").read_bytes()
    ndv5 = (DATA / "azure-ndv5-topo.xml").read_bytes()
    line = b'      <pci busid="0101:00:00.0" class="0x020700" link_speed="16 GT/s" link_width="16"/>\n'
    twice = ndv4.replace(b"  </cpu>\n", line + b"  </cpu>\n", 1)
    laughs = b'<!DOCTYPE system [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>\n' + ndv4.replace(
        b'version="1"', b'version="&b;"'
    )
    return [
        ("malformed", ndv4[:-30], "not well-formed XML: no element found, line 32"),
        ("another machine", ndv5, "names 0008:00:00.0 (a GPU) and 2 more, which this host does not have"),
        ("a NIC twice", twice, ": line 14: names 0101:00:00.0 twice; ignored"),
        ("entities", laughs, ": line 1: a DOCTYPE declaration (NCCL's files have none)"),
        (
            "not NCCL's",
            b"<config><pci busid='0001:00:00.0'/></config>",
            "not an NCCL topology file: the root element is <config>",
        ),
        ("bad busid", b"<system><cpu><pci busid='1:0:0.0' class='0x0302'/></cpu></system>", "'1:0:0.0'>: not a PCI"),
        ("no cpu", b"<system><pci busid='0001:00:00.0' class='0x0302'/></system>", "is not inside a <cpu>"),
        ("too deep", b"<system><cpu>" + b"<pci busid='ffff:ff:01.0' class='0x060400'>" * 99, "deeper than 64"),
    ]


def test_a_file_that_cannot_be_used_is_one_warning_and_the_spec_comes_from_sysfs(tree, tmp_path):
    root = tree(flat_tree(DATA / "azure-ndv4-topo.xml"))
    alone = run_in_process("scan", *HOOK, "--root", root, check=0)
    for what, data, reason in _bad_inputs(tree):
        path = tmp_path / "topo.xml"
        path.write_bytes(data)
        proc = run_in_process("scan", *HOOK, "--root", root, "--nccl-topo", path, check=0)
        assert proc.stdout == alone.stdout, what
        warnings = [w for w in proc.stderr.splitlines() if "nccl" in w]
        assert len(warnings) == 1 and warnings[0].startswith(f"cdigen: warning: --nccl-topo {path}: "), what
        assert reason in warnings[0] and warnings[0].endswith("; ignored, classes from sysfs alone"), what
        assert "Traceback" not in proc.stderr
        report = topo_json("--root", root, "--nccl-topo", path)
        assert "ncclTopoFile" not in report and all(g["nics"] == [] for g in report["gpus"])


def test_a_file_from_nccl_conf_that_cannot_be_used_is_a_warning_naming_it(tree):
    root = tree(flat_tree(DATA / "azure-ndv4-topo.xml"))
    os.makedirs(f"{root}/etc")
    Path(f"{root}/etc/nccl.conf").write_text("NCCL_TOPO_FILE=/opt/microsoft/ndv4/topo.xml\n")
    alone = sysfs.discover(root)
    assert alone.warnings == [
        ScanWarning(
            "/opt/microsoft/ndv4/topo.xml",
            "missing (named by NCCL_TOPO_FILE in /etc/nccl.conf); ignored, classes from sysfs alone",
        )
    ]
    assert alone.nccl_topo_path is None and alone.nccl_places == {}
    os.makedirs(f"{root}/opt/microsoft/ndv4")
    Path(f"{root}/opt/microsoft/ndv4/topo.xml").write_bytes((DATA / "azure-ndv5-topo.xml").read_bytes())
    proc = run_cdigen("scan", *HOOK, "--root", root, check=0)
    assert proc.stderr.count(f"cdigen: warning: {root}/opt/microsoft/ndv4/topo.xml: names 0008:00:00.0") == 1


def test_a_missing_file_named_on_the_command_line_is_a_usage_error(tree, tmp_path):
    root = tree(flat_tree(DATA / "azure-ndv5-topo.xml"))
    for command in ("scan", "topo"):
        proc = run_cdigen(command, "--root", root, "--nccl-topo", tmp_path / "nope.xml", check=2)
        assert proc.stderr == f"cdigen: error: --nccl-topo {tmp_path}/nope.xml: No such file or directory\n"
        assert proc.stdout == ""
    proc = run_cdigen("scan", "--root", root, "--nccl-topo", tmp_path, check=2)
    assert proc.stderr == f"cdigen: error: --nccl-topo {tmp_path}: not a regular file\n"


def test_topo_marks_the_classes_the_file_decided_and_names_it(tree):
    xml = DATA / "azure-ndv5-topo.xml"
    root = tree(flat_tree(xml))
    lines = run_cdigen("topo", "--root", root, "--nccl-topo", xml, check=0).stdout.splitlines()
    gpu0 = next(line for line in lines if line.startswith(" gpu0")).split()
    assert gpu0[:4] == ["gpu0", "(GPU0)", "X", "PHB~"]  # same CPU, another switch: sysfs says NODE
    assert gpu0[10:12] == ["PIX~*", "PHB~"] and gpu0[-2:] == ["SYS", "0"]
    assert f"  ~    = class from the NCCL topology file {xml} (sysfs says only NODE or SYS)" in lines
    plain = run_cdigen("topo", "--root", root, check=0).stdout
    assert "~" not in plain and "NCCL" not in plain
    assert "ncclTopoFile" not in topo_json("--root", root)


def test_pair_class_keeps_sysfs_where_it_knows_better(tree, tmp_path):
    # A file that puts a GPU and a NIC on different CPUs cannot undo a switch that sysfs sees.
    root = tree("numa 0\npci 0000:10 numa=0 ports: switch(gpu ib) ib")
    path = tmp_path / "topo.xml"
    path.write_text(
        '<system version="1"><cpu numaid="0"><pci busid="0000:13:00.0" class="0x030200"/>'
        '<pci busid="0000:15:00.0" class="0x020700"/></cpu>'
        '<cpu numaid="1"><pci busid="0000:14:00.0" class="0x020700"/></cpu></system>'
    )
    topo = sysfs.discover(root, str(path))
    assert topo.nccl_topo_path == str(path)
    assert pair_class(topo, "0000:13:00.0", "0000:14:00.0") == (Affinity.PIX, False)  # sysfs: one switch
    assert pair_class(topo, "0000:13:00.0", "0000:15:00.0") == (Affinity.PHB, False)  # sysfs and file agree


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(alphabet="<>/=\"' systemcpupcibusid0123:.x", max_size=200).map(str.encode))
def test_any_bytes_parse_or_are_not_a_topology_file(data):
    with contextlib.suppress(nccltopo.NotATopologyFile):
        nccltopo.parse(data)


def test_vm_mode_pairs_the_vfio_functions_by_the_file(tree):
    """`--mode vm` (GPUs and NICs bound to vfio-pci for a VM) takes the file's classes too: on
    ND H100 v5's flat tree each GPU's device carries the VFIO group of its virtual switch's NIC
    (groups are numbered in PCI order: the eight GPUs 0-7, then the eight NICs 8-15)."""
    xml = DATA / "azure-ndv5-topo.xml"
    text = flat_tree(xml).replace("bus: gpu", "bus: gpu:driver=vfio-pci").replace("bus: ib", "bus: ib:vfio")
    root = tree(text)
    group = {bdf: n for n, bdf in enumerate(sorted(NDV5_PAIRS) + sorted(NDV5_PAIRS.values()))}

    def groups(*extra) -> dict[str, list[str]]:
        proc = run_in_process("scan", "--mode", "vm", "--device-name-strategy", "pci", "--root", root, *extra, check=0)
        spec = YAML(typ="safe", pure=True).load(proc.stdout)
        nodes = {d["name"]: d["containerEdits"]["deviceNodes"] for d in spec["devices"]}
        return {gpu: [n["path"] for n in nodes[gpu] if n["path"] != "/dev/vfio/vfio"] for gpu in NDV5_PAIRS}

    assert groups() == {gpu: [f"/dev/vfio/{group[gpu]}"] for gpu in NDV5_PAIRS}  # sysfs: no NIC within PXB
    assert groups("--nccl-topo", xml) == {
        gpu: [f"/dev/vfio/{group[gpu]}", f"/dev/vfio/{group[nic]}"] for gpu, nic in NDV5_PAIRS.items()
    }
