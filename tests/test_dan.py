"""`cdigen dan`: Kata DAN files from a bundle's annotations and a fake host tree, checked field
by field against both runtimes' structs (tests/helpers/kata.py restates how each reads the
file), and every bad input: one line, its exit code, no file."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cdigen.errors import EXIT_INVALID, EXIT_OK, EXIT_USAGE
from cdigen.pod import dan
from cdigen.pod.annotations import NETWORK_STATUS, POD_NETWORKS
from cdigen.pod.kataconfig import HYPERVISORS
from tests.helpers.hostnet import (
    bundle,
    cni_cache,
    cni_result,
    pci_devinfo,
    pci_function,
    status_entry,
    virtual_netdev,
)
from tests.helpers.kata import GO_VFIO_HOTPLUG, RS_ADD_DEVICE, KataReject, go_attach, go_load, rs_attach, rs_load
from tests.helpers.proc import run_cdigen

SANDBOX = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
CRI = {"io.kubernetes.cri.sandbox-id": SANDBOX, "io.kubernetes.cri.container-type": "sandbox"}
VF1, VF2 = "0000:85:02.5", "0000:85:02.6"

# Kata's own test data, src/runtime/virtcontainers/testdata/dan-config.json (ecosystem.md §1.4).
KATA_GO_TESTDATA = json.loads(
    '{"netns":"netns","devices":[{"name":"eth0","guest_mac":"0a:58:0a:0a:00:05",'
    '"device":{"type":"vfio","pci_device_id":"0000:85:02.5"},'
    '"network_info":{"interface":{"ip_addresses":["10.10.0.5/24"],"mtu":1500},'
    '"routes":[{"gateway":"10.0.0.1"},{"dest":"10.10.0.0/16","gateway":"10.0.0.1"}],'
    '"Neighbors":[{"ip_address":"10.10.10.10","hardware_addr":"0a:58:0a:0a:0a:0a"}]}}]}'
)


def vf_networks() -> dict:
    """Two SR-IOV networks on VFs bound to vfio-pci, as Multus and OVN-Kubernetes annotate them:
    network-status (bare IPs, MTU, device-info) and pod-networks (CIDR, routes)."""
    status = [
        status_entry("default/sriov-a", "net1", ["10.56.217.171"], "0a:58:0a:38:d9:ab", 9000, devinfo=pci_devinfo(VF1)),
        status_entry("default/sriov-b", "net2", ["fd00:b::5"], "0a:58:0a:38:d9:ac", 9000, devinfo=pci_devinfo(VF2)),
    ]
    ovn = {
        "default/sriov-a": {
            "ip_addresses": ["10.56.217.171/24"],
            "mac_address": "0a:58:0a:38:d9:ab",
            "gateway_ips": ["10.56.217.1"],
            "routes": [{"dest": "10.96.0.0/16", "nextHop": "10.56.217.1"}],
        },
        "default/sriov-b": {"ip_addresses": ["fd00:b::5/64"], "mac_address": "0a:58:0a:38:d9:ac"},
    }
    return {NETWORK_STATUS: status, POD_NETWORKS: ovn}


@pytest.fixture
def host(tmp_path):
    root = tmp_path / "root"
    pci_function(root, VF1, "vfio-pci")
    pci_function(root, VF2, "vfio-pci")
    return root


def run_dan(bundle_dir, root, dan_dir, *args, check=None, input=None):
    return run_cdigen("dan", bundle_dir, "--root", root, "--dan-dir", dan_dir, *args, check=check, input=input)


def read(path) -> dict:
    return json.loads(path.read_text())


def assert_refused(proc, code, *fragments, dan_dir=None):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cdigen: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    if dan_dir is not None:
        assert not dan_dir.exists() or not any(dan_dir.iterdir())


# ---------------------------------------------------------------------------- the Go runtime: vfio


def test_vfio_networks_field_by_field(tmp_path, host):
    dan_dir = tmp_path / "dans"
    proc = run_dan(bundle(tmp_path, CRI | vf_networks()), host, dan_dir, check=EXIT_OK)
    path = dan_dir / f"{SANDBOX}.json"
    assert proc.stdout.splitlines() == [
        f"net1: vfio {VF1} (Go runtime (and runtime-rs with kata#13802))",
        f"net2: vfio {VF2} (Go runtime (and runtime-rs with kata#13802))",
        f"{path}: written",
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read(path) == {
        "devices": [
            {
                "name": "net1",
                "guest_mac": "0a:58:0a:38:d9:ab",
                "device": {"type": "vfio", "pci_device_id": VF1},
                "network_info": {
                    "interface": {"ip_addresses": ["10.56.217.171/24"], "mtu": 9000},
                    "routes": [
                        {"dest": "0.0.0.0/0", "gateway": "10.56.217.1"},
                        {"dest": "10.96.0.0/16", "gateway": "10.56.217.1"},
                    ],
                    "neighbors": [],
                },
            },
            {
                "name": "net2",
                "guest_mac": "0a:58:0a:38:d9:ac",
                "device": {"type": "vfio", "pci_device_id": VF2},
                "network_info": {
                    "interface": {"ip_addresses": ["fd00:b::5/64"], "mtu": 9000},
                    "routes": [],
                    "neighbors": [],
                },
            },
        ]
    }
    # How the Go runtime reads it (dan.go, convertDanDeviceToNetworkInfo): every field lands.
    loaded = go_load(read(path))
    assert [(d["name"], d["mac"], d["pci"], d["mtu"], d["addresses"]) for d in loaded] == [
        ("net1", "0a:58:0a:38:d9:ab", VF1, 9000, ["10.56.217.171/24"]),
        ("net2", "0a:58:0a:38:d9:ac", VF2, 9000, ["fd00:b::5/64"]),
    ]
    assert loaded[0]["routes"] == [
        {"dest": "0.0.0.0/0", "gateway": "10.56.217.1", "family": 4},
        {"dest": "10.96.0.0/16", "gateway": "10.56.217.1", "family": 4},
    ]
    # runtime-rs at kata 7c6ba40c has no vfio variant; with PR #13802 it reads the same values.
    with pytest.raises(KataReject, match="unknown variant `vfio`"):
        rs_load(read(path), host)
    rs = rs_load(read(path), host, with_vfio=True)
    assert [(d["name"], d["mac"], d["target"], d["mtu"], d["addresses"]) for d in rs] == [
        (d["name"], d["mac"], d["pci"], d["mtu"], d["addresses"]) for d in loaded
    ]
    assert [(r["dest"], r["gateway"], r["family"]) for r in rs[0]["routes"]] == [
        (r["dest"], r["gateway"], r["family"]) for r in loaded[0]["routes"]
    ]


def test_same_device_as_kata_go_testdata_but_parsed_alike_by_both(tmp_path):
    """The facts of Kata's own test file, from a CNI result: cdigen writes the same device, with
    the differences that make runtime-rs read it as the Go runtime does (an explicit default
    route destination, lower-case `neighbors` and no bare-IP neighbour)."""
    root = tmp_path / "root"
    pci_function(root, "0000:85:02.5", "vfio-pci")
    result = cni_result(
        "eth0",
        ["10.10.0.5/24"],
        mac="0a:58:0a:0a:00:05",
        mtu=1500,
        pci="0000:85:02.5",
        routes=[{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}, {"dst": "10.10.0.0/16", "gw": "10.0.0.1"}],
    )
    cni_cache(root, "sriov-vfio", SANDBOX, "eth0", result)
    ann = CRI | {POD_NETWORKS: {}}  # an annotation, so that the pod is one; the facts come from the cache
    run_dan(bundle(tmp_path, ann), root, tmp_path / "dans", check=EXIT_OK)
    (ours,) = read(tmp_path / "dans" / f"{SANDBOX}.json")["devices"]
    (theirs,) = KATA_GO_TESTDATA["devices"]
    assert {k: ours[k] for k in ("name", "guest_mac", "device")} == {
        k: theirs[k] for k in ("name", "guest_mac", "device")
    }
    assert ours["network_info"]["interface"] == theirs["network_info"]["interface"]
    go_ours, go_theirs = go_load({"devices": [ours]})[0], go_load(KATA_GO_TESTDATA)[0]
    for key in ("name", "mac", "pci", "mtu", "addresses"):
        assert go_ours[key] == go_theirs[key]
    assert [(r["gateway"], r["family"]) for r in go_ours["routes"]] == [
        (r["gateway"], r["family"]) for r in go_theirs["routes"]
    ]
    # The Go test file's neighbour (bare IP, capitalised key) is one runtime-rs never sees.
    assert go_theirs["neighbors"] == [{"ip": "10.10.10.10", "hardware_addr": "0a:58:0a:0a:0a:0a"}]
    assert rs_load(KATA_GO_TESTDATA, root, with_vfio=True)[0]["neighbors"] == []


# ---------------------------------------------------------------------------- runtime-rs: host-tap, vhost-user


def test_tap_and_vhost_user_for_runtime_rs(tmp_path):
    root = tmp_path / "root"
    virtual_netdev(root, "tap0kata", "fe:54:00:00:00:01", mtu=1450, tap=True)
    vhost = {"type": "vhost-user", "version": "1.1.0", "vhost-user": {"mode": "server", "path": "/run/vhu/net2.sock"}}
    status = [
        status_entry("default/tap", "net1", ["192.0.2.10/24"], "0a:58:c0:00:02:0a"),
        status_entry("default/dpdk", "net2", ["198.51.100.7/24"], devinfo=vhost),
    ]
    # the tap is named by config.json's linux.netDevices (host tap -> name inside)
    b = bundle(tmp_path, CRI | {NETWORK_STATUS: status}, net_devices={"tap0kata": {"name": "net1"}})
    proc = run_dan(b, root, tmp_path / "dans", check=EXIT_OK)
    assert "net1: host-tap tap0kata (runtime-rs)" in proc.stdout
    doc = read(tmp_path / "dans" / f"{SANDBOX}.json")
    tap, vhu = doc["devices"]
    assert tap == {
        "name": "net1",
        "guest_mac": "0a:58:c0:00:02:0a",
        "device": {"type": "host-tap", "tap_name": "tap0kata"},
        "network_info": {
            "interface": {"ip_addresses": ["192.0.2.10/24"], "mtu": 1450},  # no MTU in the facts: the tap's
            "routes": [],
            "neighbors": [],
        },
    }
    assert vhu["device"] == {"type": "vhost-user", "path": "/run/vhu/net2.sock"}
    assert vhu["network_info"]["interface"] == {"ip_addresses": ["198.51.100.7/24"], "mtu": 1500}
    # no MAC anywhere: a locally administered unicast one, the same on every run
    mac = vhu["guest_mac"]
    assert int(mac[:2], 16) & 0b11 == 0b10
    assert dan.guest_mac.__doc__ and mac == read(tmp_path / "dans" / f"{SANDBOX}.json")["devices"][1]["guest_mac"]
    loaded = rs_load(doc, root)
    assert [(d["name"], d["type"], d["target"], d["mac"], d["mtu"], d["addresses"]) for d in loaded] == [
        ("net1", "host-tap", "tap0kata", "0a:58:c0:00:02:0a", 1450, ["192.0.2.10/24"]),
        ("net2", "vhost-user", "/run/vhu/net2.sock", mac, 1500, ["198.51.100.7/24"]),
    ]
    assert rs_attach(loaded, "dragonball") == loaded
    with pytest.raises(KataReject, match="unknown DAN device type: 'host-tap'"):
        go_load(doc)
    # a second run: the same bytes, nothing rewritten
    before = (tmp_path / "dans" / f"{SANDBOX}.json").stat().st_mtime_ns
    assert run_dan(b, root, tmp_path / "dans", check=EXIT_OK).stdout.endswith(": unchanged\n")
    assert (tmp_path / "dans" / f"{SANDBOX}.json").stat().st_mtime_ns == before


VHU_SOCKET = "/run/vhu/net2.sock"


def vhost_user(mode: str = "server") -> dict:
    return {"type": "vhost-user", "version": "1.1.0", "vhost-user": {"mode": mode, "path": VHU_SOCKET}}


def vhost_user_bundle(tmp_path, mode: str = "server", name: str = "bundle"):
    status = [status_entry("default/dpdk", "net2", ["198.51.100.7/24"], devinfo=vhost_user(mode))]
    return bundle(tmp_path, CRI | {NETWORK_STATUS: status}, name=name)


def test_vhost_user_networks_runtime_rs_cannot_take_are_refused(tmp_path):
    """runtime-rs's VMM creates and listens on the socket (VhostUserEndpoint::new refuses one that
    exists): device-info's client mode (the host creates it) and an existing socket cannot work."""
    root, dan_dir = tmp_path / "root", tmp_path / "dans"
    root.mkdir()
    proc = run_dan(vhost_user_bundle(tmp_path, "client"), root, dan_dir)
    assert_refused(
        proc, EXIT_INVALID, f"network default/dpdk: vhost-user socket {VHU_SOCKET} is in client mode", dan_dir=dan_dir
    )
    socket = root / VHU_SOCKET.lstrip("/")
    socket.parent.mkdir(parents=True)
    socket.touch()
    b = vhost_user_bundle(tmp_path, name="server")
    proc = run_dan(b, root, dan_dir)
    assert_refused(
        proc, EXIT_INVALID, f"network default/dpdk: vhost-user socket {VHU_SOCKET} already exists", dan_dir=dan_dir
    )
    # Without the socket the file is written, and runtime-rs loads it; it would not with the socket.
    socket.unlink()
    run_dan(b, root, dan_dir, check=EXIT_OK)
    doc = read(dan_dir / f"{SANDBOX}.json")
    assert [d["target"] for d in rs_attach(rs_load(doc, root), "dragonball")] == [VHU_SOCKET]
    socket.touch()
    with pytest.raises(KataReject, match="exists"):
        rs_load(doc, root)


def test_cni_plugin_refuses_a_client_mode_vhost_user_network(tmp_path):
    record = {"containerId": SANDBOX, "ifName": "net2", "networkName": "dpdk", "interface": {},
              "ips": [{"address": "198.51.100.7/24"}], "deviceInfo": vhost_user("client")}  # fmt: skip
    with pytest.raises(dan.DanError, match="client mode"):
        dan.add_interface(str(tmp_path / "dans"), record, str(tmp_path))
    assert not (tmp_path / "dans" / f"{SANDBOX}.json").exists()


# ---------------------------------------------------------------------------- the sandbox's hypervisor


def one_network(tmp_path, kind: str):
    """(bundle, root) of a pod with one network of the DAN device type `kind`."""
    root = tmp_path / "root"
    if kind == "vfio":
        pci_function(root, VF1, "vfio-pci")
        status = [status_entry("default/sriov-a", "net1", ["10.56.217.171/24"], "0a:58:0a:38:d9:ab",
                               devinfo=pci_devinfo(VF1))]  # fmt: skip
        return bundle(tmp_path, CRI | {NETWORK_STATUS: status}, name=kind), root
    if kind == "host-tap":
        virtual_netdev(root, "tap0kata", "fe:54:00:00:00:01", tap=True)
        status = [status_entry("default/tap", "net1", ["192.0.2.10/24"], "0a:58:c0:00:02:0a")]
        return bundle(tmp_path, CRI | {NETWORK_STATUS: status}, {"tap0kata": {"name": "net1"}}, name=kind), root
    root.mkdir()
    return vhost_user_bundle(tmp_path, name=kind), root


def kata_attaches(doc: dict, root, hypervisor: str) -> bool:
    """Whether a runtime that runs `hypervisor` loads this file and puts every device into the VM
    (tests/helpers/kata.py): the Go runtime (a hot-plug port configured), or runtime-rs (vfio
    only with kata#13802)."""
    ways = []
    if hypervisor in GO_VFIO_HOTPLUG:
        ways.append(lambda: go_attach(go_load(doc), hypervisor))
    if hypervisor in RS_ADD_DEVICE:
        ways.append(lambda: rs_attach(rs_load(doc, root, with_vfio=True), hypervisor))
    for attach in ways:
        try:
            if len(attach()) == len(doc["devices"]):
                return True
        except KataReject:
            pass
    return False


@pytest.mark.parametrize("kind", ["vfio", "host-tap", "vhost-user"])
def test_hypervisor_refuses_exactly_what_kata_cannot_attach(tmp_path, kind):
    """For every hypervisor Kata's configuration can name, cdigen writes the file exactly when
    the runtime that reads its device type attaches every device with that hypervisor."""
    b, root = one_network(tmp_path, kind)
    doc = read_dan_of(b, root, tmp_path / "plain")
    expected = {h: kata_attaches(doc, root, h) for h in HYPERVISORS}
    written = {}
    for h in HYPERVISORS:
        try:
            dan.write_dan(str(b), str(root), str(tmp_path / h), hypervisor=h)
            written[h] = read(tmp_path / h / f"{SANDBOX}.json") == doc
        except dan.DanError as e:
            assert f"a {kind} DAN device cannot work with the {h} hypervisor" in str(e)
            assert not (tmp_path / h).exists()
            written[h] = False
    assert written == expected
    assert [h for h, ok in written.items() if ok] == {
        "vfio": ["clh", "qemu"],
        "host-tap": ["clh", "dragonball", "firecracker", "openvmm", "qemu"],
        "vhost-user": ["dragonball"],
    }[kind]


def read_dan_of(b, root, dan_dir) -> dict:
    dan.write_dan(str(b), str(root), str(dan_dir))
    return read(dan_dir / f"{SANDBOX}.json")


def test_hypervisor_option_refuses_with_one_line(tmp_path):
    b, root = one_network(tmp_path, "vhost-user")
    dan_dir = tmp_path / "dans"
    proc = run_dan(b, root, dan_dir, "--hypervisor", "qemu")
    assert_refused(
        proc, EXIT_INVALID, "network default/dpdk: a vhost-user DAN device cannot work with the qemu hypervisor",
        "unsupported device", dan_dir=dan_dir,
    )  # fmt: skip
    assert run_dan(b, root, dan_dir, "--hypervisor", "dragonball", check=EXIT_OK).stdout.endswith(": written\n")


def kata_config(directory, text: str, dropins: dict | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "configuration.toml"
    path.write_text(text)
    for name, body in (dropins or {}).items():
        (directory / "config.d").mkdir(exist_ok=True)
        (directory / "config.d" / name).write_text(body)
    return path


RS_CONFIG = """
[hypervisor.qemu]
path = "/opt/kata/bin/qemu-system-x86_64"
[hypervisor.dragonball]
path = "/opt/kata/bin/dragonball"
[runtime]
name = "virt_container"
hypervisor_name = "qemu"
dan_conf = "/run/kata-containers/dans"
"""


def test_kata_config_names_the_hypervisor(tmp_path):
    """runtime-rs: [runtime] hypervisor_name, a config.d drop-in over it, and the pod annotation
    io.katacontainers.config.runtime.hypervisor_name naming one of the file's tables. The Go
    runtime: the file's one [hypervisor.NAME] table."""
    b, root = one_network(tmp_path, "vhost-user")
    dan_dir = tmp_path / "dans"
    config = kata_config(tmp_path / "rs", RS_CONFIG)
    proc = run_dan(b, root, dan_dir, "--kata-config", config)
    assert_refused(proc, EXIT_INVALID, "cannot work with the qemu hypervisor", dan_dir=dan_dir)
    dropin = kata_config(
        tmp_path / "rs-dropin", RS_CONFIG, {"50-db.toml": '[runtime]\nhypervisor_name = "dragonball"\n'}
    )
    run_dan(b, root, dan_dir, "--kata-config", dropin, check=EXIT_OK)
    annotated = vhost_user_bundle(tmp_path, name="annotated")
    ann = json.loads((annotated / "config.json").read_text())
    ann["annotations"]["io.katacontainers.config.runtime.hypervisor_name"] = "dragonball"
    (annotated / "config.json").write_text(json.dumps(ann))
    run_dan(annotated, root, tmp_path / "d2", "--kata-config", config, check=EXIT_OK)
    go = kata_config(tmp_path / "go", '[hypervisor.firecracker]\npath = "/opt/kata/bin/firecracker"\n')
    vb, vroot = one_network(tmp_path / "v", "vfio")
    proc = run_dan(vb, vroot, tmp_path / "d3", "--kata-config", go)
    assert_refused(proc, EXIT_INVALID, "a vfio DAN device cannot work with the firecracker hypervisor")


def test_hypervisor_option_imports_no_toml_reader(tmp_path):
    """`cdigen dan` is on the sandbox start path: tomllib only with --kata-config."""
    b, root = one_network(tmp_path, "host-tap")
    argv = ["cdigen", "dan", str(b), "--root", str(root), "--dan-dir", str(tmp_path / "dans"), "--hypervisor", "qemu"]
    code = (
        f"import sys\nsys.argv = {argv!r}\nfrom cdigen.entry import main\nmain()\n"
        "print('tomllib' in sys.modules, file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stderr.splitlines() == ["False"]
    assert (tmp_path / "dans" / f"{SANDBOX}.json").exists()


@pytest.mark.parametrize(
    ("text", "dropins", "fragment"),
    [
        ("[runtime]\nenable_debug = true\n", None, "no [hypervisor.NAME] table"),
        ("[hypervisor.qemu]\n[hypervisor.clh]\n", None, "several hypervisor tables (clh, qemu)"),
        ("[hypervisor.acrn]\n", None, "hypervisor 'acrn' is none Kata runs"),
        ('[hypervisor.qemu]\n[runtime]\nhypervisor_name = "clh"\n', None, "hypervisor_name 'clh' has no"),
        ("[hypervisor.qemu\n", None, "not TOML"),
        ("[hypervisor.qemu]\n", {"10.toml": "= x"}, "drop-in 10.toml: not TOML"),
        (None, None, "cannot read: No such file or directory"),
    ],
    ids=["no-table", "two-tables", "unknown", "name-without-table", "not-toml", "bad-dropin", "missing"],
)  # fmt: skip
def test_bad_kata_config_is_one_line_exit_3_and_no_file(tmp_path, text, dropins, fragment):
    b, root = one_network(tmp_path, "host-tap")
    config = kata_config(tmp_path / "kata", text, dropins) if text is not None else tmp_path / "none.toml"
    proc = run_dan(b, root, tmp_path / "dans", "--kata-config", config)
    assert_refused(proc, EXIT_INVALID, f"Kata configuration {config}: ", fragment, dan_dir=tmp_path / "dans")


# ---------------------------------------------------------------------------- what each runtime rejects


@pytest.mark.parametrize(
    ("device", "go_error", "rs_effect"),
    [
        ({"guest_mac": "0a:58:0a:0a:00"}, "bad mac address in DAN config", "attach fails"),
        ({"guest_mac": "zz:58:0a:0a:00:05"}, "bad mac address in DAN config", "attach fails"),
        ({"ip_addresses": ["10.10.0.5"]}, "bad IP address in DAN config", "dropped"),
        ({"ip_addresses": ["127.0.0.1/8"]}, None, "dropped"),
    ],
)
def test_what_each_runtime_rejects_and_cdigen_never_writes(tmp_path, device, go_error, rs_effect):
    virtual_netdev(tmp_path, "tap0", "fe:54:00:00:00:01", tap=True)
    base = {
        "name": "eth0",
        "guest_mac": device.get("guest_mac", "0a:58:0a:0a:00:05"),
        "device": {"type": "host-tap", "tap_name": "tap0"},
        "network_info": {"interface": {"ip_addresses": device.get("ip_addresses", ["10.10.0.5/24"]), "mtu": 1500}},
    }
    go_doc = {"devices": [base | {"device": {"type": "vfio", "pci_device_id": VF1}}]}
    if go_error:
        with pytest.raises(KataReject, match=go_error):
            go_load(go_doc)
    loaded = rs_load({"devices": [base]}, tmp_path)  # a tap's MAC is parsed when it is attached
    if rs_effect == "attach fails":
        with pytest.raises(KataReject, match="Parse mac address"):
            rs_attach(loaded, "qemu")
    else:
        assert loaded[0]["addresses"] == []


# ---------------------------------------------------------------------------- the model, as Kata's code reads


def test_model_runtime_rs_refuses_a_vhost_user_socket_that_exists(tmp_path):
    """VhostUserEndpoint::new, right after the file is read: the VMM listens on the socket."""
    doc = {"devices": [{"name": "net1", "device": {"type": "vhost-user", "path": "/run/vhu/net1.sock"},
                        "network_info": {"interface": {"ip_addresses": []}}}]}  # fmt: skip
    assert rs_load(doc, tmp_path)[0]["target"] == "/run/vhu/net1.sock"
    (tmp_path / "run/vhu").mkdir(parents=True)
    (tmp_path / "run/vhu/net1.sock").touch()
    with pytest.raises(KataReject, match="vhost-user-net socket path /run/vhu/net1.sock exists"):
        rs_load(doc, tmp_path)


def test_model_runtime_rs_keeps_a_neighbour_without_cidr(tmp_path):
    """NetworkInfoFromDan::new maps every neighbour; a bare IP becomes no address."""
    virtual_netdev(tmp_path, "tap0", "fe:54:00:00:00:01", tap=True)
    doc = {"devices": [{"name": "eth0", "device": {"type": "host-tap", "tap_name": "tap0"},
                        "network_info": {"interface": {"ip_addresses": []}, "neighbors": [
                            {"ip_address": "10.0.0.9", "hardware_addr": "0a:58:0a:00:00:09"},
                            {"ip_address": "10.0.0.8/24", "hardware_addr": "0a:58:0a:00:00:08"}]}}]}  # fmt: skip
    assert rs_load(doc, tmp_path)[0]["neighbors"] == [
        {"ip": None, "hardware_addr": "0a:58:0a:00:00:09"},
        {"ip": "10.0.0.8", "hardware_addr": "0a:58:0a:00:00:08"},
    ]


def test_model_runtime_rs_generates_a_tap_mac_when_absent(tmp_path):
    """DanDevice.guest_mac: #[serde(default = "generate_private_mac_addr")]."""
    virtual_netdev(tmp_path, "tap0", "fe:54:00:00:00:01", tap=True)
    doc = {"devices": [{"name": "eth0", "device": {"type": "host-tap", "tap_name": "tap0"},
                        "network_info": {"interface": {"ip_addresses": []}}}]}  # fmt: skip
    (device,) = rs_attach(rs_load(doc, tmp_path), "dragonball")
    first = int(device["mac"][:2], 16)
    assert len(device["mac"].split(":")) == 6 and first & 0b11 == 0b10  # locally administered, unicast


def test_model_go_runtime_gives_the_agent_parse_mac_form():
    """net.ParseMAC then HardwareAddr.String(): lower case, ':'-separated, whatever was written."""
    device = {"name": "eth0", "device": {"type": "vfio", "pci_device_id": VF1},
              "network_info": {"interface": {"ip_addresses": []}}}  # fmt: skip
    for written in ("0A-58-0A-0A-00-05", "0a58.0a0a.0005", "0A:58:0A:0A:00:05"):
        assert go_load({"devices": [device | {"guest_mac": written}]})[0]["mac"] == "0a:58:0a:0a:00:05"


def test_model_go_runtime_needs_a_hot_plug_port_and_qemu_or_clh(tmp_path):
    """Sandbox.hotplugVfioNetworkDevice, then the hypervisor's HotplugAddDevice(VfioDev)."""
    device = {"name": "eth0", "guest_mac": "0a:58:0a:0a:00:05", "device": {"type": "vfio", "pci_device_id": VF1},
              "network_info": {"interface": {"ip_addresses": []}}}  # fmt: skip
    loaded = go_load({"devices": [device]})
    assert go_attach(loaded, "qemu") == go_attach(loaded, "clh") == loaded
    with pytest.raises(KataReject, match="hot_plug_vfio port is not configured"):
        go_attach(loaded, "qemu", hot_plug_vfio="no-port")
    with pytest.raises(KataReject, match="unsupported device"):
        go_attach(loaded, "firecracker")


def test_cdigen_output_never_has_what_a_runtime_rejects(tmp_path, host):
    """Every address CIDR, every MAC 6 bytes, lower-case keys only, no neighbour."""
    run_dan(bundle(tmp_path, CRI | vf_networks()), host, tmp_path / "dans", check=EXIT_OK)
    doc = read(tmp_path / "dans" / f"{SANDBOX}.json")

    def keys(value):
        if isinstance(value, dict):
            for k, v in value.items():
                yield k
                yield from keys(v)
        elif isinstance(value, list):
            for v in value:
                yield from keys(v)

    assert all(k == k.lower() for k in keys(doc))
    for device in doc["devices"]:
        assert len(device["guest_mac"].split(":")) == 6
        assert all("/" in a for a in device["network_info"]["interface"]["ip_addresses"])
        assert all("/" in r["dest"] for r in device["network_info"]["routes"])
        assert device["network_info"]["neighbors"] == []


# ---------------------------------------------------------------------------- refused: one line, no file


def _networks(**changes) -> dict:
    ann = vf_networks()
    status, ovn = ann[NETWORK_STATUS], ann[POD_NETWORKS]
    if "mac" in changes:
        status[0]["mac"] = changes["mac"]
        ovn["default/sriov-a"]["mac_address"] = changes["mac"]
    if changes.get("no_mac"):
        del status[0]["mac"], ovn["default/sriov-a"]["mac_address"]
    if "status" in changes:
        ann[NETWORK_STATUS] = changes["status"]
    if "status_ips" in changes:
        status[0]["ips"] = changes["status_ips"]
    if "ovn_a" in changes:
        ovn["default/sriov-a"] = changes["ovn_a"]
    if "default" in changes:
        status.insert(0, status_entry("ovn-kubernetes", "eth0", ["10.128.0.5"], "0a:58:0a:80:00:05", default=True))
        ovn["default"] = {"ip_addresses": ["10.128.0.5/23"], "mac_address": "0a:58:0a:80:00:05"}
    if "devinfo_b" in changes:
        status[1]["device-info"] = changes["devinfo_b"]
    return CRI | ann


@pytest.mark.parametrize(
    ("ann", "fragments"),
    [
        (CRI | {NETWORK_STATUS: "[{"}, ["k8s.v1.cni.cncf.io/network-status: invalid JSON"]),
        (_networks(ovn_a={"ip_addresses": ["10.56.217.171/23"]}, status_ips=["10.56.217.171/24"]),
         ["network default/sriov-a: the mask of 10.56.217.171 disagrees"]),
        (_networks(ovn_a={"mac_address": "0a:58:0a:38:d9:ab"}), ["address 10.56.217.171 has no prefix length"]),
        (_networks(devinfo_b=pci_devinfo(VF1)), [f"PCI function {VF1} is network default/sriov-a's too"]),
        (_networks(devinfo_b=pci_devinfo("0000:99:00.1")), ["0000:99:00.1 is not in /sys/bus/pci/devices"]),
        (_networks(default=True), ["default network (eth0) is on no host device", "sandbox would lose it"]),
        (_networks(mac="0a:58:0a:38:d9"), ["invalid MAC address"]),
        (_networks(mac="01:00:5e:00:00:01"), ["MAC 01:00:5e:00:00:01 is a multicast address"]),
        (_networks(mac="00:00:00:00:00:00"), ["all zeros"]),
        (_networks(mac="80:00:00:48:fe:80:00:00:00:00:00:00:02:c9:03:00:00:0f:12:34"), ["not a 6-byte"]),
        (_networks(no_mac=True), ["network default/sriov-a: no MAC", "agent finds a VFIO NIC by its MAC"]),
        (_networks(ovn_a={"ip_addresses": ["10.56.217.171/24"], "mac_address": "0a:58:0a:38:d9:ab",
                          "routes": [{"dest": "10.96.0.0/16"}]}), ["on-link IPv4 route to 10.96.0.0/16"]),
        (CRI | {NETWORK_STATUS: []}, ["no pod network", "without network"]),
        (CRI | {"io.kubernetes.cri-o.SandboxID": "x"} | vf_networks(), ["disagrees with io.kubernetes.cri.sandbox-id"]),
        ({"io.kubernetes.cri.sandbox-id": "../x"} | vf_networks(), ["invalid sandbox id '../x'"]),
    ],
    ids=[
        "malformed-json", "mask-disagrees", "bare-ip", "two-networks-one-device", "no-such-pci-function",
        "default-network-veth", "bad-mac", "multicast-mac", "zero-mac", "ipoib-mac", "vfio-without-mac",
        "on-link-v4-route-go", "no-network", "two-sandbox-ids", "bad-sandbox-id",
    ],
)  # fmt: skip
def test_bad_input_is_one_line_exit_3_and_no_file(tmp_path, host, ann, fragments):
    dan_dir = tmp_path / "dans"
    proc = run_dan(bundle(tmp_path, ann), host, dan_dir)
    assert_refused(proc, EXIT_INVALID, *fragments, dan_dir=dan_dir)


def test_devices_no_dan_type_takes(tmp_path):
    root = tmp_path / "root"
    pci_function(root, VF1, "mlx5_core", {"ens1f0v5": "0a:58:0a:38:d9:ab"})  # a netdev VF
    pci_function(root, VF2)  # no driver
    ann = _networks()
    for vf, fragment in ((VF1, "host interface ens1f0v5 is neither a tap device nor a VFIO function"),
                         (VF2, f"PCI function {VF2} is bound to no driver, not vfio-pci")):  # fmt: skip
        ann[NETWORK_STATUS] = [e for e in vf_networks()[NETWORK_STATUS] if e["device-info"]["pci"]["pci-address"] == vf]
        name = ann[NETWORK_STATUS][0]["name"]
        ann[POD_NETWORKS] = {name: vf_networks()[POD_NETWORKS][name]}
        proc = run_dan(bundle(tmp_path, ann, name=vf), root, tmp_path / "dans")
        assert_refused(proc, EXIT_INVALID, fragment, dan_dir=tmp_path / "dans")


def test_vfio_mixed_with_a_tap_is_refused(tmp_path, host):
    virtual_netdev(host, "tap0kata", "fe:54:00:00:00:01", tap=True)
    ann = vf_networks()
    ann[NETWORK_STATUS].append(status_entry("default/tap", "net3", ["192.0.2.10/24"], "0a:58:c0:00:02:0a"))
    b = bundle(tmp_path, CRI | ann, net_devices={"tap0kata": {"name": "net3"}})
    proc = run_dan(b, host, tmp_path / "dans")
    assert_refused(proc, EXIT_INVALID, "net1 is vfio (Go runtime only) and net3 is not", dan_dir=tmp_path / "dans")


def test_a_tun_device_is_not_a_tap(tmp_path):
    from tests.helpers.hostnet import tun_netdev

    root = tmp_path / "root"
    tun_netdev(root, "tun0")
    b = bundle(tmp_path, CRI | {NETWORK_STATUS: [status_entry("x/tun", "net1", ["192.0.2.1/24"])]},
               net_devices={"tun0": {"name": "net1"}})  # fmt: skip
    assert_refused(run_dan(b, root, tmp_path / "dans"), EXIT_INVALID, "tun0 is neither a tap device")


# ---------------------------------------------------------------------------- sandbox id, workloads, delete, hook


def test_sandbox_id_sources(tmp_path, host):
    crio = {"io.kubernetes.cri-o.SandboxID": "crio-sandbox-1"} | vf_networks()
    run_dan(bundle(tmp_path, crio, name="crio"), host, tmp_path / "dans", check=EXIT_OK)
    assert (tmp_path / "dans" / "crio-sandbox-1.json").exists()
    plain = bundle(tmp_path, vf_networks(), name="plain")
    run_dan(plain, host, tmp_path / "dans", "--sandbox-id", "given-1", check=EXIT_OK)
    assert (tmp_path / "dans" / "given-1.json").exists()
    assert_refused(run_dan(plain, host, tmp_path / "d2"), EXIT_USAGE, "--sandbox-id is needed", dan_dir=tmp_path / "d2")
    assert_refused(
        run_dan(bundle(tmp_path, CRI | vf_networks(), name="cri"), host, tmp_path / "d2", "--sandbox-id", "other"),
        EXIT_USAGE,
        f"--sandbox-id other disagrees with the bundle's sandbox id {SANDBOX}",
        dan_dir=tmp_path / "d2",
    )
    assert_refused(
        run_dan(plain, host, tmp_path / "d2", "--sandbox-id", "a/b"), EXIT_USAGE, "--sandbox-id 'a/b': not a valid"
    )
    assert_refused(run_dan(plain, host, "rel/dans", "--sandbox-id", "x"), EXIT_USAGE, "--dan-dir 'rel/dans' is not an")


def test_workload_container_bundle_is_skipped(tmp_path, host):
    ann = {"io.kubernetes.cri.sandbox-id": SANDBOX, "io.kubernetes.cri.container-type": "container"} | vf_networks()
    proc = run_dan(bundle(tmp_path, ann), host, tmp_path / "dans", check=EXIT_OK)
    assert "not the sandbox container" in proc.stdout and not (tmp_path / "dans").exists()
    proc = run_dan(bundle(tmp_path, ann, name="b2"), host, tmp_path / "dans", "--delete", check=EXIT_OK)
    assert "nothing done" in proc.stdout


def test_delete(tmp_path, host):
    b = bundle(tmp_path, CRI | vf_networks())
    run_dan(b, host, tmp_path / "dans", check=EXIT_OK)
    proc = run_dan(b, host, tmp_path / "dans", "--delete", check=EXIT_OK)
    assert proc.stdout == f"{tmp_path / 'dans' / SANDBOX}.json: deleted\n"
    assert not (tmp_path / "dans" / f"{SANDBOX}.json").exists()
    assert run_dan(b, host, tmp_path / "dans", "--delete", check=EXIT_OK).stdout.endswith(": absent\n")


def test_as_a_hook_with_the_state_on_stdin(tmp_path, host):
    b = bundle(tmp_path, CRI | vf_networks())
    state = json.dumps({"ociVersion": "1.2.0", "id": SANDBOX, "status": "creating", "pid": 42, "bundle": str(b)})
    proc = run_cdigen("dan", "--hook", "--root", host, "--dan-dir", tmp_path / "dans", input=state, check=EXIT_OK)
    assert proc.stdout == "" and (tmp_path / "dans" / f"{SANDBOX}.json").exists()
    run_cdigen("dan", "--hook", "--delete", "--dan-dir", tmp_path / "dans", input=state, check=EXIT_OK)
    assert not (tmp_path / "dans" / f"{SANDBOX}.json").exists()
    assert_refused(
        run_cdigen("dan", "--hook", "--dan-dir", tmp_path / "dans", input="{}"), EXIT_INVALID, "missing 'bundle'"
    )


def test_a_write_that_fails_is_exit_1(tmp_path, host):
    (tmp_path / "dans").write_text("a file, not a directory")
    proc = run_dan(bundle(tmp_path, CRI | vf_networks()), host, tmp_path / "dans")
    assert_refused(proc, 1, f"cannot create {tmp_path / 'dans'}")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "missing argument BUNDLE (or --hook)"),
        (["b", "c"], "unexpected argument 'c'"),
        (["b", "--root"], "option --root requires an argument"),
        (["b", "--root", "/", "--root=/"], "option --root given twice"),
        (["b", "--frobnicate"], "no such option: '--frobnicate'"),
        (["b", "--delete=yes"], "option --delete does not take a value"),
        (["--hook", "b"], "--hook takes the bundle from the OCI state"),
        (["--hook", "--sandbox-id", "x"], "not --sandbox-id"),
        (["/nonexistent-bundle"], "bundle directory '/nonexistent-bundle' does not exist"),
        (["b", "--hypervisor", "kvm"], "--hypervisor 'kvm': expected one of clh, dragonball,"),
        (["b", "--hypervisor", "qemu", "--kata-config", "/k.toml"], "--hypervisor and --kata-config: give one"),
    ],
)
def test_usage_errors_are_exit_2(args, fragment):
    assert_refused(run_cdigen("dan", *args), EXIT_USAGE, fragment)


def test_help():
    assert "usage: cdigen dan [OPTIONS] [BUNDLE]" in run_cdigen("dan", "--help", check=EXIT_OK).stdout
    assert "dan" in run_cdigen("--help", check=EXIT_OK).stdout


# ---------------------------------------------------------------------------- one interface at a time (CNI plugin)


def test_add_and_remove_interfaces(tmp_path, host):
    dan_dir = str(tmp_path / "dans")

    def record(ifname, bdf, mac, address):
        return {
            "kind": "cdigen.cni/v1",
            "containerId": SANDBOX,
            "ifName": ifname,
            "networkName": f"sriov-{ifname}",
            "netns": "/var/run/netns/x",
            "interface": {"name": ifname, "mac": mac, "mtu": 9000, "pciAddress": bdf, "inNetns": False},
            "ips": [{"address": address, "gateway": "10.0.0.1"}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}],
        }

    path = dan.add_interface(dan_dir, record("net1", VF1, "0a:58:0a:00:00:05", "10.0.0.5/24"), str(host))
    assert path == os.path.join(dan_dir, f"{SANDBOX}.json")
    dan.add_interface(dan_dir, record("net2", VF2, "0a:58:0a:00:00:06", "10.0.0.6/24"), str(host))
    dan.add_interface(dan_dir, record("net1", VF1, "0a:58:0a:00:00:05", "10.0.0.7/24"), str(host))  # replaces
    devices = go_load(json.loads(Path(path).read_text()))
    assert [(d["name"], d["pci"], d["addresses"]) for d in devices] == [
        ("net2", VF2, ["10.0.0.6/24"]),
        ("net1", VF1, ["10.0.0.7/24"]),
    ]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert dan.remove_interface(dan_dir, SANDBOX, "net2") == "written"
    assert [d["name"] for d in json.loads(Path(path).read_text())["devices"]] == ["net1"]
    assert dan.remove_interface(dan_dir, SANDBOX, "net9") == "absent"
    assert dan.remove_interface(dan_dir, SANDBOX, "net1") == "deleted"
    assert not os.path.exists(path) and dan.remove_interface(dan_dir, SANDBOX, "net1") == "absent"
