"""The hand-written reader of goyaml's block-YAML subset (`goyaml.parse_subset`): for every text
it reads, the result is exactly what the ruamel.yaml path gives (same types, same key order);
every other text, every error included, is left to that path. What `cdigen scan`, goyaml's
`render` and Go's yaml.v2 (nvidia-ctk) write is in the subset."""

import functools
import json
import math
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cdigen.cdi import goyaml, load
from cdigen.cdi.spec import CDI_VERSIONS, check_spec
from cdigen.examples import EXAMPLES
from tests.helpers import bad_specs
from tests.helpers.specs import FPGA_SPEC, MINIMAL, gpu_spec, make_bundle, to_yaml
from tests.helpers.strategies import examples

MISS = goyaml.NOT_IN_SUBSET
NODES = load.MAX_YAML_NODES

TRICKY = [
    *("yes", "No", "on", "OFF", "y", "n", "~", "", "null", "Null", "true", "False", "0755", "0x1F", "0o17", "0b101"),
    *("1e3", "1E3", "1_000", "+1", "-0", ".5", "1.", "-.inf", ".inf", ".NaN", "0:0", "12:30:00", "2001-01-01"),
    *("1.0", "9223372036854775808", "18446744073709551616", "-9223372036854775809", "1e400", "=", "<<"),
    *("-", "--", "-a", "- a", "?", "? a", ":", "a:", ":a", "a:b", "a: b", "a :b", "a #b", "a#b", "#x", "'", '"'),
    *("''", "it's", 'say "hi"', "back\\slash", "[x", "{x", "x]", "&a", "*a", "!t", "!!str", "%", "@", "`", "|", ">"),
    *(",", ",a", "a,b", "(a)", " lead", "trail ", "in  side", "---", "...", "--- a", "é", "日本", "x\u00a0y"),
    *("tab\there", "nul\x00", "cr\r", "nl\nx", "nel\x85", "ls\u2028", "bom\ufeff", "a" * 1100, "b " * 600),
    *("/dev/nvidia0", "--netdev", "ibp20s0=name=ibp20s0,mtu=4092", "0000:13:00.0", "libcuda.so.1::/usr/lib/x"),
]
CHARS = "ab01e.-_+:#' \"\\/=,~@%()[]{}&*!|>?`\t\x85\u2028\ufeffé日"
strings = st.one_of(st.sampled_from(TRICKY), st.text(CHARS, max_size=12))
scalars = st.one_of(
    strings,
    st.integers(-(1 << 65), 1 << 65),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=True),
)
keys = st.one_of(strings, st.integers(-5, 300), st.booleans(), st.none())


def documents(leaves=scalars, keys=keys):
    return st.recursive(
        leaves,
        lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)),
        max_leaves=20,
    )


def same(a, b) -> bool:
    """Equal, with the same types all the way down and the same key order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return [*map(type, a)] == [*map(type, b)] and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def check(text: str) -> object:
    """The differential property; returns the fast result."""
    fast = goyaml.parse_subset(text)
    try:
        slow = goyaml._parse_ruamel(text, NODES)
    except goyaml.YamlError:
        assert fast is MISS, text
        return fast
    assert fast is MISS or same(fast, slow), text
    return fast


# ---------------------------------------------------------------------------- hand-rolled YAML


def scalar_text(value, draw) -> str:
    """`value` written plain (as is, right or wrong), single- or double-quoted (no escaping)."""
    if isinstance(value, str):
        style = draw(st.sampled_from(["plain", "plain", "single", "double"]))
        if style == "single":
            return "'" + value.replace("'", "''") + "'"
        return '"' + value + '"' if style == "double" else value
    if value is None:
        return draw(st.sampled_from(["", "~", "null"]))
    if isinstance(value, bool):
        return draw(st.sampled_from(["true", "yes", "On"] if value else ["false", "no", "OFF"]))
    return json.dumps(value) if isinstance(value, float) and math.isfinite(value) else str(value)


def block(node, col: int, style: dict, draw) -> list[str]:
    """Lines of `node` at column `col`: mappings indent by style["step"], sequences under a key
    by style["seq"] (0: yaml.v2's compact style)."""
    pad = " " * col
    lines = []
    if isinstance(node, dict) and node:
        for k, v in node.items():
            key = scalar_text(k, draw)
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{key}:")
                lines += block(v, col + (style["seq"] if isinstance(v, list) else style["step"]), style, draw)
            else:
                text = scalar_text(v, draw) if not isinstance(v, (dict, list)) else json.dumps(v)
                lines.append(f"{pad}{key}: {text}".rstrip(" ") if text else f"{pad}{key}:")
    elif isinstance(node, list) and node:
        for v in node:
            if isinstance(v, (dict, list)) and v:
                inner = block(v, col + 2, style, draw)
                lines += [f"{pad}- {inner[0][col + 2 :]}", *inner[1:]]
            else:
                text = scalar_text(v, draw) if not isinstance(v, (dict, list)) else json.dumps(v)
                lines.append(f"{pad}- {text}".rstrip(" "))
    else:
        lines.append(pad + (json.dumps(node) if isinstance(node, (dict, list)) else scalar_text(node, draw)))
    return lines


NOISE = ["", "   ", "# comment", "  # a: b", "#- x", "    #"]


@st.composite
def hand_rolled(draw, docs=None, rough=True):
    """Hand-written YAML of a random document; `rough`: with tail comments and one damaged
    character now and then (mostly declined), else only what the subset allows around it."""
    doc = draw(documents() if docs is None else docs)
    style = {"step": draw(st.sampled_from([2, 4, 3])), "seq": draw(st.sampled_from([0, 2, 4]))}
    lines = block(doc, draw(st.sampled_from([0, 0, 0, 1])), style, draw)
    out = ["---"] if draw(st.booleans()) else []
    for line in lines:
        out += draw(st.lists(st.sampled_from(NOISE), max_size=1))
        out.append(line + draw(st.sampled_from(["", "", "", "  ", " # tail", "#x"] if rough else ["", "  "])))
    text = "\n".join(out) + draw(st.sampled_from(["\n", "", "\n\n"]))
    if rough and draw(st.integers(0, 4)) == 0:  # damage it in one place
        at = draw(st.integers(0, len(text)))
        cut = draw(st.sampled_from(["", " ", "-", ":", "- ", ": ", "\n", "\n ", "'", "#", "{", "}"]))
        text = text[:at] + cut + text[at + 1 :]
    return text


@settings(max_examples=examples(1500), deadline=None, suppress_health_check=list(HealthCheck))
@given(hand_rolled())
def test_hand_rolled_yaml_reads_as_ruamel_reads_it(text):
    check(text)


# Scalars the subset takes whichever way scalar_text writes them (plain, '...' or "..."): most
# of the rough texts above are declined, these never are, so the equality is tested on them.
ORDINARY = st.one_of(
    st.sampled_from(
        ["yes", "No", "on", "~", "null", "true", "0755", "0x1F", "1e3", "1_000", "+1", "-0", ".5", "1.", "-.inf"]
        + [".inf", "0:0", "12:30:00", "2001-01-01", "=", "a:b", "a,b", "é", "日本", "--netdev", "/dev/nvidia0"]
        + ["ibp20s0=name=ibp20s0,mtu=4092", "0000:13:00.0", "in side", "1.0", "9223372036854775808"]
        + ["ibp20s0=name=net{n},mtu=4092", "a{b}c", "x}", "ab{"]
    ),
    st.text("abcxyz019_./=", min_size=1, max_size=8),
)


def non_empty(node) -> bool:
    if isinstance(node, dict):
        return bool(node) and all(non_empty(v) for v in node.values())
    if isinstance(node, list):
        return bool(node) and all(non_empty(v) for v in node)
    return True


ordinary_documents = (
    # keys that resolve to distinct values (`yes` and `on` are both true: a duplicate key)
    documents(
        st.one_of(ORDINARY, st.integers(-(1 << 65), 1 << 65), st.booleans(), st.none()), st.text("abc_", min_size=1)
    )
    .filter(lambda d: isinstance(d, (dict, list)))
    .filter(non_empty)
)


@settings(max_examples=examples(500), deadline=None, suppress_health_check=list(HealthCheck))
@given(hand_rolled(ordinary_documents, rough=False))
def test_hand_rolled_yaml_of_ordinary_scalars_is_read_by_hand_as_ruamel_reads_it(text):
    assert check(text) is not MISS, text


def renderable(node):
    """What goyaml.render takes and reads back: str scalars, and ints in Go's range (yaml.v2
    keeps a bigger one as text)."""
    if isinstance(node, dict):
        return {str(k): renderable(v) for k, v in node.items()}
    if isinstance(node, list):
        return [renderable(v) for v in node]
    if isinstance(node, int) and not isinstance(node, bool) and -(1 << 63) <= node < (1 << 64):
        return node
    return node if isinstance(node, str) else str(node)


@settings(max_examples=examples(700), deadline=None, suppress_health_check=list(HealthCheck))
@given(documents(), st.sampled_from(["render", "ruamel"]))
def test_rendered_yaml_reads_as_ruamel_reads_it(doc, writer):
    doc = renderable(doc)
    assume(isinstance(doc, (dict, list)) and doc)
    text = goyaml.render(doc) if writer == "render" else to_yaml(doc)  # to_yaml writes YAML 1.2
    fast = check(text)
    if fast is not MISS and writer == "render":
        assert fast == doc  # render writes what both YAML 1.1 and 1.2 read back as written


SAFE = st.text("abcxyz019_./-=,:", min_size=1, max_size=10).filter(
    lambda s: s[:2] != "- " and s != "-" and not s.endswith(":") and ": " not in s and s[0] not in ",:"
)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=list(HealthCheck))
@given(documents(st.one_of(SAFE, st.integers(-(1 << 63), (1 << 63) - 1)), SAFE))
def test_render_of_ordinary_documents_takes_the_fast_path(doc):
    """Strings of the characters specs use, ints: render's output is always in the subset."""
    doc = renderable(doc)
    assume(isinstance(doc, (dict, list)) and doc and "[]" not in json.dumps(doc) and "{}" not in json.dumps(doc))
    text = goyaml.render(doc)
    assert goyaml.parse_subset(text) == doc == goyaml._parse_ruamel(text, NODES)


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\na: 2\n",  # duplicate key
        "1: a\n1.0: b\n",  # equal keys
        "a: b\n---\nc: d\n",  # a second document
        "a: b\n...\n",
        "--- a: b\n",
        "%YAML 1.1\n---\na: b\n",
        "a: &x b\nc: *x\n",
        "a: !!str 1\n",
        "a: |\n  x\n",
        "a: [1]\n",
        "a: {b: 1}\n",
        "a: b # c\n",
        "a: b\n  c\n",  # a multi-line plain scalar
        "a: 'b\n  c'\n",
        'a: "b\\n"\n',
        "a:\tb\n",
        "a: b\r\n",
        "a: b\u2028c: d\n",
        "<<: {b: 1}\n",
        "? a\n: b\n",
        "a" * 1100 + ": b\n",
        "",
        "# only a comment\n",
        "a\n",
        "- a\nb: c\n",
        "a:\n  - b\n c: d\n",
        "a: b: c\n",
        "a: - b\n",
        "- " * 40 + "x\n",  # deeper than the subset goes
    ],
)
def test_declined(text):
    assert goyaml.parse_subset(text) is MISS
    check(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a:\n- b\n- c\nd: e\n", {"a": ["b", "c"], "d": "e"}),
        ("a:\n    - b\n    - c: 1\n      d:\n      - 2\n", {"a": ["b", {"c": 1, "d": [2]}]}),
        ("---\n# c\n\n- x\n-\n  z: 1\n- - 2\n  - 3\n- - \n-\n", ["x", {"z": 1}, [2, 3], [None], None]),
        ("a: 'it''s'\n\"b c\": \"x: #y\"\nd:\ne: ~\n", {"a": "it's", "b c": "x: #y", "d": None, "e": None}),
        ("  on: 0755\n  0x1F: 1e3\n  ~: .inf\n", {True: 493, 31: 1000.0, None: math.inf}),
        ("a: 0:0\nb: 2001-01-01\nc: --netdev\nd: -1\n", {"a": "0:0", "b": "2001-01-01", "c": "--netdev", "d": -1}),
        ("é: 日本\n", {"é": "日本"}),
    ],
)
def test_read(text, expected):
    assert same(goyaml.parse_subset(text), expected)
    assert same(goyaml._parse_ruamel(text, NODES), expected)


# ---------------------------------------------------------------------------- what specs look like


@functools.cache
def scan_outputs() -> tuple:
    """Every example's spec as `cdigen scan` writes it, for every CDI version scan writes,
    every device-name strategy and both modes (what builds): (name, text) pairs, made once."""
    return tuple(_scan_outputs())


def _scan_outputs():
    from cdigen.cli.scan import _discover
    from cdigen.errors import CdigenError
    from cdigen.scan.build import BuildOptions, build_spec, render

    for example in sorted(EXAMPLES):
        for mode in ("container", "vm"):
            try:
                topo, _ = _discover("/", example, vm=mode == "vm")
            except CdigenError:
                continue
            for version in CDI_VERSIONS:
                for names in (("index",), ("uuid", "pci")):
                    opts = BuildOptions(
                        hook_path="/usr/bin/cdigen", name_strategies=names, cdi_version=version, mode=mode
                    )
                    try:
                        spec, _ = build_spec(topo, opts)
                    except CdigenError:
                        continue
                    yield f"{example}-{mode}-{version}-{'+'.join(names)}", render(spec).decode()


def test_every_scan_output_takes_the_fast_path():
    seen = set()
    for name, text in scan_outputs():
        if text in seen:
            continue
        seen.add(text)
        fast = goyaml.parse_subset(text)
        assert fast is not MISS, name
        assert same(fast, goyaml._parse_ruamel(text, NODES)), name
    assert len(seen) > 2 * len(EXAMPLES)


# A spec as nvidia-ctk writes it: sigs.k8s.io/yaml -> Go's yaml.v2, keys sorted, sequences at
# their key's column, quotes only where yaml.v2 would read another type.
NVIDIA_CTK_SPEC = """\
---
cdiVersion: 0.5.0
containerEdits:
  deviceNodes:
  - path: /dev/nvidia-modeset
  - path: /dev/nvidia-uvm
  - path: /dev/nvidiactl
  env:
  - NVIDIA_VISIBLE_DEVICES=void
  - NVIDIA_CTK_LIBCUDA_DIR=/usr/lib/x86_64-linux-gnu
  hooks:
  - args:
    - nvidia-cdi-hook
    - create-symlinks
    - --link
    - libglxserver_nvidia.so.550.54.15::/usr/lib/xorg/modules/extensions/libglxserver_nvidia.so
    env:
    - NVIDIA_CTK_DEBUG=false
    hookName: createContainer
    path: /usr/bin/nvidia-cdi-hook
  - args:
    - nvidia-cdi-hook
    - update-ldcache
    - --folder
    - /usr/lib/x86_64-linux-gnu
    hookName: createContainer
    path: /usr/bin/nvidia-cdi-hook
  mounts:
  - containerPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15
    hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15
    options:
    - ro
    - nosuid
    - nodev
    - bind
devices:
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
    - path: /dev/dri/card1
    - path: /dev/dri/renderD128
    hooks:
    - args:
      - nvidia-cdi-hook
      - create-symlinks
      - --link
      - ../card1::/dev/dri/by-path/pci-0000:3b:00.0-card
      hookName: createContainer
      path: /usr/bin/nvidia-cdi-hook
    - args:
      - nvidia-cdi-hook
      - chmod
      - --mode
      - "755"
      - --path
      - /dev/dri
      hookName: createContainer
      path: /usr/bin/nvidia-cdi-hook
  name: "0"
- containerEdits:
    deviceNodes:
    - major: 195
      minor: 0
      path: /dev/nvidia0
      type: c
  name: GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
  name: all
kind: nvidia.com/gpu
"""


@pytest.mark.parametrize(
    "text",
    [NVIDIA_CTK_SPEC, to_yaml(MINIMAL), to_yaml(gpu_spec(2)), to_yaml(FPGA_SPEC)],
    ids=["nvidia-ctk", "minimal", "gpu", "fpga"],
)
def test_go_and_ruamel_written_specs_take_the_fast_path(text):
    fast = goyaml.parse_subset(text)
    assert fast is not MISS
    assert same(fast, goyaml._parse_ruamel(text, NODES))
    check_spec(fast)


def bad_yaml_texts() -> list[str]:
    texts = [t for t, _ in bad_specs.MALFORMED_TEXTS + bad_specs.INVALID_SPEC_TEXTS + bad_specs.BROKEN_FPGA_TEXTS]
    texts += [bad_specs.BROKEN_OF_THE_KIND, bad_specs.BROKEN_KIND, bad_specs.NO_DEVICES, bad_specs.billion_laughs()]
    texts += [v for v in bad_specs.validate_dir_specs().values() if isinstance(v, str)]
    texts += [v for case in bad_specs.CASES for v in case.files.values() if isinstance(v, str)]
    texts += [to_yaml(v) for case in bad_specs.CASES for v in case.files.values() if isinstance(v, (dict, list))]
    return [t for t in dict.fromkeys(texts) if not t.lstrip().startswith(("{", '"'))]


def outcome(read, text):
    try:
        return "ok", read(text, NODES)
    except goyaml.YamlError as e:
        return "error", str(e)


def test_bad_spec_corpus_reads_the_same_through_parse():
    texts = bad_yaml_texts()
    assert len(texts) > 50
    fast = 0
    for text in texts:
        got, want = outcome(goyaml.parse, text), outcome(goyaml._parse_ruamel, text)
        assert got[0] == want[0] and same(got[1], want[1]), text[:200]
        fast += goyaml.parse_subset(text) is not MISS
    assert fast > len(texts) // 2  # the well-formed ones are in the subset


def modules_after(argv: list[str]) -> set[str]:
    code = (
        "import sys\n"
        f"sys.argv = ['cdigen', *{argv!r}]\n"
        "from cdigen.entry import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "finally:\n"
        "    sys.stderr.write('MODULES ' + ' '.join(sorted(sys.modules)) + '\\n')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    line = next(line for line in proc.stderr.splitlines() if line.startswith("MODULES "))
    return set(line.split()[1:])


def test_apply_and_validate_of_a_scan_written_spec_import_no_ruamel(tmp_path):
    spec_dir = tmp_path / "cdi"
    spec_dir.mkdir()
    text = dict(scan_outputs())["hgx-h100-container-1.1.0-index"]
    (spec_dir / "cdigen-gpu.yaml").write_text(text)
    bundle = make_bundle(tmp_path)
    before = (bundle / "config.json").read_text()
    apply = ["apply", str(bundle), "--spec-dir", str(spec_dir), "--device", "cdigen.io/gpu=gpu0"]
    assert not any(m.startswith("ruamel") for m in modules_after([*apply, "--hook-path", "/usr/bin/cdigen"]))
    assert (bundle / "config.json").read_text() != before  # it did apply
    assert not any(m.startswith("ruamel") for m in modules_after(["validate", str(spec_dir)]))
    (spec_dir / "cdigen-gpu.yaml").write_text("cdiVersion: 1.1.0\nkind: [a, b]\n")  # flow style: ruamel reads it
    assert any(m.startswith("ruamel") for m in modules_after(["validate", str(spec_dir)]))


@pytest.mark.parametrize("value", ["?", "a?", "?a", ":", "a:b", "x ?y", "-?"])
def test_render_writes_question_marks_and_colons_that_read_back(value):
    """render once failed on these (ruamel's emitter asked for a serializer's YAML version)."""
    doc = {"env": [f"K={value}", value], value: value}
    assert goyaml.parse(goyaml.render(doc), 1000) == doc
