"""A NIC's life across containers with the real runc (Debian's 1.1.5): CDI spec -> `cdigen
apply` (createRuntime and poststop entries) -> `runc run` -> the container ends -> the NIC
comes home -> the next container gets it again.

runc >= 1.4 is emulated as test_hook_netns.py does it, here with a createRuntime hook entry
placed before cdigen's: it moves and renames the host interface into the container's
namespace, as such a runtime does before any hook runs. The kernel's return of a physical NIC
is emulated as in test_nic_lifecycle.py (`come_home`): the veth dies with the container, and a
fresh one stands in the host namespace under the container name, with the inside MTU and the
alias cdigen set, which the container printed.
"""

import json
import os
import shutil
import subprocess
import time

import pytest

from cdigen.hookentry import default_hook_path
from tests.helpers.netns import come_home, is_up, link, unique
from tests.helpers.proc import run_cdigen
from tests.helpers.runc import parse_ip_addr, runc_bundle
from tests.helpers.specs import cdi_spec, scan_device, write_spec

pytestmark = [pytest.mark.usefixtures("needs_runc"), pytest.mark.root, pytest.mark.runc]

KIND = "test.cdigen.io/lifecycle"
SETTINGS = "address=192.0.2.10,mask=255.255.255.0,mtu=9000"


def runtime_moves_it(host: str, cname: str) -> dict:
    """A createRuntime entry doing what runc >= 1.4 does before any hook: move the host
    interface into the container's namespace (the state's pid) under its container name.
    runc 1.1.5's state says ociVersion 1.0.2-dev, which proves nothing about a move (cdigen
    hook.runtime_moved): the emulation leaves the host name as an alternative name, the proof
    the hook accepts in its place."""
    ip = shutil.which("ip")
    script = (
        "pid=$(sed -n 's/.*\"pid\": *\\([0-9][0-9]*\\).*/\\1/p'); "
        f'{ip} link set dev {host} netns "$pid" name {cname} && '
        f"exec {shutil.which('nsenter')} --net=/proc/$pid/ns/net {ip} link property add dev {cname} altname {host}"
    )
    return {"path": "/bin/sh", "args": ["sh", "-c", script]}


def bundle_for(tmp_path, rootfs, host: str, cname: str, tag: str, runtime_moves: bool = False) -> str:
    """A bundle whose container prints `ip addr` and its interface's alias, made with
    `cdigen apply` from a spec shaped like scan's."""
    bundle = runc_bundle(tmp_path / tag, rootfs, ["sh", "-c", f"ip addr; cat /sys/class/net/{cname}/ifalias"])
    spec_dir = tmp_path / "cdi"
    settings = {host: f"name={cname},{SETTINGS}"}
    nic = scan_device("nic0", nics=[(host, cname)], settings=settings, hook_path=default_hook_path())
    write_spec(spec_dir, "lifecycle.yaml", cdi_spec([nic], KIND))
    run_cdigen(
        "apply", bundle, "--spec-dir", spec_dir, "--device", f"{KIND}=nic0", "--hook-path", default_hook_path(), check=0
    )
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    if runtime_moves:
        config["hooks"]["createRuntime"].insert(0, runtime_moves_it(host, cname))
        with open(path, "w") as f:
            json.dump(config, f)
    return bundle


def poststop_entry(bundle: str) -> dict:
    with open(os.path.join(bundle, "config.json")) as f:
        [entry] = json.load(f)["hooks"]["poststop"]
    return entry


def run_poststop(bundle: str) -> subprocess.CompletedProcess:
    """The config's poststop entry, run as runc runs it: path, args, state on stdin."""
    entry = poststop_entry(bundle)
    state = json.dumps({"ociVersion": "1.0.2", "id": "c1", "status": "stopped", "bundle": bundle})
    return subprocess.run(entry["args"], executable=entry["path"], input=state, capture_output=True, text=True)


def inside(proc, cname: str) -> tuple[dict, str]:
    """(`ip addr` of the container's interface, its alias) from the container's output."""
    assert proc.returncode == 0, proc.stderr
    return parse_ip_addr(proc.stdout)[cname], proc.stdout.splitlines()[-1]


def assert_configured(info: dict) -> None:
    assert info["mtu"] == 9000 and "UP" in info["flags"] and "192.0.2.10/24" in info["addrs"]


def wait_gone(name: str) -> None:
    for _ in range(300):
        if link(name) is None:
            return
        time.sleep(0.01)
    raise AssertionError(f"{name} is still there")


def test_apply_writes_the_poststop_entry_beside_the_create_runtime_one(net, tmp_path, rootfs):
    host, _ = net.veth()
    bundle = bundle_for(tmp_path, rootfs, host, "net0", "b")
    with open(os.path.join(bundle, "config.json")) as f:
        hooks = json.load(f)["hooks"]
    assert [h["args"][:3] for h in hooks["createRuntime"]] == [["cdigen", "hook", "--netdev"]]
    assert poststop_entry(bundle) == {
        "path": default_hook_path(),
        "args": ["cdigen", "hook", "--poststop", "--netdev", f"{host}=name=net0,{SETTINGS}"],
    }


def test_runc_nic_comes_home_after_the_container_and_the_next_one_gets_it(net, runc, rootfs, tmp_path):
    host, peer = net.veth(mtu=1500, up=True)
    cname = unique("cdgn")
    bundle = bundle_for(tmp_path, rootfs, host, cname, "b")

    first, record = inside(runc.run(bundle), cname)  # runc ran the poststop hook at the end too

    assert_configured(first)
    assert record == f"cdigen host={host} mtu=1500 up=1"
    wait_gone(peer)  # the veth died with the container: a physical NIC would come back instead
    returned = come_home(net, cname, 9000, record)
    proc = run_poststop(bundle)
    assert (proc.returncode, proc.stderr) == (0, "")
    back = link(host)
    assert back["mtu"] == 1500 and is_up(back) and "ifalias" not in back
    assert link(returned) is None

    second, record = inside(runc.run(bundle), cname)

    assert_configured(second)
    assert record == f"cdigen host={host} mtu=1500 up=1"
    assert runc.containers() == []


def test_runc_create_runtime_restores_what_the_last_container_left(net, runc, rootfs, tmp_path):
    """No poststop ran (or it gave up before the NIC came back): the next container's hook
    finds the NIC under the old container name and restores it before moving it."""
    host, peer = net.veth(mtu=1500)
    cname = unique("cdgn")
    bundle = bundle_for(tmp_path, rootfs, host, cname, "b")
    _, record = inside(runc.run(bundle), cname)
    wait_gone(peer)
    come_home(net, cname, 9000, record)

    second, record_again = inside(runc.run(bundle), cname)

    assert_configured(second)
    assert record_again == record == f"cdigen host={host} mtu=1500 up=0"  # the host MTU, not 9000


def test_runc_14_emulated_netdev_restore_brings_the_nic_home_for_the_next_container(net, runc, rootfs, tmp_path):
    """runc >= 1.4 moves by host name before any hook, so a NIC left under the container name
    must be home first: `cdigen netdev restore` (say, from a boot unit) does it."""
    host, peer = net.veth(mtu=1500, up=True)
    cname = unique("cdgn")
    bundle = bundle_for(tmp_path, rootfs, host, cname, "b", runtime_moves=True)

    first, record = inside(runc.run(bundle), cname)

    assert_configured(first)
    assert record == f"cdigen host={host} mtu=1500 up=0"  # recorded where the runtime left it
    wait_gone(peer)
    come_home(net, cname, 9000, record)

    proc = run_cdigen("netdev", "restore", host)

    assert (proc.returncode, proc.stdout) == (0, f"restored {host} (was {cname}, MTU 9000 -> 1500)\n")
    second, _ = inside(runc.run(bundle), cname)
    assert_configured(second)


def test_runc_14_emulated_a_failed_start_still_brings_the_nic_home(net, runc, rootfs, tmp_path):
    """The next container fails where runc >= 1.4 looks for the host name, but runc runs the
    poststop hooks of the failed container too: the NIC is home for the one after."""
    host, peer = net.veth(mtu=1500)
    cname = unique("cdgn")
    bundle = bundle_for(tmp_path, rootfs, host, cname, "b", runtime_moves=True)
    _, record = inside(runc.run(bundle), cname)
    wait_gone(peer)
    come_home(net, cname, 9000, record)

    blocked = runc.run(bundle)

    assert blocked.returncode != 0 and "error running hook #0" in blocked.stderr
    assert "Cannot find device" in blocked.stderr and host in blocked.stderr
    back = link(host)
    assert back["mtu"] == 1500 and "ifalias" not in back and link(cname) is None
    third, _ = inside(runc.run(bundle), cname)
    assert_configured(third)
