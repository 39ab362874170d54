"""The reference loader's rules (cdi-semantics.md §1-§2), with the §6 test vectors."""

import copy
from types import SimpleNamespace

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from cdigen.cdi.spec import SpecError, check_spec, is_qualified_name, minimum_version, parse_qualified_name
from tests.helpers.bad_specs import GIDS_AT_0_6_0, INVALID_DOCS, INVALID_EDITS, INVALID_VERSIONS
from tests.helpers.specs import vendor_edits, vendor_spec
from tests.helpers.strategies import mutate

# --- names (vectors 1-4)


@pytest.mark.parametrize(
    "name",
    [
        "vendor.com/class=dev",
        "vendor.com/class=0",
        "vendor1.com/class.subclass=dev1",
        "yet_another-vendor2.com/c-lass_2=dev_1:2.3",
        "a/b=c",
        "aa/b=cc",
        "a/bb=cc",
    ],
)
def test_qualified_names(name):
    assert is_qualified_name(name)


def test_qualified_name_parts():
    assert parse_qualified_name("vendor.com/class=dev") == ("vendor.com", "class", "dev")


@pytest.mark.parametrize(
    "name",
    [
        "_invalid.com/class=dev",
        "invalid2.com-/class=dev",
        "invalid3.com/_class=dev",
        "invalid4.com/class_=dev",
        "invalid5.com/class=-dev",
        "invalid6.com/class=dev:",
        "*.com/*dev=*gpu*",
        "/dev/null",
        "vendor3.com=device3",
        "",
        "v\u00e9ndor.com/class=dev",
    ],
)
def test_unqualified_names(name):
    assert not is_qualified_name(name)


# --- versions (vectors 9-12)


@pytest.mark.parametrize(
    "doc,expected",
    [
        (vendor_spec(), "0.3.0"),
        (vendor_edits(mounts=[{"hostPath": "/a", "containerPath": "/a", "type": "bind"}]), "0.4.0"),
        (vendor_edits(deviceNodes=[{"path": "/dev/x", "hostPath": "/dev/x"}]), "0.5.0"),
        (vendor_spec([{"name": "0", "containerEdits": {"env": ["A=B"]}}]), "0.5.0"),
        (vendor_spec(annotations={"a": "b"}), "0.6.0"),
        (vendor_spec(kind="vendor.com/class.sub"), "0.6.0"),
        (vendor_edits(intelRdt={}), "0.7.0"),
        (vendor_edits(intelRdt={"closID": "foo"}), "0.7.0"),
        (vendor_edits(additionalGids=[5]), "0.7.0"),
        (vendor_edits(intelRdt={"schemata": []}), "1.1.0"),
        (vendor_edits(intelRdt={"enableMonitoring": True}), "1.1.0"),
        (vendor_edits(netDevices=[{"hostInterfaceName": "eno1", "name": "net0"}]), "1.1.0"),
        (
            vendor_spec(
                [
                    {
                        "name": "d",
                        "annotations": {"a": "b"},
                        "containerEdits": {
                            "deviceNodes": [{"path": "/dev/x", "hostPath": "/dev/x"}],
                            "mounts": [{"hostPath": "/a", "containerPath": "/a", "type": "bind"}],
                        },
                    }
                ]
            ),
            "0.6.0",
        ),
    ],
)
def test_minimum_version(doc, expected):
    assert minimum_version(doc) == expected
    check_spec(dict(doc, cdiVersion=expected))  # the minimum itself loads


@pytest.mark.parametrize("version", ["1.1.0", "v1.1.0", "0.3.0"])
def test_valid_versions(version):
    check_spec(vendor_spec(cdiVersion=version))


@pytest.mark.parametrize("version,message", INVALID_VERSIONS)
def test_invalid_versions(version, message):
    with pytest.raises(SpecError, match=message):
        check_spec(vendor_spec(cdiVersion=version))


def test_version_below_fields():
    with pytest.raises(SpecError, match="at least v0.7.0"):
        check_spec(GIDS_AT_0_6_0)
    check_spec(dict(vendor_edits(additionalGids=[5]), cdiVersion="0.7.0"))


def test_float_version_is_coerced_like_go():
    with pytest.raises(SpecError, match="invalid version '1'"):
        check_spec(vendor_spec(cdiVersion=1.0))


# --- spec loading (vectors 13-20)


@pytest.mark.parametrize("doc,message", INVALID_DOCS)
def test_invalid_specs(doc, message):
    with pytest.raises(SpecError, match=message):
        check_spec(doc)


def test_three_distinct_devices_are_valid():
    check_spec(vendor_spec([{"name": n, "containerEdits": {"env": ["A=B"]}} for n in ("dev1", "dev2", "dev3")]))


def test_go_style_normalisation():
    out = check_spec(
        {
            "CDIVERSION": "0.5.0",
            "Kind": "vendor.com/device",
            "devices": [{"name": 0, "containerEdits": {"env": ["A=B"], "mounts": None}}],
        }
    )
    assert out == {
        "cdiVersion": "0.5.0",
        "kind": "vendor.com/device",
        "devices": [{"name": "0", "containerEdits": {"env": ["A=B"]}}],
    }


# --- edit validation (vectors 21-26)


@pytest.mark.parametrize("e,message", INVALID_EDITS)
def test_invalid_edits(e, message):
    with pytest.raises(SpecError, match=message):
        check_spec(vendor_edits(**e))


@pytest.mark.parametrize(
    "e",
    [
        {"env": ["BAR=BARVALUE1", "A=", "A=B=C"]},
        {"deviceNodes": [{"path": "/dev/x", "permissions": "rwm"}, {"path": "/dev/y", "permissions": "mwr"}]},
        {
            "hooks": [
                {"hookName": n, "path": "/bin/true"}
                for n in ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
            ]
        },
        {"intelRdt": {"closID": "foo.bar"}},
        {"intelRdt": {"closID": "/"}},
        {"netDevices": [{"hostInterfaceName": "eno1", "name": "netdev0"}]},
        {"additionalGids": [0]},
    ],
)
def test_valid_edits(e):
    check_spec(vendor_edits(**e))


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda c: (
        st.lists(c, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "cdiVersion",
                    "kind",
                    "devices",
                    "name",
                    "containerEdits",
                    "env",
                    "deviceNodes",
                    "path",
                    "netDevices",
                    "hostInterfaceName",
                    "x",
                ]
            ),
            c,
            max_size=5,
        )
    ),
    max_leaves=30,
)


_plausible = st.one_of(
    st.sampled_from(["A=1", "/dev/x", "1.1.0", "0.5.0", "v.com/c", "dev2", "eno1", "net0", "0"]),
    st.integers(0, 300),
    st.lists(st.sampled_from(["A=1", "B=2"]), max_size=2),
)


@st.composite
def _damaged_specs(draw):
    """A valid spec with one value of its devices, own edits or annotations replaced, deleted
    or added: often still valid."""
    doc = draw(
        st.sampled_from(
            [
                vendor_spec(),
                vendor_edits(netDevices=[{"hostInterfaceName": "eno1", "name": "n"}]),
                vendor_spec(
                    [
                        {"name": "d0", "containerEdits": {"env": ["A=1"]}},
                        {"name": "d1", "containerEdits": {"deviceNodes": [{"path": "/dev/x"}]}},
                    ],
                    cdiVersion="0.5.0",
                ),
            ]
        )
    )
    doc, part = copy.deepcopy(doc), draw(st.sampled_from(["devices", "devices", "containerEdits", "annotations"]))
    keys = ["cdiVersion", "kind", "devices", "name", "containerEdits", "env", "annotations", "x"]
    doc[part] = mutate(doc.get(part, {}), SimpleNamespace(draw=draw), st.one_of(_plausible, _json), keys, deeper=4)
    return doc


@settings(max_examples=300, deadline=None)
@given(st.one_of(_json, _damaged_specs()))
def test_no_input_escapes_as_anything_but_spec_error(doc):
    """check_spec refuses in one line, or returns a spec that obeys what it checks: a fixed
    point of check_spec, a valid kind, unique valid device names, and a cdiVersion no lower
    than the fields it uses need."""
    try:
        out = check_spec(copy.deepcopy(doc))
    except SpecError as e:
        assert "\n" not in str(e)
        event("refused")
        return
    event("accepted")
    assert check_spec(copy.deepcopy(out)) == out
    names = [d["name"] for d in out["devices"]]
    assert names and len(set(names)) == len(names)
    assert all(is_qualified_name(f"{out['kind']}={name}") for name in names)
    version = tuple(int(p) for p in out["cdiVersion"].removeprefix("v").split("."))
    assert tuple(int(p) for p in minimum_version(out).split(".")) <= version
