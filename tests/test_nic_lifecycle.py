"""A physical NIC always comes home: the alias record, the poststop hook, the createRuntime
hook's restore of a device an earlier container left behind, rollback, `cdigen netdev restore`.

The kernel's return of a physical NIC from a dead namespace cannot be produced here (no
physical NIC to spare, no dummy or netdevsim): a veth dies with its namespace instead. So each
test reproduces the return's exact outcome with a fresh veth end (`come_home`): in the host
namespace under the name it had inside (or `dev<ifindex>`), with the inside MTU, the alias
cdigen set, no address and down. docs/netdev.md, "Lifecycle".
"""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from tests.helpers.netns import (
    RUNC_14_OCI_VERSION,
    addresses,
    come_home,
    ip,
    is_up,
    link,
    links,
    move,
    unique,
    write_bundle,
)
from tests.helpers.netns import state as create_state
from tests.helpers.proc import run_cdigen

pytestmark = [pytest.mark.usefixtures("needs_netns"), pytest.mark.root]


def stopped_state(bundle) -> str:
    return json.dumps({"ociVersion": "1.0.2", "id": "cdigen-test", "status": "stopped", "bundle": str(bundle)})


def hook(bundle, *args, oci_version="1.0.2"):
    return run_cdigen("hook", *args, input=create_state(bundle, oci_version=oci_version))


def poststop(bundle, *args):
    return run_cdigen("hook", "--poststop", *args, input=stopped_state(bundle))


def alias(name, netns=None) -> str:
    return (link(name, netns) or {}).get("ifalias", "")


def one_error_line(proc) -> str:
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cdigen: error: "), proc.stderr
    return lines[0]


def end_container(ns: str, *peers: str) -> None:
    """The container's namespace dies; its veths are destroyed (asynchronously, with their
    peers on the host)."""
    ip("netns", "del", os.path.basename(ns))
    for _ in range(300):
        if all(link(peer) is None for peer in peers):
            return
        time.sleep(0.01)
    raise AssertionError(f"{peers} outlived their peers' namespace")


def assert_home(host: str, mtu: int, up: bool, previous_alias: str = "", gone: str | None = None):
    info = link(host)
    assert info is not None, f"{host} is not home: {sorted(links())}"
    assert info["mtu"] == mtu
    assert is_up(info) is up
    assert info.get("ifalias", "") == previous_alias
    assert gone is None or link(gone) is None


def record_file(state_dir, host: str):
    return state_dir / "netdevs" / f"{host}.json"


@pytest.fixture
def container(net, tmp_path):
    """A container run by the hook: (host interface, its peer, netns, bundle, container name),
    with the host interface at MTU 1500 and up, configured inside as `cname` with MTU 9000."""
    ns = net.netns()
    end, peer = net.veth(mtu=1500, up=True)
    cname = unique("cdgn")
    bundle = write_bundle(tmp_path / "bundle", {end: {"name": cname, "address": "192.0.2.10/24", "mtu": 9000}}, ns)
    proc = hook(bundle)
    assert proc.returncode == 0, proc.stderr
    return end, peer, ns, bundle, cname


# ---------------------------------------------------------------------------- the record


def test_hook_records_host_settings_in_the_alias_before_moving(container, cdigen_state_dir):
    end, _, ns, _, cname = container
    assert alias(cname, ns) == f"cdigen host={end} mtu=1500 up=1"
    assert link(cname, ns)["mtu"] == 9000 and addresses(cname, ns) == ["192.0.2.10/24"]
    saved = json.loads(record_file(cdigen_state_dir, end).read_text())
    assert saved == {
        "alias": f"cdigen host={end} mtu=1500 up=1",
        "host": end,
        "kind": "veth",
        "perm_mac": "",
        "returns": False,  # a veth dies with the namespace: poststop never waits for it
        "addresses": [],
        "master": None,
    }


def test_runtime_moved_device_is_recorded_as_found_and_down(net, tmp_path):
    """runc >= 1.4 moved and renamed it before any hook: the hook records before changing it,
    with the MTU it finds; the host up state is unknown, so it stays down when it comes home."""
    ns = net.netns()
    end, _ = net.veth(mtu=1400, up=True)
    move(end, ns, "net0")
    bundle = write_bundle(tmp_path, {end: {"name": "net0", "mtu": 9000}}, ns)

    proc = hook(bundle, oci_version=RUNC_14_OCI_VERSION)

    assert proc.returncode == 0, proc.stderr
    assert alias("net0", ns) == f"cdigen host={end} mtu=1400 up=0"
    assert link("net0", ns)["mtu"] == 9000


def test_a_second_run_keeps_the_first_record(container):
    end, _, ns, bundle, cname = container
    assert hook(bundle).returncode == 0  # finds it in the container, MTU 9000 now
    assert alias(cname, ns) == f"cdigen host={end} mtu=1500 up=1"


def test_foreign_alias_is_carried_in_the_record_and_put_back(net, tmp_path):
    ns = net.netns()
    end, _ = net.veth(mtu=1500)
    ip("link", "set", "dev", end, "alias", "uplink to leaf 3")
    bundle = write_bundle(tmp_path, {end: {"name": "net0", "mtu": 9000}}, ns)

    assert hook(bundle).returncode == 0
    assert alias("net0", ns) == f"cdigen host={end} mtu=1500 up=0 alias=uplink to leaf 3"
    proc = poststop(bundle)  # the named namespace outlives the container: taken out of it

    assert (proc.returncode, proc.stderr) == (0, "")
    assert_home(end, 1500, up=False, previous_alias="uplink to leaf 3")
    assert links(ns).keys() == {"lo"}


def test_alias_too_long_for_the_record_is_refused_before_anything_moves(net, tmp_path, cdigen_state_dir):
    ns = net.netns()
    end, _ = net.veth(mtu=1500, up=True)
    long_alias = "r" * 240
    ip("link", "set", "dev", end, "alias", long_alias)
    bundle = write_bundle(tmp_path, {end: {"name": "net0", "mtu": 9000}}, ns)

    proc = hook(bundle)

    assert proc.returncode == 1
    line = one_error_line(proc)
    assert f"{end}: its interface alias is 240 bytes;" in line and "shorten or clear it" in line
    assert_home(end, 1500, up=True, previous_alias=long_alias)
    assert links(ns).keys() == {"lo"}
    assert not record_file(cdigen_state_dir, end).exists()


def test_another_hosts_record_is_refused_before_anything_moves(net, tmp_path):
    """A device carrying cdigen's record for another host name (it came home and someone
    renamed it by hand): the hook will not guess which name is right."""
    ns = net.netns()
    end, _ = net.veth(mtu=1500)
    ip("link", "set", "dev", end, "alias", "cdigen host=cdgother0 mtu=1500 up=1")
    bundle = write_bundle(tmp_path, {end: {"name": "net0"}}, ns)

    proc = hook(bundle)

    assert proc.returncode == 1
    assert f"{end}: its interface alias is cdigen's record for cdgother0" in one_error_line(proc)
    assert alias(end) == "cdigen host=cdgother0 mtu=1500 up=1"
    assert links(ns).keys() == {"lo"}


# ---------------------------------------------------------------------------- poststop


@pytest.mark.parametrize("returned_as", ["container name", "devN"])
def test_poststop_restores_a_returned_nic(net, container, returned_as, cdigen_state_dir):
    end, peer, ns, bundle, cname = container
    record = alias(cname, ns)
    end_container(ns, peer)
    name = come_home(net, cname if returned_as == "container name" else None, 9000, record)

    proc = poststop(bundle)

    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", ""), proc.stderr
    assert_home(end, 1500, up=True, gone=name)
    assert addresses(end) == []
    assert not record_file(cdigen_state_dir, end).exists()


def test_poststop_takes_the_nic_out_of_a_namespace_that_outlives_the_container(container):
    """A namespace with a path in config.json (one a CNI plugin or a pod made) does not die
    with the container: nothing would ever return the device, so the poststop hook does."""
    end, _, ns, bundle, cname = container

    proc = poststop(bundle)

    assert (proc.returncode, proc.stderr) == (0, "")
    assert_home(end, 1500, up=True)
    assert links(ns).keys() == {"lo"}


def test_poststop_waits_for_a_nic_that_comes_back_late(net, container, cdigen_state_dir):
    end, peer, ns, bundle, cname = container
    record = alias(cname, ns)
    path = record_file(cdigen_state_dir, end)
    path.write_text(path.read_text().replace('"returns": false', '"returns": true'))  # as for a physical NIC
    end_container(ns, peer)
    later = threading.Timer(0.5, come_home, (net, cname, 9000, record))
    later.start()
    try:
        start = time.monotonic()
        proc = poststop(bundle)
        elapsed = time.monotonic() - start
    finally:
        later.join()

    assert (proc.returncode, proc.stderr) == (0, "")
    assert 0.5 <= elapsed < 3.0
    assert_home(end, 1500, up=True, gone=cname)


def test_poststop_gives_up_after_the_bound(net, container, cdigen_state_dir):
    end, peer, ns, bundle, _ = container
    path = record_file(cdigen_state_dir, end)
    path.write_text(path.read_text().replace('"returns": false', '"returns": true'))
    end_container(ns, peer)

    start = time.monotonic()
    proc = poststop(bundle)
    elapsed = time.monotonic() - start

    assert proc.returncode == 1
    assert one_error_line(proc) == (
        f"cdigen: error: {end}: not back on the host 3 s after the container ended (still in a namespace?); "
        "`cdigen netdev restore` brings it home once it is back"
    )
    assert 3.0 <= elapsed < 5.0
    assert path.exists()  # kept: a later poststop or restore may still need it


def test_poststop_for_a_veth_that_died_is_quick_and_quiet(container, cdigen_state_dir):
    end, peer, ns, bundle, _ = container
    end_container(ns, peer)

    start = time.monotonic()
    proc = poststop(bundle)

    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert time.monotonic() - start < 1.0  # no wait: its record file says it does not come back
    assert not record_file(cdigen_state_dir, end).exists()


def test_poststop_name_taken_one_line_and_the_others_still_restored(net, tmp_path):
    ns = net.netns()
    first, first_peer = net.veth(mtu=1500)
    second, second_peer = net.veth(mtu=1400)
    names = unique("cdgn"), unique("cdgn")
    bundle = write_bundle(tmp_path, {first: {"name": names[0]}, second: {"name": names[1], "mtu": 9000}}, ns)
    assert hook(bundle).returncode == 0
    records = alias(names[0], ns), alias(names[1], ns)
    end_container(ns, first_peer, second_peer)
    squatter, _ = net.veth()
    ip("link", "set", "dev", squatter, "name", first)  # something else took the first one's host name
    for name, record in zip(names, records, strict=True):
        come_home(net, name, 9000, record)

    proc = poststop(bundle)

    assert proc.returncode == 1
    assert one_error_line(proc) == (
        f"cdigen: error: {first}: cannot take its name back from {names[0]}: another interface "
        f"(index {link(first)['ifindex']}) is called {first}"
    )
    assert alias(names[0]) == records[0] and link(names[0])["mtu"] == 9000  # left for a later try
    assert_home(second, 1400, up=False, gone=names[1])


# ---------------------------------------------------------------------------- createRuntime meets a stale device


@pytest.mark.parametrize("left_as", ["container name", "devN"])
def test_create_runtime_restores_a_device_an_earlier_container_left_behind(net, tmp_path, left_as):
    end, _ = net.veth()  # stands for the NIC's identity; the device itself is the returned one
    ip("link", "del", end)
    stale = come_home(
        net, unique("cdgn") if left_as == "container name" else None, 9000, f"cdigen host={end} mtu=1500 up=0"
    )
    ns = net.netns()
    bundle = write_bundle(tmp_path, {end: {"name": "net0", "address": "192.0.2.10/24", "mtu": 4000}}, ns)

    proc = hook(bundle)

    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == f"cdigen: restored {end} (was {stale}, MTU 9000 -> 1500)\n"
    assert link(stale) is None and link(end) is None
    inside = link("net0", ns)
    assert inside["mtu"] == 4000 and is_up(inside) and addresses("net0", ns) == ["192.0.2.10/24"]
    assert alias("net0", ns) == f"cdigen host={end} mtu=1500 up=0"  # the host MTU, not the stale 9000


def test_create_runtime_restores_the_mtu_of_a_device_home_under_its_own_name(net, tmp_path):
    """The container name was the host name: the NIC came home under its own name, with the
    container's MTU and cdigen's record. The record, not the MTU found, is the host's."""
    end, _ = net.veth(mtu=9000)
    ip("link", "set", "dev", end, "alias", f"cdigen host={end} mtu=1500 up=1 alias=rack 7")
    ns = net.netns()
    bundle = write_bundle(tmp_path, {end: {"mtu": 9000}}, ns)

    proc = hook(bundle)

    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == f"cdigen: restored {end} (MTU 9000 -> 1500)\n"
    assert alias(end, ns) == f"cdigen host={end} mtu=1500 up=1 alias=rack 7"


# ---------------------------------------------------------------------------- rollback


def test_rollback_puts_back_the_alias_and_drops_the_record_file(net, tmp_path, cdigen_state_dir):
    ns = net.netns()
    parent, _ = net.veth(mtu=1500)
    mac = net.macvlan(parent)
    ip("link", "set", "dev", mac, "up", "alias", "storage")
    bundle = write_bundle(tmp_path, {mac: {"name": "net0", "mtu": 9000}}, ns)  # the kernel refuses 9000

    proc = hook(bundle)

    assert proc.returncode == 1
    assert f"moved back to the host: {mac}" in one_error_line(proc)
    assert_home(mac, 1500, up=True, previous_alias="storage")
    assert not record_file(cdigen_state_dir, mac).exists()


def test_rollback_of_a_device_that_never_left_drops_its_record(net, tmp_path, cdigen_state_dir):
    """The record is written, then the move fails: a bridge never leaves its namespace."""
    ns = net.netns()
    bridge = unique("cdgbr")
    ip("link", "add", "name", bridge, "type", "bridge")
    net._links.append(bridge)
    ip("link", "set", "dev", bridge, "alias", "lab bridge")
    bundle = write_bundle(tmp_path, {bridge: {"name": "net0"}}, ns)

    proc = hook(bundle)

    assert proc.returncode == 1
    assert f"{bridge}: move into the container's network namespace as net0: " in one_error_line(proc)
    assert alias(bridge) == "lab bridge"  # the record set before the failure is gone again
    assert not record_file(cdigen_state_dir, bridge).exists()
    assert links(ns).keys() == {"lo"}


# ---------------------------------------------------------------------------- cdigen netdev restore


def test_netdev_restore_brings_every_marked_device_home(net):
    """Run in a namespace of its own standing for the host, so that "every" is exactly these
    (the real host may hold other tests' devices)."""
    host = net.netns()
    for end, peer, mtu, record in [
        ("cdgn0", "cdgq0", 9000, "cdigen host=ibp20s0 mtu=1500 up=1"),
        ("cdgn1", "cdgq1", 4000, "cdigen host=ibp22s0 mtu=1400 up=0 alias=rack 7"),
    ]:
        ip("link", "add", end, "type", "veth", "peer", "name", peer, netns=host)
        ip("link", "set", "dev", end, "mtu", str(mtu), "alias", record, netns=host)
    devn = f"dev{link('cdgn1', host)['ifindex']}"
    ip("link", "set", "dev", "cdgn1", "name", devn, netns=host)
    restore = ["nsenter", f"--net={host}", sys.executable, "-m", "cdigen", "netdev", "restore"]

    proc = subprocess.run(restore, capture_output=True, text=True)

    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    assert proc.stdout == (
        f"restored ibp20s0 (was cdgn0, MTU 9000 -> 1500)\nrestored ibp22s0 (was {devn}, MTU 4000 -> 1400)\n"
    )
    first, second = link("ibp20s0", host), link("ibp22s0", host)
    assert first["mtu"] == 1500 and is_up(first) and "ifalias" not in first
    assert second["mtu"] == 1400 and not is_up(second) and second["ifalias"] == "rack 7"
    peer = link("cdgq0", host)  # no record: untouched
    assert peer["mtu"] == 1500 and "ifalias" not in peer
    assert sorted(links(host)) == ["cdgq0", "cdgq1", "ibp20s0", "ibp22s0", "lo"]
    again = subprocess.run(restore, capture_output=True, text=True)
    assert (again.returncode, again.stdout) == (0, "nothing to restore: no interface carries cdigen's record\n")


def test_netdev_restore_named_interfaces_only(net):
    a, _ = net.veth()
    ip("link", "del", a)
    left = come_home(net, unique("cdgn"), 9000, f"cdigen host={a} mtu=1500 up=0")
    home, _ = net.veth()
    untouched = come_home(net, unique("cdgn"), 9000, "cdigen host=cdgnotme0 mtu=1500 up=0")

    proc = run_cdigen("netdev", "restore", a, home)

    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == f"restored {a} (was {left}, MTU 9000 -> 1500)\n{home}: already home\n"
    assert link(untouched)["mtu"] == 9000


def test_netdev_restore_tries_the_others_then_exits_1(net):
    a, _ = net.veth()
    b, _ = net.veth()
    ip("link", "del", b)
    blocked = come_home(net, unique("cdgn"), 9000, f"cdigen host={a} mtu=1500 up=0")  # `a` still exists
    fine = come_home(net, unique("cdgn"), 9000, f"cdigen host={b} mtu=1500 up=0")

    proc = run_cdigen("netdev", "restore", a, b, "cdgnosuch0")

    assert proc.returncode == 1
    out = proc.stdout.splitlines()
    assert f"restored {b} (was {fine}, MTU 9000 -> 1500)" in out
    assert f"not restored: {a}: cannot take its name back from {blocked}: another interface" in out[1]
    assert out[2] == "not restored: cdgnosuch0: not on the host, and no interface carries cdigen's record for it"
    assert one_error_line(proc).startswith("cdigen: error: netdev restore: 2 interfaces not restored: ")
    assert link(blocked)["mtu"] == 9000 and alias(blocked) == f"cdigen host={a} mtu=1500 up=0"  # unchanged
    assert_home(b, 1500, up=False, gone=fine)
