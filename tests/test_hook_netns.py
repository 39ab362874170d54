"""`cdigen hook` against real network namespaces and veth/macvlan/tap devices.

Each test runs the hook as a whole process, the way a runtime does (state JSON on stdin), and
checks the result with `ip`. Rollback tests assert that the host device is back on the host
under its original name and MTU: a virtual device left in a dying namespace is destroyed.
"""

import pytest

from cdigen.hookentry import hook_args
from tests.helpers.netns import RUNC_14_OCI_VERSION, addresses, ip, is_up, link, links, move, state, write_bundle
from tests.helpers.proc import run_cdigen

pytestmark = [pytest.mark.usefixtures("needs_netns"), pytest.mark.root]

SETTINGS = {"name": "net0", "address": "192.0.2.10", "mask": "255.255.255.0", "mtu": 9000}


def run_hook(bundle, *args, pid=None, oci_version="1.0.2"):
    return run_cdigen("hook", *args, input=state(bundle, pid, oci_version))


def assert_configured(netns, name="net0", addr="192.0.2.10/24", mtu=9000):
    info = link(name, netns)
    assert info is not None, f"{name} not in {netns}: {sorted(links(netns))}"
    assert info["mtu"] == mtu
    assert is_up(info)
    assert addresses(name, netns) == [addr]


def assert_back_on_host(name, mtu, netns, gone=("net0",)):
    info = link(name)
    assert info is not None, f"{name} is not back on the host"
    assert info["mtu"] == mtu
    for other in gone:
        assert link(other, netns) is None or other == "lo"
    return info


def one_error_line(proc):
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cdigen: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


# ---------------------------------------------------------------------------- success paths


def test_moves_renames_addresses_sets_mtu_and_up(net, tmp_path):
    ns = net.netns()
    end, peer = net.veth(mtu=1500, up=True)
    bundle = write_bundle(tmp_path, {end: SETTINGS}, netns_path=ns)

    proc = run_hook(bundle)

    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout == ""
    assert_configured(ns)
    assert link(end) is None  # left the host
    assert link(peer)["mtu"] == 1500  # the peer was not listed: untouched


def test_target_is_proc_pid_ns_net_when_config_names_no_path(net, tmp_path):
    pid = net.netns_process()
    end, _ = net.veth()
    bundle = write_bundle(tmp_path, {end: SETTINGS})  # network namespace without a path

    proc = run_hook(bundle, pid=pid)

    assert proc.returncode == 0, proc.stderr
    assert_configured(f"/proc/{pid}/ns/net")


def test_other_cdi_injector_config_has_only_name_args_carry_the_rest(net, tmp_path):
    """containerd/CRI-O/podman copy CDI netDevices as {name} and the hook entry's args."""
    ns = net.netns()
    end, _ = net.veth()
    bundle = write_bundle(tmp_path, {end: {"name": "net0"}}, netns_path=ns)
    argv = hook_args([f"{end}=name=net0,address=192.0.2.10,mask=255.255.255.0,mtu=9000"])

    proc = run_hook(bundle, *argv[2:])

    assert proc.returncode == 0, proc.stderr
    assert_configured(ns)


def test_config_json_keys_win_over_args(net, tmp_path):
    ns = net.netns()
    end, _ = net.veth()
    bundle = write_bundle(
        tmp_path, {end: {"name": "net0", "mtu": 9000, "address": "192.0.2.10", "mask": "255.255.255.0"}}, netns_path=ns
    )

    proc = run_hook(bundle, "--netdev", f"{end}=name=other0,address=198.51.100.1/16,mtu=1400")

    assert proc.returncode == 0, proc.stderr
    assert_configured(ns)
    assert link("other0", ns) is None


def test_runtime_already_moved_and_renamed_it(net, tmp_path):
    """runc >= 1.4 moves and renames before any hook; the hook finds it by container name."""
    ns = net.netns()
    end, _ = net.veth(mtu=1500)
    move(end, ns, "net0")
    bundle = write_bundle(tmp_path, {end: {"name": "net0"}}, netns_path=ns)

    proc = run_hook(
        bundle, "--netdev", f"{end}=name=net0,address=192.0.2.10/24,mtu=9000", oci_version=RUNC_14_OCI_VERSION
    )

    assert proc.returncode == 0, proc.stderr
    assert_configured(ns)


def test_ipv6_address_and_prefix(net, tmp_path):
    ns = net.netns()
    end, _ = net.veth()
    bundle = write_bundle(tmp_path, {end: {"name": "net0"}}, netns_path=ns)

    proc = run_hook(bundle, "--netdev", f"{end}=name=net0,address=2001:db8::10/64,mtu=1500")

    assert proc.returncode == 0, proc.stderr
    assert_configured(ns, addr="2001:db8::10/64", mtu=1500)


def test_name_template_lets_the_kernel_pick(net, tmp_path):
    ns = net.netns()
    end, _ = net.veth()
    bundle = write_bundle(tmp_path, {end: {"name": "net%d", "address": "192.0.2.10/24", "mtu": 9000}}, netns_path=ns)

    proc = run_hook(bundle)

    assert proc.returncode == 0, proc.stderr
    assert_configured(ns, name="net0")


def test_running_twice_is_harmless(net, tmp_path):
    ns = net.netns()
    end, _ = net.veth()
    bundle = write_bundle(tmp_path, {end: SETTINGS}, netns_path=ns)

    first, second = run_hook(bundle), run_hook(bundle)

    assert (first.returncode, second.returncode) == (0, 0), second.stderr
    assert_configured(ns)  # one address, not two
    assert sorted(links(ns)) == ["lo", "net0"]


def test_interfaces_not_listed_are_never_touched(net, tmp_path):
    ns = net.netns()
    listed, _ = net.veth()
    unlisted_host, _ = net.veth(mtu=1400, up=True)
    in_container, _ = net.veth(mtu=1300)
    move(in_container, ns, "eth5")
    # config.json knows the other host interface too, but the hook's args name only one.
    bundle = write_bundle(tmp_path, {listed: SETTINGS, unlisted_host: {"name": "net1", "mtu": 9000}}, netns_path=ns)

    proc = run_hook(bundle, "--netdev", listed)

    assert proc.returncode == 0, proc.stderr
    assert_configured(ns)
    host_side = link(unlisted_host)
    assert host_side["mtu"] == 1400 and is_up(host_side)
    other = link("eth5", ns)
    assert other["mtu"] == 1300 and not is_up(other) and addresses("eth5", ns) == []


def test_several_interfaces_in_one_run(net, tmp_path):
    ns = net.netns()
    a, _ = net.veth()
    b, _ = net.veth()
    bundle = write_bundle(
        tmp_path, {a: SETTINGS, b: {"name": "net1", "address": "198.51.100.7/25", "mtu": 4000}}, netns_path=ns
    )

    proc = run_hook(bundle)

    assert proc.returncode == 0, proc.stderr
    assert_configured(ns)
    assert_configured(ns, name="net1", addr="198.51.100.7/25", mtu=4000)


def test_no_net_devices_is_a_no_op(net, tmp_path):
    bundle = write_bundle(tmp_path, None, netns_path="/nonexistent/netns")

    proc = run_hook(bundle)

    assert (proc.returncode, proc.stderr) == (0, "")


# ---------------------------------------------------------------------------- failures and rollback


def test_container_name_taken_fails_and_leaves_the_device_on_the_host(net, tmp_path):
    ns = net.netns()
    end, _ = net.veth(mtu=1500, up=True)
    bundle = write_bundle(tmp_path, {end: {**SETTINGS, "name": "lo"}}, netns_path=ns)

    proc = run_hook(bundle)

    assert proc.returncode == 1
    line = one_error_line(proc)
    assert end in line and "container name lo is already taken" in line
    info = assert_back_on_host(end, 1500, ns)
    assert is_up(info)
    assert sorted(links(ns)) == ["lo"]


def test_host_interface_missing(net, tmp_path):
    ns = net.netns()
    bundle = write_bundle(tmp_path, {"cdgnosuch0": SETTINGS}, netns_path=ns)

    proc = run_hook(bundle)

    assert proc.returncode == 1
    assert "host interface cdgnosuch0 not found" in one_error_line(proc)


def test_mtu_above_the_reported_device_maximum_names_min_and_max(net, tmp_path):
    ns = net.netns()
    tap = net.tap()  # max_mtu 65521
    bundle = write_bundle(tmp_path, {tap: {"name": "net0", "mtu": 65530}}, netns_path=ns)

    proc = run_hook(bundle)

    assert proc.returncode == 1
    line = one_error_line(proc)
    assert tap in line and "MTU 65530 is above the device maximum (min MTU 68, max MTU 65521)" in line
    assert_back_on_host(tap, 1500, ns)


def test_kernel_refuses_mtu_after_the_move_and_the_macvlan_comes_back(net, tmp_path):
    """A macvlan reports max_mtu 65535 but refuses an MTU above its parent's: the failure
    comes after the move, so the rollback must bring it back (else it dies with the netns)."""
    ns = net.netns()
    parent, _ = net.veth(mtu=1500)
    mac = net.macvlan(parent)
    ip("link", "set", mac, "up")
    bundle = write_bundle(tmp_path, {mac: SETTINGS}, netns_path=ns)

    proc = run_hook(bundle)

    assert proc.returncode == 1
    line = one_error_line(proc)
    assert f"{mac}: set MTU 9000 on net0: Invalid argument" in line
    assert f"moved back to the host: {mac}" in line
    info = assert_back_on_host(mac, 1500, ns)
    assert is_up(info)  # it was up before
    assert sorted(links(ns)) == ["lo"]


def test_second_interface_fails_first_goes_back_with_its_original_mtu(net, tmp_path):
    ns = net.netns()
    first, _ = net.veth(mtu=1400)
    second, _ = net.veth(mtu=1500)
    move(second, ns, "eth0")  # takes the second one's container name
    bundle = write_bundle(tmp_path, {first: SETTINGS, "cdgnosuch1": {"name": "net1", "mtu": 1500}}, netns_path=ns)

    proc = run_hook(bundle)

    assert proc.returncode == 1
    line = one_error_line(proc)
    assert "host interface cdgnosuch1 not found" in line
    # _locate checks everything before moving anything: nothing had to move.
    assert "moved back" not in line
    assert_back_on_host(first, 1400, ns)


def test_failure_after_a_successful_move_restores_original_mtu(net, tmp_path):
    """First interface fully configured (MTU 9000), second fails in the kernel: the first comes
    back under its host name with its MTU from before the hook (1400)."""
    ns = net.netns()
    first, _ = net.veth(mtu=1400)
    parent, _ = net.veth(mtu=1500)
    mac = net.macvlan(parent)
    bundle = write_bundle(tmp_path, {first: SETTINGS, mac: {"name": "net1", "mtu": 9000}}, netns_path=ns)

    proc = run_hook(bundle)

    assert proc.returncode == 1
    line = one_error_line(proc)
    assert f"{mac}: set MTU 9000 on net1" in line
    assert f"moved back to the host: {mac}, {first}" in line
    info = assert_back_on_host(first, 1400, ns, gone=("net0", "net1"))
    assert not is_up(info)  # it was down before
    assert addresses(first) == []
    assert_back_on_host(mac, 1500, ns)
    assert sorted(links(ns)) == ["lo"]


def test_runtime_moved_interface_goes_back_on_failure(net, tmp_path):
    """runc >= 1.4 moved it and does not roll back: the hook does, under the host name."""
    ns = net.netns()
    end, _ = net.veth(mtu=1500)
    move(end, ns, "net0")
    parent, _ = net.veth(mtu=1500)
    mac = net.macvlan(parent)
    move(mac, ns, "net1")  # also runtime-moved; the kernel will refuse MTU 9000
    bundle = write_bundle(
        tmp_path, {end: {"name": "net0", "mtu": 9000}, mac: {"name": "net1", "mtu": 9000}}, netns_path=ns
    )

    proc = run_hook(bundle, oci_version=RUNC_14_OCI_VERSION)

    assert proc.returncode == 1
    line = one_error_line(proc)
    assert f"moved back to the host: {mac}, {end}" in line
    # Original MTU unknown for runtime-moved devices: restored to the MTU found before the hook.
    assert_back_on_host(end, 1500, ns, gone=("net0", "net1"))
    assert_back_on_host(mac, 1500, ns)
    assert sorted(links(ns)) == ["lo"]


def test_refuses_when_the_target_is_the_hooks_own_netns(net, tmp_path):
    end, _ = net.veth(mtu=1500)
    bundle = write_bundle(tmp_path, {end: SETTINGS}, netns_path="/proc/self/ns/net")

    proc = run_hook(bundle)

    assert proc.returncode == 3
    assert "is the hook's own" in one_error_line(proc)
    assert link(end)["mtu"] == 1500


def test_refuses_a_container_without_network_namespace(net, tmp_path):
    end, _ = net.veth()
    bundle = write_bundle(tmp_path, {end: SETTINGS}, namespaces=[{"type": "pid"}, {"type": "mount"}])

    proc = run_hook(bundle, pid=1)

    assert proc.returncode == 3
    assert "no network namespace of its own" in one_error_line(proc)
    assert link(end) is not None


def test_invalid_settings_after_the_runtime_moved_it_still_send_it_back(net, tmp_path):
    """runc >= 1.4 moved it; the cdigen keys are invalid (exit 3): it must not die with the netns."""
    ns = net.netns()
    end, _ = net.veth(mtu=1500)
    untouched, _ = net.veth(mtu=1500)
    move(end, ns, "net0")
    move(untouched, ns, "eth9")  # in the netns but not listed
    bundle = write_bundle(tmp_path, {end: {"name": "net0", "mtu": 20}}, netns_path=ns)

    proc = run_hook(bundle, oci_version=RUNC_14_OCI_VERSION)

    assert proc.returncode == 3
    line = one_error_line(proc)
    assert "MTU 20 is outside 68..65535" in line and f"moved back to the host: {end}" in line
    assert_back_on_host(end, 1500, ns)
    assert sorted(links(ns)) == ["eth9", "lo"]


def test_a_failing_hook_entry_also_returns_what_an_earlier_entry_moved(net, tmp_path):
    """A CDI injector adds one hook entry per requested device (each with its own --netdev).
    When the second fails, the runtime destroys the namespace: the interface the first entry
    configured must come back to the host as well."""
    ns = net.netns()
    first, _ = net.veth(mtu=1400)
    parent, _ = net.veth(mtu=1500)
    mac = net.macvlan(parent)
    bundle = write_bundle(tmp_path, {first: {"name": "net0"}, mac: {"name": "net1"}}, netns_path=ns)

    ok = run_hook(bundle, "--netdev", f"{first}=name=net0,address=192.0.2.10/24,mtu=9000")
    assert ok.returncode == 0, ok.stderr
    assert_configured(ns)

    proc = run_hook(bundle, "--netdev", f"{mac}=name=net1,mtu=9000")  # the kernel refuses it

    assert proc.returncode == 1
    line = one_error_line(proc)
    assert f"{mac}: set MTU 9000 on net1" in line and first in line and mac in line
    assert_back_on_host(first, 1400, ns, gone=("net0", "net1"))  # its host MTU, from the record in its alias
    assert_back_on_host(mac, 1500, ns)
    assert sorted(links(ns)) == ["lo"]
