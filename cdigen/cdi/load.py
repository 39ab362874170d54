"""Reading CDI spec files and the spec directories, as the reference Go loader does.

cdi-semantics.md §1.1 (parsing), §3 (directories, priorities, conflicts). The checks on the
parsed document are `cdigen.cdi.spec.check_spec`; this module turns bytes into that document:

* JSON through the stdlib `json` module (fast); anything that is not JSON through ruamel.yaml,
  whatever the file's extension (Go parses both with one YAML parser). ruamel's C parser is
  used when ruamel.yaml.clib is installed (about 10x faster on a scan-sized spec), the pure
  Python one otherwise; both give the same documents.
* YAML scalars are resolved as Go's yaml.v2 (used by sigs.k8s.io/yaml) resolves them, not as
  YAML 1.2: `on`/`yes` are booleans, `0660` is octal, `0:0` stays a string (no sexagesimal),
  timestamps stay strings. Only the first document of a stream is read.
* Duplicate keys are an error; aliases are bounded: the expanded size of the node graph is
  counted (memoised, so a "billion laughs" file is rejected in microseconds) before anything
  is constructed; recursive aliases are an error. Files over MAX_SPEC_BYTES are an error.
"""

import json
import os
import stat
from dataclasses import dataclass, field

from cdigen.cdi.spec import SpecError, check_spec
from cdigen.errors import InvalidInput

DEFAULT_SPEC_DIRS = ("/etc/cdi", "/var/run/cdi")  # priority 0, 1: the later wins
SPEC_SUFFIXES = (".json", ".yaml")  # case-sensitive, no .yml (as in Go)
MAX_SPEC_BYTES = 4 << 20
# The most nodes a file of MAX_SPEC_BYTES could hold without aliases ("- a\n" per node):
# aliases may not make a document bigger than a plain file of the size limit could be.
MAX_YAML_NODES = MAX_SPEC_BYTES // 4


@dataclass
class Spec:
    """One loaded, valid spec file."""

    path: str
    priority: int
    data: dict  # normalised by check_spec

    @property
    def kind(self) -> str:
        return self.data["kind"]


@dataclass
class Device:
    spec: Spec
    data: dict  # the device entry of spec.data

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def qualified_name(self) -> str:
        return f"{self.spec.kind}={self.name}"


@dataclass
class Registry:
    """What the reference library's cache holds after a refresh."""

    specs: list[Spec] = field(default_factory=list)
    devices: dict[str, Device] = field(default_factory=dict)  # qualified name -> device
    errors: dict[str, list[str]] = field(default_factory=dict)  # file or directory -> messages
    files: list[str] = field(default_factory=list)  # every spec file looked at, in order
    skipped: int = 0  # files not parsed because they cannot define a requested kind

    def add_error(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)

    def kinds(self) -> dict[str, list[Device]]:
        out: dict[str, list[Device]] = {}
        for qualified in sorted(self.devices):
            device = self.devices[qualified]
            out.setdefault(device.spec.kind, []).append(device)
        return dict(sorted(out.items()))


# ---------------------------------------------------------------------------- parsing


def _no_duplicates(pairs: list) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")  # NaN/Infinity: let the YAML parser decide


def parse_document(text: str) -> object:
    """The first document of `text` as plain dicts/lists/scalars. Raises SpecError."""
    stripped = text.lstrip(" \t\r\n")
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
        except RecursionError:
            raise SpecError("document is nested too deeply") from None
        except ValueError as e:
            json_error = e
        try:  # YAML is a superset of JSON: `{kind: x}` is a valid spec
            return parse_yaml(text)
        except SpecError:
            if stripped[1:].lstrip(" \t\r\n")[:1] in ('"', "}", "]") or stripped[0] == "[":
                raise SpecError(f"invalid JSON: {json_error}") from None  # meant as JSON
            raise
    return parse_yaml(text)


def read_spec_file(path: str, priority: int = 0) -> Spec:
    """Read, parse and check one spec file. Raises SpecError("<message>")."""
    data = read_limited(path)
    return Spec(path, priority, check_document(data))


def read_limited(path: str, limit: int = MAX_SPEC_BYTES) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise SpecError(f"cannot read: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SpecError("not a regular file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise SpecError(f"cannot read: {e.strerror}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise SpecError(f"file is larger than {limit} bytes")
    return b"".join(chunks)


def check_document(data: bytes) -> dict:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"not UTF-8 (byte {e.start})") from None
    text = text.removeprefix("\ufeff")
    return check_spec(parse_document(text))


# ---------------------------------------------------------------------------- directories


def spec_files(dirs: list[str], registry: Registry) -> list[tuple[int, str]]:
    """(priority, path) of the spec files in `dirs`: names ending in .json/.yaml, sorted,
    no recursion, subdirectories skipped, a missing directory skipped silently. Any other
    directory error is recorded and that directory skipped (Go aborts the whole scan there)."""
    out = []
    for priority, directory in enumerate(dirs):
        try:
            names = sorted(os.listdir(directory))  # follows a symlinked directory (HEAD)
        except FileNotFoundError:
            continue
        except OSError as e:
            registry.add_error(directory, f"cannot read spec directory: {e.strerror}")
            continue
        for name in names:
            if not name.endswith(SPEC_SUFFIXES):
                continue
            path = os.path.join(directory, name)
            try:
                if stat.S_ISDIR(os.lstat(path).st_mode):
                    continue
            except OSError:
                continue  # vanished
            out.append((priority, path))
    return out


def may_define(data: bytes, kinds: set[str]) -> bool:
    """False only when the file cannot possibly define a device of any of `kinds`.

    A kind (`vendor/class`: ASCII letters, digits, `_.-/`) can reach the `kind` field only
    as its literal bytes: every way YAML or JSON has to spell characters differently is an
    escape, which needs a backslash (double-quoted `\\x2f`, `\\u002f`, `\\/`, line
    continuations); single quotes only escape `'`; folding a scalar over lines inserts a space
    or a newline, which no kind contains; tags, anchors and aliases do not change text (the one
    tag that does, `!!binary`, is an error for cdigen's loader anyway); and a
    kind contains a `/`, so no YAML/Go number, boolean or null can turn into it. The file is
    valid UTF-8 for us or it is an error anyway, so its bytes are the bytes of the text.
    So a file that holds neither the kind's bytes nor any backslash cannot define it."""
    return b"\\" in data or any(k.encode() in data for k in kinds)


def load_registry(dirs: list[str], kinds: set[str] | None = None) -> Registry:
    """Load the spec directories like the reference cache's refresh (§3.3).

    With `kinds`, files that cannot define one of those kinds are not parsed (see
    `may_define`): the devices of those kinds, their conflicts and their errors are what they
    would be with every file parsed; only other kinds' errors go unreported."""
    registry = Registry()
    groups = [[] for _ in dirs]
    for priority, path in spec_files(dirs, registry):
        groups[priority].append(path)
    return _load(groups, registry, kinds)


def load_paths(paths: list[str]) -> Registry:
    """Load files or directories named on the command line. A directory is scanned like a
    spec directory; files in one directory share its priority (so duplicates between them
    are conflicts); directories rank in the order first named, the later winning."""
    registry = Registry()
    order: dict[str, int] = {}
    groups: list[list[str]] = []
    for path in paths:
        if os.path.isdir(path):
            directory, files = os.path.normpath(path), None
        else:
            directory, files = os.path.dirname(os.path.abspath(path)), [path]
        if directory not in order:
            order[directory] = len(groups)
            groups.append([])
        if files is None:
            sub = Registry()
            files = [p for _, p in spec_files([directory], sub)]
            for where, messages in sub.errors.items():
                registry.errors.setdefault(where, []).extend(messages)
        groups[order[directory]].extend(p for p in files if p not in groups[order[directory]])
    return _load(groups, registry, None)


def _load(groups: list[list[str]], registry: Registry, kinds: set[str] | None) -> Registry:
    conflicts: set[str] = set()
    for priority, paths in enumerate(groups):
        for path in paths:
            registry.files.append(path)
            try:
                data = read_limited(path)
                if kinds is not None and not may_define(data, kinds):
                    registry.skipped += 1
                    continue
                spec = Spec(path, priority, check_document(data))
            except SpecError as e:
                registry.add_error(path, str(e))
                continue
            registry.specs.append(spec)
            for entry in spec.data["devices"]:
                device = Device(spec, entry)
                qualified = device.qualified_name
                old = registry.devices.get(qualified)
                if old is not None and old.spec.priority == priority:
                    message = f"conflicting device {qualified!r} (specs {old.spec.path!r}, {path!r})"
                    registry.add_error(path, message)
                    registry.add_error(old.spec.path, message)
                    conflicts.add(qualified)
                    continue
                registry.devices[qualified] = device
    # As in Go, conflicts are removed after every directory was scanned (§3.3 quirk).
    for qualified in conflicts:
        registry.devices.pop(qualified, None)
    return registry


# ---------------------------------------------------------------------------- requests


def kind_of(qualified: str) -> str:
    return qualified.partition("=")[0]


def resolve(registry: Registry, requested: list[str]) -> list[Device]:
    """The devices for `requested` (exact qualified names, request order). All or nothing:
    any unknown name fails the whole request (§4.1), naming every unknown one."""
    missing = [q for q in requested if q not in registry.devices]
    if missing:
        message = "unresolvable CDI devices " + ", ".join(missing)
        if registry.errors:  # with a kind filter, only files that could define them
            message += " (spec errors: " + "; ".join(
                f"{path}: {msgs[0]}" for path, msgs in registry.errors.items()) + ")"
        raise InvalidInput(message)
    return [registry.devices[q] for q in requested]


# ---------------------------------------------------------------------------- YAML as Go reads it

MAX_YAML_DEPTH = 64  # a CDI spec nests 6 deep; bounds the recursion of every step below

_NULL = frozenset(("", "~", "null", "Null", "NULL"))
_TRUE = frozenset(("y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"))
_FALSE = frozenset(("n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"))
_SPECIAL_FLOATS = {v: float(f) for f, vs in (("inf", ".inf .Inf .INF +.inf +.Inf +.INF"),
                                             ("-inf", "-.inf -.Inf -.INF"),
                                             ("nan", ".nan .NaN .NAN")) for v in vs.split()}
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
    if not digits or any(c not in _DIGITS[base] for c in digits):
        return None
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
        import re

        plain = text.replace("_", "")
        value = _go_parse_int(plain) if plain else None
        if value is not None:
            return value
        if re.fullmatch(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?", plain):
            return float(plain)
    return text  # timestamps too: yaml.v2 keeps them as strings for interface{} targets


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
                return {ScalarNode: self.DEFAULT_SCALAR_TAG, SequenceNode: self.DEFAULT_SEQUENCE_TAG,
                        MappingNode: self.DEFAULT_MAPPING_TAG}[kind]

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

        _yaml_state.update(new_yaml=new_yaml, error=YAMLError, plain=plain, scalar=ScalarNode,
                           seq=SequenceNode, map=MappingNode)
    return _yaml_state


def _shallow_enough_for_c(text: str, limit: int = 2000) -> bool:
    """The C composer recurses on the C stack without a limit (it crashes near 100000 levels),
    so it only gets documents that cannot nest deeper than `limit`: a flow level needs a '['
    or '{', and a block level is indented further than its parent (a block sequence under a
    mapping key may share the key's column, so at most two levels per column)."""
    if text.count("[") + text.count("{") > limit // 2:
        return False
    return 2 * (max(map(len, text.splitlines()), default=0) + 1) <= limit // 2


def _yaml_message(e: Exception) -> str:
    if type(e).__name__ == "MaxDepthExceededError":
        return f"invalid YAML: nested more than {MAX_YAML_DEPTH} levels deep"
    problem = getattr(e, "problem", None) or (str(e).splitlines() or [type(e).__name__])[0]
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"invalid YAML: {' '.join(str(problem).split())}{where}"


def parse_yaml(text: str, max_nodes: int = MAX_YAML_NODES) -> object:
    """The first YAML document of `text`, constructed as Go's yaml.v2 would. SpecError."""
    tools = _yaml_tools()
    try:
        documents = tools["new_yaml"](text).compose_all(text)
        try:
            root = next(documents, None)
        finally:
            documents.close()
        if root is None:
            return None
        _check_size(root, max_nodes, tools)
        return _construct(root, tools)
    except tools["error"] as e:
        raise SpecError(_yaml_message(e)) from None
    except RecursionError:
        raise SpecError("invalid YAML: aliases nest too deeply") from None


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
                raise SpecError(f"invalid YAML: recursive alias (line {node.start_mark.line + 1})")
            if depth > MAX_YAML_DEPTH:
                raise SpecError(f"invalid YAML: nested more than {MAX_YAML_DEPTH} levels deep")
            active.add(key)
            total = 1
            for item in node.value:
                if isinstance(item, tuple):
                    total += size(item[0], depth + 1) + size(item[1], depth + 1)
                else:
                    total += size(item, depth + 1)
                if total > limit:
                    raise SpecError(f"invalid YAML: aliases expand the document to more than {limit} nodes")
            active.discard(key)
        sizes[key] = total
        return total

    return size(root, 1)


def _construct(node, tools, memo: dict | None = None):
    memo = {} if memo is None else memo
    key = id(node)
    if key in memo:
        return memo[key]
    tag = str(node.tag)
    line = node.start_mark.line + 1
    if isinstance(node, tools["scalar"]):
        value = _tagged_scalar(node.value, tag, node.tag == tools["plain"], line)
    elif isinstance(node, tools["seq"]):
        if tag != _Y + "seq":
            raise SpecError(f"invalid YAML: unsupported tag {tag!r} (line {line})")
        value = [_construct(item, tools, memo) for item in node.value]
    else:
        if tag != _Y + "map":
            raise SpecError(f"invalid YAML: unsupported tag {tag!r} (line {line})")
        value = _construct_mapping(node, tools, memo, line)
    memo[key] = value
    return value


def _construct_mapping(node, tools, memo: dict, line: int) -> dict:
    explicit: dict = {}
    merged: dict = {}
    for key_node, value_node in node.value:
        if key_node.tag == tools["plain"] and key_node.value == "<<":
            sources = value_node.value if isinstance(value_node, tools["seq"]) else [value_node]
            for source in sources:
                data = _construct(source, tools, memo)
                if not isinstance(data, dict):
                    raise SpecError(f"invalid YAML: a merge key needs mappings (line {line})")
                for k, v in data.items():
                    merged.setdefault(k, v)  # the first source wins, as the YAML spec says
            continue
        k = _construct(key_node, tools, memo)
        if isinstance(k, (dict, list)):
            raise SpecError(f"invalid YAML: a mapping key must be a scalar (line {key_node.start_mark.line + 1})")
        if k in explicit:
            raise SpecError(f"invalid YAML: duplicate key {k!r} (line {key_node.start_mark.line + 1})")
        explicit[k] = _construct(value_node, tools, memo)
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
        raise SpecError(f"invalid YAML: unsupported tag {tag!r} (line {line})")
    value = _plain_scalar(text)
    if isinstance(value, bool) and expected is not bool or not isinstance(value, expected):
        raise SpecError(f"invalid YAML: cannot decode {text!r} as {tag.removeprefix(_Y)} (line {line})")
    return float(value) if tag == _Y + "float" else value
