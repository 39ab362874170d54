"""YAML as the reference Go loader reads it, and block YAML that it and YAML 1.2 read back
as written: the one place that knows ruamel.yaml's internals.

Reading (`parse`): scalars are resolved as Go's yaml.v2 (used by sigs.k8s.io/yaml) resolves
them, not as YAML 1.2: `on`/`yes` are booleans, `0660` is octal, `0:0` stays a string (no
sexagesimal), timestamps stay strings. Only the first document of a stream is read. Duplicate
keys are an error; aliases are bounded: the expanded size of the node graph is counted
(memoised, so a "billion laughs" file is rejected in microseconds) before anything is
constructed; recursive aliases are an error. docs/cdi-conformance.md, "Parsing".
The block-YAML subset that specs are written in is read by hand (`parse_subset`, which says
why), without importing ruamel.yaml; every other text, and every error, goes to ruamel.yaml.

This subclasses ruamel.yaml's resolver and feeds its emitter events directly, which are not
stable API: pyproject.toml bounds ruamel.yaml to the versions this was tested with.
"""

import math

from cdigen.errors import InvalidInput
from cdigen.strictjson import check_string


class YamlError(InvalidInput):
    """Not YAML, or YAML that the Go loader would not read as cdigen does."""


# ---------------------------------------------------------------------------- reading

MAX_YAML_DEPTH = 64  # a CDI spec nests 6 deep; bounds the recursion of every step below

_NULL = frozenset(("", "~", "null", "Null", "NULL"))
_TRUE = frozenset(("y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"))
_FALSE = frozenset(("n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"))
_SPECIAL_FLOATS = {
    v: float(f)
    for f, vs in (("inf", ".inf .Inf .INF +.inf +.Inf +.INF"), ("-inf", "-.inf -.Inf -.INF"), ("nan", ".nan .NaN .NAN"))
    for v in vs.split()
}
_DIGITS = {2: "01", 8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}
_Y = "tag:yaml.org,2002:"
_yaml_state: dict = {}


def _go_parse_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64), else ParseUint: prefixes 0x/0o/0b, leading 0 = octal."""
    sign, body = 1, text
    if body[:1] in ("+", "-"):
        sign, body = (-1 if body[0] == "-" else 1), body[1:]
    prefix = body[:2].lower()
    if prefix in ("0x", "0o", "0b"):
        base, digits = {"0x": 16, "0o": 8, "0b": 2}[prefix], body[2:]
    elif len(body) > 1 and body[0] == "0":
        base, digits = 8, body[1:]
    else:
        base, digits = 10, body
    if not digits or len(digits) > 64 or any(c not in _DIGITS[base] for c in digits):
        return None  # 64 binary digits is the longest 64-bit value; longer is out of range anyway
    value = sign * int(digits, base)
    if -(1 << 63) <= value < (1 << 63) or (text[0] != "+" and 0 <= value < (1 << 64)):
        return value
    return None


def _plain_scalar(text: str):
    """A plain (unquoted, untagged) scalar as yaml.v2 resolves it (resolve.go)."""
    if text in _NULL:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if text in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text]
    if text[:1] in "+-.0123456789":
        plain = text.replace("_", "")
        value = _go_parse_int(plain) if plain else None
        if value is not None:
            return value
        if plain.strip("+-.0123456789eE"):
            return text  # not a number (`--netdev`): no need to import re
        import re

        if re.fullmatch(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?", plain):
            value = float(plain)
            if not math.isinf(value):  # ParseFloat's range error: yaml.v2 keeps the text
                return value
    return text  # timestamps too: yaml.v2 keeps them as strings for interface{} targets


# ---------------------------------------------------------------------------- reading, fast path

NOT_IN_SUBSET = object()  # what `parse_subset` returns for a text it leaves to ruamel.yaml
_SUBSET_DEPTH = 32  # containers; well inside MAX_YAML_DEPTH (a CDI spec nests 6 deep)
_MAX_KEY = 1000  # YAML refuses a simple key longer than 1024 characters
_PLAIN_SAFE = str.maketrans(
    dict.fromkeys("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./~+=-,:@%(){} ")
)


_plain_seen: dict = {}


class _Declined(Exception):
    pass


def parse_subset(text: str):
    """The document `_parse_ruamel(text)` returns, read by hand, for the block-YAML subset that
    specs are written in (by `cdigen scan` and `render`, by Go's yaml.v2 as nvidia-ctk writes
    them, by ruamel.yaml); NOT_IN_SUBSET for any other text, which then goes to ruamel.yaml.
    Why: importing ruamel.yaml costs more than the rest of an `apply` (docs/benchmarks.md).

    The subset: lines of spaces and printable characters (no tab, CR, NUL or other line break:
    `text` as a whole must pass str.isprintable() once the newlines are removed, which also
    covers strictjson.check_string); blank lines and full-line comments; one leading `---`;
    block mappings (`key: value`, `key:` and a deeper block or nothing = null) and block
    sequences (`- value`, `- key: value` starting a mapping at the column after the dash, `-`
    and a deeper block, `- - x`), a sequence under a key indented or at the key's own column
    (yaml.v2's compact style); at most _SUBSET_DEPTH containers deep. Scalars are one line:
    '...' (with '' for a quote), "..." without a backslash, or plain: letters, digits and
    `_./~+=-,:@%(){}` and inner spaces, not `-` nor starting with `- `, `,`, `:`, `@`, `%`,
    `(`, `{` or `}`, holding no `: ` and not ending with `:`; plain ones are resolved by
    `_plain_scalar`.
    Everything else (flow `[ {`, anchors, aliases, tags, block scalars, multi-line scalars,
    directives, `...`, a second document, escapes, trailing comments, duplicate keys, a key over
    _MAX_KEY characters, an empty document) is declined, never guessed at.

    The rule: for every text read here, the result equals (same types, same key order) what
    the ruamel.yaml path gives, and every text that path refuses is declined here (so each
    error is worded in one place); tests/test_goyaml_fast.py checks both differentially."""
    if not text.replace("\n", "").isprintable():
        return NOT_IN_SUBSET
    lines = []
    for line in text.split("\n"):
        body = line.lstrip(" ")
        if not body or body[0] == "#":
            continue
        indent = len(line) - len(body)
        body = body.rstrip(" ")
        if indent == 0 and body[:3] in ("---", "..."):
            if lines or body != "---":
                return NOT_IN_SUBSET
            lines.append(None)  # the leading `---`, dropped below
            continue
        lines.append((indent, body))
    if lines[:1] == [None]:
        del lines[0]
    if not lines:
        return NOT_IN_SUBSET
    try:
        doc, end = _block(lines, 0, lines[0][0], 1)
    except _Declined:
        return NOT_IN_SUBSET
    return doc if end == len(lines) else NOT_IN_SUBSET


def _block(lines: list, i: int, indent: int, depth: int) -> tuple:
    """The mapping or sequence whose first line is lines[i], at `indent`: (node, next line)."""
    if depth > _SUBSET_DEPTH:
        raise _Declined
    body = lines[i][1]
    if body == "-" or body[:2] == "- ":
        return _sequence(lines, i, indent, depth)
    return _mapping(lines, i, indent, depth)


def _nested(lines: list, i: int, indent: int, depth: int) -> tuple:
    """What follows `key:` or `-` at `indent`: a deeper block, else null."""
    if i < len(lines) and lines[i][0] > indent:
        return _block(lines, i, lines[i][0], depth + 1)
    return None, i


def _sequence(lines: list, i: int, indent: int, depth: int) -> tuple:
    out = []
    while i < len(lines) and lines[i][0] == indent and (lines[i][1] == "-" or lines[i][1][:2] == "- "):
        body = lines[i][1][1:].lstrip(" ")
        if not body:
            value, i = _nested(lines, i + 1, indent, depth)
        elif body == "-" or body[:2] == "- " or _entry(body) is not None:
            lines[i] = (indent + len(lines[i][1]) - len(body), body)  # a node starting on the dash line
            value, i = _block(lines, i, lines[i][0], depth + 1)
        else:
            value, i = _scalar(body), i + 1
        out.append(value)
    if i < len(lines) and lines[i][0] > indent:
        raise _Declined  # a multi-line scalar, or odd indentation
    return out, i


def _mapping(lines: list, i: int, indent: int, depth: int) -> tuple:
    out: dict = {}
    while i < len(lines) and lines[i][0] == indent:
        entry = _entry(lines[i][1])
        if entry is None or entry[0] in out:
            raise _Declined  # not `key: ...` (a stray `- `, a scalar), or a duplicate key
        key, rest = entry
        i += 1
        if rest:
            out[key] = _scalar(rest)
        elif i < len(lines) and lines[i][0] == indent and (lines[i][1] == "-" or lines[i][1][:2] == "- "):
            out[key], i = _sequence(lines, i, indent, depth + 1)  # yaml.v2's compact sequence
        else:
            out[key], i = _nested(lines, i, indent, depth)
    if i < len(lines) and lines[i][0] > indent:
        raise _Declined
    return out, i


def _entry(body: str) -> tuple | None:
    """(key, the rest of the line) for `key: rest` or `key:`; None for a scalar alone."""
    if body[0] in "'\"":
        key, end = _quoted(body)
        after = body[end:]
        if not after:
            return None
        if after[0] != ":" or after[1:2] not in ("", " "):
            raise _Declined
    else:
        end = body.find(": ")
        if end < 0:
            if body[-1] != ":":
                return None
            end = len(body) - 1
        key = _plain(body[:end])
        after = body[end:]
    if end > _MAX_KEY:
        raise _Declined
    return key, after[1:].lstrip(" ")


def _scalar(body: str):
    if body[0] in "'\"":
        value, end = _quoted(body)
        if end != len(body):
            raise _Declined  # a comment or anything else after the closing quote
        return value
    return _plain(body)


def _quoted(body: str) -> tuple:
    """The value of the quoted scalar that `body` starts with, and where it ends."""
    if body[0] == '"':
        end = body.find('"', 1)
        if end < 0 or "\\" in body[1:end]:
            raise _Declined
        return body[1:end], end + 1
    parts, start = [], 1
    while True:
        end = body.find("'", start)
        if end < 0:
            raise _Declined
        parts.append(body[start:end])
        if body[end + 1 : end + 2] != "'":
            return "'".join(parts), end + 1
        start = end + 2


def _plain(text: str):
    value = _plain_seen.get(text, _plain_seen)  # keys and values repeat: each is checked once
    if value is not _plain_seen:
        return value
    rest = text.translate(_PLAIN_SAFE)
    if (
        not text
        or (rest and not rest.isalnum())  # what is left must be non-ASCII letters or digits
        or text[0] in ",:@%( {}"  # `{` and `}` only inside: block context, no flow (`net{n}`)
        or text[:2] == "- "
        or text == "-"
        or text[-1] in ": "
        or ": " in text
    ):
        raise _Declined
    if len(_plain_seen) >= 4096:
        _plain_seen.clear()
    value = _plain_seen[text] = _plain_scalar(text)  # immutable: str, int, float, bool, None
    return value


# ---------------------------------------------------------------------------- reading, ruamel.yaml


def _yaml_tools():
    if not _yaml_state:
        from ruamel.yaml import YAML
        from ruamel.yaml.error import YAMLError
        from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
        from ruamel.yaml.resolver import VersionedResolver
        from ruamel.yaml.tag import Tag

        plain = Tag(suffix="tag:cdigen.io,2026:plain")

        class PlainResolver(VersionedResolver):
            """Tags nothing implicitly; plain scalars are resolved by `_plain_scalar`."""

            def resolve(self, kind, value, implicit):
                if kind is ScalarNode and implicit[0]:
                    return plain
                return {
                    ScalarNode: self.DEFAULT_SCALAR_TAG,
                    SequenceNode: self.DEFAULT_SEQUENCE_TAG,
                    MappingNode: self.DEFAULT_MAPPING_TAG,
                }[kind]

        try:  # the optional C parser (ruamel.yaml.clib): six times faster
            from ruamel.yaml.main import CParser
        except ImportError:
            CParser = None

        def new_yaml(text: str):
            """One YAML() per document: a failed parse leaves state behind (depth)."""
            yaml = YAML(typ="safe", pure=CParser is None or not _shallow_enough_for_c(text))
            yaml.Resolver = PlainResolver
            yaml.max_depth = MAX_YAML_DEPTH  # the pure parser stops there itself
            yaml.version = (1, 1)  # libyaml (Go's yaml.v2) scans YAML 1.1
            return yaml

        _yaml_state.update(
            new_yaml=new_yaml, error=YAMLError, plain=plain, scalar=ScalarNode, seq=SequenceNode, map=MappingNode
        )
    return _yaml_state


_BRACKETS = r"[^\[\]{}]+"
_BLOCK_PREFIX = r"(?m)^[ ]*(?:[-?:][ ]+)*"


def _shallow_enough_for_c(text: str, limit: int = 2000) -> bool:
    """The C composer recurses on the C stack without a limit (it crashes near 100000 levels),
    so it only gets documents that cannot nest deeper than `limit` (every document the Go loader
    takes nests far less). An upper bound of the depth, in linear time:
    * flow levels: the nesting of `[`/`{` (brackets inside quoted strings only make the bound
      larger), found by deleting innermost `[]`/`{}` pairs one level per pass;
    * block levels: a block node starts further right than its parent, or after a `- `, `? ` or
      `: ` indicator on the same line, so a line's indentation plus its leading indicators bound
      its depth (a sequence under a key may share the key's column: two levels per column)."""
    import re  # not at the top: the reader above needs none

    flow = re.sub(_BRACKETS, "", text)
    depth = 0
    while flow and depth <= limit:
        shorter = flow.replace("[]", "").replace("{}", "")
        if shorter == flow:  # unbalanced (brackets in strings, or broken YAML): count what is left
            depth += len(flow)
            break
        flow, depth = shorter, depth + 1
    block = max((len(m) for m in re.findall(_BLOCK_PREFIX, text)), default=0)
    return depth + 2 * (block + 1) <= limit


def _yaml_message(e: Exception) -> str:
    if type(e).__name__ == "MaxDepthExceededError":
        return f"invalid YAML: nested more than {MAX_YAML_DEPTH} levels deep"
    problem = getattr(e, "problem", None) or (str(e).splitlines() or [type(e).__name__])[0]
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"invalid YAML: {' '.join(str(problem).split())}{where}"


def parse(text: str, max_nodes: int) -> object:
    """The first YAML document of `text`, constructed as Go's yaml.v2 would. YamlError.
    `parse_subset` reads the texts of its subset; ruamel.yaml everything else, and words
    every error."""
    doc = parse_subset(text)
    return _parse_ruamel(text, max_nodes) if doc is NOT_IN_SUBSET else doc


def _parse_ruamel(text: str, max_nodes: int) -> object:
    """`parse` through ruamel.yaml."""
    tools = _yaml_tools()
    try:
        documents = tools["new_yaml"](text).compose_all(text)
        try:
            root = next(documents, None)
        finally:
            documents.close()
        if root is None:
            return None
        if "*" in text:  # without an alias the node count is bounded by the file's size already
            _check_size(root, max_nodes, tools)
        return _construct(root, tools)
    except tools["error"] as e:
        raise YamlError(_yaml_message(e)) from None
    except RecursionError:
        raise YamlError("invalid YAML: aliases nest too deeply") from None


def _check_size(root, limit: int, tools) -> int:
    """Count the nodes of the document with every alias expanded, memoised per node so that
    exponential expansion costs linear time; stop as soon as the count passes `limit`."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    scalar = tools["scalar"]

    def size(node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if isinstance(node, scalar):
            total = 1
        else:
            if key in active:
                raise YamlError(f"invalid YAML: recursive alias (line {node.start_mark.line + 1})")
            if depth > MAX_YAML_DEPTH:
                raise YamlError(f"invalid YAML: nested more than {MAX_YAML_DEPTH} levels deep")
            active.add(key)
            total = 1
            for item in node.value:
                if isinstance(item, tuple):
                    total += size(item[0], depth + 1) + size(item[1], depth + 1)
                else:
                    total += size(item, depth + 1)
                if total > limit:
                    raise YamlError(f"invalid YAML: aliases expand the document to more than {limit} nodes")
            active.discard(key)
        sizes[key] = total
        return total

    return size(root, 1)


def _construct(node, tools, memo: dict | None = None, depth: int = 1):
    memo = {} if memo is None else memo
    if depth > MAX_YAML_DEPTH:
        raise YamlError(f"invalid YAML: nested more than {MAX_YAML_DEPTH} levels deep")
    key = id(node)
    if key in memo:
        return memo[key]
    tag = str(node.tag)
    line = node.start_mark.line + 1
    if isinstance(node, tools["scalar"]):
        try:
            check_string(node.value)
        except ValueError as e:
            raise YamlError(f"invalid YAML: {e} (line {line})") from None
        value = _tagged_scalar(node.value, tag, node.tag == tools["plain"], line)
    elif isinstance(node, tools["seq"]):
        if tag != _Y + "seq":
            raise YamlError(f"invalid YAML: unsupported tag {tag!r} (line {line})")
        value = [_construct(item, tools, memo, depth + 1) for item in node.value]
    else:
        if tag != _Y + "map":
            raise YamlError(f"invalid YAML: unsupported tag {tag!r} (line {line})")
        value = _construct_mapping(node, tools, memo, line, depth)
    memo[key] = value
    return value


def _construct_mapping(node, tools, memo: dict, line: int, depth: int) -> dict:
    explicit: dict = {}
    merged: dict = {}
    for key_node, value_node in node.value:
        if key_node.tag == tools["plain"] and key_node.value == "<<":
            sources = value_node.value if isinstance(value_node, tools["seq"]) else [value_node]
            for source in sources:
                data = _construct(source, tools, memo, depth + 1)
                if not isinstance(data, dict):
                    raise YamlError(f"invalid YAML: a merge key needs mappings (line {line})")
                for k, v in data.items():
                    merged.setdefault(k, v)  # the first source wins, as the YAML spec says
            continue
        k = _construct(key_node, tools, memo, depth + 1)
        if isinstance(k, (dict, list)):
            raise YamlError(f"invalid YAML: a mapping key must be a scalar (line {key_node.start_mark.line + 1})")
        if k in explicit:
            raise YamlError(f"invalid YAML: duplicate key {k!r} (line {key_node.start_mark.line + 1})")
        explicit[k] = _construct(value_node, tools, memo, depth + 1)
    if not merged:
        return explicit
    out = {k: v for k, v in merged.items() if k not in explicit}
    out.update(explicit)  # explicit keys override merged ones
    return out


def _tagged_scalar(text: str, tag: str, plain: bool, line: int):
    if plain:
        return _plain_scalar(text)
    if tag in (_Y + "str", _Y + "timestamp"):
        return text
    expected = {_Y + "int": int, _Y + "float": (int, float), _Y + "bool": bool, _Y + "null": type(None)}.get(tag)
    if expected is None:
        raise YamlError(f"invalid YAML: unsupported tag {tag!r} (line {line})")
    value = _plain_scalar(text)
    if isinstance(value, bool) and expected is not bool or not isinstance(value, expected):
        raise YamlError(f"invalid YAML: cannot decode {text!r} as {tag.removeprefix(_Y)} (line {line})")
    return float(value) if tag == _Y + "float" else value


# ---------------------------------------------------------------------------- writing


def render(data) -> str:
    """Block-style YAML through ruamel.yaml's emitter, fed events directly.

    Skipping ruamel's representer/serializer keeps dict order, emits no anchors for shared
    objects and is ~3x faster. A string is written plain only if both YAML 1.1 (the Go
    loader's sigs.k8s.io/yaml) and YAML 1.2 would read it back as that string: "on",
    "0000:13:00.0" (a YAML 1.1 sexagesimal float!) or "1.0" are quoted."""
    import io

    from ruamel.yaml import events as ev
    from ruamel.yaml.emitter import Emitter
    from ruamel.yaml.nodes import ScalarNode
    from ruamel.yaml.resolver import VersionedResolver
    from ruamel.yaml.tag import Tag

    str_tag, int_tag = Tag(suffix="tag:yaml.org,2002:str"), Tag(suffix="tag:yaml.org,2002:int")
    resolvers = (VersionedResolver(version=(1, 1)), VersionedResolver(version=(1, 2)))
    plain_cache: dict[str, bool] = {}

    def plain_ok(s: str) -> bool:
        ok = plain_cache.get(s)
        if ok is None:
            ok = plain_cache[s] = bool(s) and all(
                str(r.resolve(ScalarNode, s, (True, False))) == "tag:yaml.org,2002:str" for r in resolvers
            )
        return ok

    out: list = [ev.StreamStartEvent(), ev.DocumentStartEvent(explicit=False)]

    def walk(o) -> None:
        if isinstance(o, dict):
            out.append(ev.MappingStartEvent(None, None, True, flow_style=False))
            for k, v in o.items():
                walk(k)
                walk(v)
            out.append(ev.MappingEndEvent())
        elif isinstance(o, list):
            out.append(ev.SequenceStartEvent(None, None, True, flow_style=False))
            for v in o:
                walk(v)
            out.append(ev.SequenceEndEvent())
        elif isinstance(o, int) and not isinstance(o, bool):
            out.append(ev.ScalarEvent(None, int_tag, (True, False, True), str(o)))
        elif isinstance(o, str):
            if plain_ok(o):
                out.append(ev.ScalarEvent(None, str_tag, (True, True, True), o))
            else:
                out.append(ev.ScalarEvent(None, str_tag, (False, True, True), o, style='"'))
        else:
            raise TypeError(f"cannot render {type(o).__name__} as YAML")

    walk(data)
    out += [ev.DocumentEndEvent(explicit=False), ev.StreamEndEvent()]
    stream = io.StringIO()
    emitter = Emitter(stream, width=4096, allow_unicode=True)
    emitter.best_sequence_indent, emitter.sequence_dash_offset = 4, 2
    # What the emitter asks its serializer, which this one has not: the YAML version read back
    # (Go's yaml.v2 reads 1.1, where `?` in a plain scalar is an indicator: such strings are quoted).
    emitter.use_version = (1, 1)
    for e in out:
        emitter.emit(e)
    return stream.getvalue()
