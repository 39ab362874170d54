"""`cdigen validate`, `cdigen list`, and our outputs checked against the JSON Schemas in specs/."""

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdigen import netdev
from cdigen.cdi import load
from cdigen.cdi.spec import SpecError
from tests.helpers.bad_specs import BROKEN_KIND, NO_DEVICES, mtu_in_net_devices, validate_dir_specs
from tests.helpers.proc import run_cdigen
from tests.helpers.specs import FPGA_SPEC, HOOK_PATH, gpu_spec, make_bundle, write_spec

SPECS = Path(__file__).resolve().parent.parent / "specs"


def validator(name: str) -> jsonschema.Draft7Validator:
    schema = json.loads((SPECS / name).read_text())
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


CDI = validator("cdi-1.1.0.strict.schema.json")
NETDEVICES = validator("oci-netdevices.schema.json")


# ---------------------------------------------------------------------------- validate


def split_report(stdout: str) -> tuple[list[str], list[str]]:
    """validate's stdout: (problem lines, lines naming the engines that load a file)."""
    lines = stdout.splitlines()
    return [x for x in lines if ": cdiVersion " not in x], [x for x in lines if ": cdiVersion " in x]


def test_validate_reports_every_problem_with_file_and_field(tmp_path):
    d = tmp_path / "cdi"
    for name, doc in validate_dir_specs().items():
        write_spec(d, name, doc)
    proc = run_cdigen("validate", "--spec-dir", d)
    assert proc.returncode == 3
    conflict = f"conflicting device 'cdigen.io/gpu=gpu0' (specs '{d}/a-good.yaml', '{d}/e-conflict.yaml')"
    problems, readers = split_report(proc.stdout)
    assert readers == [  # the files that load, and which engine releases load them
        f"{d}/a-good.yaml: cdiVersion 1.1.0 (needs 1.1.0): containerd >= 2.2.1, crio >= 1.35.0, docker >= 29.2.0, "
        "nerdctl >= 2.2.1, podman: no release yet",
        f"{d}/d-relative.yaml: cdiVersion 1.1.0 (needs 1.1.0): containerd >= 2.2.1, crio >= 1.35.0, docker >= 29.2.0, "
        "nerdctl >= 2.2.1, podman: no release yet",
        f"{d}/e-conflict.yaml: cdiVersion 1.1.0 (needs 1.1.0): containerd >= 2.2.1, crio >= 1.35.0, docker >= 29.2.0, "
        "nerdctl >= 2.2.1, podman: no release yet",
    ]
    assert problems == [
        f"{d}/a-good.yaml: {conflict}",
        f"{d}/b-unknown.yaml: devices[0].containerEdit: unknown field",
        f"{d}/c-version.json: cdiVersion: the spec version must be at least v1.1.0 (is 1.0.0)",
        f"{d}/d-relative.yaml: devices[0].containerEdits.mounts[0].hostPath: relative path 'lib'",
        f"{d}/e-conflict.yaml: {conflict}",
        f"{d}/f-billion.yaml: invalid YAML: aliases expand the document to more than {load.MAX_YAML_NODES} nodes",
    ]
    *warnings, error = proc.stderr.splitlines()  # warnings: HOOK_PATH is not on this host
    assert error == "cdigen: error: 6 problems in 6 of 6 spec files"
    assert all(w.startswith("cdigen: warning: ") and HOOK_PATH in w for w in warnings)


def test_validate_files_named_on_the_command_line(tmp_path):
    good = write_spec(tmp_path, "good.json", FPGA_SPEC)
    proc = run_cdigen("validate", good, check=0)
    assert proc.stdout == (
        f"{good}: cdiVersion 0.7.0 (needs 0.7.0): containerd >= 1.7.16, crio >= 1.30.0, docker >= 26.1.0, "
        "nerdctl >= 2.1.0, podman >= 5.1.0\n1 spec file, 2 devices: valid\n"
    )
    assert proc.stderr == (  # FPGA_SPEC's hook is not on this host
        f"cdigen: warning: {good}: devices[0].containerEdits.hooks[0]: hook path /opt/fpga/bin/prepare does not "
        "exist on this host: a runtime here fails to start a container with it (ignore this if the spec is for "
        "another host)\n"
    )
    bad = write_spec(tmp_path, "bad.yaml", NO_DEVICES)
    proc = run_cdigen("validate", good, bad, tmp_path / "gone.yaml", check=3)
    assert split_report(proc.stdout)[0] == [
        f"{bad}: invalid spec, no devices",
        f"{tmp_path}/gone.yaml: cannot read: No such file or directory",
    ]


def test_validate_as_an_older_loader(tmp_path):
    """--cdi-version/--for: that library's version list and fields; scan's default output loads."""
    newest = write_spec(tmp_path / "new", "gpu.yaml", gpu_spec(1))  # netDevices, annotations: 1.1.0
    proc = run_cdigen("validate", newest, "--for", "podman-4", check=3)
    assert split_report(proc.stdout)[0] == [f"{newest}: devices[0].annotations: unknown field"]
    proc = run_cdigen("validate", newest, "--cdi-version", "1.0.0", check=3)
    assert split_report(proc.stdout)[0] == [f"{newest}: devices[0].containerEdits.netDevices: unknown field"]
    doc = {"cdiVersion": "v0.5.0", "kind": "a.com/bb", "devices": [{"name": "x", "containerEdits": {"env": ["A=1"]}}]}
    prefixed = write_spec(tmp_path / "v", "v.yaml", doc)
    proc = run_cdigen("validate", prefixed, "--cdi-version", "0.5.0", check=3)  # no 'v' before library 0.6
    assert split_report(proc.stdout)[0] == [f"{prefixed}: cdiVersion: invalid version 'v0.5.0'"]
    run_cdigen("validate", prefixed, "--cdi-version", "0.6.0", check=0)
    scanned = tmp_path / "scanned"
    scanned.mkdir()
    run_cdigen("scan", "--example", "hgx-h100", "--hook-path", "/usr/bin/cdigen", "-o", scanned / "s.yaml", check=0)
    proc = run_cdigen("validate", scanned, "--for", "podman-4", check=0)
    assert proc.stdout.endswith("podman >= 4.3.0\n1 spec file, 9 devices: valid\n")


# ---------------------------------------------------------------------------- list


@pytest.fixture
def listed(tmp_path):
    d = tmp_path / "cdi"
    write_spec(d, "gpu.yaml", gpu_spec(2))
    write_spec(d, "fpga.json", FPGA_SPEC)
    write_spec(d, "broken.yaml", BROKEN_KIND)
    return d


def test_list_table(listed):
    proc = run_cdigen("list", "--spec-dir", listed, check=0)
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert rows == [
        ["KIND", "DEVICE", "NETDEVS", "SPEC FILE"],
        ["cdigen.io/gpu", "gpu0", "ens0f0np0>net0", f"{listed}/gpu.yaml"],
        ["cdigen.io/gpu", "gpu1", "ens1f0np0>net1", f"{listed}/gpu.yaml"],
        ["example.com/fpga", "f0", "", f"{listed}/fpga.json"],
        ["example.com/fpga", "f1", "", f"{listed}/fpga.json"],
    ]
    assert proc.stderr.startswith(f"cdigen: warning: {listed}/broken.yaml: invalid YAML")


def test_list_json(listed):
    out = json.loads(run_cdigen("list", "--spec-dir", listed, "--json", check=0).stdout)
    assert list(out["kinds"]) == ["cdigen.io/gpu", "example.com/fpga"]
    assert out["kinds"]["cdigen.io/gpu"][1] == {
        "name": "gpu1",
        "qualifiedName": "cdigen.io/gpu=gpu1",
        "spec": f"{listed}/gpu.yaml",
        "netDevices": {"ens1f0np0": "net1"},
    }
    assert list(out["errors"]) == [f"{listed}/broken.yaml"]


# ---------------------------------------------------------------------------- schemas


def test_strict_cdi_schema_accepts_our_specs_and_refuses_unknown_fields():
    for spec in (gpu_spec(3, nics_per_gpu=2), FPGA_SPEC):
        assert list(CDI.iter_errors(spec)) == []
    bad = mtu_in_net_devices()  # an MTU belongs in the annotations
    assert [e.message for e in CDI.iter_errors(bad)] == ["Additional properties are not allowed ('mtu' was unexpected)"]


def test_scan_output_passes_the_strict_schema_and_our_loader(tmp_path):
    proc = run_cdigen("scan", "--example", "hgx-h100-roce", "--hook-path", HOOK_PATH, "--format", "json", check=0)
    spec = json.loads(proc.stdout)
    assert list(CDI.iter_errors(spec)) == []
    path = write_spec(tmp_path, "scan.json", proc.stdout)
    assert load.read_spec_file(str(path)).data == spec


def test_patched_net_devices_pass_the_netdevices_schema(tmp_path):
    d = tmp_path / "cdi"
    write_spec(
        d,
        "gpu.yaml",
        gpu_spec(
            2,
            nics_per_gpu=2,
            settings={"ens0f0np0": "name=net0,address=192.0.2.10/24,mtu=9000", "ens0f1np1": "name=eth%d"},
        ),
    )
    bundle = make_bundle(tmp_path)
    run_cdigen(
        "apply",
        bundle,
        "--spec-dir",
        d,
        "--hook-path",
        HOOK_PATH,
        "--device",
        "cdigen.io/gpu=gpu0",
        "--device",
        "cdigen.io/gpu=gpu1",
        "--netdev",
        "ens1f0np0=address=2001:db8::5/64,mtu=1500",
        check=0,
    )
    net = json.loads((bundle / "config.json").read_text())["linux"]["netDevices"]
    assert len(net) == 4
    assert list(NETDEVICES.iter_errors(net)) == []
    for bad in (
        {"eth0": {"name": "net0", "mtu": 67}},
        {"eth0": {"name": "a/b"}},
        {"eth0": {"address": "10.0.0.1"}},
        {"eth0": {"name": "n", "address": "10.0.0.1", "mask": "255.0.255.0"}},
        {"a:b": {"name": "n"}},
        {"eth0": {"name": "n", "gateway": "10.0.0.1"}},
    ):
        assert list(NETDEVICES.iter_errors(bad)) != [], bad


@settings(max_examples=200, deadline=None)
@given(
    host=st.text(min_size=1, max_size=16),
    name=st.one_of(st.none(), st.text(max_size=16)),
    address=st.one_of(st.none(), st.ip_addresses().map(str)),
    prefix=st.integers(0, 128),
    mtu=st.one_of(st.none(), st.integers(0, 70000)),
)
def test_every_netdev_setting_cdigen_accepts_passes_the_schema(host, name, address, prefix, mtu):
    """netconf (what apply writes) never produces an entry the schema refuses, and the entry
    reads back as the same setting (what the hook reads)."""
    try:
        cfg = netdev.make(host, name, f"{address}/{prefix}" if address else None, None, mtu)
    except netdev.NetdevError as e:
        assert "\n" not in str(e)
        return
    assert list(NETDEVICES.iter_errors({cfg.host: cfg.to_oci()})) == []
    assert netdev.from_oci(cfg.host, cfg.to_oci()) == cfg._replace(name=cfg.container_name)
    assert (cfg.mtu, cfg.name) == (mtu, name)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([gpu_spec(1), FPGA_SPEC]), st.data())
def test_schema_and_loader_agree_on_unknown_fields(spec, data):
    """Add an unknown key somewhere: both the strict schema and check_spec refuse it."""
    doc = json.loads(json.dumps(spec))
    stack, found = [doc], []
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.append(item)
            stack.extend(v for k, v in item.items() if k != "annotations")
        elif isinstance(item, list):
            stack.extend(item)
    target = data.draw(st.sampled_from(found))
    target[data.draw(st.sampled_from(["extra", "Mtu", "address", "x-y"]))] = "1"
    assert list(CDI.iter_errors(doc)) != []
    with pytest.raises(SpecError, match="unknown field"):
        load.check_document(json.dumps(doc).encode())
