"""What the device plugin's Allocate answers, applied the way runtimes apply it: podman (a real
CDI consumer, Debian's 4.3) given the answer's `cdi_devices` names as `--device`, and `cdigen
apply` reading the answer's `cdi.k8s.io/` annotation from config.json, then runc. Each
container gets its GPU's device nodes and its NIC, named, addressed and up.

The host is test_podman.py's: a fake sysfs tree of two switches (GPU + InfiniBand NIC each)
whose NICs' names are real veths; the agent (`cdigen device-plugin`) scans it and writes the
spec, and the kubelet stand-in (tests/helpers/kubelet.py) calls Allocate.
"""

import json
import os
import shutil

import pytest
from ruamel.yaml import YAML

from tests.helpers.kubelet import Agent, Kubelet
from tests.helpers.podman import Podman, podman_skip_reason
from tests.helpers.proc import fast_tmpdir, run_cdigen
from tests.helpers.runc import build_rootfs, parse_ip_addr, runc_bundle
from tests.helpers.scanned import SETTINGS, device_nodes, fake_host, inside_script, parse_stat, veth_pair

pytestmark = [pytest.mark.usefixtures("needs_runc"), pytest.mark.root, pytest.mark.runc]


@pytest.fixture(scope="module")
def podman(needs_runc, tmp_path_factory):
    if reason := podman_skip_reason():
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("podman")  # a short path: podman refuses a long runroot
    made = Podman(directory, build_rootfs(directory))
    yield made
    made.cleanup()


@pytest.fixture
def node(tree):
    """(the agent's spec directory, the kubelet stand-in after the first ListAndWatch answer,
    the NICs' names), the agent running with the NICs' settings and `net{n}` names."""
    root, nics = fake_host(tree)
    scratch = fast_tmpdir()
    with open(os.path.join(scratch, "nics.json"), "w") as f:
        json.dump(dict(zip(nics, SETTINGS, strict=True)), f)
    config = os.path.join(scratch, "node-agent.yaml")
    with open(config, "w") as f:  # hook_path: this cdigen, the default
        json.dump(
            {
                "root": root,
                "spec": f"{scratch}/cdi/cdigen.yaml",
                "kubelet_dir": f"{scratch}/kubelet",
                "netdev_config": f"{scratch}/nics.json",
                "netdev_name": "net{n}",
            },
            f,
        )
    kubelet = Kubelet(f"{scratch}/kubelet")
    kubelet.start()
    agent = Agent(config)
    try:
        kubelet.wait(lambda k: k.lists)
        yield f"{scratch}/cdi", kubelet, nics
    finally:
        agent.stop()
        kubelet.stop()
        shutil.rmtree(scratch)


def test_allocated_devices_in_podman_and_through_apply_in_runc(node, podman, net, runc, tmp_path):
    spec_dir, kubelet, (nic0, nic1) = node
    veth_pair(net, nic0)
    veth_pair(net, nic1)
    with open(os.path.join(spec_dir, "cdigen.yaml")) as f:
        spec = YAML(typ="safe", pure=True).load(f)

    first, second = kubelet.allocate(["gpu0"], ["gpu1"]).container_responses

    # podman: the cdi_devices names as --device.
    nodes = device_nodes(spec, "gpu0")
    proc = podman.run(spec_dir, [d.name for d in first.cdi_devices], inside_script(nodes))
    assert proc.returncode == 0, proc.stderr
    ip_out, _, stat_out = proc.stdout.partition("@@\n")
    inside = parse_ip_addr(ip_out)
    assert sorted(inside) == ["lo", "net0"], ip_out
    assert "192.0.2.10/26" in inside["net0"]["addrs"] and inside["net0"]["mtu"] == 9000
    assert "UP" in inside["net0"]["flags"]
    assert parse_stat(stat_out) == nodes

    # cdigen apply: the annotation in config.json (as containerd passes it), then runc.
    nodes = device_nodes(spec, "gpu1")
    bundle = runc_bundle(tmp_path / "bundle", podman.rootfs, inside_script(nodes))
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["annotations"] = dict(second.annotations)
    config["process"]["env"] += [f"{k}={v}" for k, v in second.envs.items()]
    with open(path, "w") as f:
        json.dump(config, f)
    run_cdigen("apply", bundle, "--spec-dir", spec_dir, check=0)
    proc = runc.run(bundle)
    assert proc.returncode == 0, proc.stderr
    ip_out, _, stat_out = proc.stdout.partition("@@\n")
    inside = parse_ip_addr(ip_out)
    assert sorted(inside) == ["lo", "net0"], ip_out  # gpu1's NIC, net0 in this container
    assert "192.0.2.74/26" in inside["net0"]["addrs"]
    assert parse_stat(stat_out) == nodes
