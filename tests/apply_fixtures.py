"""Shared fixtures of the apply tests: a config.json as `runc spec` (Debian runc 1.1.5) writes
it, and CDI specs shaped like `cdigen scan` output, built from compact descriptions."""

import json
from pathlib import Path

# `runc spec` output, byte for byte (tab-indented, no final newline).
RUNC_SPEC_CONFIG = '''
{
	"ociVersion": "1.0.2-dev",
	"process": {
		"terminal": true,
		"user": {
			"uid": 0,
			"gid": 0
		},
		"args": [
			"sh"
		],
		"env": [
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"TERM=xterm"
		],
		"cwd": "/",
		"capabilities": {
			"bounding": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"effective": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"permitted": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"ambient": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			]
		},
		"rlimits": [
			{
				"type": "RLIMIT_NOFILE",
				"hard": 1024,
				"soft": 1024
			}
		],
		"noNewPrivileges": true
	},
	"root": {
		"path": "rootfs",
		"readonly": true
	},
	"hostname": "runc",
	"mounts": [
		{
			"destination": "/proc",
			"type": "proc",
			"source": "proc"
		},
		{
			"destination": "/dev",
			"type": "tmpfs",
			"source": "tmpfs",
			"options": [
				"nosuid",
				"strictatime",
				"mode=755",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/pts",
			"type": "devpts",
			"source": "devpts",
			"options": [
				"nosuid",
				"noexec",
				"newinstance",
				"ptmxmode=0666",
				"mode=0620",
				"gid=5"
			]
		},
		{
			"destination": "/dev/shm",
			"type": "tmpfs",
			"source": "shm",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"mode=1777",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/mqueue",
			"type": "mqueue",
			"source": "mqueue",
			"options": [
				"nosuid",
				"noexec",
				"nodev"
			]
		},
		{
			"destination": "/sys",
			"type": "sysfs",
			"source": "sysfs",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"ro"
			]
		},
		{
			"destination": "/sys/fs/cgroup",
			"type": "cgroup",
			"source": "cgroup",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"relatime",
				"ro"
			]
		}
	],
	"linux": {
		"resources": {
			"devices": [
				{
					"allow": false,
					"access": "rwm"
				}
			]
		},
		"namespaces": [
			{
				"type": "pid"
			},
			{
				"type": "network"
			},
			{
				"type": "ipc"
			},
			{
				"type": "uts"
			},
			{
				"type": "mount"
			}
		],
		"maskedPaths": [
			"/proc/acpi",
			"/proc/asound",
			"/proc/kcore",
			"/proc/keys",
			"/proc/latency_stats",
			"/proc/timer_list",
			"/proc/timer_stats",
			"/proc/sched_debug",
			"/sys/firmware",
			"/proc/scsi"
		],
		"readonlyPaths": [
			"/proc/bus",
			"/proc/fs",
			"/proc/irq",
			"/proc/sys",
			"/proc/sysrq-trigger"
		]
	}
}'''.strip("\n")

HOOK_PATH = "/usr/local/bin/cdigen"


def base_config() -> dict:
    return json.loads(RUNC_SPEC_CONFIG)


def make_bundle(tmp_path: Path, config: dict | str | bytes | None = None, name: str = "bundle") -> Path:
    """A bundle directory holding config.json (runc spec output unless given)."""
    bundle = tmp_path / name
    bundle.mkdir()
    if config is None:
        config = RUNC_SPEC_CONFIG
    if isinstance(config, dict):
        config = json.dumps(config, indent="\t")
    if isinstance(config, str):
        config = config.encode()
    (bundle / "config.json").write_bytes(config)
    return bundle


def gpu_device(index: int, nics: list[tuple[str, str]] = (), settings: dict[str, str] | None = None,
               hook: bool = True) -> dict:
    """A device like `cdigen scan` writes: /dev/nvidiaN, RDMA char devices, netdevs with
    their settings in annotations and a `cdigen hook` createRuntime hook."""
    nodes = [{"path": f"/dev/nvidia{index}", "type": "c", "major": 195, "minor": index}]
    for i, _ in enumerate(nics):
        nodes.append({"path": f"/dev/infiniband/uverbs{index * 4 + i}", "type": "c", "major": 231,
                      "minor": 192 + index * 4 + i})
    edits: dict = {"deviceNodes": nodes}
    annotations = {}
    if nics:
        edits["netDevices"] = [{"hostInterfaceName": host, "name": name} for host, name in nics]
        for host, name in nics:
            text = (settings or {}).get(host, f"name={name}")
            annotations[f"netdev.cdigen.io/{host}"] = text
        if hook:
            args = ["cdigen", "hook"]
            for host, _ in nics:
                args += ["--netdev", f"{host}={annotations[f'netdev.cdigen.io/{host}']}"]
            edits["hooks"] = [{"hookName": "createRuntime", "path": HOOK_PATH, "args": args}]
    device = {"name": f"gpu{index}"}
    if annotations:
        device["annotations"] = annotations
    device["containerEdits"] = edits
    return device


def gpu_spec(count: int = 2, kind: str = "cdigen.io/gpu", nics_per_gpu: int = 1,
             settings: dict[str, str] | None = None) -> dict:
    """A spec of `count` GPU devices; GPU i carries host interfaces ens{i}f{j}np{j}."""
    devices = []
    for i in range(count):
        nics = [(f"ens{i}f{j}np{j}", f"net{i * nics_per_gpu + j}") for j in range(nics_per_gpu)]
        devices.append(gpu_device(i, nics, settings))
    return {
        "cdiVersion": "1.1.0",
        "kind": kind,
        "containerEdits": {
            "env": ["NVIDIA_VISIBLE_DEVICES=void"],
            "deviceNodes": [{"path": "/dev/nvidiactl", "type": "c", "major": 195, "minor": 255}],
        },
        "devices": devices,
    }


def to_yaml(doc) -> str:
    """Any document as YAML (including nulls and odd types, which `cdigen scan` never writes)."""
    import io

    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def write_spec(directory: Path, name: str, doc: dict | str) -> Path:
    """Write `doc` as YAML (name *.yaml) or JSON (*.json); a str is written as is."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if isinstance(doc, str):
        path.write_text(doc)
    elif name.endswith(".json"):
        path.write_text(json.dumps(doc, indent=2))
    else:
        path.write_text(to_yaml(doc))
    return path
