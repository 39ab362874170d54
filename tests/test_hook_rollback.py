"""Issue 12, the hook's rollback: whatever way an interface leaves the host and comes back
(rollback, poststop, `netdev restore`, after a hook killed with SIGKILL), it comes back with
everything it had: name, MTU, addresses, master (bridge) and up state. The hook never takes the
container's own interface for a missing host interface, never matches a device by a zero or
shared MAC, and two hooks for the same interface do not fight over it. docs/netdev.md,
"Lifecycle" and "Known gaps".
"""

import fcntl
import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from cdigen.hook import configure, record
from cdigen.netdev import NetdevSettings
from tests.helpers.netns import addresses, ip, is_up, link, links, state, unique, write_bundle
from tests.helpers.proc import run_cdigen

STALL = "CDIGEN_TEST_STALL_AFTER_MOVE"


def host_settings(name: str) -> dict:
    info = link(name)
    assert info is not None, f"{name} is not on the host: {sorted(links())}"
    return {
        "name": info["ifname"],
        "mtu": info["mtu"],
        "addresses": addresses(name),
        "master": info.get("master"),
        "up": is_up(info),
        "alias": info.get("ifalias", ""),
    }


def bridge(net) -> str:
    name = unique("cdgbr")
    ip("link", "add", "name", name, "type", "bridge")
    net._links.append(name)
    ip("link", "set", "dev", name, "up")
    return name


def bridged_port(net, mtu=1400) -> str:
    """A veth end, up, a port of a bridge, with two IPv4 and two IPv6 global addresses."""
    br = bridge(net)
    end, _ = net.veth(mtu=mtu, up=True)
    ip("link", "set", "dev", end, "master", br)
    for addr in ("198.51.100.5/24", "198.51.100.6/24", "10.77.0.1/16"):
        ip("addr", "add", addr, "dev", end)
    for addr in ("2001:db8:5::5/64", "2001:db8:5::6/64"):
        ip("addr", "add", addr, "dev", end, "nodad")
    return end


def failing_macvlan(net) -> str:
    """A macvlan, up, with an address: the kernel refuses MTU 9000 after the move (parent 1500)."""
    parent, _ = net.veth(mtu=1500)
    mac = net.macvlan(parent)
    ip("link", "set", "dev", mac, "up")
    ip("addr", "add", "203.0.113.9/28", "dev", mac)
    return mac


def hook(bundle, *args, env=None, oci_version="1.0.2"):
    return run_cdigen("hook", *args, input=state(bundle, oci_version=oci_version), env=env)


def stopped(bundle) -> str:
    return json.dumps({"ociVersion": "1.0.2", "id": "cdigen-test", "status": "stopped", "bundle": str(bundle)})


def one_error_line(proc) -> str:
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cdigen: error: "), proc.stderr
    return lines[0]


# ---------------------------------------------------------------------------- rollback gives back everything


@pytest.mark.usefixtures("needs_netns")
@pytest.mark.root
def test_rollback_restores_name_mtu_addresses_master_and_up(net, tmp_path):
    """The first interface is moved and fully configured, the second fails after its move:
    both come back exactly as they were on the host."""
    ns = net.netns()
    port = bridged_port(net)
    mac = failing_macvlan(net)
    before = {port: host_settings(port), mac: host_settings(mac)}
    bundle = write_bundle(
        tmp_path,
        {port: {"name": "net0", "address": "192.0.2.10/24", "mtu": 9000}, mac: {"name": "net1", "mtu": 9000}},
        ns,
    )

    proc = hook(bundle)

    assert proc.returncode == 1
    line = one_error_line(proc)
    assert f"moved back to the host: {mac}, {port}" in line and "rollback failed" not in line
    assert {port: host_settings(port), mac: host_settings(mac)} == before
    assert links(ns).keys() == {"lo"}


@pytest.mark.usefixtures("needs_netns")
@pytest.mark.root
def test_rollback_of_a_runtime_moved_device_gives_back_the_addresses_runc_copied(net, tmp_path):
    """runc >= 1.4 copies the host's permanent global addresses into the container: they are
    the host's, and go back with the device."""
    ns = net.netns()
    end, _ = net.veth(mtu=1500)
    ip("addr", "add", "198.51.100.7/24", "dev", end)
    ip("link", "set", "dev", end, "netns", os.path.basename(ns), "name", "net0")
    ip("addr", "add", "198.51.100.7/24", "dev", "net0", netns=ns)  # as runc re-adds it
    mac = failing_macvlan(net)
    bundle = write_bundle(tmp_path, {end: {"name": "net0", "mtu": 9000}, mac: {"name": "net1", "mtu": 9000}}, ns)

    proc = hook(bundle, oci_version="1.3.0")

    assert proc.returncode == 1
    assert "rollback failed" not in one_error_line(proc)
    back = host_settings(end)
    assert (back["mtu"], back["addresses"], back["up"]) == (1500, ["198.51.100.7/24"], False)  # up: unknown


# ---------------------------------------------------------------------------- the container's own interface


@pytest.mark.usefixtures("needs_netns")
@pytest.mark.root
def test_container_own_interface_is_not_taken_for_a_missing_host_interface(net, tmp_path):
    """A CNI plugin made net0 in the container; the host interface is gone. The hook refuses,
    naming both, and neither it nor a failing later hook entry's rollback touches net0."""
    ns = net.netns()
    own, _ = net.veth(mtu=1450)
    ip("link", "set", "dev", own, "netns", os.path.basename(ns), "name", "net0")
    ip("addr", "add", "10.88.0.5/16", "dev", "net0", netns=ns)
    ip("link", "set", "dev", "net0", "up", netns=ns)
    mac = failing_macvlan(net)
    missing = unique("cdgmiss")
    bundle = write_bundle(tmp_path, {missing: {"name": "net0", "mtu": 9000}, mac: {"name": "net1", "mtu": 9000}}, ns)

    alone = hook(bundle, "--netdev", missing)
    later = hook(bundle, "--netdev", mac)  # fails after its move; rollback looks at the others too

    line = one_error_line(alone)
    assert alone.returncode == 1 and missing in line and "net0" in line and "not proven" in line
    assert later.returncode == 1 and "rollback failed" not in one_error_line(later)
    inside = link("net0", ns)
    assert inside is not None and inside["mtu"] == 1450 and is_up(inside) and "ifalias" not in inside
    assert addresses("net0", ns) == ["10.88.0.5/16"]
    assert link(missing) is None
    assert link(mac) is not None


@pytest.mark.usefixtures("needs_netns")
@pytest.mark.root
def test_an_alternative_name_proves_the_interface_is_the_host_one(net, tmp_path):
    ns = net.netns()
    end, _ = net.veth(mtu=1500)
    ip("link", "set", "dev", end, "netns", os.path.basename(ns), "name", "net0")
    ip("link", "property", "add", "dev", "net0", "altname", end, netns=ns)
    bundle = write_bundle(tmp_path, {end: {"name": "net0", "address": "192.0.2.10/24", "mtu": 9000}}, ns)

    proc = hook(bundle)

    assert proc.returncode == 0, proc.stderr
    assert link("net0", ns)["mtu"] == 9000 and addresses("net0", ns) == ["192.0.2.10/24"]


# ---------------------------------------------------------------------------- zero and shared MACs


@pytest.mark.usefixtures("needs_netns")
@pytest.mark.root
def test_a_portless_bridge_zero_mac_never_matches_the_containers_lo(net, tmp_path):
    ns = net.netns()
    br = bridge(net)
    ip("link", "set", "dev", br, "down")  # without ports: an all-zero MAC on kernels before 5.x (random here)
    bundle = write_bundle(tmp_path, {br: {"name": "net0"}}, ns)

    proc = hook(bundle)

    assert proc.returncode == 1
    line = one_error_line(proc)
    assert f"{br}: move into the container's network namespace as net0" in line
    assert "rollback failed" not in line and "moved back" not in line
    assert links(ns).keys() == {"lo"} and link(br) is not None


def fake(index, name, mac, alias="", flags=0):
    return SimpleNamespace(index=index, name=name, mac=mac, alias=alias, flags=flags, loopback=bool(flags & 8))


class FakeTarget:
    def __init__(self, *items):
        self.items = items

    def get_link(self, name=None, index=0):
        return next((x for x in self.items if (name and x.name == name) or (index and x.index == index)), None)

    def links(self):
        return list(self.items)


def placed(mac, index=42):
    return configure._Placed(NetdevSettings("br0", "net%d"), index, mac, 1500, False)


@pytest.mark.parametrize(
    "items, mac, found",
    [
        ((fake(1, "lo", bytes(6), flags=8),), bytes(6), None),  # zero MAC: never by MAC, never lo
        ((fake(1, "lo", bytes(6), flags=8), fake(7, "eth0", bytes(6))), bytes(6), None),
        ((fake(7, "net3", b"\x02" * 6), fake(8, "vlan9", b"\x02" * 6)), b"\x02" * 6, None),  # shared MAC
        ((fake(7, "net3", b"\x02" * 6), fake(8, "eth1", b"\x04" * 6)), b"\x02" * 6, "net3"),  # unique MAC
        ((fake(7, "net3", bytes(6), alias="cdigen host=br0 mtu=1500 up=0"),), bytes(6), "net3"),  # its record
        ((fake(42, "other", b"\x04" * 6),), b"\x02" * 6, None),  # the ifindex alone is not it
    ],
)
def test_find_in_target_never_matches_by_a_zero_or_shared_mac(items, mac, found):
    link_found = configure._find_in_target(FakeTarget(*items), placed(mac))
    assert (link_found.name if link_found else None) == found


# ---------------------------------------------------------------------------- two hooks, one interface


def start_hook(bundle, env=None) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cdigen", "hook"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    proc.stdin.write(state(bundle))
    proc.stdin.close()
    return proc


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


@pytest.mark.usefixtures("needs_netns")
@pytest.mark.root
@pytest.mark.parametrize("stall", [False, True])
def test_two_hooks_for_the_same_interface_one_wins_the_other_touches_nothing(net, tmp_path, stall):
    """Two containers want the same interface at once. The second waits for the first's lock
    (with `stall`, while the first sits between its move and its MTU), then finds the
    interface gone and fails: its rollback must not take it from the winner."""
    port = bridged_port(net)
    first_ns, second_ns = net.netns(), net.netns()
    settings = {"name": "net0", "address": "192.0.2.10/24", "mtu": 9000}
    first = write_bundle(tmp_path / "a", {port: settings}, first_ns)
    second = write_bundle(tmp_path / "b", {port: settings}, second_ns)

    a = start_hook(first, {STALL: "1"} if stall else None)
    if stall:
        wait_for(lambda: link("net0", first_ns) is not None)
    b = start_hook(second)
    results = [(p.wait(timeout=30), p.stderr.read()) for p in (a, b)]
    for p in (a, b):
        p.stdout.close()
        p.stderr.close()

    codes = sorted(code for code, _err in results)
    assert codes == [0, 1], results
    winner_ns, loser_ns = (first_ns, second_ns) if results[0][0] == 0 else (second_ns, first_ns)
    if stall:
        assert winner_ns == first_ns
    inside = link("net0", winner_ns)
    assert inside["mtu"] == 9000 and is_up(inside) and addresses("net0", winner_ns) == ["192.0.2.10/24"]
    assert links(loser_ns).keys() == {"lo"}


def test_the_per_interface_lock_waits_a_bounded_time(tmp_path, monkeypatch):
    monkeypatch.setenv("CDIGEN_STATE_DIR", str(tmp_path))
    with record.Locks(["eth7"]):
        path = tmp_path / "netdevs" / "eth7.lock"
        assert path.exists() and path.stat().st_mode & 0o777 == 0o600
        fd = os.open(path, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held
        finally:
            os.close(fd)
        start = time.monotonic()
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                "from cdigen.hook import record\ntry:\n record.Locks(['eth7'], wait_s=0.2)\n"
                "except Exception as e: print(e)",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "CDIGEN_STATE_DIR": str(tmp_path)},
        )
        assert time.monotonic() - start < 5
        assert "eth7: another cdigen process has held its lock" in child.stdout
    assert not path.exists()  # removed as it is released: nothing left in the state directory
    with record.Locks(["eth7"]):  # released
        pass


def test_no_lock_without_a_state_directory(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("CDIGEN_STATE_DIR", str(tmp_path / "file"))
    with record.Locks(["eth7"]):  # best effort, like the record file
        pass


def test_lock_names_stay_in_the_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("CDIGEN_STATE_DIR", str(tmp_path / "state"))
    with record.Locks(["..", "a/b"], wait_s=0):  # not interface names: no lock file anywhere
        assert sorted(p.name for p in tmp_path.rglob("*")) == []


# ---------------------------------------------------------------------------- SIGKILL mid-way


def killed_mid_way(net, tmp_path):
    """A hook killed with SIGKILL (a runtime's hook timeout) right after it moved the bridge
    port: the device sits in the container as net0, down, host MTU, no address, no master."""
    ns = net.netns()
    port = bridged_port(net)
    before = host_settings(port)
    bundle = write_bundle(tmp_path, {port: {"name": "net0", "address": "192.0.2.10/24", "mtu": 9000}}, ns)
    proc = start_hook(bundle, {STALL: "60"})
    try:
        wait_for(lambda: link("net0", ns) is not None)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert link(port) is None and link("net0", ns)["ifalias"].startswith(f"cdigen host={port} ")
    return ns, port, before, bundle


@pytest.mark.usefixtures("needs_netns")
@pytest.mark.root
def test_poststop_brings_home_a_device_of_a_hook_killed_mid_way(net, tmp_path):
    ns, port, before, bundle = killed_mid_way(net, tmp_path)

    proc = run_cdigen("hook", "--poststop", input=stopped(bundle))

    assert (proc.returncode, proc.stderr) == (0, "")
    assert host_settings(port) == before
    assert links(ns).keys() == {"lo"}


@pytest.mark.usefixtures("needs_netns")
@pytest.mark.root
def test_netdev_restore_brings_home_a_device_of_a_hook_killed_mid_way(net, tmp_path):
    """The namespace dies and the kernel returns the device (as it does a physical NIC) under
    the name it had inside, without addresses or master: `netdev restore` gives them back from
    the record file."""
    ns, port, before, _bundle = killed_mid_way(net, tmp_path)
    ip("link", "set", "dev", "net0", "netns", str(os.getpid()), netns=ns)  # the kernel's return
    net._links.append("net0")

    proc = run_cdigen("netdev", "restore", port)

    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    assert proc.stdout == f"restored {port} (was net0)\n"
    assert host_settings(port) == before
