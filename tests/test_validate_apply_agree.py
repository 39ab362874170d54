"""`cdigen validate` and `cdigen apply` agree, on every bad spec the suite knows
(tests/helpers/bad_specs.py) and on `cdigen scan` output of every shipped example.

For a bad spec, validate reports a problem in its file exactly when applying the device that
meets the problem is refused as invalid input (exit 3), and a refused apply leaves
config.json byte-identical. Two deliberate differences: a device node that this host lacks
(or has as another type) is refused by apply, which completes nodes from the host's /dev,
while validate, which may run on another machine, never looks at the host's devices; and
validate alone refuses a one-letter vendor or class, on which the engines' Go library crashes
while cdigen's loader reads it as HEAD does.

In-process (`validate_paths`, `apply_devices`) for speed; a handful through the real CLI.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cdigen.apply import apply_devices
from cdigen.cdi import load
from cdigen.errors import CdigenError
from cdigen.examples import EXAMPLES
from cdigen.validate import validate_paths
from tests.helpers.bad_specs import CASES, Case
from tests.helpers.proc import run_cdigen
from tests.helpers.specs import HOOK_PATH, RUNC_SPEC_CONFIG, make_bundle, to_yaml


def write_case(case: Case, directory: Path) -> dict[str, bytes]:
    """The case's files in `directory`; returns path -> bytes written."""
    directory.mkdir()
    written = {}
    for name, content in case.files.items():
        if isinstance(content, str):
            data = content.encode()
        elif isinstance(content, bytes):
            data = content
        elif name.endswith(".json"):
            data = json.dumps(content, indent=2).encode()
        else:
            data = to_yaml(content).encode()
        (directory / name).write_bytes(data)
        written[str(directory / name)] = data
    return written


def apply_outcome(bundle: Path, device: str, spec_dir: Path) -> tuple[int, str]:
    """(exit code, message) of `cdigen apply BUNDLE --device DEVICE --spec-dir DIR`, in-process."""
    try:
        apply_devices(str(bundle), [device], spec_dirs=[str(spec_dir)], hook_path=HOOK_PATH)
    except CdigenError as e:
        return e.exit_code, str(e)
    return 0, ""


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_validate_reports_a_problem_exactly_where_apply_refuses(case, tmp_path):
    written = write_case(case, tmp_path / "cdi")
    bundle = make_bundle(tmp_path)

    _, problems = validate_paths(None, [str(tmp_path / "cdi")])
    code, message = apply_outcome(bundle, case.device, tmp_path / "cdi")

    assert code == 3, (code, message)  # every case is bad input, never a crash or a usage error
    assert "\n" not in message
    assert (bundle / "config.json").read_text() == RUNC_SPEC_CONFIG
    if case.host:
        assert problems == []  # validate does not look at this host's /dev
        assert re.search(case.pattern, message), message
        return
    assert problems, f"apply refused ({message}) but validate found nothing"
    assert {where for where, _ in problems} <= set(written)
    report = "\n".join(f"{where}: {problem}" for where, problem in problems)
    assert re.search(case.pattern, report), report
    if not re.search(case.pattern, message):
        # Only when no file may define the requested kind (the loader's pre-filter skipped
        # them all) has apply nothing to name but the device.
        assert message.startswith(f"unresolvable CDI devices {case.device}; spec directories: ")
        assert not any(case.device.partition("=")[0].encode() in data for data in written.values())


def test_the_cases_cover_every_list_and_the_new_rules():
    ids = {case.id for case in CASES}
    assert len(ids) == len(CASES)
    for prefix in (
        "spec-version-",
        "spec-doc-",
        "spec-edits-",
        "load-malformed-",
        "load-invalid-",
        "edits-host-node-",
        "edits-netdev-",
        "edits-path-",
        "apply-broken-",
        "apply-refused-",
        "validate-",
    ):
        assert any(i.startswith(prefix) for i in ids), prefix
    assert {"annotation-without-net-devices", "spec-annotation-without-net-devices"} <= ids


# ---------------------------------------------------------------------------- good specs


def carried_hosts(edits: dict) -> set[str]:
    """Host interfaces of a containerEdits: its netDevices, and the --netdev arguments of its
    `cdigen hook` entries (a spec for loaders without netDevices carries only those)."""
    hosts = {net["hostInterfaceName"] for net in edits.get("netDevices") or []}
    for hook in edits.get("hooks") or []:
        args = hook.get("args") or []
        if args[:2] == ["cdigen", "hook"]:
            hosts |= {
                value.partition("=")[0]
                for flag, value in zip(args[2::2], args[3::2], strict=False)
                if flag == "--netdev"
            }
    return hosts


@pytest.fixture(scope="module")
def scanned(tmp_path_factory) -> dict[str, Path]:
    """example -> a spec directory holding `cdigen scan --example NAME` output (scanned in parallel)."""
    root = tmp_path_factory.mktemp("scanned")
    procs = {}
    for name in sorted(EXAMPLES):
        (root / name).mkdir()
        procs[name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cdigen",
                "scan",
                "--example",
                name,
                "--hook-path",
                HOOK_PATH,
                "--output",
                str(root / name / "cdigen.yaml"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    for name, proc in procs.items():
        assert proc.wait(timeout=120) == 0, (name, proc.stderr.read())
        proc.stderr.close()
    return {name: root / name for name in procs}


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_scan_output_passes_validate_and_every_device_applies(example, scanned, tmp_path):
    spec_dir = scanned[example]
    registry, problems = validate_paths(None, [str(spec_dir)])
    assert problems == []
    assert registry.devices
    for i, (name, device) in enumerate(sorted(registry.devices.items())):
        bundle = make_bundle(tmp_path, name=f"bundle{i}")
        result = apply_devices(str(bundle), [name], spec_dirs=[str(spec_dir)], hook_path=HOOK_PATH)
        after = json.loads((bundle / "config.json").read_text())
        assert after == json.loads(result.new) and result.patch
        wanted = {
            node["path"]
            for edits in (device.spec.data.get("containerEdits") or {}, device.data["containerEdits"])
            for node in edits.get("deviceNodes") or []
        }
        assert wanted <= {node["path"] for node in after["linux"].get("devices") or []}
        assert carried_hosts(device.data["containerEdits"]) == set(after["linux"].get("netDevices") or {})


# ---------------------------------------------------------------------------- the real commands

CLI_CASES = [
    "edits-path-0",
    "annotation-without-net-devices",
    "apply-broken-2",
    "validate-conflict",
    "load-invalid-10",
    "edits-host-node-0",
]


@pytest.mark.parametrize("case", [c for c in CASES if c.id in CLI_CASES], ids=lambda c: c.id)
def test_the_commands_agree_too(case, tmp_path):
    write_case(case, tmp_path / "cdi")
    bundle = make_bundle(tmp_path)

    validate = run_cdigen("validate", "--spec-dir", tmp_path / "cdi")
    apply = run_cdigen(
        "apply", bundle, "--device", case.device, "--spec-dir", tmp_path / "cdi", "--hook-path", HOOK_PATH
    )

    assert apply.returncode == 3, apply.stderr
    assert apply.stderr.count("\n") == 1 and apply.stderr.startswith("cdigen: error: "), apply.stderr
    assert (bundle / "config.json").read_text() == RUNC_SPEC_CONFIG
    if case.host:
        assert validate.returncode == 0, validate.stdout
    else:
        assert validate.returncode == 3 and re.search(case.pattern, validate.stdout), validate.stdout
        *warnings, error = validate.stderr.splitlines()  # warnings: HOOK_PATH is not on this host
        assert error.startswith("cdigen: error: ") and "problem" in error
        assert all(w.startswith("cdigen: warning: ") for w in warnings)


def test_the_commands_accept_a_scanned_spec(scanned, tmp_path):
    spec_dir = scanned["hgx-h100"]
    validate = run_cdigen("validate", spec_dir, check=0)  # a directory named on the command line
    assert validate.stdout.splitlines()[-1] == "1 spec file, 9 devices: valid"
    bundle = make_bundle(tmp_path)
    run_cdigen(
        "apply", bundle, "--device", "cdigen.io/gpu=gpu0", "--spec-dir", spec_dir, "--hook-path", HOOK_PATH, check=0
    )
    assert load.load_registry([str(spec_dir)]).devices["cdigen.io/gpu=gpu0"]
    assert "ibp20s0" in json.loads((bundle / "config.json").read_text())["linux"]["netDevices"]
