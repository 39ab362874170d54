"""Real network namespaces, veth/macvlan/tap devices and hook runs for the hook tests.

Everything a test creates is registered with a `Net` (the `net` fixture of conftest.py) and
removed in its cleanup, even when the test fails: namespaces deleted (their virtual devices
die with them), host links deleted by name. Names carry a random suffix so reruns never clash.
"""

import contextlib
import json
import os
import shutil
import subprocess
import time
import uuid


def netns_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth pairs)"
    if not shutil.which("ip"):
        return "needs iproute2 (`ip`)"
    if not shutil.which("nsenter") or not shutil.which("unshare"):
        return "needs util-linux nsenter and unshare"
    probe = f"cdgprobe{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` does not work here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def unique(prefix: str) -> str:
    """A name of at most 15 bytes (IFNAMSIZ - 1) unique to this run."""
    return f"{prefix}{uuid.uuid4().hex[:6]}"[:15]


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`ip ARGS` in the host netns, or in the netns file `netns` (a path) via nsenter."""
    prefix = ["nsenter", f"--net={netns}", "ip"] if netns else ["ip"]
    return sh(*prefix, *args, check=check)


def link(name: str, netns: str | None = None) -> dict | None:
    """`ip -d -j link show NAME` as a dict, or None when there is no such link."""
    proc = ip("-d", "-j", "link", "show", "dev", name, netns=netns, check=False)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)[0]


def links(netns: str | None = None) -> dict[str, dict]:
    return {d["ifname"]: d for d in json.loads(ip("-d", "-j", "link", "show", netns=netns).stdout)}


def addresses(name: str, netns: str | None = None) -> list[str]:
    """Global addresses of a link as "addr/prefixlen", in kernel order."""
    data = json.loads(ip("-j", "addr", "show", "dev", name, netns=netns).stdout)
    return [f"{a['local']}/{a['prefixlen']}" for a in data[0]["addr_info"] if a.get("scope") == "global"]


def is_up(info: dict) -> bool:
    return "UP" in info["flags"]


class Net:
    """Creates namespaces and links for one test and removes them afterwards."""

    def __init__(self):
        self._netns: list[str] = []
        self._links: list[str] = []
        self._procs: list[subprocess.Popen] = []

    def netns(self) -> str:
        """A new named netns; returns its path (/var/run/netns/NAME)."""
        name = unique("cdgns")
        sh("ip", "netns", "add", name)
        self._netns.append(name)
        return f"/var/run/netns/{name}"

    def netns_process(self) -> int:
        """A process holding a fresh unnamed netns (like a container's init); returns its pid."""
        proc = subprocess.Popen(["unshare", "--net", "sleep", "600"])
        self._procs.append(proc)
        # unshare execs sleep in the same process once the namespace exists.
        for _ in range(200):
            if os.readlink(f"/proc/{proc.pid}/ns/net") != os.readlink("/proc/self/ns/net"):
                return proc.pid
            time.sleep(0.01)
        raise AssertionError("unshare --net did not create a namespace")

    def veth(self, mtu: int | None = None, up: bool = False) -> tuple[str, str]:
        """A veth pair in the host netns: (end the hook moves, peer that stays)."""
        end, peer = unique("cdgv"), unique("cdgp")
        sh("ip", "link", "add", end, "type", "veth", "peer", "name", peer)
        self._links.append(end)
        self._links.append(peer)
        if mtu is not None:
            sh("ip", "link", "set", end, "mtu", str(mtu))
        if up:
            sh("ip", "link", "set", end, "up")
            sh("ip", "link", "set", peer, "up")
        return end, peer

    def macvlan(self, parent: str) -> str:
        """A macvlan on `parent`: the kernel rejects an MTU above the parent's at set time."""
        name = unique("cdgm")
        sh("ip", "link", "add", "link", parent, "name", name, "type", "macvlan", "mode", "bridge")
        self._links.append(name)
        return name

    def tap(self) -> str:
        """A tap device: it reports max_mtu 65521 (65535 - Ethernet header)."""
        name = unique("cdgt")
        sh("ip", "tuntap", "add", name, "mode", "tap")
        self._links.append(name)
        return name

    def cleanup(self) -> None:
        for proc in self._procs:
            proc.kill()
            proc.wait()
        for name in self._netns:
            sh("ip", "netns", "del", name, check=False)
        for name in self._links:
            if link(name) is not None:
                sh("ip", "link", "del", name, check=False)
            with contextlib.suppress(OSError):  # the record file the hook wrote for it
                os.unlink(os.path.join(os.environ.get("CDIGEN_STATE_DIR") or "/run/cdigen", "netdevs", f"{name}.json"))


def come_home(net, name: str | None, mtu: int, record: str) -> str:
    """The outcome of the kernel returning a physical NIC from a dead container namespace
    (which no test here can produce: a veth dies with its namespace instead): a fresh veth end
    in the host namespace under `name` (None: `dev<ifindex>`, the name the kernel picks when
    the inside name is taken), with the inside MTU, cdigen's alias `record`, no address, down.
    Returns its name."""
    dev, _peer = net.veth()  # the peer is registered: deleting it removes `dev` whatever its name
    if name is None:
        name = f"dev{link(dev)['ifindex']}"
    ip("link", "set", "dev", dev, "name", name)
    ip("link", "set", "dev", name, "mtu", str(mtu), "alias", record)
    return name


def move(name: str, netns: str, new_name: str) -> None:
    """Move+rename like runc >= 1.4 does before any hook (one RTM_NEWLINK)."""
    if netns.startswith("/var/run/netns/"):
        ip("link", "set", "dev", name, "netns", os.path.basename(netns), "name", new_name)
    else:
        ip("link", "set", "dev", name, "netns", netns.split("/")[2], "name", new_name)  # /proc/PID/ns/net


def write_bundle(
    bundle, net_devices: dict | None = None, netns_path: str | None = None, namespaces: list | None = None
) -> str:
    """A bundle directory whose config.json has what the hook reads."""
    os.makedirs(bundle, exist_ok=True)
    if namespaces is None:
        namespaces = [{"type": "pid"}, {"type": "network", **({"path": netns_path} if netns_path else {})}]
    config = {"ociVersion": "1.0.2", "linux": {"namespaces": namespaces}}
    if net_devices is not None:
        config["linux"]["netDevices"] = net_devices
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    return str(bundle)


RUNC_14_OCI_VERSION = "1.3.0"  # the state's ociVersion of a runtime that moves linux.netDevices itself


def state(bundle: str, pid: int | None = None, oci_version: str = "1.0.2") -> str:
    """The OCI state on a createRuntime hook's stdin; `oci_version` is the runtime's own spec
    version (RUNC_14_OCI_VERSION: one that moves linux.netDevices before any hook)."""
    doc = {"ociVersion": oci_version, "id": "cdigen-test", "status": "creating", "bundle": str(bundle)}
    if pid is not None:
        doc["pid"] = pid
    return json.dumps(doc)
