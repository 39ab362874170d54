"""`cdigen apply` as a whole process: snapshots of patched config.json and printed patches,
idempotence, locking, and every kind of bad input (one line on stderr, exit code, config.json
byte-identical)."""

import json
import os
import subprocess
import sys

import jsonpatch
import pytest

from tests.helpers.bad_specs import BROKEN_FPGA_TEXTS, GPU_MTU_20, REFUSED_FPGA_EDITS, fpga_with_f1_edits
from tests.helpers.proc import run_cdigen
from tests.helpers.specs import (
    FPGA_SPEC,
    HOOK_PATH,
    RUNC_SPEC_CONFIG,
    base_config,
    gpu_spec,
    make_bundle,
    write_spec,
)


@pytest.fixture
def spec_dir(tmp_path):
    d = tmp_path / "cdi"
    write_spec(
        d,
        "cdigen-gpu.yaml",
        gpu_spec(
            2,
            nics_per_gpu=2,
            settings={
                "ens0f0np0": "name=net0,address=192.0.2.10,mask=255.255.255.0,mtu=9000",
                "ens0f1np1": "name=net1,address=198.51.100.10,mask=255.255.255.0,mtu=9000",
                "ens1f0np0": "name=net2,mtu=4200",
                "ens1f1np1": "name=net3",
            },
        ),
    )
    write_spec(d, "example-fpga.json", FPGA_SPEC)
    return d


def apply(bundle, spec_dir, *args, check=None):
    return run_cdigen("apply", bundle, "--spec-dir", spec_dir, "--hook-path", HOOK_PATH, *args, check=check)


def config_text(bundle) -> str:
    return (bundle / "config.json").read_text()


# ---------------------------------------------------------------------------- snapshots


def test_one_gpu(tmp_path, spec_dir, snapshot):
    bundle = make_bundle(tmp_path)
    apply(bundle, spec_dir, "--device", "cdigen.io/gpu=gpu0", check=0)
    snapshot.assert_match(config_text(bundle), "config.json")


def test_devices_of_two_specs_in_request_order(tmp_path, spec_dir, snapshot):
    """gpu1, f0, gpu0: each spec's own edits once, before its first device."""
    bundle = make_bundle(tmp_path)
    proc = apply(
        bundle,
        spec_dir,
        "--device",
        "cdigen.io/gpu=gpu1",
        "--device",
        "example.com/fpga=f0",
        "--device",
        "cdigen.io/gpu=gpu0",
        "--print-patch",
        check=0,
    )
    snapshot.assert_match(config_text(bundle), "config.json")
    snapshot.assert_match(proc.stdout, "patch.json")
    # the printed patch is what turned the old document into the new one
    patched = jsonpatch.apply_patch(json.loads(RUNC_SPEC_CONFIG), json.loads(proc.stdout))
    assert patched == json.loads(config_text(bundle))


def test_annotations_and_command_line_overrides(tmp_path, spec_dir, snapshot):
    config = base_config()
    config["annotations"] = {"cdi.k8s.io/gpus": "cdigen.io/gpu=gpu1", "org.example/keep": "me"}
    bundle = make_bundle(tmp_path, config)
    proc = apply(
        bundle,
        spec_dir,
        "--device",
        "example.com/fpga=f1",
        "--netdev",
        "ens1f0np0=address=2001:db8::10/64,mtu=9000",
        "--netdev",
        "ens1f1np1=name=ib1,address=10.1.0.5/16",
        "--print-patch",
        check=0,
    )
    snapshot.assert_match(proc.stdout, "patch.json")
    snapshot.assert_match(config_text(bundle), "config.json")


# ---------------------------------------------------------------------------- file behaviour


def test_second_apply_changes_nothing_not_even_the_inode(tmp_path, spec_dir):
    bundle = make_bundle(tmp_path)
    args = ("--device", "cdigen.io/gpu=gpu0", "--device", "example.com/fpga=f0")
    apply(bundle, spec_dir, *args, check=0)
    first = (bundle / "config.json").read_bytes()
    inode = (bundle / "config.json").stat().st_ino
    proc = apply(bundle, spec_dir, *args, "--print-patch", check=0)
    assert proc.stdout == "[]\n"
    assert (bundle / "config.json").read_bytes() == first
    assert (bundle / "config.json").stat().st_ino == inode


def test_mode_unknown_keys_and_indentation_survive(tmp_path, spec_dir):
    config = base_config()
    config["x-vendor"] = {"keep": [1, {"deep": "é"}]}
    config["linux"]["x-linux"] = True
    bundle = make_bundle(tmp_path, json.dumps(config, indent=4))
    os.chmod(bundle / "config.json", 0o600)
    apply(bundle, spec_dir, "--device", "example.com/fpga=f1", check=0)
    text = config_text(bundle)
    after = json.loads(text)
    assert after["x-vendor"] == {"keep": [1, {"deep": "é"}]} and after["linux"]["x-linux"] is True
    assert '"é"' in text and text.startswith('{\n    "ociVersion"') and text.endswith("}\n")
    assert (bundle / "config.json").stat().st_mode & 0o7777 == 0o600
    assert not [p for p in os.listdir(bundle) if p != "config.json"]  # no temp file left


def test_dry_run_shows_a_diff_and_writes_nothing(tmp_path, spec_dir):
    bundle = make_bundle(tmp_path)
    proc = apply(bundle, spec_dir, "--device", "example.com/fpga=f1", "--dry-run", check=0)
    assert config_text(bundle) == RUNC_SPEC_CONFIG
    lines = proc.stdout.splitlines()
    assert lines[:2] == [f"--- {bundle}/config.json", f"+++ {bundle}/config.json (after apply)"]
    changed = [line[0] + line[1:].strip() for line in lines[2:] if line[:1] in "+-"]  # rich expands tabs
    assert changed[:4] == ['-"TERM=xterm"', '+"TERM=dumb",', '+"FPGA_RUNTIME=1",', '+"FPGA=f1"']


def test_no_hook(tmp_path, spec_dir):
    bundle = make_bundle(tmp_path)
    write_spec(spec_dir, "cdigen-gpu.yaml", gpu_spec(1, hook=False))
    apply(bundle, spec_dir, "--device", "cdigen.io/gpu=gpu0", "--no-hook", check=0)
    assert "hooks" not in json.loads(config_text(bundle))
    apply(bundle, spec_dir, "--device", "cdigen.io/gpu=gpu0", check=0)
    assert json.loads(config_text(bundle))["hooks"] == {
        "createRuntime": [{"path": HOOK_PATH, "args": ["cdigen", "hook"]}],
        "poststop": [{"path": HOOK_PATH, "args": ["cdigen", "hook", "--poststop"]}],
    }


def test_default_hook_path_is_the_cdigen_beside_this_python(tmp_path, spec_dir):
    bundle = make_bundle(tmp_path)
    write_spec(spec_dir, "cdigen-gpu.yaml", gpu_spec(1, hook=False))
    run_cdigen("apply", bundle, "--spec-dir", spec_dir, "--device", "cdigen.io/gpu=gpu0", check=0)
    hooks = json.loads(config_text(bundle))["hooks"]["createRuntime"]
    assert hooks == [{"path": os.path.join(os.path.dirname(sys.executable), "cdigen"), "args": ["cdigen", "hook"]}]


def test_nothing_requested_changes_nothing(tmp_path, spec_dir):
    bundle = make_bundle(tmp_path)
    proc = apply(bundle, spec_dir, "--print-patch", check=0)
    assert proc.stdout == "[]\n" and config_text(bundle) == RUNC_SPEC_CONFIG


def test_concurrent_applies_serialise_on_the_bundle_lock(tmp_path, spec_dir):
    bundle = make_bundle(tmp_path)
    env = dict(os.environ, NO_COLOR="1")
    env.pop("CDIGEN_DEBUG", None)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cdigen",
                "apply",
                str(bundle),
                "--spec-dir",
                str(spec_dir),
                "--hook-path",
                HOOK_PATH,
                "--device",
                device,
            ],
            env=env,
        )
        for device in ("example.com/fpga=f0", "example.com/fpga=f1", "cdigen.io/gpu=gpu0", "cdigen.io/gpu=gpu1")
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    after = json.loads(config_text(bundle))
    assert {"FPGA=f1", "FPGA_RUNTIME=1"} <= set(after["process"]["env"])
    assert {"/dev/fpga0", "/dev/nvidia0", "/dev/nvidia1"} <= {d["path"] for d in after["linux"]["devices"]}


# ---------------------------------------------------------------------------- bad input


def assert_failed(proc, code: int, bundle, before: bytes, message: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("cdigen: error: "), proc.stderr
    assert message in proc.stderr, proc.stderr
    assert (bundle / "config.json").read_bytes() == before


@pytest.mark.parametrize(
    "config, message",
    [
        ("{", "config.json: invalid JSON: Expecting property name"),
        ("[]", "config.json: expected a JSON object, got list"),
        ('{"ociVersion": "1.0.2"}', "config.json: no 'linux' object"),
        ('{"linux": []}', "config.json: 'linux' must be an object"),
        ('{"linux": {}, "process": {"env": "PATH=/bin"}}', "config.json: process.env: expected a list"),
        (
            '{"linux": {}, "annotations": {"cdi.k8s.io/x": "nvidia.com/gpu"}}',
            "invalid CDI device name 'nvidia.com/gpu'",
        ),
        (b'{"linux": {}, "x": "\xff"}', "config.json: invalid JSON: not UTF-8"),
        ('{"linux": {}, "x": NaN}', "config.json: invalid JSON: NaN is not JSON"),
    ],
)
def test_bad_config(tmp_path, spec_dir, config, message):
    bundle = make_bundle(tmp_path, config)
    before = (bundle / "config.json").read_bytes()
    assert_failed(apply(bundle, spec_dir, "--device", "example.com/fpga=f1"), 3, bundle, before, message)


@pytest.mark.parametrize("spec_text, message", BROKEN_FPGA_TEXTS)
def test_broken_spec_of_the_requested_kind(tmp_path, spec_dir, spec_text, message):
    (spec_dir / "example-fpga.json").write_text(spec_text)
    bundle = make_bundle(tmp_path)
    before = (bundle / "config.json").read_bytes()
    proc = apply(bundle, spec_dir, "--device", "example.com/fpga=f1")
    assert_failed(proc, 3, bundle, before, "unresolvable CDI devices example.com/fpga=f1 (spec errors: ")
    assert message in proc.stderr


@pytest.mark.parametrize("edits, message", REFUSED_FPGA_EDITS)
def test_refused_spec_content(tmp_path, spec_dir, edits, message):
    write_spec(spec_dir, "example-fpga.json", fpga_with_f1_edits(edits))
    bundle = make_bundle(tmp_path)
    before = (bundle / "config.json").read_bytes()
    proc = apply(bundle, spec_dir, "--device", "example.com/fpga=f1")
    assert_failed(proc, 3, bundle, before, f"example-fpga.json: device 'example.com/fpga=f1': {message}")


def test_unresolvable_devices_are_all_named(tmp_path, spec_dir):
    config = base_config()
    config["annotations"] = {"cdi.k8s.io/a": "example.com/fpga=f9"}
    bundle = make_bundle(tmp_path, config)
    before = (bundle / "config.json").read_bytes()
    proc = apply(bundle, spec_dir, "--device", "cdigen.io/gpu=gpu0", "--device", "cdigen.io/gpu=gpu7")
    assert_failed(
        proc,
        3,
        bundle,
        before,
        f"unresolvable CDI devices example.com/fpga=f9, cdigen.io/gpu=gpu7; spec directories: {spec_dir}; devices "
        "there, nearest first: example.com/fpga=f0, example.com/fpga=f1, cdigen.io/gpu=gpu0, cdigen.io/gpu=gpu1\n",
    )


def test_unresolvable_says_the_spec_directories_were_missing_or_empty(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "gpu.yml").write_text("cdiVersion: 0.5.0\n")  # not a spec file name: .yml
    bundle = make_bundle(tmp_path)
    before = (bundle / "config.json").read_bytes()
    args = ["--spec-dir", tmp_path / "nosuch", "--spec-dir", empty, "--device", "cdigen.io/gpu=gpu0"]
    proc = run_cdigen("apply", bundle, *args, "--hook-path", HOOK_PATH)
    assert_failed(
        proc,
        3,
        bundle,
        before,
        f"unresolvable CDI devices cdigen.io/gpu=gpu0; spec directories: {tmp_path / 'nosuch'} (missing), "
        f"{empty} (no .json or .yaml file); no spec file there\n",
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--device", "nvidia.com/gpu"], "--device 'nvidia.com/gpu': expected vendor/class=name"),
        (["--netdev", "ens0f0np0=name=a/b"], "contains '/'"),
        (["--netdev", "ens0f0np0=name=averyveryverylongname"], "longer than 15 bytes"),
        (["--netdev", "ens0f0np0=address=192.0.2.300/24"], "invalid IP address"),
        (["--netdev", "ens0f0np0=address=192.0.2.3,mask=255.0.255.0"], "not contiguous"),
        (["--netdev", "ens0f0np0=address=192.0.2.3/33"], "too long for IPv4"),
        (["--netdev", "ens0f0np0=mtu=67"], "MTU 67 is outside 68..65535"),
        (["--netdev", "ens0f0np0=mtu=65536"], "outside 68..65535"),
        (["--netdev", "ens0f0np0=address=2001:db8::1/64,mtu=1279"], "outside 1280..65535 for IPv6"),
        (["--netdev", "ens0f0np0=colour=blue"], "expected name=, address=, mask= or mtu="),
        (["--netdev", "eth9=mtu=1500"], "no requested device carries host interface eth9"),
        (["--netdev", "ens0f1np1=name=net0"], "both map to container name net0"),
        (["--hook-path", "cdigen"], "--hook-path must be absolute"),
    ],
)
def test_command_line_mistakes_are_usage_errors(tmp_path, spec_dir, args, message):
    bundle = make_bundle(tmp_path)
    before = (bundle / "config.json").read_bytes()
    proc = apply(bundle, spec_dir, "--device", "cdigen.io/gpu=gpu0", *args)
    assert_failed(proc, 2, bundle, before, message)


def test_bad_netdev_annotation_in_a_spec_is_invalid_input(tmp_path, spec_dir):
    write_spec(spec_dir, "cdigen-gpu.yaml", GPU_MTU_20)
    bundle = make_bundle(tmp_path)
    before = (bundle / "config.json").read_bytes()
    proc = apply(bundle, spec_dir, "--device", "cdigen.io/gpu=gpu0")
    assert_failed(proc, 3, bundle, before, "device 'cdigen.io/gpu=gpu0': MTU 20 is outside 68..65535")


def test_missing_bundle_and_missing_config(tmp_path, spec_dir):
    proc = apply(tmp_path / "nope", spec_dir, "--device", "example.com/fpga=f1")
    assert proc.returncode == 2 and proc.stderr == f"cdigen: error: bundle directory '{tmp_path}/nope' does not exist\n"
    (tmp_path / "empty").mkdir()
    proc = apply(tmp_path / "empty", spec_dir, "--device", "example.com/fpga=f1")
    assert proc.returncode == 2 and "config.json: no such file" in proc.stderr
    assert os.listdir(tmp_path / "empty") == []


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount the bundle read-only")
def test_read_only_bundle(tmp_path, spec_dir):
    bundle = make_bundle(tmp_path)
    before = (bundle / "config.json").read_bytes()
    env = dict(os.environ, NO_COLOR="1")
    env.pop("CDIGEN_DEBUG", None)
    # a private mount namespace: the read-only bind mount disappears with the process
    script = (
        f'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && exec "{sys.executable}" -m cdigen '
        f'apply "$1" --spec-dir "$2" --hook-path {HOOK_PATH} --device example.com/fpga=f1'
    )
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", str(bundle), str(spec_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert_failed(proc, 1, bundle, before, f"cannot write {bundle}/config.json: Read-only file system")


# ---------------------------------------------------------------------------- settings carried by hook arguments


def hook_only_spec(settings: str) -> dict:
    """What `cdigen scan --for podman-4` writes for one GPU: no netDevices, no annotations;
    the settings live in the `cdigen hook` entry's arguments only."""
    return {
        "cdiVersion": "0.3.0",
        "kind": "cdigen.io/gpu",
        "devices": [
            {
                "name": "gpu0",
                "containerEdits": {
                    "deviceNodes": [{"path": "/dev/nvidia0", "type": "c", "major": 195, "minor": 0}],
                    "hooks": [
                        {
                            "hookName": "createRuntime",
                            "path": HOOK_PATH,
                            "args": ["cdigen", "hook", "--netdev", f"ibp20s0={settings}"],
                        }
                    ],
                },
            }
        ],
    }


def test_hook_arguments_carry_settings_into_net_devices(tmp_path):
    spec_dir = tmp_path / "cdi"
    write_spec(spec_dir, "gpu.yaml", hook_only_spec("name=net0,address=192.0.2.10,mask=255.255.255.0,mtu=4092"))
    bundle = make_bundle(tmp_path)
    apply(bundle, spec_dir, "--device", "cdigen.io/gpu=gpu0", check=0)
    config = json.loads(config_text(bundle))
    assert config["linux"]["netDevices"] == {
        "ibp20s0": {"name": "net0", "address": "192.0.2.10", "mask": "255.255.255.0", "mtu": 4092}
    }
    assert config["hooks"]["createRuntime"] == [
        {
            "path": HOOK_PATH,
            "args": ["cdigen", "hook", "--netdev", "ibp20s0=name=net0,address=192.0.2.10,mask=255.255.255.0,mtu=4092"],
        }
    ]


def test_override_of_hook_carried_settings_leaves_nothing_stale(tmp_path):
    spec_dir = tmp_path / "cdi"
    write_spec(spec_dir, "gpu.yaml", hook_only_spec("name=net0,address=192.0.2.10,mask=255.255.255.0,mtu=4092"))
    bundle = make_bundle(tmp_path)
    args = ("--device", "cdigen.io/gpu=gpu0", "--netdev", "ibp20s0=address=198.51.100.7/25,mtu=2044")
    apply(bundle, spec_dir, *args, check=0)
    first = config_text(bundle)
    config = json.loads(first)
    final = {"name": "net0", "address": "198.51.100.7", "mask": "255.255.255.128", "mtu": 2044}
    assert config["linux"]["netDevices"] == {"ibp20s0": final}
    [entry] = config["hooks"]["createRuntime"]
    assert entry["args"] == [
        "cdigen",
        "hook",
        "--netdev",
        "ibp20s0=name=net0,address=198.51.100.7,mask=255.255.255.128,mtu=2044",
    ]
    assert "192.0.2.10" not in first and "4092" not in first  # no stale setting anywhere
    apply(bundle, spec_dir, *args, check=0)
    assert config_text(bundle) == first  # and applying again changes nothing


def test_override_of_a_host_interface_no_device_carries_is_a_usage_error(tmp_path):
    spec_dir = tmp_path / "cdi"
    write_spec(spec_dir, "gpu.yaml", hook_only_spec("name=net0"))
    bundle = make_bundle(tmp_path)
    before = config_text(bundle)
    proc = apply(bundle, spec_dir, "--device", "cdigen.io/gpu=gpu0", "--netdev", "eth9=mtu=1500", check=2)
    assert proc.stderr == "cdigen: error: --netdev eth9: no requested device carries host interface eth9\n"
    assert config_text(bundle) == before


@pytest.mark.parametrize(
    "settings, message",
    [("mtu=20", "MTU 20 is outside 68..65535"), ("name=a/b", "contains '/'"), ("colour=blue", "expected name=")],
)
def test_bad_hook_arguments_are_refused_by_apply_and_validate(tmp_path, settings, message):
    spec_dir = tmp_path / "cdi"
    path = write_spec(spec_dir, "gpu.yaml", hook_only_spec(settings))
    bundle = make_bundle(tmp_path)
    before = config_text(bundle)
    proc = apply(bundle, spec_dir, "--device", "cdigen.io/gpu=gpu0", check=3)
    assert "hooks[0]: cdigen hook arguments: " in proc.stderr and message in proc.stderr
    assert config_text(bundle) == before
    proc = run_cdigen("validate", path, check=3)
    assert (
        f"{path}: devices[0].containerEdits: hooks[0]: cdigen hook arguments: " in proc.stdout
        and message in proc.stdout
    )
