"""The reference loader's rules (cdi-semantics.md §1-§2), with the §6 test vectors."""

import pytest
from hypothesis import given, settings, strategies as st

from cdigen.cdi.spec import (SpecError, check_spec, is_qualified_name, minimum_version,
                             parse_qualified_name)


def spec(devices=None, **top):
    doc = {"cdiVersion": "1.1.0", "kind": "vendor.com/device",
           "devices": devices if devices is not None else [
               {"name": "dev1", "containerEdits": {"env": ["A=B"]}}]}
    doc.update(top)
    return doc


def edits(**e):
    return spec([{"name": "dev1", "containerEdits": e}])


# --- names (vectors 1-4)

@pytest.mark.parametrize("name", [
    "vendor.com/class=dev", "vendor.com/class=0", "vendor1.com/class.subclass=dev1",
    "yet_another-vendor2.com/c-lass_2=dev_1:2.3", "a/b=c", "aa/b=cc", "a/bb=cc"])
def test_qualified_names(name):
    assert is_qualified_name(name)


def test_qualified_name_parts():
    assert parse_qualified_name("vendor.com/class=dev") == ("vendor.com", "class", "dev")


@pytest.mark.parametrize("name", [
    "_invalid.com/class=dev", "invalid2.com-/class=dev", "invalid3.com/_class=dev",
    "invalid4.com/class_=dev", "invalid5.com/class=-dev", "invalid6.com/class=dev:",
    "*.com/*dev=*gpu*", "/dev/null", "vendor3.com=device3", "", "v\u00e9ndor.com/class=dev"])
def test_unqualified_names(name):
    assert not is_qualified_name(name)


# --- versions (vectors 9-12)

@pytest.mark.parametrize("doc,expected", [
    (spec(), "0.3.0"),
    (edits(mounts=[{"hostPath": "/a", "containerPath": "/a", "type": "bind"}]), "0.4.0"),
    (edits(deviceNodes=[{"path": "/dev/x", "hostPath": "/dev/x"}]), "0.5.0"),
    (spec([{"name": "0", "containerEdits": {"env": ["A=B"]}}]), "0.5.0"),
    (spec(annotations={"a": "b"}), "0.6.0"),
    (spec(kind="vendor.com/class.sub"), "0.6.0"),
    (edits(intelRdt={}), "0.7.0"),
    (edits(intelRdt={"closID": "foo"}), "0.7.0"),
    (edits(additionalGids=[5]), "0.7.0"),
    (edits(intelRdt={"schemata": []}), "1.1.0"),
    (edits(intelRdt={"enableMonitoring": True}), "1.1.0"),
    (edits(netDevices=[{"hostInterfaceName": "eno1", "name": "net0"}]), "1.1.0"),
    (spec([{"name": "d", "annotations": {"a": "b"}, "containerEdits": {
        "deviceNodes": [{"path": "/dev/x", "hostPath": "/dev/x"}],
        "mounts": [{"hostPath": "/a", "containerPath": "/a", "type": "bind"}]}}]), "0.6.0"),
])
def test_minimum_version(doc, expected):
    assert minimum_version(doc) == expected
    check_spec(dict(doc, cdiVersion=expected))  # the minimum itself loads


@pytest.mark.parametrize("version", ["1.1.0", "v1.1.0", "0.3.0"])
def test_valid_versions(version):
    check_spec(spec(cdiVersion=version))


@pytest.mark.parametrize("version,message", [
    ("0.1.0", "at least v0.3.0"), ("v0.2.0", "at least v0.3.0"), ("1.2.0", "invalid version"),
    ("not-a-version", "invalid version"), ("", "invalid version"), ("0.0.0", "invalid version"),
    ("1.1", "invalid version"), ("vv1.1.0", "invalid version")])
def test_invalid_versions(version, message):
    with pytest.raises(SpecError, match=message):
        check_spec(spec(cdiVersion=version))


def test_version_below_fields():
    with pytest.raises(SpecError, match="at least v0.7.0"):
        check_spec(dict(edits(additionalGids=[5]), cdiVersion="0.6.0"))
    check_spec(dict(edits(additionalGids=[5]), cdiVersion="0.7.0"))


def test_float_version_is_coerced_like_go():
    with pytest.raises(SpecError, match="invalid version '1'"):
        check_spec(spec(cdiVersion=1.0))


# --- spec loading (vectors 13-20)

@pytest.mark.parametrize("doc,message", [
    ({"xyzzy": "garbled"}, "xyzzy: unknown field"),
    (None, "no Spec data"),
    ({"kind": "vendor.com/device", "devices": [{"name": "d", "containerEdits": {"env": ["A=B"]}}]}, "invalid version"),
    (spec(kind="vendor.com-/device"), "invalid vendor"),
    (spec(kind="vendor.com/device="), "invalid class"),
    (spec(kind="vendor1.comdevice"), "invalid vendor. empty name"),
    ({"cdiVersion": "1.1.0", "devices": [{"name": "d", "containerEdits": {"env": ["A=B"]}}]}, "invalid vendor. empty name"),
    (spec([{"name": "dev1"}]), "empty device edits"),
    (spec([{"name": n, "containerEdits": {"env": ["A=B"]}} for n in ("dev1", "dev2", "dev1")]), "multiple device 'dev1'"),
    (spec([], containerEdits={"env": ["A=B"]}), "no devices"),
    (spec([{"name": "a dev ice", "containerEdits": {"env": ["A=B"]}}]), "invalid device name"),
    (edits(env=["=BAR"]), "invalid environment variable"),
    ({}, "invalid version"),
    ([], "expected a mapping"),
    (spec([{"name": "d", "containerEdits": {"netDevices": [{"hostInterfaceName": "eno1", "name": "n", "mtu": 9000}]}}]),
     r"devices\[0\].containerEdits.netDevices\[0\].mtu: unknown field"),
    (edits(deviceNodes=[{"path": "/dev/x", "major": "1"}]), "expected an integer"),
    (edits(deviceNodes=[{"path": "/dev/x", "fileMode": -1}]), "out of range"),
])
def test_invalid_specs(doc, message):
    with pytest.raises(SpecError, match=message):
        check_spec(doc)


def test_three_distinct_devices_are_valid():
    check_spec(spec([{"name": n, "containerEdits": {"env": ["A=B"]}} for n in ("dev1", "dev2", "dev3")]))


def test_go_style_normalisation():
    out = check_spec({"CDIVERSION": "0.5.0", "Kind": "vendor.com/device",
                      "devices": [{"name": 0, "containerEdits": {"env": ["A=B"], "mounts": None}}]})
    assert out == {"cdiVersion": "0.5.0", "kind": "vendor.com/device",
                   "devices": [{"name": "0", "containerEdits": {"env": ["A=B"]}}]}


# --- edit validation (vectors 21-26)

@pytest.mark.parametrize("e,message", [
    ({"env": [""]}, "invalid environment"), ({"env": ["=foo"]}, "invalid environment"),
    ({"env": ["FOOBAR"]}, "invalid environment"),
    ({"deviceNodes": [{"path": ""}]}, "empty"), ({"deviceNodes": [{"path": "/dev/x", "type": "f"}]}, "invalid type"),
    ({"deviceNodes": [{"path": "/dev/x", "permissions": "to land"}]}, "invalid permissions"),
    ({"deviceNodes": [{"path": "/dev/x", "permissions": "none"}]}, "HEAD"),
    ({"mounts": [{"hostPath": "", "containerPath": "/a"}]}, "empty host path"),
    ({"mounts": [{"hostPath": "/a", "containerPath": ""}]}, "empty container path"),
    ({"hooks": [{"hookName": "misCreateRuntime", "path": "/bin/true"}]}, "invalid hook name"),
    ({"hooks": [{"hookName": "createRuntime"}]}, "empty path"),
    ({"hooks": [{"hookName": "createRuntime", "path": "/x", "env": ["=value2"]}]}, "invalid environment"),
    ({"intelRdt": {"closID": "foo/bar"}}, "ClosID"), ({"intelRdt": {"closID": "."}}, "ClosID"),
    ({"intelRdt": {"closID": ".."}}, "ClosID"), ({"intelRdt": {"closID": "foo\nbar"}}, "ClosID"),
    ({"netDevices": [{"hostInterfaceName": "", "name": "n"}]}, "empty hostInterfaceName"),
    ({"netDevices": [{"hostInterfaceName": "eno1", "name": ""}]}, "empty name"),
    ({"netDevices": [{"hostInterfaceName": "eno1", "name": "a"}, {"hostInterfaceName": "eno1", "name": "b"}]}, "duplicate hostInterfaceName"),
    ({"netDevices": [{"hostInterfaceName": "eno1", "name": "a"}, {"hostInterfaceName": "eno2", "name": "a"}]}, "duplicate name"),
])
def test_invalid_edits(e, message):
    with pytest.raises(SpecError, match=message):
        check_spec(edits(**e))


@pytest.mark.parametrize("e", [
    {"env": ["BAR=BARVALUE1", "A=", "A=B=C"]},
    {"deviceNodes": [{"path": "/dev/x", "permissions": "rwm"}, {"path": "/dev/y", "permissions": "mwr"}]},
    {"hooks": [{"hookName": n, "path": "/bin/true"} for n in
               ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")]},
    {"intelRdt": {"closID": "foo.bar"}}, {"intelRdt": {"closID": "/"}},
    {"netDevices": [{"hostInterfaceName": "eno1", "name": "netdev0"}]},
    {"additionalGids": [0]},
])
def test_valid_edits(e):
    check_spec(edits(**e))


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(
                         st.sampled_from(["cdiVersion", "kind", "devices", "name", "containerEdits", "env",
                                          "deviceNodes", "path", "netDevices", "hostInterfaceName", "x"]),
                         c, max_size=5), max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_no_input_escapes_as_anything_but_spec_error(doc):
    try:
        check_spec(doc)
    except SpecError:
        pass
