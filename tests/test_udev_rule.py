"""`cdigen netdev udev-rule`: the rule that brings home a NIC whenever it comes back, however late
after its container ended. Real parts: the kernel's uevent for a netdev entering a namespace,
Debian's udevadm evaluating the printed rule against real devices (`udevadm test`: the rules
matched and the programs udev would run, without running them), and the command the rule
names, run as udev would run it."""

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest

from tests.helpers.netns import ip, is_up, link, links, unique
from tests.helpers.proc import run_cdigen

pytestmark = [pytest.mark.usefixtures("needs_netns"), pytest.mark.root]

NETLINK_KOBJECT_UEVENT = 15
RULES_DIR = "/run/udev/rules.d"  # read by udev like /etc/udev/rules.d; tmpfs


@pytest.fixture
def rule():
    """The rule `cdigen netdev udev-rule` prints, installed for udev (removed afterwards)."""
    if shutil.which("udevadm") is None:
        pytest.skip("needs udevadm (Debian package udev)")
    proc = run_cdigen("netdev", "udev-rule")
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    os.makedirs(RULES_DIR, exist_ok=True)
    path = os.path.join(RULES_DIR, f"90-cdigen-netdev-test-{uuid.uuid4().hex[:8]}.rules")
    with open(path, "w") as f:
        f.write(proc.stdout)
    yield proc.stdout
    os.unlink(path)


def udev_would_run(netns: str, dev: str) -> list[str]:
    """The programs udev runs for the `add` event of `dev` in `netns` (`ip netns exec` mounts
    that namespace's /sys, where udevadm finds the device and its attributes)."""
    proc = subprocess.run(
        ["ip", "netns", "exec", os.path.basename(netns), "udevadm", "test", "--action=add", f"/sys/class/net/{dev}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    output = proc.stdout + proc.stderr
    return [line[len("run: '") : -1] for line in output.splitlines() if line.startswith("run: '")]


def test_the_rule_names_this_cdigen_and_matches_the_records_alias(rule):
    lines = [line for line in rule.splitlines() if line and not line.startswith("#")]
    cdigen = os.path.join(os.path.dirname(sys.executable), "cdigen")
    assert lines == [
        f'ACTION=="add", SUBSYSTEM=="net", ATTR{{ifalias}}=="cdigen host=*", RUN+="{cdigen} netdev restore"'
    ]


@pytest.mark.parametrize("path", ["cdigen", "/usr/bin/cd igen", '/usr/bin/"x', "/opt/%k/cdigen", "/opt/$x"])
def test_a_path_udev_would_misread_is_a_usage_error(path):
    proc = run_cdigen("netdev", "udev-rule", "--cdigen", path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("cdigen: error: netdev udev-rule: --cdigen") and proc.stderr.count("\n") == 1


def test_udev_runs_restore_for_a_returned_nic_only_and_that_brings_it_home(net, rule):
    """In a namespace standing for the host: a NIC back under its container name with cdigen's
    record (as the kernel returns it) and an interface without a record."""
    host = net.netns()
    for end, peer in (("cdgn0", "cdgq0"), ("cdgw0", "cdgw1")):
        ip("link", "add", end, "type", "veth", "peer", "name", peer, netns=host)
    ip("link", "set", "dev", "cdgn0", "mtu", "9000", "alias", "cdigen host=ibp20s0 mtu=1500 up=1", netns=host)
    ip("link", "set", "dev", "cdgw0", "alias", "rack 7", netns=host)

    returned = [cmd for cmd in udev_would_run(host, "cdgn0") if "netdev restore" in cmd]
    assert returned == [f"{os.path.join(os.path.dirname(sys.executable), 'cdigen')} netdev restore"]
    for other in ("cdgq0", "cdgw0", "lo"):
        assert not [cmd for cmd in udev_would_run(host, other) if "netdev restore" in cmd], other

    # What udev then runs, where it runs it.
    proc = subprocess.run(
        ["ip", "netns", "exec", os.path.basename(host), *shlex.split(returned[0])],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    assert proc.stdout == "restored ibp20s0 (was cdgn0, MTU 9000 -> 1500)\n"
    home = link("ibp20s0", host)
    assert home["mtu"] == 1500 and is_up(home) and "ifalias" not in home
    assert sorted(links(host)) == ["cdgq0", "cdgw0", "cdgw1", "ibp20s0", "lo"]
    assert link("cdgw0", host)["ifalias"] == "rack 7"


def test_a_netdev_entering_the_namespace_is_an_add_uevent_there(net):
    """The event the rule keys on. The kernel moves a NIC out of a dying namespace with the
    same call as `ip link set DEV netns` (dev_change_net_namespace), which announces it as
    `add` in the namespace it enters; here a veth end enters this test's namespace."""
    elsewhere = net.netns()
    end, peer = unique("cdgv"), unique("cdgp")
    ip("link", "add", end, "type", "veth", "peer", "name", peer, netns=elsewhere)
    net._links.append(end)  # it lands here: removed with the test's links
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_KOBJECT_UEVENT) as events:
        events.bind((0, 1))  # the kernel's broadcast group
        events.settimeout(0.5)
        ip("link", "set", "dev", end, "netns", str(os.getpid()), netns=elsewhere)
        deadline, seen = time.monotonic() + 5, []
        while time.monotonic() < deadline:
            try:
                fields = events.recv(1 << 16).split(b"\0")
            except TimeoutError:
                continue
            seen.append(fields[0])
            if f"INTERFACE={end}".encode() in fields and fields[0].startswith(b"add@"):
                break
        else:
            raise AssertionError(f"no add uevent for {end}: {seen}")
    assert b"SUBSYSTEM=net" in fields
