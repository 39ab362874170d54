"""A minimal busybox bundle run by the real runc (Debian's 1.1.5 ignores linux.netDevices, so
the cdigen hook does the move), and a parser for busybox `ip addr` output."""

import json
import os
import re
import shutil
import subprocess
import uuid

from tests.helpers.netns import netns_skip_reason


def runc_skip_reason() -> str | None:
    reason = netns_skip_reason()
    if reason:
        return reason
    if not shutil.which("runc"):
        return "needs runc (apt-get install runc)"
    busybox = shutil.which("busybox")
    if not busybox:
        return "needs busybox-static (apt-get install busybox-static)"
    with open(busybox, "rb") as f:
        if b"ld-linux" in f.read(4096):  # a dynamic binary names its loader in PT_INTERP
            return f"{busybox} is dynamically linked; needs busybox-static"
    return None


def build_rootfs(directory) -> str:
    """rootfs/bin/busybox with sh, ip and cat links: enough for `ip addr` and sysfs files."""
    rootfs = os.path.join(directory, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"), exist_ok=True)
    shutil.copy2(shutil.which("busybox"), os.path.join(rootfs, "bin", "busybox"))
    for applet in ("sh", "ip", "cat"):
        os.symlink("busybox", os.path.join(rootfs, "bin", applet))
    return rootfs


def runc_bundle(bundle, rootfs: str, args: list[str]) -> str:
    """A bundle from `runc spec` running `args` in the shared read-only rootfs."""
    os.makedirs(bundle, exist_ok=True)
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True, capture_output=True)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["process"]["args"] = args
    config["process"]["terminal"] = False
    config["root"] = {"path": rootfs, "readonly": True}
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
    return str(bundle)


class Runc:
    """runc with its own state directory; every container it ran is deleted in cleanup()."""

    def __init__(self, root):
        self.root = str(root)
        self.ids: list[str] = []

    def run(self, bundle: str) -> subprocess.CompletedProcess:
        cid = f"cdigen-test-{uuid.uuid4().hex[:8]}"
        self.ids.append(cid)
        return subprocess.run(
            ["runc", "--root", self.root, "run", "--bundle", bundle, cid],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    def containers(self) -> list:
        out = subprocess.run(
            ["runc", "--root", self.root, "list", "--format", "json"], capture_output=True, text=True, check=True
        ).stdout
        return json.loads(out or "null") or []

    def cleanup(self) -> None:
        for cid in self.ids:
            subprocess.run(["runc", "--root", self.root, "delete", "--force", cid], capture_output=True)


_LINK = re.compile(r"^\d+: ([^:@\s]+)(?:@\S+)?: <([^>]*)> mtu (\d+)")
_INET = re.compile(r"^\s+inet6? (\S+)")


def parse_ip_addr(text: str) -> dict[str, dict]:
    """busybox/iproute2 `ip addr` -> {ifname: {"flags": [...], "mtu": int, "addrs": [...]}}."""
    links: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        if m := _LINK.match(line):
            current = links[m[1]] = {"flags": m[2].split(","), "mtu": int(m[3]), "addrs": []}
        elif (m := _INET.match(line)) and current is not None:
            current["addrs"].append(m[1])
    return links
