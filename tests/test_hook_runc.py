"""End to end with a real runtime: CDI spec -> `cdigen apply` -> `runc run` (Debian's runc
1.1.5, which ignores linux.netDevices) -> the cdigen createRuntime hook moves, renames,
addresses, sets the MTU of and brings up the interface; busybox `ip addr` shows it inside.
Failures: the container does not start, the error names the cause, the host device is back
under its original name and MTU."""

import json
import os

import pytest

from cdigen.hookentry import cdi_hook, default_hook_path
from tests.helpers.netns import ip, is_up, link
from tests.helpers.proc import run_cdigen
from tests.helpers.runc import parse_ip_addr, runc_bundle
from tests.helpers.specs import cdi_spec, scan_device, write_spec

pytestmark = [pytest.mark.usefixtures("needs_runc"), pytest.mark.root, pytest.mark.runc]

KIND = "test.cdigen.io/net"
SETTINGS = "address=192.0.2.10,mask=255.255.255.0,mtu=9000"


def write_cdi_spec(spec_dir, hostif: str, name: str, settings: str = SETTINGS) -> None:
    """A CDI spec as `cdigen scan` would write one NIC of one device (no device nodes)."""
    nic = scan_device(
        "nic0", nics=[(hostif, name)], settings={hostif: f"name={name},{settings}"}, hook_path=default_hook_path()
    )
    write_spec(spec_dir, "test-net.yaml", cdi_spec([nic], KIND))


def apply(bundle: str, spec_dir) -> None:
    """`cdigen apply BUNDLE --spec-dir DIR --device KIND=nic0 --hook-path PATH`."""
    run_cdigen(
        "apply", bundle, "--spec-dir", spec_dir, "--device", f"{KIND}=nic0", "--hook-path", default_hook_path(), check=0
    )


def start(runc, rootfs, tmp_path, hostif: str, name: str, settings: str = SETTINGS):
    bundle = runc_bundle(tmp_path / "bundle", rootfs, ["ip", "addr"])
    write_cdi_spec(tmp_path / "cdi", hostif, name, settings)
    apply(bundle, tmp_path / "cdi")
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    assert hostif in config["linux"]["netDevices"]
    assert any(h["path"] == default_hook_path() for h in config["hooks"]["createRuntime"])
    return runc.run(bundle)


def test_runc_container_sees_net0_configured(net, runc, rootfs, tmp_path):
    end, peer = net.veth(mtu=1500)
    # The peer is up so that net0 gets a carrier (LOWER_UP), as a cabled NIC would.
    ip("link", "set", peer, "up")

    proc = start(runc, rootfs, tmp_path, end, "net0")

    assert proc.returncode == 0, proc.stderr
    inside = parse_ip_addr(proc.stdout)
    assert sorted(inside) == ["lo", "net0"], proc.stdout
    assert inside["net0"]["mtu"] == 9000
    assert "UP" in inside["net0"]["flags"] and "LOWER_UP" in inside["net0"]["flags"]
    assert "192.0.2.10/24" in inside["net0"]["addrs"]
    assert runc.containers() == []


def test_runc_config_from_another_cdi_injector(net, runc, rootfs, tmp_path):
    """containerd/CRI-O/podman inject CDI netDevices as {name} only and copy the hook entry
    (minus hookName) into hooks.createRuntime: the hook's --netdev args carry the rest."""
    end, _ = net.veth(mtu=1500)
    bundle = runc_bundle(tmp_path / "bundle", rootfs, ["ip", "addr"])
    hook = cdi_hook(default_hook_path(), [f"{end}=name=net0,{SETTINGS}"])
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["linux"]["netDevices"] = {end: {"name": "net0"}}
    config["hooks"] = {"createRuntime": [{"path": hook["path"], "args": hook["args"]}]}
    with open(path, "w") as f:
        json.dump(config, f)

    proc = runc.run(bundle)

    assert proc.returncode == 0, proc.stderr
    inside = parse_ip_addr(proc.stdout)
    assert inside["net0"]["mtu"] == 9000 and "UP" in inside["net0"]["flags"]
    assert "192.0.2.10/24" in inside["net0"]["addrs"]


def _assert_failed(proc, runc, cause: str):
    assert proc.returncode != 0
    assert "error running hook" in proc.stderr
    assert cause in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""  # `ip addr` never ran
    assert runc.containers() == []


def test_runc_container_name_taken_inside(net, runc, rootfs, tmp_path):
    end, _ = net.veth(mtu=1500)

    proc = start(runc, rootfs, tmp_path, end, "lo")

    _assert_failed(proc, runc, f"{end}: container name lo is already taken")
    assert link(end)["mtu"] == 1500


def test_runc_mtu_above_device_maximum(net, runc, rootfs, tmp_path):
    tap = net.tap()  # reports max_mtu 65521

    proc = start(runc, rootfs, tmp_path, tap, "net0", "address=192.0.2.10/24,mtu=65530")

    _assert_failed(proc, runc, f"{tap}: MTU 65530 is above the device maximum (min MTU 68, max MTU 65521)")
    assert link(tap)["mtu"] == 1500


def test_runc_mtu_refused_by_the_kernel_after_the_move(net, runc, rootfs, tmp_path):
    """macvlan: max_mtu says 65535 but the parent's 1500 is the real limit; the kernel refuses
    after the move, and the macvlan must come back (it would die with the container)."""
    parent, _ = net.veth(mtu=1500)
    mac = net.macvlan(parent)
    ip("link", "set", mac, "up")

    proc = start(runc, rootfs, tmp_path, mac, "net0")

    _assert_failed(proc, runc, f"{mac}: set MTU 9000 on net0: Invalid argument; moved back to the host: {mac}")
    back = link(mac)
    assert back["mtu"] == 1500 and is_up(back)


def test_runc_host_interface_missing(net, runc, rootfs, tmp_path):
    proc = start(runc, rootfs, tmp_path, "cdgnosuch0", "net0")

    _assert_failed(proc, runc, "host interface cdgnosuch0 not found")
