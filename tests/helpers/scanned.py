"""A fake host scanned into a spec whose NICs are made real as veths: the shared steps of the
podman and runc end-to-end tests (tests/test_podman.py and the tests that reuse its host)."""

import json
import os
import random
import re
import time

from ruamel.yaml import YAML

from tests.helpers.netns import ip, link
from tests.helpers.proc import run_cdigen

KIND = "cdigen.io/gpu"
# Inside settings of the two NICs; container names come from --netdev-name net{index}.
SETTINGS = [
    {"address": "192.0.2.10", "mask": "255.255.255.192", "mtu": 9000},
    {"address": "192.0.2.74", "mask": "255.255.255.192", "mtu": 9000},
]
HOST_MTU = 1500  # a new veth's


def fake_host(tree) -> tuple[str, list[str]]:
    """A fake sysfs tree; returns its root and its NICs' interface names, in PCI order (the
    first is in gpu0's switch)."""
    domain = random.randrange(0x1000, 0x10000)
    root = tree(f"numa 0\npci {domain:04x}:40 numa=0 ports: switch(gpu ib) switch(gpu ib)")
    net = os.path.join(root, "sys/class/net")
    names = [n for n in os.listdir(net) if n != "lo"]
    names.sort(key=lambda n: os.path.basename(os.path.realpath(os.path.join(net, n, "device"))))
    assert len(names) == 2, names
    return root, names


def scan(root: str, nics: list[str], spec_dir, *options: str, names: str = "net{index}") -> dict:
    """`cdigen scan --root ROOT --netdev-config .. --netdev-name NAMES OPTIONS -o SPEC`."""
    os.makedirs(spec_dir, exist_ok=True)
    config = os.path.join(spec_dir, "..", f"{os.path.basename(spec_dir)}-nics.yaml")
    with open(config, "w") as f:
        json.dump(dict(zip(nics, SETTINGS, strict=True)), f)  # JSON is YAML
    out = os.path.join(spec_dir, "cdigen.yaml")
    run_cdigen("scan", "--root", root, "--netdev-config", config, "--netdev-name", names, *options, "-o", out, check=0)
    with open(out) as f:
        return YAML(typ="safe", pure=True).load(f)


def device(spec: dict, name: str) -> dict:
    return next(d for d in spec["devices"] if d["name"] == name)


def hook_args(spec: dict, name: str) -> list[str]:
    hooks = device(spec, name)["containerEdits"]["hooks"]
    return next(h["args"] for h in hooks if h["hookName"] == "createRuntime")


def device_nodes(spec: dict, name: str) -> dict[str, tuple[int, int]]:
    """Device nodes a container given device `name` gets: the device's and the spec's own."""
    nodes = device(spec, name)["containerEdits"]["deviceNodes"] + spec["containerEdits"]["deviceNodes"]
    assert all(n["type"] == "c" for n in nodes)
    return {n["path"]: (n["major"], n["minor"]) for n in nodes}


def inside_script(nodes) -> list[str]:
    """What the container runs: `ip addr`, then path, major and minor (hex) of each node."""
    stat = " ".join(nodes)
    return ["sh", "-c", f"ip addr && echo @@ && busybox stat -c '%n %F %t %T' {stat}"]


def parse_stat(text: str) -> dict[str, tuple[int, int]]:
    nodes = {}
    for line in text.splitlines():
        m = re.fullmatch(r"(\S+) character special file ([0-9a-f]+) ([0-9a-f]+)", line)
        assert m, line
        nodes[m[1]] = (int(m[2], 16), int(m[3], 16))
    return nodes


def veth_pair(net, name: str) -> str:
    """A veth pair whose end is renamed `name`; returns the peer, which is up so that the end
    has a carrier. `net` deletes the peer after the test, and with it the end if still there."""
    end, peer = net.veth(mtu=HOST_MTU)
    ip("link", "set", end, "name", name)
    ip("link", "set", peer, "up")
    return peer


def settle(done, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)


def ready_again(net, nic: str, peer: str) -> str:
    """`nic` on the host again after a container had it: given back by the poststop hook, or
    made anew once the kernel destroyed the pair with the container's namespace (a veth never
    comes back by itself). Returns its peer."""
    settle(lambda: link(nic) is not None or link(peer) is None)
    return peer if link(nic) is not None else veth_pair(net, nic)
