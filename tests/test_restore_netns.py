"""`cdigen netdev restore` and a device left in a network namespace that outlived its container:
a spec's `cdigen hook` createRuntime entry ran without its poststop twin, the container ended,
and a mount still holds its namespace (`ip netns add`, a bind mount). Whole processes: the hook
moves a veth end in, restore brings it home (docs/netdev.md, "Coming home").
"""

import os
import subprocess
import sys

import pytest

from tests.helpers.netns import addresses, ip, is_up, link, links, unique, write_bundle
from tests.helpers.netns import state as create_state
from tests.helpers.proc import run_cdigen

pytestmark = [pytest.mark.usefixtures("needs_netns"), pytest.mark.root]


def left_in(net, ns: str, tmp_path) -> tuple[str, str]:
    """A host interface (MTU 1500, 192.0.2.7/24, up, alias "rack 7", a port of a bridge) that
    the createRuntime hook put into `ns` as net1 with MTU 9000; no poststop hook follows.
    Returns (host name, bridge)."""
    end, _peer = net.veth(mtu=1500, up=True)
    bridge = unique("cdgbr")
    ip("link", "add", "name", bridge, "type", "bridge")
    net._links.append(bridge)
    ip("link", "set", "dev", end, "master", bridge)
    ip("addr", "add", "192.0.2.7/24", "dev", end)
    ip("link", "set", "dev", end, "alias", "rack 7")
    bundle = write_bundle(tmp_path / "bundle", {end: {"name": "net1", "mtu": 9000}}, ns)
    proc = run_cdigen("hook", input=create_state(bundle))
    assert proc.returncode == 0, proc.stderr
    assert link(end) is None and link("net1", ns)["mtu"] == 9000
    return end, bridge


def assert_home(host: str, bridge: str, ns: str) -> None:
    info = link(host)
    assert info is not None, sorted(links())
    assert (info["mtu"], is_up(info), info.get("ifalias"), info.get("master")) == (1500, True, "rack 7", bridge)
    assert addresses(host) == ["192.0.2.7/24"]
    assert links(ns).keys() == {"lo"}


def test_named_restore_brings_home_a_device_left_in_a_named_netns(net, tmp_path):
    ns = net.netns()
    host, bridge = left_in(net, ns, tmp_path)

    proc = run_cdigen("netdev", "restore", host)

    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == f"restored {host} (was net1 in {os.path.realpath(ns)}, MTU 9000 -> 1500)\n"
    assert_home(host, bridge, ns)


def test_restore_brings_home_a_device_left_in_a_bind_mounted_netns(net, tmp_path):
    """Every marked device, as the udev rule and boot units run it. It runs in a mount namespace
    of its own where /run/netns is empty, so that it sees no other test's named namespaces."""
    holder = net.netns_process()
    ns = tmp_path.resolve() / "netns"
    ns.touch()
    subprocess.run(["mount", "--bind", f"/proc/{holder}/ns/net", str(ns)], check=True)
    try:
        host, bridge = left_in(net, str(ns), tmp_path)
        ended = next(p for p in net._procs if p.pid == holder)
        ended.kill()  # the container ended; only the mount holds its namespace
        ended.wait()
        hide = 'if [ -d /run/netns ]; then mount -t tmpfs cdigen-test /run/netns; fi; exec "$@"'
        restore = [sys.executable, "-m", "cdigen", "netdev", "restore"]
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", hide, "sh", *restore]

        proc = subprocess.run(command, capture_output=True, text=True, timeout=60)

        assert (proc.returncode, proc.stderr) == (0, "")
        assert proc.stdout == f"restored {host} (was net1 in {ns}, MTU 9000 -> 1500)\n"
        assert_home(host, bridge, str(ns))
    finally:
        subprocess.run(["umount", str(ns)], check=False)


def test_a_device_in_a_namespace_where_a_process_runs_is_left_there(net, tmp_path):
    """A running container's NIC is in use: restore leaves it; named, it says where it is."""
    holder = net.netns_process()
    ns = f"/proc/{holder}/ns/net"
    host, _bridge = left_in(net, ns, tmp_path)

    quiet = run_cdigen("netdev", "restore")
    named = run_cdigen("netdev", "restore", host)

    assert (quiet.returncode, quiet.stdout) == (0, "nothing to restore: no interface carries cdigen's record\n")
    assert named.returncode == 1
    assert named.stdout == f"not restored: {host}: in use as net1 in {ns}, where process {holder} runs: left there\n"
    assert named.stderr.startswith("cdigen: error: netdev restore: 1 interface not restored: ")
    assert link(host) is None and link("net1", ns)["mtu"] == 9000
