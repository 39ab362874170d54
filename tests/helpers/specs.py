"""Test inputs for apply, validate and the loader: a config.json as `runc spec` (Debian runc
1.1.5) writes it, bundles holding one, and CDI spec documents, among them the one builder of
devices shaped like `cdigen scan` output (`scan_device`, `gpu_spec`)."""

import json
from pathlib import Path

from cdigen.cdi.load import Device, Spec
from cdigen.cdi.spec import check_spec

# `runc spec` output, byte for byte (tab-indented, no final newline).
RUNC_SPEC_CONFIG = """
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
}""".strip("\n")

HOOK_PATH = "/usr/local/bin/cdigen"
SCAN_HOOK = ("--hook-path", "/usr/bin/cdigen")  # scan's option, so that specs do not name this venv


def load_yaml(text: str, version=(1, 2)):
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    if version == (1, 1):  # how the Go loader (sigs.k8s.io/yaml -> yaml.v2) reads it
        text = "%YAML 1.1\n---\n" + text
    return yaml.load(text)


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


# ---------------------------------------------------------------------------- spec documents


def cdi_spec(
    devices: list[dict], kind: str = "vendor.com/device", version: str = "1.1.0", edits: dict | None = None
) -> dict:
    """A spec document: cdiVersion, kind, the spec's own containerEdits (when given), devices."""
    doc = {"cdiVersion": version, "kind": kind}
    if edits is not None:
        doc["containerEdits"] = edits
    doc["devices"] = devices
    return doc


def device(name: str, edits: dict, annotations: dict | None = None) -> dict:
    """One entry of a spec's `devices`."""
    out: dict = {"name": name}
    if annotations:
        out["annotations"] = annotations
    out["containerEdits"] = edits
    return out


def scan_device(
    name: str,
    nodes: list[dict] = (),
    nics: list[tuple[str, str]] = (),
    settings: dict[str, str] | None = None,
    hook: bool = True,
    hook_path: str = HOOK_PATH,
) -> dict:
    """A device as `cdigen scan` writes it: its device nodes; for each (host interface, container
    name) in `nics` a netDevices entry and a `netdev.cdigen.io/<host>` annotation holding its
    settings (`settings[host]`, default `name=<container name>`); and two `cdigen hook` entries
    with a `--netdev host=settings` argument per interface: createRuntime, and poststop
    (`cdigen hook --poststop ...`)."""
    edits: dict = {}
    if nodes:
        edits["deviceNodes"] = list(nodes)
    annotations = {}
    if nics:
        edits["netDevices"] = [{"hostInterfaceName": host, "name": container} for host, container in nics]
        for host, container in nics:
            annotations[f"netdev.cdigen.io/{host}"] = (settings or {}).get(host, f"name={container}")
        if hook:
            args = ["cdigen", "hook"]
            for host, _ in nics:
                args += ["--netdev", f"{host}={annotations[f'netdev.cdigen.io/{host}']}"]
            edits["hooks"] = [
                {"hookName": "createRuntime", "path": hook_path, "args": args},
                {"hookName": "poststop", "path": hook_path, "args": args[:2] + ["--poststop"] + args[2:]},
            ]
    return device(name, edits, annotations)


def gpu_nodes(index: int, nics: int = 0) -> list[dict]:
    """/dev/nvidiaN and one RDMA char device per NIC."""
    nodes = [{"path": f"/dev/nvidia{index}", "type": "c", "major": 195, "minor": index}]
    for i in range(nics):
        nodes.append(
            {"path": f"/dev/infiniband/uverbs{index * 4 + i}", "type": "c", "major": 231, "minor": 192 + index * 4 + i}
        )
    return nodes


def gpu_spec(
    count: int = 2,
    kind: str = "cdigen.io/gpu",
    nics_per_gpu: int = 1,
    settings: dict[str, str] | None = None,
    hook: bool = True,
) -> dict:
    """A spec of `count` GPU devices gpuI; GPU i carries host interfaces ens{i}f{j}np{j}, named
    net{i * nics_per_gpu + j} in the container."""
    devices = []
    for i in range(count):
        nics = [(f"ens{i}f{j}np{j}", f"net{i * nics_per_gpu + j}") for j in range(nics_per_gpu)]
        devices.append(scan_device(f"gpu{i}", gpu_nodes(i, len(nics)), nics, settings, hook))
    return cdi_spec(
        devices,
        kind,
        edits={
            "env": ["NVIDIA_VISIBLE_DEVICES=void"],
            "deviceNodes": [{"path": "/dev/nvidiactl", "type": "c", "major": 195, "minor": 255}],
        },
    )


# Small specs of the loader tests (not scan-shaped).
MINIMAL = {
    "cdiVersion": "0.3.0",
    "kind": "vendor.com/device",
    "devices": [{"name": "dev1", "containerEdits": {"env": ["A=1"]}}],
}


def spec_with(devices: list[str], kind: str = "vendor1.com/device", env: str = "X") -> dict:
    """A v0.3.0 spec of the named devices, each setting env `<env>=<name>`."""
    return {
        "cdiVersion": "0.3.0",
        "kind": kind,
        "devices": [{"name": n, "containerEdits": {"env": [f"{env}={n}"]}} for n in devices],
    }


def vendor_spec(devices: list[dict] | None = None, **top) -> dict:
    """A v1.1.0 vendor.com/device spec of `devices` (default: dev1 setting A=B), with the
    top-level keys in `top` set or replaced."""
    doc = {
        "cdiVersion": "1.1.0",
        "kind": "vendor.com/device",
        "devices": devices if devices is not None else [{"name": "dev1", "containerEdits": {"env": ["A=B"]}}],
    }
    doc.update(top)
    return doc


def vendor_edits(**edits) -> dict:
    """vendor_spec with one device dev1 carrying `edits`."""
    return vendor_spec([{"name": "dev1", "containerEdits": edits}])


# A spec of another vendor, with spec-wide edits, a hook and gids (not scan-shaped).
FPGA_SPEC = {
    "cdiVersion": "0.7.0",
    "kind": "example.com/fpga",
    "containerEdits": {
        "env": ["FPGA_RUNTIME=1", "TERM=dumb"],
        "mounts": [{"hostPath": "/opt/fpga/lib", "containerPath": "/usr/lib/fpga", "options": ["ro", "bind"]}],
    },
    "devices": [
        {
            "name": "f0",
            "containerEdits": {
                "deviceNodes": [{"path": "/dev/fpga0", "type": "c", "major": 240, "minor": 0, "fileMode": 0o660}],
                "hooks": [{"hookName": "createContainer", "path": "/opt/fpga/bin/prepare", "args": ["prepare", "f0"]}],
                "additionalGids": [44],
            },
        },
        {"name": "f1", "containerEdits": {"env": ["FPGA=f1"]}},
    ],
}


def loaded(doc: dict, path: str = "/etc/cdi/test.yaml") -> Spec:
    """`doc` checked and normalised as the loader does, as if read from `path`."""
    return Spec(path, 0, check_spec(doc))


def devices_of(spec: Spec, *indexes: int) -> list[Device]:
    """The spec's devices at `indexes` (all of them by default), in that order."""
    return [Device(spec, spec.data["devices"][i]) for i in (indexes or range(len(spec.data["devices"])))]


# ---------------------------------------------------------------------------- files


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
