"""Loading CDI spec files and directories (cdi-semantics.md §1.1, §3, §6 vectors 13-20, 36-37)."""

import copy
import json
import os
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cdigen.cdi import load
from cdigen.cdi.spec import SpecError, check_spec, is_qualified_name
from cdigen.errors import InvalidInput
from tests.helpers.bad_specs import (
    BROKEN_OF_THE_KIND,
    INVALID_SPEC_TEXTS,
    MALFORMED_TEXTS,
    NOT_UTF8,
    TOO_BIG,
    billion_laughs,
)
from tests.helpers.specs import MINIMAL, gpu_spec, spec_with, to_yaml, write_spec
from tests.helpers.strategies import mutate


def parse(text: str):
    return load.parse_document(text)


# ---------------------------------------------------------------------------- YAML as Go reads it


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a: on", {"a": True}),  # YAML 1.1 booleans (yaml.v2), not the string "on"
        ("a: No", {"a": False}),
        ("a: 0660", {"a": 432}),  # YAML 1.1 octal: fileMode: 0660
        ("a: 0o17", {"a": 15}),
        ("a: 0x1F", {"a": 31}),
        ("a: 1_000", {"a": 1000}),
        ("a: 1.10", {"a": 1.1}),
        ("a: 0:0", {"a": "0:0"}),  # no sexagesimal: MIG-style device names stay strings
        ("a: 2001-12-14", {"a": "2001-12-14"}),  # yaml.v2 keeps timestamps as strings
        ("a: ~", {"a": None}),
        ("a: !!str 5", {"a": "5"}),
        ("a: '5'", {"a": "5"}),
        ("a: 18446744073709551615", {"a": 18446744073709551615}),  # ParseUint range
        ("a: 18446744073709551616", {"a": 1.8446744073709552e19}),  # too big: a float
        ("a: &x {b: 1}\nc:\n  <<: *x\n  d: 2", {"a": {"b": 1}, "c": {"b": 1, "d": 2}}),
        ("a: 1\n---\nb: [", {"a": 1}),  # only the first document is read
        ("", None),
        ('{"kind": "a/b"}', {"kind": "a/b"}),
        ("{kind: a/b}", {"kind": "a/b"}),  # YAML flow mapping that is not JSON
        ('{"a": NaN}', {"a": "NaN"}),  # not JSON: read as YAML, where NaN is a string
    ],
)
def test_scalars_and_documents_are_read_as_go_reads_them(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize("text, message", MALFORMED_TEXTS)
def test_malformed_documents_are_one_line_errors(text, message):
    with pytest.raises(SpecError) as e:
        parse(text)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_yaml_nesting_bound_is_exact_and_a_deep_document_does_not_crash():
    """The bound itself, then once a document far past it and past Python's recursion limit
    (the malformed texts above nest only 100 deep: each deep parse costs seconds)."""
    for depth, error in ((60, False), (64, False), (65, True), (5000, True)):
        text = "a: " + "[" * (depth - 1) + "]" * (depth - 1)
        if error:
            with pytest.raises(SpecError, match="nested more than 64 levels deep"):
                parse(text)
        else:
            parse(text)


def test_billion_laughs_is_rejected_before_anything_is_built():
    with pytest.raises(SpecError, match="aliases expand the document to more than"):
        parse(billion_laughs())


def test_aliases_within_the_bound_are_expanded():
    assert parse(billion_laughs(2))["c"] == [[["lol"] * 9] * 9] * 9


def test_yaml_bound_is_the_size_a_plain_file_of_the_size_limit_could_have():
    with pytest.raises(SpecError, match="more than 100 nodes"):
        load.parse_yaml(billion_laughs(2), max_nodes=100)


# ---------------------------------------------------------------------------- files


def test_json_file_may_hold_yaml_and_yaml_file_json(tmp_path):
    a = write_spec(tmp_path, "a.json", to_yaml(MINIMAL))
    b = write_spec(tmp_path, "b.yaml", json.dumps(MINIMAL))
    assert load.read_spec_file(str(a)).data == load.read_spec_file(str(b)).data == MINIMAL


def test_size_limit(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(TOO_BIG)
    with pytest.raises(SpecError, match=f"larger than {load.MAX_SPEC_BYTES} bytes"):
        load.read_spec_file(str(path))


def test_not_utf8(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_bytes(NOT_UTF8)
    with pytest.raises(SpecError, match="not UTF-8"):
        load.read_spec_file(str(path))


def test_fifo_is_an_error_not_a_hang(tmp_path):
    os.mkfifo(tmp_path / "x.yaml")
    registry = load.load_registry([str(tmp_path)])
    assert registry.errors == {str(tmp_path / "x.yaml"): ["not a regular file"]}


# ---------------------------------------------------------------------------- §6 vectors 13-20


@pytest.mark.parametrize("content, message", INVALID_SPEC_TEXTS)  # §6 vectors 13-20
def test_invalid_specs(tmp_path, content, message):
    path = write_spec(tmp_path, "spec.yaml", content)
    with pytest.raises(SpecError) as e:
        load.read_spec_file(str(path))
    assert message in str(e.value)


def test_valid_specs(tmp_path):
    write_spec(tmp_path, "a.yaml", spec_with(["dev1", "dev2", "dev3"]))  # 17
    write_spec(
        tmp_path,
        "minimal.json",
        {
            "cdiVersion": "0.3.0",
            "kind": "vendor.com/device",  # 20
            "devices": [{"name": "d", "containerEdits": {"deviceNodes": [{"path": "/dev/vendorctl"}]}}],
        },
    )
    registry = load.load_registry([str(tmp_path)])
    assert registry.errors == {}
    assert sorted(registry.devices) == [
        "vendor.com/device=d",
        "vendor1.com/device=dev1",
        "vendor1.com/device=dev2",
        "vendor1.com/device=dev3",
    ]


def test_case_insensitive_keys_and_go_scalar_coercion(tmp_path):
    path = write_spec(
        tmp_path,
        "a.yaml",
        "CDIVERSION: 0.5.0\nKind: vendor.com/device\ndevices:\n- name: 0\n  containerEdits: {env: [A=1]}\n",
    )
    spec = load.read_spec_file(str(path))
    assert spec.kind == "vendor.com/device"
    assert spec.data["devices"][0]["name"] == "0"


# ---------------------------------------------------------------------------- directories (§3)


def test_only_json_and_yaml_files_no_recursion_sorted(tmp_path):
    d = tmp_path / "cdi"
    write_spec(d, "b.yaml", spec_with(["b"], kind="v.com/b"))
    write_spec(d, "a.json", spec_with(["a"], kind="v.com/a"))
    write_spec(d, "c.yml", spec_with(["c"], kind="v.com/c"))  # .yml is ignored
    write_spec(d, "d.YAML", spec_with(["d"], kind="v.com/d"))  # case-sensitive
    write_spec(d / "sub", "e.yaml", spec_with(["e"], kind="v.com/e"))  # no recursion
    (d / "dir.yaml").mkdir()  # a directory with a spec name is skipped
    registry = load.load_registry([str(d)])
    assert registry.files == [str(d / "a.json"), str(d / "b.yaml")]
    assert sorted(registry.devices) == ["v.com/a=a", "v.com/b=b"]
    assert registry.errors == {}


def test_missing_directory_is_skipped_silently(tmp_path):
    registry = load.load_registry([str(tmp_path / "nope"), str(tmp_path)])
    assert registry.errors == {} and registry.devices == {}


def test_later_directory_wins(tmp_path):  # vector 36
    etc, run = tmp_path / "etc", tmp_path / "run"
    write_spec(etc, "vendor1.yaml", spec_with(["dev1", "dev2"], env="ETC"))
    write_spec(run, "vendor1.yaml", spec_with(["dev1"], env="RUN"))
    registry = load.load_registry([str(etc), str(run)])
    assert registry.devices["vendor1.com/device=dev1"].spec.path == str(run / "vendor1.yaml")
    assert registry.devices["vendor1.com/device=dev2"].spec.path == str(etc / "vendor1.yaml")
    assert registry.errors == {}


def test_same_device_twice_in_one_directory_is_a_conflict_on_both_files(tmp_path):  # vector 37
    a = write_spec(tmp_path, "a.yaml", spec_with(["dev1", "dev2"]))
    b = write_spec(tmp_path, "b.yaml", spec_with(["dev1", "dev3"]))
    registry = load.load_registry([str(tmp_path)])
    assert sorted(registry.devices) == ["vendor1.com/device=dev2", "vendor1.com/device=dev3"]
    message = f"conflicting device 'vendor1.com/device=dev1' (specs {str(a)!r}, {str(b)!r})"
    assert registry.errors == {str(a): [message], str(b): [message]}


def test_conflict_in_a_lower_directory_removes_the_device_everywhere(tmp_path):
    """The reference applies same-priority conflicts after scanning every directory (§3.3)."""
    etc, run = tmp_path / "etc", tmp_path / "run"
    write_spec(etc, "a.yaml", spec_with(["dev1"]))
    write_spec(etc, "b.yaml", spec_with(["dev1"]))
    write_spec(run, "c.yaml", spec_with(["dev1"]))
    assert "vendor1.com/device=dev1" not in load.load_registry([str(etc), str(run)]).devices


def test_broken_file_hides_nothing_else_and_one_bad_device_rejects_its_file(tmp_path):
    write_spec(tmp_path, "a.yaml", "kind: [\n")
    write_spec(tmp_path, "b.yaml", spec_with(["ok", "a dev ice"], kind="v.com/b"))
    write_spec(tmp_path, "c.yaml", spec_with(["dev1"]))
    registry = load.load_registry([str(tmp_path)])
    assert list(registry.devices) == ["vendor1.com/device=dev1"]
    assert sorted(os.path.basename(p) for p in registry.errors) == ["a.yaml", "b.yaml"]


def test_load_paths_ranks_directories_in_the_order_named(tmp_path):
    etc, run = tmp_path / "etc", tmp_path / "run"
    a = write_spec(etc, "a.yaml", spec_with(["dev1"], env="ETC"))
    b = write_spec(run, "b.yaml", spec_with(["dev1"], env="RUN"))
    registry = load.load_paths([str(a), str(b)])
    assert registry.errors == {}
    assert registry.devices["vendor1.com/device=dev1"].spec.path == str(b)
    registry = load.load_paths([str(run), str(etc / "a.yaml"), str(tmp_path / "missing.yaml")])
    assert registry.devices["vendor1.com/device=dev1"].spec.path == str(etc / "a.yaml")
    assert registry.errors == {str(tmp_path / "missing.yaml"): ["cannot read: No such file or directory"]}


# ---------------------------------------------------------------------------- the kind pre-filter


def test_files_that_cannot_define_the_kind_are_not_parsed(tmp_path):
    write_spec(tmp_path, "a.yaml", gpu_spec(2, kind="cdigen.io/gpu"))
    write_spec(tmp_path, "b.yaml", "kind: [\n")  # broken, but cannot define cdigen.io/gpu
    write_spec(tmp_path, "c.yaml", "kind: cdigen.io/gpu\n[\n")  # might: parsed, error reported
    registry = load.load_registry([str(tmp_path)], {"cdigen.io/gpu"})
    assert registry.skipped == 1
    assert sorted(registry.devices) == ["cdigen.io/gpu=gpu0", "cdigen.io/gpu=gpu1"]
    assert list(registry.errors) == [str(tmp_path / "c.yaml")]


def test_a_kind_spelled_with_escapes_is_still_found(tmp_path):
    spec = spec_with(["dev1"], kind="vendor.com/device")
    text = to_yaml(spec).replace("kind: vendor.com/device", 'kind: "vendor.com\\x2Fdevice"')
    write_spec(tmp_path, "a.yaml", text)
    write_spec(tmp_path, "b.json", json.dumps(spec_with(["dev2"])).replace("/", "\\/"))
    registry = load.load_registry([str(tmp_path)], {"vendor.com/device", "vendor1.com/device"})
    assert registry.skipped == 0
    assert sorted(registry.devices) == ["vendor.com/device=dev1", "vendor1.com/device=dev2"]


_kind_part = st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,6}[A-Za-z0-9]", fullmatch=True)


def _escape_some(text: str, picks: list[bool]) -> str:
    return "".join(
        f"\\x{ord(c):02x}" if pick else c for c, pick in zip(text, picks + [False] * len(text), strict=False)
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    vendor=_kind_part,
    cls=_kind_part,
    style=st.sampled_from(["plain", "single", "double", "escaped", "block", "json", "json-u", "alias"]),
    picks=st.lists(st.booleans(), max_size=20),
)
def test_prefilter_never_skips_a_file_that_defines_the_kind(vendor, cls, style, picks):
    """Soundness of `may_define`: however the kind is spelled, a file that defines it passes."""
    kind = f"{vendor}/{cls}"
    body = "devices: [{name: d, containerEdits: {env: [A=1]}}]\ncdiVersion: 0.6.0\n"
    if style == "plain":
        text = f"kind: {kind}\n{body}"
    elif style == "single":
        text = f"kind: '{kind}'\n{body}"
    elif style == "double":
        text = f'kind: "{kind}"\n{body}'
    elif style == "escaped":
        text = f'kind: "{_escape_some(kind, picks)}"\n{body}'
    elif style == "block":
        text = f"kind: |-\n  {kind}\n{body}"
    elif style == "alias":
        text = f"annotations: {{a: &k {kind}}}\nkind: *k\n{body}"
    elif style == "json":
        text = json.dumps(
            {"cdiVersion": "0.6.0", "kind": kind, "devices": [{"name": "d", "containerEdits": {"env": ["A=1"]}}]}
        ).replace("/", "\\/")
    else:
        text = json.dumps(
            {"cdiVersion": "0.6.0", "kind": kind, "devices": [{"name": "d", "containerEdits": {"env": ["A=1"]}}]},
            ensure_ascii=True,
        )
        text = text.replace(
            kind,
            "".join(f"\\u{ord(c):04x}" if p else c for c, p in zip(kind, picks + [False] * len(kind), strict=False)),
        )
    data = text.encode()
    assert load.check_document(data)["kind"] == kind
    assert load.may_define(data, {kind})


def test_prefilter_skips_files_without_the_literal_or_a_backslash():
    assert not load.may_define(b"kind: vendor.com/other\n", {"vendor.com/device"})
    assert load.may_define(b"kind: vendor.com/other\n# vendor.com/device\n", {"vendor.com/device"})
    assert load.may_define(b'kind: "x\\n"\n', {"vendor.com/device"})


# ---------------------------------------------------------------------------- resolving


def test_unresolvable_devices_are_named_together_in_request_order(tmp_path):  # vector 39
    write_spec(tmp_path, "a.yaml", spec_with(["dev1"]))
    registry = load.load_registry([str(tmp_path)])
    with pytest.raises(InvalidInput) as e:
        load.resolve(registry, ["vendor1.com/device=dev2", "vendor1.com/device=dev1", "vendor1.com/device=x"])
    assert str(e.value) == (
        "unresolvable CDI devices vendor1.com/device=dev2, vendor1.com/device=x; "
        f"spec directories: {tmp_path}; devices there, nearest first: vendor1.com/device=dev1"
    )
    assert [d.qualified_name for d in load.resolve(registry, ["vendor1.com/device=dev1"])] == [
        "vendor1.com/device=dev1"
    ]


def test_unresolvable_lists_the_names_there_nearest_first_and_cut_short(tmp_path):
    """Every kind's names, even with the kind filter (a mistyped kind is a typical miss), the
    closest to the missing ones first; over NAMES_SHOWN, the rest counted."""
    write_spec(tmp_path, "gpu.yaml", gpu_spec(10))
    write_spec(tmp_path, "a.yaml", spec_with(["dev1", "dev2"]))
    registry = load.load_registry([str(tmp_path), str(tmp_path / "nosuch")], {"cdigen.io/gpuu"})
    assert registry.skipped == 2
    with pytest.raises(InvalidInput) as e:
        load.resolve(registry, ["cdigen.io/gpuu=gpu7"])
    names = [f"cdigen.io/gpu=gpu{i}" for i in (7, 0, 1, 2, 3, 4, 5, 6)]
    assert str(e.value) == (
        f"unresolvable CDI devices cdigen.io/gpuu=gpu7; spec directories: {tmp_path}, {tmp_path / 'nosuch'} "
        f"(missing); devices there, nearest first: {', '.join(names)} ... and 4 more"
    )


def test_unresolvable_says_when_no_file_held_a_device(tmp_path):
    write_spec(tmp_path, "a.yaml", {**spec_with(["dev1"]), "devices": []})
    registry = load.load_registry([str(tmp_path)])
    with pytest.raises(InvalidInput, match=r"a.yaml: .*; spec directories: [^;]*; no devices there$"):
        load.resolve(registry, ["vendor1.com/device=dev1"])


def test_unresolvable_device_names_the_broken_file_that_may_define_it(tmp_path):
    write_spec(tmp_path, "a.yaml", BROKEN_OF_THE_KIND)
    registry = load.load_registry([str(tmp_path)], {"vendor1.com/device"})
    with pytest.raises(InvalidInput, match=r"unresolvable CDI devices vendor1.com/device=dev1 \(spec errors: .*a.yaml"):
        load.resolve(registry, ["vendor1.com/device=dev1"])


# ---------------------------------------------------------------------------- no traceback, ever

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(1 << 70), 1 << 70), st.floats(), st.text(max_size=8))
_keys = [
    "cdiVersion",
    "kind",
    "devices",
    "name",
    "containerEdits",
    "env",
    "deviceNodes",
    "path",
    "mounts",
    "hooks",
    "hookName",
    "netDevices",
    "hostInterfaceName",
    "annotations",
    "intelRdt",
    "additionalGids",
    "fileMode",
    "type",
    "major",
    "x",
]
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(_keys), inner, max_size=5),
    max_leaves=20,
)
_plausible = st.one_of(
    st.sampled_from(
        [
            "A=1",
            "/dev/x",
            "/dev/null",
            "1.1.0",
            "0.5.0",
            "v.com/c",
            "dev2",
            "eno1",
            "net0",
            "createRuntime",
            "c",
            "bind",
            "0:1",
        ]
    ),
    st.integers(0, 300),
    st.lists(st.sampled_from(["A=1", "B=2", "/dev/x"]), max_size=2),
)
_VALID = [MINIMAL, spec_with(["a", "b"]), gpu_spec(1, nics_per_gpu=2)]


@st.composite
def _damaged_specs(draw):
    """A valid spec with one value of its devices, own edits or annotations replaced, deleted
    or added: often still valid."""
    doc = copy.deepcopy(draw(st.sampled_from(_VALID)))
    part = draw(st.sampled_from(["devices", "devices", "containerEdits", "annotations"]))
    doc[part] = mutate(doc.get(part, {}), SimpleNamespace(draw=draw), st.one_of(_plausible, _json), _keys, deeper=4)
    return doc


_VALID_TEXTS = [render(doc) for doc in _VALID for render in (to_yaml, json.dumps)]


@st.composite
def _spliced_texts(draw):
    """A valid spec's YAML or JSON text with a few characters replaced somewhere."""
    text = draw(st.sampled_from(_VALID_TEXTS))
    at = draw(st.integers(0, len(text)))
    return text[:at] + draw(st.text(max_size=4)) + text[at + draw(st.integers(0, 4)) :]


def checked_or_refused_in_one_line(data: bytes) -> dict | None:
    """check_document's result, or None when it refuses: then a one-line SpecError. What it
    accepts is normalised: a spec of a valid kind and device names, that loads to itself again
    from its JSON form."""
    try:
        spec = load.check_document(data)
    except SpecError as e:
        assert "\n" not in str(e)
        event("refused")
        return None
    event("accepted")
    assert all(is_qualified_name(f"{spec['kind']}={d['name']}") for d in spec["devices"])
    assert load.check_document(json.dumps(spec).encode()) == spec
    return spec


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), _spliced_texts()))
def test_any_text_parses_or_fails_with_a_spec_error(text):
    checked_or_refused_in_one_line(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_json, _damaged_specs()))
def test_any_document_is_checked_without_traceback(doc):
    """Also: a document's JSON text is accepted exactly when the document itself is."""
    from_json = checked_or_refused_in_one_line(json.dumps(doc).encode())
    checked_or_refused_in_one_line(to_yaml(doc).encode())
    try:
        direct = check_spec(copy.deepcopy(doc))
    except SpecError:
        direct = None
    assert from_json == direct
