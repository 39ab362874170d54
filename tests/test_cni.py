"""The `cdigen` CNI plugin in a real chain: Debian's containernetworking-plugins `host-device`
moves one end of a veth into a network namespace made here (with `static` IPAM), then `cdigen`
records what the result says, run as libcni runs plugins (tests/helpers/cni.py): ADD, CHECK,
DEL, DEL after a failed ADD. Bad input: the CNI error object on stdout, exit 1, nothing
written. And the Kata DAN file that ADD writes with `dan_dir`: refused for a veth (no DAN
device type takes one; nothing written), written for a VFIO function (a fake sysfs)."""

import io
import json
import os
import subprocess

import pytest

from cdigen.hookentry import default_hook_path
from cdigen.pod import cnirecord
from tests.helpers.cni import Cni, cni_skip_reason
from tests.helpers.netns import addresses, ip, link

CDIGEN = default_hook_path()
DEVINFO = {"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:17:00.1", "rdma-device": "mlx5_3"}}


@pytest.fixture
def cni(tmp_path, needs_netns):
    reason = cni_skip_reason()
    if reason:
        pytest.skip(reason)
    return Cni(tmp_path, CDIGEN)


def conflist(device: str, record_dir, **cdigen) -> dict:
    return {
        "cniVersion": "1.0.0",
        "name": "rdma-a",
        "plugins": [
            {
                "type": "host-device",
                "device": device,
                "ipam": {"type": "static", "addresses": [{"address": "192.0.2.10/24", "gateway": "192.0.2.1"}]},
            },
            {
                "type": "cdigen",
                "record_dir": str(record_dir),
                "capabilities": {"CNIDeviceInfoFile": True},
                **cdigen,
            },
        ],
    }


def devinfo_file(tmp_path) -> dict:
    path = tmp_path / "devinfo.json"
    path.write_text(json.dumps(DEVINFO))
    return {"CNIDeviceInfoFile": str(path)}


def no_files(directory) -> bool:
    return not os.path.exists(directory) or all(not files for _, _, files in os.walk(directory))


@pytest.mark.root
def test_add_check_del_after_host_device(cni, net, tmp_path):
    end, _ = net.veth(mtu=9000)
    netns = net.netns()
    records = tmp_path / "records"
    chain = conflist(end, records)
    runtime = devinfo_file(tmp_path)
    cid = "cdigen-test-" + os.path.basename(netns)

    last, (moved, recorded) = cni.add(chain, cid, netns, "net1", runtime)

    assert moved.code == 0, moved.stdout
    assert recorded.code == 0, recorded.stdout + recorded.stderr
    assert recorded.out == moved.out  # prevResult passed through unchanged
    assert recorded.stderr == ""
    assert addresses("net1", netns=netns) == ["192.0.2.10/24"]
    record = json.loads((records / cid / "net1.json").read_text())
    mac = link("net1", netns=netns)["address"]
    assert record["kind"] == "cdigen.cni/v1" and record["containerId"] == cid and record["netns"] == netns
    assert record["networkName"] == "rdma-a" and record["cniVersion"] == "1.0.0"
    assert record["interface"] == {
        "name": "net1",
        "mac": mac,
        "mtu": 9000,  # not in host-device's result: read from the kernel, in the netns
        "hostInterface": end,  # host-device keeps the host name in the alias
        "pciAddress": "0000:17:00.1",
        "inNetns": True,
    }
    assert record["ips"] == [{"address": "192.0.2.10/24", "gateway": "192.0.2.1"}]
    assert record["netDevice"] == {
        "hostInterfaceName": end,
        "name": "net1",
        "address": "192.0.2.10",
        "mask": "255.255.255.0",
        "mtu": 9000,
    }
    assert record["deviceInfo"] == DEVINFO and record["result"] == moved.out
    assert [r["ifName"] for r in cnirecord.read_container(cid, "/", str(records))] == ["net1"]
    # A record reads as a libcni cache file, the CNI result source of the pod's network.
    from cdigen.pod.cniresult import parse_cni_result

    obs = parse_cni_result((records / cid / "net1.json").read_bytes(), "record")
    assert (obs.name, obs.interface, obs.ips, obs.mac) == ("rdma-a", "net1", [("192.0.2.10", 24)], mac)

    checked = cni.check(chain, cid, netns, "net1", runtime)
    assert [o.code for o in checked] == [0, 0], [o.stdout for o in checked]
    assert checked[1].stdout == ""

    deleted = cni.delete(chain, cid, netns, "net1", runtime)
    assert [o.code for o in deleted] == [0, 0], [o.stdout for o in deleted]
    assert not os.path.exists(records / cid)
    assert link(end) is not None  # host-device gave it back
    again = cni.exec("cdigen", "DEL", cni.plugin_conf(chain, chain["plugins"][1], None, {}), cni.env(cid, None, "net1"))
    assert (again.code, again.stdout) == (0, "")


@pytest.mark.root
def test_check_finds_the_interface_gone(cni, net, tmp_path):
    end, _ = net.veth()
    netns = net.netns()
    chain = conflist(end, tmp_path / "records")
    cni.add(chain, "c1", netns, "net1")
    prev = cni.cache[("c1", "net1")]
    ip("link", "del", "net1", netns=netns)

    outcome = cni.exec(
        "cdigen", "CHECK", cni.plugin_conf(chain, chain["plugins"][1], prev, {}), cni.env("c1", netns, "net1")
    )

    assert outcome.code == 1 and outcome.out["code"] == 102, outcome.stdout
    assert outcome.out["msg"] == f"interface net1 is no longer in {netns}"


@pytest.mark.root
def test_del_after_failed_add_is_harmless(cni, net, tmp_path):
    end, _ = net.veth()
    netns = net.netns()
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    chain = conflist(end, blocker / "records")  # cdigen cannot write its record there

    last, (moved, failed) = cni.add(chain, "c1", netns, "net1")

    assert moved.code == 0
    assert failed.code == 1 and failed.out["code"] == 5 and "cannot create" in failed.out["msg"], failed.stdout
    assert set(failed.out) == {"cniVersion", "code", "msg"} and failed.out["cniVersion"] == "1.0.0"
    # The runtime then deletes the attachment: DEL of every plugin, no cached result.
    deleted = cni.delete(chain, "c1", netns, "net1")
    assert [o.code for o in deleted] == [0, 0], [o.stdout for o in deleted]
    assert link(end) is not None


@pytest.mark.root
def test_del_when_host_device_failed_first(cni, net, tmp_path):
    netns = net.netns()
    records = tmp_path / "records"
    chain = conflist("cdgnosuch0", records)
    last, outcomes = cni.add(chain, "c1", netns, "net1")
    assert len(outcomes) == 1 and last.code != 0  # cdigen never ran
    cdigen_del = cni.delete(chain, "c1", netns, "net1")[0]
    assert (cdigen_del.code, cdigen_del.stdout) == (0, "")
    assert no_files(records)


@pytest.mark.root
def test_dan_for_a_veth_is_refused_and_nothing_is_written(cni, net, tmp_path):
    """Kata uses the DAN file instead of the netns: a network no DAN device type takes (a veth
    is neither tap nor VFIO) fails ADD; neither the record nor a DAN file is left."""
    end, _ = net.veth()
    netns = net.netns()
    records, dans = tmp_path / "records", tmp_path / "dans"
    chain = conflist(end, records, dan_dir=str(dans))

    last, (_, failed) = cni.add(chain, "sandbox1", netns, "net1")

    assert failed.code == 1 and failed.out["code"] == 7, failed.stdout
    assert "neither a tap device nor a VFIO function" in failed.out["msg"]
    assert no_files(records) and no_files(dans)
    deleted = cni.delete(chain, "sandbox1", netns, "net1")
    assert [o.code for o in deleted] == [0, 0]


# ---------------------------------------------------------------------------- the plugin alone (no root)


@pytest.fixture
def plugin(tmp_path):
    """`cdigen` in a CNI bin dir; run(command, conf, **env) -> (exit code, stdout JSON, stdout)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "cdigen").symlink_to(CDIGEN)

    def run(command, conf, args=(), **env):
        full = {k: v for k, v in os.environ.items() if not k.startswith("CNI_") and k != "CDIGEN_DEBUG"}
        full |= {"CNI_COMMAND": command, "CNI_PATH": str(bindir)} if command else {"CNI_PATH": str(bindir)}
        full |= {"CNI_CONTAINERID": "c1", "CNI_IFNAME": "net1", "CNI_NETNS": "/var/run/netns/cdgnosuch"}
        full |= env
        full = {k: v for k, v in full.items() if v is not None}
        data = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
        proc = subprocess.run([str(bindir / "cdigen"), *args], input=data, capture_output=True, env=full, timeout=60)
        out = proc.stdout.decode()
        return proc.returncode, (json.loads(out) if out.strip().startswith("{") else None), out

    return run


RESULT = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "net1", "mac": "0a:58:0a:0a:00:05", "sandbox": "/var/run/netns/x"}],
    "ips": [{"interface": 0, "address": "192.0.2.10/24", "gateway": "192.0.2.1"}],
}


def conf(tmp_path, **over) -> dict:
    doc = {"cniVersion": "1.0.0", "name": "rdma-a", "type": "cdigen", "record_dir": str(tmp_path / "records")}
    doc["prevResult"] = RESULT
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not None}


def test_version(plugin):
    code, out, _ = plugin("VERSION", b'{"cniVersion": "1.0.0"}')
    assert code == 0 and out == {"cniVersion": "1.0.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]}
    code, out, _ = plugin("VERSION", b"")
    assert code == 0 and out["cniVersion"] == "1.0.0"


def test_plugin_mode_only_for_cdigen_without_arguments(plugin, tmp_path):
    code, out, text = plugin("VERSION", b"", args=["--help"])  # arguments: the command line, not a plugin
    assert out is None and "usage: cdigen" in text
    other = tmp_path / "bin" / "not-cdigen"
    other.symlink_to(CDIGEN)
    proc = subprocess.run([str(other)], env=dict(os.environ, CNI_COMMAND="VERSION"), capture_output=True, text=True)
    assert "supportedVersions" not in proc.stdout
    code, out, _ = plugin(None, b"", args=["cni"], CNI_COMMAND="VERSION")
    assert code == 0 and "supportedVersions" in out


def test_check_without_add(plugin, tmp_path):
    code, out, _ = plugin("CHECK", conf(tmp_path))
    assert code == 1 and out["code"] == 100 and "ADD did not run" in out["msg"]


@pytest.mark.parametrize(
    "command, stdin, env, code, message",
    [
        ("ADD", None, {"CNI_CONTAINERID": None}, 4, "CNI_CONTAINERID is not set"),
        ("ADD", None, {"CNI_CONTAINERID": "../etc"}, 4, "container ID '../etc': only letters"),
        ("DEL", None, {"CNI_CONTAINERID": ".hidden"}, 4, "container ID '.hidden'"),
        ("ADD", None, {"CNI_IFNAME": "a/b"}, 4, "CNI_IFNAME 'a/b' contains '/'"),
        ("ADD", None, {"CNI_NETNS": None}, 4, "CNI_NETNS is not set"),
        ("GC", None, {}, 4, "CNI_COMMAND 'GC': expected ADD, DEL, CHECK or VERSION"),
        ("ADD", b"{", {}, 6, "network configuration on stdin: invalid JSON"),
        ("ADD", b"[]", {}, 6, "expected a JSON object"),
        ("ADD", {"cniVersion": "0.2.0"}, {}, 1, "incompatible CNI version '0.2.0'"),
        ("ADD", {"cniVersion": "9.9.9"}, {}, 1, "incompatible CNI version '9.9.9'"),
        ("CHECK", {"cniVersion": "0.3.1"}, {}, 1, "config version does not allow CHECK"),
        ("ADD", {"prevResult": None}, {}, 7, "no prevResult: cdigen is a chained plugin"),
        ("ADD", {"record_dir": "records"}, {}, 7, "record_dir: expected an absolute path"),
        ("ADD", {"dan_dir": 5}, {}, 7, "dan_dir: expected an absolute path"),
        ("ADD", {"hypervisor": "kvm"}, {}, 7, "hypervisor: expected one of clh, dragonball"),
        ("ADD", {"prevResult": {"ips": "x"}}, {}, 7, "prevResult: interfaces and ips must be lists"),
        (
            "ADD",
            {"prevResult": {**RESULT, "ips": [{"interface": 0, "address": "192.0.2.300/24"}]}},
            {},
            7,
            "invalid IP address '192.0.2.300'",
        ),
        (
            "ADD",
            {"prevResult": {**RESULT, "interfaces": [{**RESULT["interfaces"][0], "mtu": 20}]}},
            {},
            7,
            "MTU 20 is outside 68..65535",
        ),
    ],
)
def test_bad_input_is_a_cni_error_and_writes_nothing(plugin, tmp_path, command, stdin, env, code, message):
    data = stdin if isinstance(stdin, bytes) else conf(tmp_path, **(stdin or {}))
    exit_code, out, text = plugin(command, data, **env)
    assert exit_code == 1
    assert text.count("\n") == 1 and out["code"] == code and message in out["msg"], text
    assert set(out) <= {"cniVersion", "code", "msg", "details"} and out["cniVersion"] in ("1.0.0", "0.3.1")
    assert no_files(tmp_path / "records")


def test_version_of_the_error_follows_the_config(plugin, tmp_path):
    code, out, _ = plugin("CHECK", conf(tmp_path, cniVersion="0.4.0"))
    assert code == 1 and out["cniVersion"] == "0.4.0" and out["code"] == 100


# ---------------------------------------------------------------------------- Kata DAN for a VFIO function


def fake_vfio_sysfs(root, bdf: str) -> None:
    """sys/bus/pci/devices/BDF bound to vfio-pci, no netdev (what cdigen/pod/host.py reads)."""
    drivers = os.path.join(root, "sys/bus/pci/drivers/vfio-pci")
    device = os.path.join(root, "sys/bus/pci/devices", bdf)
    os.makedirs(drivers)
    os.makedirs(device)
    os.symlink("../../../../bus/pci/drivers/vfio-pci", os.path.join(device, "driver"))


def run_in_process(monkeypatch, capsys, command: str, conf: dict, env: dict) -> tuple[int, dict | None]:
    from cdigen.cli.cni import run

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CNI_COMMAND", command)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(json.dumps(conf).encode())))
    code = run(command)
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip() else None)


def test_dan_file_for_a_vfio_function(monkeypatch, capsys, tmp_path):
    from cdigen.pod import cni

    bdf = "0000:17:00.1"
    fake_vfio_sysfs(tmp_path / "root", bdf)
    monkeypatch.setattr(cni, "SYS_ROOT", str(tmp_path / "root"))
    monkeypatch.setattr(cni, "_link", lambda netns, ifname: None)  # a VFIO NIC has no netdev in the netns
    result = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "net1", "mac": "0a:58:0a:0a:00:05", "sandbox": "/var/run/netns/x", "pciID": bdf}],
        "ips": [{"interface": 0, "address": "10.10.0.5/24", "gateway": "10.10.0.1"}],
    }
    dans, records = tmp_path / "dans", tmp_path / "records"
    config = {
        "cniVersion": "1.0.0",
        "name": "vfio-net",
        "type": "cdigen",
        "dan_dir": str(dans),
        "record_dir": str(records),
        "prevResult": result,
    }
    env = {"CNI_CONTAINERID": "sandbox1", "CNI_IFNAME": "net1", "CNI_NETNS": "/var/run/netns/x"}

    code, out = run_in_process(monkeypatch, capsys, "ADD", config, env)

    assert code == 0 and out == result
    dan = json.loads((dans / "sandbox1.json").read_text())
    (entry,) = dan["devices"]
    assert entry["name"] == "net1" and entry["guest_mac"] == "0a:58:0a:0a:00:05"
    assert entry["device"] == {"type": "vfio", "pci_device_id": bdf}
    assert entry["network_info"]["interface"]["ip_addresses"] == ["10.10.0.5/24"]
    record = json.loads((records / "sandbox1" / "net1.json").read_text())
    assert record["dan"] == str(dans / "sandbox1.json") and record["interface"]["inNetns"] is False

    code, out = run_in_process(monkeypatch, capsys, "CHECK", config, env)
    assert (code, out) == (0, None)
    code, out = run_in_process(monkeypatch, capsys, "DEL", config, env)
    assert (code, out) == (0, None)
    assert not (dans / "sandbox1.json").exists() and no_files(records)


def test_dan_file_refused_for_a_hypervisor_that_cannot_attach_it(monkeypatch, capsys, tmp_path):
    """The conflist's `hypervisor` (the Kata sandbox's): a vfio network with Firecracker, which
    cannot hot-plug VFIO, is a CNI error naming the network and why; no DAN file, no record."""
    from cdigen.pod import cni

    bdf = "0000:17:00.1"
    fake_vfio_sysfs(tmp_path / "root", bdf)
    monkeypatch.setattr(cni, "SYS_ROOT", str(tmp_path / "root"))
    monkeypatch.setattr(cni, "_link", lambda netns, ifname: None)
    result = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "net1", "mac": "0a:58:0a:0a:00:05", "sandbox": "/var/run/netns/x", "pciID": bdf}],
        "ips": [{"interface": 0, "address": "10.10.0.5/24"}],
    }
    dans, records = tmp_path / "dans", tmp_path / "records"
    config = {"cniVersion": "1.0.0", "name": "vfio-net", "type": "cdigen", "dan_dir": str(dans),
              "record_dir": str(records), "hypervisor": "firecracker", "prevResult": result}  # fmt: skip
    env = {"CNI_CONTAINERID": "sandbox1", "CNI_IFNAME": "net1", "CNI_NETNS": "/var/run/netns/x"}

    code, out = run_in_process(monkeypatch, capsys, "ADD", config, env)

    assert code == 1 and "vfio DAN device cannot work with the firecracker hypervisor" in out["msg"], out
    assert not (dans / "sandbox1.json").exists() and no_files(records)

    code, out = run_in_process(monkeypatch, capsys, "ADD", config | {"hypervisor": "qemu"}, env)
    assert code == 0 and (dans / "sandbox1.json").exists()
