"""The cache of parsed YAML specs (cdigen/cdi/yamlcache.py): what comes back is exactly what
goyaml parsed (types included), errors are never cached, and nothing is read from a cache
directory or file that someone other than root could have written."""

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdigen.cdi import goyaml, load, yamlcache
from cdigen.cdi.spec import SpecError
from tests.helpers.specs import FPGA_SPEC, gpu_spec, to_yaml

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the cache is used by root only")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    directory = tmp_path / "yaml-cache"
    monkeypatch.setattr(yamlcache, "CACHE_DIR", str(directory))
    return directory


def same(a, b) -> bool:
    """Equal, and of the same types all the way down (1 != 1.0 != True here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


TEXTS = [
    to_yaml(gpu_spec(4, nics_per_gpu=2)),
    to_yaml(FPGA_SPEC),
    "cdiVersion: 0.5.0\nkind: x.com/y\ndevices:\n- name: a\n  containerEdits:\n    env: [A=1]\n"
    "    deviceNodes: [{path: /dev/a, major: 0o17, minor: 0x10, fileMode: 0644}]\n",
    "a: yes\nb: on\nc: ~\nd: 1.5\ne: '1.5'\nf: 10\ng: -0\nh: 1e3\ni: .5\nj: !!str 7\n",
]


@pytest.mark.parametrize("text", TEXTS)
def test_cached_document_is_what_goyaml_parsed(cache, text):
    parsed = goyaml.parse(text, load.MAX_YAML_NODES)
    first = load.parse_yaml(text)
    assert same(first, parsed)
    assert len(os.listdir(cache)) == 1
    assert yamlcache.get(text, load.MAX_YAML_NODES) is not yamlcache.MISS
    second = load.parse_yaml(text)
    assert same(second, parsed) and second is not first
    assert yamlcache.get(text, load.MAX_YAML_NODES + 1) is yamlcache.MISS  # the limit is in the key


def test_errors_are_not_cached(cache):
    with pytest.raises(SpecError) as first:
        load.parse_yaml("a: [1, 2\n")
    with pytest.raises(SpecError) as second:
        load.parse_yaml("a: [1, 2\n")
    assert str(first.value) == str(second.value)
    assert not cache.exists() or os.listdir(cache) == []


def test_aliases_and_non_json_values_are_not_cached(cache):
    load.parse_yaml("a: &x {b: 1}\nc: *x\n")  # one dict reached twice
    load.parse_yaml("a: .inf\n")
    load.parse_yaml("1: a\n")  # a non-string key
    assert not cache.exists() or os.listdir(cache) == []


def test_untrusted_cache_is_ignored(cache):
    text = TEXTS[1]
    load.parse_yaml(text)
    (entry,) = cache.iterdir()
    planted = json.loads(entry.read_text())
    planted["kind"] = "evil.com/x"
    entry.write_text(json.dumps(planted))
    assert load.parse_yaml(text)["kind"] == "evil.com/x"  # root wrote it: trusted
    os.chown(entry, 65534, 65534)
    assert load.parse_yaml(text)["kind"] == "example.com/fpga"  # not root's: ignored
    os.chown(entry, 0, 0)
    cache.chmod(0o755)  # the directory must be 0700
    assert yamlcache.get(text, load.MAX_YAML_NODES) is yamlcache.MISS
    cache.chmod(0o700)
    os.chown(cache, 65534, 65534)
    assert yamlcache.get(text, load.MAX_YAML_NODES) is yamlcache.MISS


def test_entries_are_pruned(cache, monkeypatch):
    monkeypatch.setattr(yamlcache, "MAX_ENTRIES", 3)
    for i in range(6):
        load.parse_yaml(f"value: {i}\n")
        os.utime(max(cache.iterdir(), key=lambda p: p.stat().st_mtime_ns), ns=(i, i))
    assert len(os.listdir(cache)) == 3


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=12),
)
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(documents.map(lambda d: json.dumps(d, allow_nan=True)), st.text(max_size=60)))
def test_whatever_goyaml_parses_comes_back_the_same(tmp_path_factory, text):
    """JSON is YAML: flow documents of every scalar type, and arbitrary text."""
    directory = tmp_path_factory.mktemp("yaml-cache") / "c"
    original = yamlcache.CACHE_DIR
    yamlcache.CACHE_DIR = str(directory)
    try:
        try:
            parsed = goyaml.parse(text, load.MAX_YAML_NODES)
        except goyaml.YamlError:
            return
        load.parse_yaml(text)
        assert same(load.parse_yaml(text), parsed)
    finally:
        yamlcache.CACHE_DIR = original
