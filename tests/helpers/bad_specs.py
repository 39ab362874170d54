"""Every bad CDI spec the suite feeds to cdigen, in one place.

Each list is used by the test that it is named after, in the shape that test needs; `CASES`
turns all of them into spec files, for tests/test_validate_apply_agree.py to check that
`cdigen validate` reports a problem exactly where `cdigen apply` refuses.
"""

import json
import re
from dataclasses import dataclass

from cdigen.cdi import load
from cdigen.cdi.spec import is_qualified_name
from tests.helpers.specs import (
    FPGA_SPEC,
    MINIMAL,
    cdi_spec,
    device,
    gpu_spec,
    spec_with,
    to_yaml,
    vendor_edits,
    vendor_spec,
)

# ---------------------------------------------------------------------------- test_spec.py
# check_spec refuses these; the messages are regular expressions (pytest.raises(match=...)).

# test_invalid_versions: vendor_spec(cdiVersion=version)
INVALID_VERSIONS = [
    ("0.1.0", "at least v0.3.0"),
    ("v0.2.0", "at least v0.3.0"),
    ("1.2.0", "invalid version"),
    ("not-a-version", "invalid version"),
    ("", "invalid version"),
    ("0.0.0", "invalid version"),
    ("1.1", "invalid version"),
    ("vv1.1.0", "invalid version"),
]

# test_invalid_specs: whole documents
INVALID_DOCS = [
    ({"xyzzy": "garbled"}, "xyzzy: unknown field"),
    (None, "no Spec data"),
    ({"kind": "vendor.com/device", "devices": [{"name": "d", "containerEdits": {"env": ["A=B"]}}]}, "invalid version"),
    (vendor_spec(kind="vendor.com-/device"), "invalid vendor"),
    (vendor_spec(kind="vendor.com/device="), "invalid class"),
    (vendor_spec(kind="vendor1.comdevice"), "invalid vendor. empty name"),
    (
        {"cdiVersion": "1.1.0", "devices": [{"name": "d", "containerEdits": {"env": ["A=B"]}}]},
        "invalid vendor. empty name",
    ),
    (vendor_spec([{"name": "dev1"}]), "empty device edits"),
    (
        vendor_spec([{"name": n, "containerEdits": {"env": ["A=B"]}} for n in ("dev1", "dev2", "dev1")]),
        "multiple device 'dev1'",
    ),
    (vendor_spec([], containerEdits={"env": ["A=B"]}), "no devices"),
    (vendor_spec([{"name": "a dev ice", "containerEdits": {"env": ["A=B"]}}]), "invalid device name"),
    (vendor_edits(env=["=BAR"]), "invalid environment variable"),
    ({}, "invalid version"),
    ([], "expected a mapping"),
    (
        vendor_spec(
            [{"name": "d", "containerEdits": {"netDevices": [{"hostInterfaceName": "eno1", "name": "n", "mtu": 9000}]}}]
        ),
        r"devices\[0\].containerEdits.netDevices\[0\].mtu: unknown field",
    ),
    (vendor_edits(deviceNodes=[{"path": "/dev/x", "major": "1"}]), "expected an integer"),
    (vendor_edits(deviceNodes=[{"path": "/dev/x", "fileMode": -1}]), "out of range"),
]

# test_invalid_edits: vendor_edits(**edits)
INVALID_EDITS = [
    ({"env": [""]}, "invalid environment"),
    ({"env": ["=foo"]}, "invalid environment"),
    ({"env": ["FOOBAR"]}, "invalid environment"),
    ({"deviceNodes": [{"path": ""}]}, "empty"),
    ({"deviceNodes": [{"path": "/dev/x", "type": "f"}]}, "invalid type"),
    ({"deviceNodes": [{"path": "/dev/x", "permissions": "to land"}]}, "invalid permissions"),
    ({"deviceNodes": [{"path": "/dev/x", "permissions": "none"}]}, "HEAD"),
    ({"mounts": [{"hostPath": "", "containerPath": "/a"}]}, "empty host path"),
    ({"mounts": [{"hostPath": "/a", "containerPath": ""}]}, "empty container path"),
    ({"hooks": [{"hookName": "misCreateRuntime", "path": "/bin/true"}]}, "invalid hook name"),
    ({"hooks": [{"hookName": "createRuntime"}]}, "empty path"),
    ({"hooks": [{"hookName": "createRuntime", "path": "/x", "env": ["=value2"]}]}, "invalid environment"),
    ({"intelRdt": {"closID": "foo/bar"}}, "ClosID"),
    ({"intelRdt": {"closID": "."}}, "ClosID"),
    ({"intelRdt": {"closID": ".."}}, "ClosID"),
    ({"intelRdt": {"closID": "foo\nbar"}}, "ClosID"),
    ({"netDevices": [{"hostInterfaceName": "", "name": "n"}]}, "empty hostInterfaceName"),
    ({"netDevices": [{"hostInterfaceName": "eno1", "name": ""}]}, "empty name"),
    (
        {"netDevices": [{"hostInterfaceName": "eno1", "name": "a"}, {"hostInterfaceName": "eno1", "name": "b"}]},
        "duplicate hostInterfaceName",
    ),
    (
        {"netDevices": [{"hostInterfaceName": "eno1", "name": "a"}, {"hostInterfaceName": "eno2", "name": "a"}]},
        "duplicate name",
    ),
]

# test_version_below_fields: additionalGids needs v0.7.0
GIDS_AT_0_6_0 = dict(vendor_edits(additionalGids=[5]), cdiVersion="0.6.0")

# ---------------------------------------------------------------------------- test_load.py
# The messages are substrings.

# test_malformed_documents_are_one_line_errors: parse_document refuses these texts
MALFORMED_TEXTS = [
    ("a: 1\na: 2\n", "duplicate key 'a'"),
    ("{a: 1, a: 2}", "duplicate key 'a'"),
    ('{"a": 1, "a": 2}', "duplicate key 'a'"),
    ("a: &a [*a]\n", "recursive alias"),
    ("a: *nope", "undefined alias"),
    ("a: [\n", "invalid YAML"),
    ('{"a": 1,', "invalid JSON"),
    ("a: !foo x", "unsupported tag '!foo'"),
    ("a: !!binary aGVsbG8=", "unsupported tag"),
    ("a: !!int x", "cannot decode 'x' as int"),
    ("? [a]\n: b", "a mapping key must be a scalar"),
    ("- " * 100 + "x", "nested more than 64 levels deep"),
    ("a: " + "[" * 100 + "]" * 100, "nested more than 64 levels deep"),
    ("[" * 5000 + "]" * 5000, "nested too deeply"),  # JSON past the recursion limit: no RecursionError escapes
    ("a: \x00", "invalid YAML"),
]

# test_invalid_specs (§6 vectors 13-20): read_spec_file refuses these files
INVALID_SPEC_TEXTS = [
    ("xyzzy: garbled\n", "unknown field"),  # 13
    ("", "no Spec data"),  # 13
    (to_yaml({k: v for k, v in MINIMAL.items() if k != "cdiVersion"}), "invalid version"),  # 14
    (to_yaml(MINIMAL | {"cdiVersion": "0.0.0"}), "invalid version"),  # 14
    (to_yaml(MINIMAL | {"cdiVersion": ""}), "invalid version"),  # 14
    (to_yaml(MINIMAL | {"kind": "vendor.com-/device"}), "invalid vendor"),  # 15
    (to_yaml(MINIMAL | {"kind": "vendor.com/device="}), "invalid class"),  # 15
    (to_yaml(MINIMAL | {"kind": "vendor1.comdevice"}), "invalid vendor. empty name"),  # 15
    (to_yaml({k: v for k, v in MINIMAL.items() if k != "kind"}), "invalid vendor"),  # 15
    (to_yaml(MINIMAL | {"devices": [{"name": "dev1"}]}), "empty device edits"),  # 16
    (to_yaml(spec_with(["dev1", "dev2", "dev1"])), "multiple device 'dev1'"),  # 17
    (
        to_yaml({k: v for k, v in MINIMAL.items() if k != "devices"} | {"containerEdits": {"env": ["A=1"]}}),
        "no devices",
    ),  # 18
    (to_yaml(spec_with(["a dev ice"])), "invalid device name"),  # 19
    (
        to_yaml(MINIMAL | {"devices": [{"name": "d", "containerEdits": {"env": ["=BAR"]}}]}),
        "invalid environment variable",
    ),  # 19
    ("{}", "invalid version"),  # 20: bad/explicit-empty.json
    (
        "cdiVersion: 1.1.0\nkind: a.com/b\ndevices: [{name: d, containerEdits: {env: A=1}}]\n",
        "devices[0].containerEdits.env: expected a list",
    ),  # wrong type, with the field
]


def billion_laughs(levels: int = 9) -> str:
    """Nested aliases that expand to 9**(levels + 1) scalars (test_load: refused unexpanded)."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        name, prev = chr(ord("a") + i), chr(ord("a") + i - 1)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


NOT_UTF8 = b"kind: \xff\n"  # test_not_utf8
TOO_BIG = b"#" * (load.MAX_SPEC_BYTES + 1)  # test_size_limit
BROKEN_OF_THE_KIND = "kind: vendor1.com/device\ndevices: [\n"  # test_unresolvable_device_names_the_broken_file

# ---------------------------------------------------------------------------- test_edits.py
# Specs the loader accepts but `cdigen apply` refuses; the messages are substrings.

# test_device_node_errors: {"deviceNodes": [node]}; about this host's /dev, not the spec
HOST_DEVICE_NODE_ERRORS = [
    ({"path": "/dev/does-not-exist"}, "failed to stat CDI host device '/dev/does-not-exist'"),
    ({"path": "/dev/null", "type": "b"}, "host type mismatch (b, c)"),
    ({"path": "/dev/x", "hostPath": "/etc/hostname"}, "is not a device node"),
]

# test_bad_netdev_settings_in_specs_are_invalid_input: {"netDevices": [netdev]} and the
# device annotation netdev.cdigen.io/eth0 (when not None)
BAD_NETDEV_SETTINGS = [
    ({"hostInterfaceName": "eth0", "name": "a/b"}, None, "contains '/'"),
    ({"hostInterfaceName": "eth0", "name": "averyveryverylongname"}, None, "longer than 15 bytes"),
    ({"hostInterfaceName": "eth0", "name": "net0"}, "mtu=50", "outside 68..65535"),
    ({"hostInterfaceName": "eth0", "name": "net0"}, "address=192.0.2.1,mask=255.0.255.0", "not contiguous"),
    ({"hostInterfaceName": "eth0", "name": "net0"}, "address=300.1.1.1", "invalid IP address"),
]

# test_relative_and_dotdot_paths_are_refused: a device's containerEdits
BAD_PATHS = [
    ({"deviceNodes": [{"path": "dev/null"}]}, "deviceNodes[0].path: relative path 'dev/null'"),
    (
        {"deviceNodes": [{"path": "/dev/null", "hostPath": "/dev/../etc/x"}]},
        "deviceNodes[0].hostPath: path '/dev/../etc/x' contains '..'",
    ),
    ({"mounts": [{"hostPath": "/a", "containerPath": "b"}]}, "mounts[0].containerPath: relative path 'b'"),
    ({"mounts": [{"hostPath": "/a", "containerPath": "/b/../../etc"}]}, "contains '..'"),
    ({"mounts": [{"hostPath": "a", "containerPath": "/b"}]}, "mounts[0].hostPath: relative path 'a'"),
    ({"mounts": [{"hostPath": "a", "containerPath": "/b", "type": "tmpfs", "options": ["bind"]}]}, "relative path 'a'"),
]

# ---------------------------------------------------------------------------- test_apply.py
# The messages are substrings.

# test_broken_spec_of_the_requested_kind: example-fpga.json holds this text
BROKEN_FPGA_TEXTS = [
    ("kind: example.com/fpga\ndevices: [\n", "invalid YAML"),
    ('{"kind": "example.com/fpga", "devices": [}', "invalid JSON"),
    (
        "cdiVersion: 1.1.0\nkind: example.com/fpga\ndevices:\n- name: f1\n  containerEdits: {env: [A=1], gids: [1]}\n",
        "devices[0].containerEdits.gids: unknown field",
    ),
    (
        "cdiVersion: 1.1.0\nkind: example.com/fpga\ndevices:\n- name: f1\n  containerEdits: {additionalGids: [-1]}\n",
        "additionalGids[0]: -1 is out of range",
    ),
    (
        "cdiVersion: 1.1.0\nkind: example.com/fpga\ndevices:\n- name: f1\n  containerEdits: {env: A=1}\n",
        "env: expected a list",
    ),
]

# test_refused_spec_content: FPGA_SPEC with device f1's containerEdits replaced
REFUSED_FPGA_EDITS = [
    ({"mounts": [{"hostPath": "/a", "containerPath": "etc/x"}]}, "mounts[0].containerPath: relative path 'etc/x'"),
    (
        {"mounts": [{"hostPath": "/a/../../etc", "containerPath": "/x"}]},
        "mounts[0].hostPath: path '/a/../../etc' contains '..'",
    ),
    ({"deviceNodes": [{"path": "/dev/../dev/null"}]}, "deviceNodes[0].path: path '/dev/../dev/null' contains '..'"),
    ({"deviceNodes": [{"path": "null", "hostPath": "/dev/null"}]}, "deviceNodes[0].path: relative path 'null'"),
    ({"deviceNodes": [{"path": "/dev/nope0"}]}, "failed to stat CDI host device '/dev/nope0'"),  # this host's /dev
]


def fpga_with_f1_edits(edits: dict) -> dict:
    spec = json.loads(json.dumps(FPGA_SPEC))
    spec["devices"][1]["containerEdits"] = edits
    return spec


# test_bad_netdev_annotation_in_a_spec_is_invalid_input
GPU_MTU_20 = gpu_spec(1, settings={"ens0f0np0": "name=net0,mtu=20"})

# ---------------------------------------------------------------------------- test_apply_validate.py


def validate_dir_specs() -> dict[str, dict | str]:
    """test_validate_reports_every_problem_with_file_and_field: one good file and five bad ones
    (an unknown field, a version too low for netDevices, a relative path, a device that the
    good file defines too, a billion laughs)."""
    spec = gpu_spec(1, kind="d.com/gpu")
    spec["devices"][0]["containerEdits"]["mounts"] = [{"hostPath": "lib", "containerPath": "/usr/lib/x"}]
    return {
        "a-good.yaml": gpu_spec(2),
        "b-unknown.yaml": to_yaml(gpu_spec(1, kind="b.com/gpu")).replace("  containerEdits:", "  containerEdit:", 1),
        "c-version.json": gpu_spec(1, kind="c.com/gpu") | {"cdiVersion": "1.0.0"},
        "d-relative.yaml": spec,
        "e-conflict.yaml": gpu_spec(1, kind="cdigen.io/gpu"),
        "f-billion.yaml": "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)),
    }


NO_DEVICES = "cdiVersion: 1.1.0\nkind: a.com/b\ndevices: []\n"  # test_validate_files_named_on_the_command_line
BROKEN_KIND = "kind: ["  # the `listed` fixture's broken.yaml


def mtu_in_net_devices() -> dict:
    """test_strict_cdi_schema_accepts_our_specs_and_refuses_unknown_fields: an MTU where only
    the annotation may carry it."""
    bad = gpu_spec(1)
    bad["devices"][0]["containerEdits"]["netDevices"][0]["mtu"] = 9000
    return bad


# ---------------------------------------------------------------------------- all of them as files


@dataclass(frozen=True)
class Case:
    """Spec files that hold a problem, and the device whose request meets it."""

    id: str
    files: dict  # file name -> document (dict, list, None), text (str) or bytes
    device: str  # qualified name to request
    pattern: str  # regular expression that the problem report matches
    host: bool = False  # refused for this host's /dev, which validate does not look at


def _device_of(content) -> str:
    """kind=name of the first device that a document (or a text, read as plain YAML) names
    when that is a valid qualified name, else vendor.com/device=dev1."""
    if isinstance(content, str) and len(content) < 10000:
        from ruamel.yaml import YAML

        try:
            content = YAML(typ="safe", pure=True).load(content)
        except Exception:  # any text at all: only a hint of which device to request
            content = None
    if isinstance(content, dict):
        kind, devices = content.get("kind"), content.get("devices")
        if isinstance(kind, str) and isinstance(devices, list) and devices and isinstance(devices[0], dict):
            name = f"{kind}={devices[0].get('name')}"
            if is_qualified_name(name):
                return name
    return "vendor.com/device=dev1"


def _case(id: str, content, pattern: str, device: str | None = None, name: str = "spec.yaml", **kw) -> Case:
    return Case(id, {name: content}, device or _device_of(content), pattern, **kw)


def _one_device(edits: dict, annotations: dict | None = None) -> dict:
    return cdi_spec([device("dev0", edits, annotations)])


def _build_cases() -> list[Case]:
    cases = []
    for i, (version, pattern) in enumerate(INVALID_VERSIONS):
        cases.append(_case(f"spec-version-{i}", vendor_spec(cdiVersion=version), pattern))
    for i, (doc, pattern) in enumerate(INVALID_DOCS):
        cases.append(_case(f"spec-doc-{i}", doc, pattern))
    for i, (edits, pattern) in enumerate(INVALID_EDITS):
        cases.append(_case(f"spec-edits-{i}", vendor_edits(**edits), pattern))
    cases.append(_case("spec-gids-at-0.6.0", GIDS_AT_0_6_0, "at least v0.7.0"))

    for i, (text, message) in enumerate(MALFORMED_TEXTS):
        cases.append(_case(f"load-malformed-{i}", text, re.escape(message)))
    for i, (text, message) in enumerate(INVALID_SPEC_TEXTS):
        cases.append(_case(f"load-invalid-{i}", text, re.escape(message)))
    cases.append(_case("load-billion-laughs", billion_laughs(), "aliases expand the document to more than"))
    cases.append(_case("load-not-utf8", NOT_UTF8, re.escape("not UTF-8")))
    cases.append(_case("load-too-big", TOO_BIG, re.escape(f"larger than {load.MAX_SPEC_BYTES} bytes")))
    cases.append(_case("load-broken-of-the-kind", BROKEN_OF_THE_KIND, "invalid YAML", "vendor1.com/device=dev1"))

    for i, (node, message) in enumerate(HOST_DEVICE_NODE_ERRORS):
        cases.append(_case(f"edits-host-node-{i}", _one_device({"deviceNodes": [node]}), re.escape(message), host=True))
    for i, (netdev, annotation, message) in enumerate(BAD_NETDEV_SETTINGS):
        annotations = {"netdev.cdigen.io/eth0": annotation} if annotation else None
        cases.append(_case(f"edits-netdev-{i}", _one_device({"netDevices": [netdev]}, annotations), re.escape(message)))
    for i, (edits, message) in enumerate(BAD_PATHS):
        cases.append(_case(f"edits-path-{i}", _one_device(edits), re.escape(message)))

    for i, (text, message) in enumerate(BROKEN_FPGA_TEXTS):
        cases.append(_case(f"apply-broken-{i}", text, re.escape(message), "example.com/fpga=f1", "example-fpga.json"))
    for i, (edits, message) in enumerate(REFUSED_FPGA_EDITS):
        cases.append(
            _case(
                f"apply-refused-{i}",
                fpga_with_f1_edits(edits),
                re.escape(message),
                "example.com/fpga=f1",
                "example-fpga.json",
                host="stat" in message,
            )
        )
    cases.append(_case("apply-gpu-mtu-20", GPU_MTU_20, re.escape("MTU 20 is outside 68..65535")))

    specs = validate_dir_specs()
    for name, message in [
        ("b-unknown.yaml", "devices[0].containerEdit: unknown field"),
        ("c-version.json", "the spec version must be at least v1.1.0 (is 1.0.0)"),
        ("d-relative.yaml", "mounts[0].hostPath: relative path 'lib'"),
        ("f-billion.yaml", "aliases expand the document to more than"),
    ]:
        cases.append(_case(f"validate-{name}", specs[name], re.escape(message), f"{name[0]}.com/gpu=gpu0", name))
    cases.append(
        Case(
            "validate-conflict",
            {"a-good.yaml": specs["a-good.yaml"], "e-conflict.yaml": specs["e-conflict.yaml"]},
            "cdigen.io/gpu=gpu0",
            re.escape("conflicting device 'cdigen.io/gpu=gpu0'"),
        )
    )
    cases.append(_case("validate-no-devices", NO_DEVICES, "no devices", "a.com/b=d"))
    cases.append(_case("validate-broken-kind", BROKEN_KIND, "invalid YAML"))
    cases.append(_case("validate-mtu-in-net-devices", mtu_in_net_devices(), re.escape("mtu: unknown field")))

    # An annotation names settings for an interface that no netDevices entry carries: it is
    # still parsed, and malformed it is invalid data (exit 3), on a device or on the spec.
    cases.append(
        _case(
            "annotation-without-net-devices",
            _one_device({"env": ["A=1"]}, {"netdev.cdigen.io/eth0": "mtu=20"}),
            re.escape("MTU 20 is outside 68..65535"),
        )
    )
    spec_wide = _one_device({"env": ["A=1"]}) | {"annotations": {"netdev.cdigen.io/eth0": "mtu=20"}}
    cases.append(_case("spec-annotation-without-net-devices", spec_wide, re.escape("MTU 20 is outside 68..65535")))
    return cases


CASES = _build_cases()
