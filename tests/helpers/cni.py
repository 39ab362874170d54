"""A small libcni: runs a conflist's plugins from a CNI bin dir the way libcni invokes them
(CNI spec 1.0, "Execution of Network Configurations"): the CNI_* environment, the network
configuration on stdin with `name` and `cniVersion` of the list, `prevResult` from the
plugin before (ADD) or the cached result of the whole list (CHECK, DEL), `runtimeConfig` with
the capabilities a plugin declares, DEL in reverse order. A plugin's result or error is its
stdout, parsed as JSON."""

import json
import os
import subprocess
from dataclasses import dataclass

from tests.helpers.netns import netns_skip_reason

PLUGIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")  # Debian's containernetworking-plugins, upstream's


def plugin_dir() -> str | None:
    return next((d for d in PLUGIN_DIRS if os.access(os.path.join(d, "host-device"), os.X_OK)), None)


def cni_skip_reason() -> str | None:
    reason = netns_skip_reason()
    if reason:
        return reason
    if plugin_dir() is None:
        return "needs the CNI plugins host-device and static (apt-get install containernetworking-plugins)"
    return None


@dataclass
class Outcome:
    code: int
    out: dict | None  # stdout as JSON (None when empty)
    stdout: str
    stderr: str


class Cni:
    """A CNI bin dir holding links to the standard plugins and `cdigen` (the console script)."""

    def __init__(self, directory, cdigen: str):
        self.bin = os.path.join(str(directory), "cni-bin")
        os.makedirs(self.bin, exist_ok=True)
        source = plugin_dir()
        for name in ("host-device", "static"):
            os.symlink(os.path.join(source, name), os.path.join(self.bin, name))
        os.symlink(cdigen, os.path.join(self.bin, "cdigen"))
        self.cache: dict[tuple, dict] = {}  # (container, ifname) -> the list's result

    def exec(self, plugin: str, command: str, conf: dict | bytes | None, env: dict) -> Outcome:
        data = conf if isinstance(conf, bytes) else json.dumps(conf).encode() if conf is not None else b""
        full = {k: v for k, v in os.environ.items() if not k.startswith("CNI_") and k != "CDIGEN_DEBUG"}
        full.update(CNI_COMMAND=command, CNI_PATH=self.bin, **env)
        proc = subprocess.run(
            [os.path.join(self.bin, plugin)], input=data, capture_output=True, env=full, timeout=60, cwd="/"
        )
        stdout = proc.stdout.decode()
        return Outcome(proc.returncode, json.loads(stdout) if stdout.strip() else None, stdout, proc.stderr.decode())

    @staticmethod
    def env(container: str, netns: str | None, ifname: str) -> dict:
        env = {"CNI_CONTAINERID": container, "CNI_IFNAME": ifname, "CNI_ARGS": ""}
        if netns:
            env["CNI_NETNS"] = netns
        return env

    @staticmethod
    def plugin_conf(conflist: dict, plugin: dict, prev: dict | None, runtime: dict) -> dict:
        conf = {**plugin, "cniVersion": conflist["cniVersion"], "name": conflist["name"]}
        caps = {k: v for k, v in runtime.items() if (plugin.get("capabilities") or {}).get(k)}
        if caps:
            conf["runtimeConfig"] = caps
        if prev is not None:
            conf["prevResult"] = prev
        return conf

    def add(self, conflist: dict, container: str, netns: str, ifname: str, runtime: dict | None = None):
        """ADD through the list; (the last outcome, the outcomes in order). Stops at an error."""
        prev, outcomes = None, []
        for plugin in conflist["plugins"]:
            conf = self.plugin_conf(conflist, plugin, prev, runtime or {})
            outcome = self.exec(plugin["type"], "ADD", conf, self.env(container, netns, ifname))
            outcomes.append(outcome)
            if outcome.code != 0:
                return outcome, outcomes
            prev = outcome.out
        self.cache[(container, ifname)] = prev
        return outcomes[-1], outcomes

    def check(self, conflist: dict, container: str, netns: str, ifname: str, runtime: dict | None = None):
        prev = self.cache.get((container, ifname))
        outcomes = []
        for plugin in conflist["plugins"]:
            conf = self.plugin_conf(conflist, plugin, prev, runtime or {})
            outcome = self.exec(plugin["type"], "CHECK", conf, self.env(container, netns, ifname))
            outcomes.append(outcome)
            if outcome.code != 0:
                break
        return outcomes

    def delete(self, conflist: dict, container: str, netns: str | None, ifname: str, runtime: dict | None = None):
        """DEL in reverse order with the cached result; stops at an error, as libcni does."""
        prev = self.cache.pop((container, ifname), None)
        outcomes = []
        for plugin in reversed(conflist["plugins"]):
            conf = self.plugin_conf(conflist, plugin, prev, runtime or {})
            outcomes.append(self.exec(plugin["type"], "DEL", conf, self.env(container, netns, ifname)))
            if outcomes[-1].code != 0:
                break
        return outcomes
