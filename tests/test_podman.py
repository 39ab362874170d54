"""A real CDI consumer: Debian 12's podman 4.3.1 (CDI library v0.5.2) loads the spec that
`cdigen scan --for podman-4` writes, injects `--device cdigen.io/gpu=gpu0` and runs it with
runc and with crun; the createRuntime hook entry of the spec, whose arguments carry the netdev
settings, moves the NIC into the container, renames it net0, addresses it, sets its MTU and
brings it up. The same tree scanned for CDI 1.1.0 is refused by this podman: that is why
`--for podman-4` (CDI 0.5.0) is scan's default target.

The host: a fake sysfs tree (two switches, each with a GPU and an InfiniBand NIC) on a random
PCI domain, so that the interface names it gives the NICs are this run's own; each name is
then created on the real host as one end of a veth pair. The spec is used exactly as scanned.
Its device nodes (/dev/nvidia0, /dev/infiniband/uverbs0, ...) do not exist on this host and
need not: every node in it has type and major, so the CDI library stats nothing, and the
runtime makes the nodes inside the container with those numbers (asserted below).

The podman sandbox (private configuration, storage, /run and CDI directory; crun's cgroup
workaround) is described in tests/helpers/podman.py. `--network none` gives the container a
network namespace of its own with only lo, which the hook moves the NIC into; podman's default
bridge network would need netavark and firewall rules on the host, and `--network host` leaves
no namespace to move into (the hook refuses).

After the container is gone, nothing of it may be left: no container in podman's state, no
conmon, no container cgroup, no record of the NIC in the hook's host state (/run/cdigen), and
the veth either destroyed with the container's network namespace (the kernel never hands a
veth back, docs/netdev.md) or, when a poststop hook entry of the spec restores it, back on the
host under its host name without the address; never on the host under another name.
"""

import json
import os
import re
import subprocess

import pytest

from tests.helpers.netns import addresses, link, links
from tests.helpers.podman import Podman, crun_skip_reason, podman_skip_reason
from tests.helpers.proc import run_cdigen
from tests.helpers.runc import build_rootfs, parse_ip_addr
from tests.helpers.scanned import (
    HOST_MTU,
    KIND,
    device,
    device_nodes,
    fake_host,
    hook_args,
    inside_script,
    parse_stat,
    ready_again,
    scan,
    settle,
    veth_pair,
)

pytestmark = [pytest.mark.usefixtures("needs_runc"), pytest.mark.root, pytest.mark.runc]


@pytest.fixture(scope="module")
def podman(needs_runc, tmp_path_factory):
    reason = podman_skip_reason()
    if reason:
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("podman")
    made = Podman(directory, build_rootfs(directory))
    yield made
    made.cleanup()


def assert_nothing_left(podman: Podman, nic: str, peer: str, ifindex: int) -> None:
    assert podman.containers() == []
    assert podman.wait_idle() == [], "processes of the container left"
    assert podman.container_cgroups() == []
    assert podman.hook_records(nic) == []

    def final() -> bool:  # destroyed (the peer goes with it) or restored under its host name
        return link(peer) is None or link(nic) is not None

    settle(final)
    by_index = {d["ifindex"]: d["ifname"] for d in links().values()}
    if link(peer) is None:
        assert ifindex not in by_index, f"net0 left on the host as {by_index.get(ifindex)}"
        assert link(nic) is None
    else:  # a poststop hook gave it back
        assert by_index.get(ifindex) == nic, f"net0 left on the host as {by_index.get(ifindex)}"
        assert addresses(nic) == []


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_podman_runs_scanned_spec(podman, net, tree, tmp_path, runtime):
    if runtime == "crun" and (reason := crun_skip_reason()):
        pytest.skip(reason)
    root, (nic0, nic1) = fake_host(tree)
    spec = scan(root, [nic0, nic1], tmp_path / "cdi", "--for", "podman-4")
    # What podman 4.3 can load: no device annotations, no netDevices; settings in the hook.
    assert tuple(map(int, spec["cdiVersion"].split("."))) <= (0, 5, 0)
    assert "annotations" not in device(spec, "gpu0")
    assert "netDevices" not in device(spec, "gpu0")["containerEdits"]
    assert any(a.startswith(f"{nic0}=name=net0,") for a in hook_args(spec, "gpu0"))
    peer0 = veth_pair(net, nic0)
    veth_pair(net, nic1)
    nodes = device_nodes(spec, "gpu0")

    proc = podman.run(tmp_path / "cdi", [f"{KIND}=gpu0"], inside_script(nodes), runtime=runtime)

    assert proc.returncode == 0, proc.stderr
    ip_out, _, stat_out = proc.stdout.partition("@@\n")
    inside = parse_ip_addr(ip_out)
    assert sorted(inside) == ["lo", "net0"], ip_out  # gpu0's NIC only
    net0 = inside["net0"]
    assert "192.0.2.10/26" in net0["addrs"]  # address and mask 255.255.255.192
    assert net0["mtu"] == 9000
    assert "UP" in net0["flags"] and "LOWER_UP" in net0["flags"]
    assert parse_stat(stat_out) == nodes
    ifindex = int(re.search(r"^(\d+): net0\b", ip_out, re.M)[1])

    assert_nothing_left(podman, nic0, peer0, ifindex)
    other = link(nic1)  # gpu1's NIC was not asked for: untouched
    assert other is not None and other["mtu"] == HOST_MTU and addresses(nic1) == []


def test_podman_4_refuses_cdi_1_1_0(podman, net, tree, tmp_path):
    """The same tree scanned for CDI 1.1.0 (device annotations, netDevices): podman 4.3 says
    only `unresolvable CDI devices`; the cause (strict decoding of a spec with fields its CDI
    library does not know) shows with --log-level debug."""
    root, (nic0, nic1) = fake_host(tree)
    spec = scan(root, [nic0, nic1], tmp_path / "cdi", "--cdi-version", "1.1.0")
    assert spec["cdiVersion"] == "1.1.0"
    assert device(spec, "gpu0")["containerEdits"]["netDevices"] == [{"hostInterfaceName": nic0, "name": "net0"}]
    veth_pair(net, nic0)

    proc = podman.run(tmp_path / "cdi", [f"{KIND}=gpu0"], ["ip", "addr"], debug=True)

    assert proc.returncode != 0
    assert f"Error: setting up CDI devices: unresolvable CDI devices {KIND}=gpu0" in proc.stderr
    assert re.search(r'unknown field \\*"(annotations|netDevices)\\*"', proc.stderr), proc.stderr
    assert podman.containers() == []
    assert podman.hook_records(nic0) == []
    host = link(nic0)  # never moved
    assert host is not None and host["mtu"] == HOST_MTU and addresses(nic0) == []


def test_podman_names_nics_per_container(podman, net, tree, tmp_path):
    """`--netdev-name net{n}`: whichever GPUs a container got, its NICs are net0, net1... in
    the order of its devices. podman (CDI 0.5.2) injects one hook entry per device; each hook
    numbers the container's NICs from all of config.json's cdigen entries, so they agree."""
    root, (nic0, nic1) = fake_host(tree)
    spec = scan(root, [nic0, nic1], tmp_path / "cdi", "--for", "podman-4", names="net{n}")
    assert any(a.startswith(f"{nic1}=name=net{{n}},") for a in hook_args(spec, "gpu1"))
    veth_pair(net, nic0)
    peer1 = veth_pair(net, nic1)

    alone = podman.run(tmp_path / "cdi", [f"{KIND}=gpu1"], ["ip", "addr"])

    assert alone.returncode == 0, alone.stderr
    inside = parse_ip_addr(alone.stdout)
    assert sorted(inside) == ["lo", "net0"], alone.stdout  # gpu1's NIC, as net0
    assert "192.0.2.74/26" in inside["net0"]["addrs"]
    ready_again(net, nic1, peer1)

    both = podman.run(tmp_path / "cdi", [f"{KIND}=gpu1", f"{KIND}=gpu0"], ["ip", "addr"])

    assert both.returncode == 0, both.stderr
    inside = parse_ip_addr(both.stdout)
    assert sorted(inside) == ["lo", "net0", "net1"], both.stdout
    assert "192.0.2.74/26" in inside["net0"]["addrs"]  # gpu1 was asked for first
    assert "192.0.2.10/26" in inside["net1"]["addrs"]
    assert podman.wait_idle() == []
    assert podman.hook_records(nic0) == [] and podman.hook_records(nic1) == []


def test_runc_names_nics_per_container_after_apply(net, runc, rootfs, tree, tmp_path):
    """The same numbering through `cdigen apply` and runc: config.json gets the resolved
    names, in linux.netDevices and in the hook arguments."""
    from tests.helpers.runc import runc_bundle

    root, (nic0, nic1) = fake_host(tree)
    scan(root, [nic0, nic1], tmp_path / "cdi", names="net{n}")
    veth_pair(net, nic0)
    veth_pair(net, nic1)
    bundle = runc_bundle(tmp_path / "bundle", rootfs, ["ip", "addr"])
    devices = ["--device", f"{KIND}=gpu1", "--device", f"{KIND}=gpu0"]
    run_cdigen("apply", bundle, "--spec-dir", tmp_path / "cdi", *devices, check=0)
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    assert {h: e["name"] for h, e in config["linux"]["netDevices"].items()} == {nic1: "net0", nic0: "net1"}
    assert "{n}" not in json.dumps(config["hooks"])

    proc = runc.run(bundle)

    assert proc.returncode == 0, proc.stderr
    inside = parse_ip_addr(proc.stdout)
    assert "192.0.2.74/26" in inside["net0"]["addrs"] and "192.0.2.10/26" in inside["net1"]["addrs"]
    assert runc.containers() == []


def without_poststop(spec: dict) -> dict:
    """The spec with every poststop hook entry taken out (a hand-edited spec's mistake)."""
    for d in spec["devices"]:
        hooks = d["containerEdits"].get("hooks") or []
        d["containerEdits"]["hooks"] = [h for h in hooks if h["hookName"] != "poststop"]
    return spec


def test_podman_nic_left_without_poststop_is_flagged_and_restored(podman, net, tree, tmp_path):
    """A spec whose createRuntime entry lacks its poststop twin: the container leaves the NIC in
    its namespace (held by `ip netns add`) as net0, MTU 9000. validate warns about the spec;
    `netdev restore NIC` finds the NIC there and brings it home."""
    root, (nic0, nic1) = fake_host(tree)
    spec = without_poststop(scan(root, [nic0, nic1], tmp_path / "cdi", "--for", "podman-4", names="net{n}"))
    with open(tmp_path / "cdi" / "cdigen.yaml", "w") as f:
        json.dump(spec, f)  # JSON is YAML
    veth_pair(net, nic0)
    ns = net.netns()
    held = tmp_path / "netns"  # podman's fence hides /run: the namespace by a mount outside it
    held.touch()
    ip_mount = subprocess.run(["mount", "--bind", ns, held], capture_output=True, text=True)
    assert ip_mount.returncode == 0, ip_mount.stderr
    try:
        proc = podman.podman(
            tmp_path / "cdi", "run", "--rm", "--runtime", "runc", "--cgroup-parent", f"/{podman.cgroup_parent}",
            "--network", f"ns:{held}", "--device", f"{KIND}=gpu0", "--rootfs", podman.rootfs, "ip", "link",
        )  # fmt: skip
        stranded_and_restored(podman, proc, nic0, ns, tmp_path)
    finally:
        subprocess.run(["umount", held], check=False)


def stranded_and_restored(podman, proc, nic0: str, ns: str, tmp_path) -> None:
    assert proc.returncode == 0, proc.stderr
    assert podman.wait_idle() == []
    assert link(nic0) is None and link("net0", ns)["mtu"] == 9000  # stranded
    check = run_cdigen("validate", "--spec-dir", tmp_path / "cdi")
    assert check.returncode == 0
    assert "warning" in check.stderr and "poststop" in check.stderr, check.stderr

    back = run_cdigen("netdev", "restore", nic0)

    assert back.returncode == 0, back.stderr
    assert back.stdout.startswith(f"restored {nic0} (was net0 in ")
    assert link(nic0)["mtu"] == HOST_MTU and addresses(nic0) == []


def test_podman_hook_path_missing_fails_and_validate_says_so(podman, net, tree, tmp_path):
    """A spec whose hook path does not exist on this host: podman fails to start the container
    (the runtime cannot exec the hook), the NIC is untouched; validate warned beforehand."""
    root, (nic0, nic1) = fake_host(tree)
    scan(root, [nic0, nic1], tmp_path / "cdi", "--for", "podman-4", "--hook-path", "/opt/nowhere/cdigen")
    veth_pair(net, nic0)
    check = run_cdigen("validate", "--spec-dir", tmp_path / "cdi")
    assert check.returncode == 0
    assert "/opt/nowhere/cdigen" in check.stderr and "warning" in check.stderr, check.stderr

    proc = podman.run(tmp_path / "cdi", [f"{KIND}=gpu0"], ["ip", "link"])

    assert proc.returncode != 0
    assert "/opt/nowhere/cdigen" in proc.stderr, proc.stderr
    assert link(nic0) is not None and link(nic0)["mtu"] == HOST_MTU
