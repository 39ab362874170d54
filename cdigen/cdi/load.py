"""Reading CDI spec files and the spec directories, as the reference Go loader does.

docs/cdi-conformance.md ("Parsing", "Spec directories"). The checks on the parsed document
are `cdigen.cdi.spec.check_spec`; this module turns bytes into that document: JSON through
the stdlib (fast, strict: `cdigen.strictjson`), anything that is not JSON through
`cdigen.cdi.goyaml`, whatever the file's extension (Go parses both with one YAML parser).
Files over MAX_SPEC_BYTES, not regular, or not UTF-8 are errors of that file only.
"""

import os
import stat
from collections import namedtuple

from cdigen import strictjson
from cdigen.cdi import goyaml
from cdigen.cdi.spec import LIBRARY_VERSION, SpecError, check_spec
from cdigen.errors import InvalidInput
from cdigen.files import UnreadableFile, read_regular
from cdigen.values import one_line

DEFAULT_SPEC_DIRS = ("/etc/cdi", "/var/run/cdi")  # priority 0, 1: the later wins
SPEC_SUFFIXES = (".json", ".yaml")  # case-sensitive, no .yml (as in Go)
MAX_SPEC_BYTES = 4 << 20
# The most nodes a file of MAX_SPEC_BYTES could hold without aliases ("- a\n" per node):
# aliases may not make a document bigger than a plain file of the size limit could be.
MAX_YAML_NODES = MAX_SPEC_BYTES // 4


class Spec(namedtuple("Spec", "path priority data")):
    """One loaded, valid spec file; `data` normalised by check_spec."""

    __slots__ = ()

    @property
    def kind(self) -> str:
        return self.data["kind"]


class Device(namedtuple("Device", "spec data")):
    """`data`: the device entry of spec.data."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def qualified_name(self) -> str:
        return f"{self.spec.kind}={self.name}"


class Registry:
    """What the reference library's cache holds after a refresh."""

    __slots__ = ("specs", "devices", "errors", "files", "allow_insecure", "skipped", "dirs")

    def __init__(self, allow_insecure: bool = False, dirs: list[str] = ()):
        self.specs: list[Spec] = []
        self.devices: dict[str, Device] = {}  # qualified name -> device
        self.errors: dict[str, list[str]] = {}  # file or directory -> messages
        self.files: list[str] = []  # every spec file looked at, in order
        self.allow_insecure = allow_insecure  # load specs that non-root users can change, even as root
        self.skipped = 0  # files not parsed because they cannot define a requested kind
        self.dirs = list(dirs)  # the spec directories read (load_registry), for resolve's message

    def __repr__(self) -> str:
        return "Registry(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"

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


def parse_yaml(text: str, max_nodes: int = MAX_YAML_NODES) -> object:
    """goyaml.parse: a spec as scan or nvidia-ctk writes it is read without ruamel.yaml."""
    try:
        return goyaml.parse(text, max_nodes)
    except goyaml.YamlError as e:
        raise SpecError(str(e)) from None


def parse_document(text: str) -> object:
    """The first document of `text` as plain dicts/lists/scalars. Raises SpecError."""
    stripped = text.lstrip(" \t\r\n")
    if stripped[:1] in ("{", "["):
        try:
            return strictjson.loads(text, object_pairs_hook=_no_duplicates)
        except strictjson.NestedTooDeeply:
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
        return read_regular(path, limit)
    except UnreadableFile as e:
        raise SpecError(str(e)) from None


def check_document(data: bytes, loader: str = LIBRARY_VERSION) -> dict:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"not UTF-8 (byte {e.start})") from None
    text = text.removeprefix("\ufeff")
    return check_spec(parse_document(text), loader)


# ---------------------------------------------------------------------------- directories


def untrusted(path: str) -> str | None:
    """Why root must not load the spec file or directory `path`, or None. A spec can add a
    root hook and bind-mount `/`, so as root only what nobody but root can change is loaded
    (as sshd and sudo treat their configuration): owned by root, not group/world-writable."""
    if os.geteuid() != 0:
        return None  # an unprivileged loader gains nothing from a spec it could write itself
    try:
        st = os.stat(path)
    except OSError:
        return None  # reading it reports the error
    if st.st_uid != 0:
        return f"not loaded: owned by uid {st.st_uid}, and cdigen runs as root"
    if st.st_mode & 0o022:
        who = {0o022: "group and others", 0o020: "its group"}.get(st.st_mode & 0o022, "others")
        return f"not loaded: writable by {who} (mode {stat.S_IMODE(st.st_mode):04o}), and cdigen runs as root"
    return None


def spec_files(dirs: list[str], registry: Registry) -> list[tuple[int, str]]:
    """(priority, path) of the spec files in `dirs`: names ending in .json/.yaml, sorted,
    no recursion, subdirectories skipped, a missing directory skipped silently. Any other
    directory error is recorded and that directory skipped (Go aborts the whole scan there),
    as is a directory `untrusted` refuses (unless the registry allows insecure specs)."""
    out = []
    for priority, directory in enumerate(dirs):
        reason = None if registry.allow_insecure else untrusted(directory)
        if reason and os.path.isdir(directory):
            registry.add_error(directory, reason)
            continue
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


def load_registry(
    dirs: list[str], kinds: set[str] | None = None, loader: str = LIBRARY_VERSION, allow_insecure: bool = False
) -> Registry:
    """Load the spec directories like the reference cache's refresh (docs/cdi-conformance.md, "Spec directories").

    With `kinds`, files that cannot define one of those kinds are not parsed (see
    `may_define`): the devices of those kinds, their conflicts and their errors are what they
    would be with every file parsed; only other kinds' errors go unreported. As root, files and
    directories that `untrusted` refuses are errors, unless `allow_insecure`."""
    registry = Registry(allow_insecure=allow_insecure, dirs=dirs)
    groups = [[] for _ in dirs]
    for priority, path in spec_files(dirs, registry):
        groups[priority].append(path)
    return _load(groups, registry, kinds, loader)


def load_paths(paths: list[str], loader: str = LIBRARY_VERSION, allow_insecure: bool = False) -> Registry:
    """Load files or directories named on the command line. A directory is scanned like a
    spec directory; files in one directory share its priority (so duplicates between them
    are conflicts); directories rank in the order first named, the later winning."""
    registry = Registry(allow_insecure=allow_insecure)
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
            sub = Registry(allow_insecure=allow_insecure)
            files = [p for _, p in spec_files([directory], sub)]
            for where, messages in sub.errors.items():
                registry.errors.setdefault(where, []).extend(messages)
        groups[order[directory]].extend(p for p in files if p not in groups[order[directory]])
    return _load(groups, registry, None, loader)


def _load(groups: list[list[str]], registry: Registry, kinds: set[str] | None, loader: str) -> Registry:
    conflicts: set[str] = set()
    for priority, paths in enumerate(groups):
        for path in paths:
            registry.files.append(path)
            reason = None if registry.allow_insecure else untrusted(path)
            if reason:
                registry.add_error(path, reason)
                continue
            try:
                data = read_limited(path)
                if kinds is not None and not may_define(data, kinds):
                    registry.skipped += 1
                    continue
                spec = Spec(path, priority, check_document(data, loader))
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
    # As in Go, conflicts are removed after every directory was scanned (a quirk of the reference cache).
    for qualified in conflicts:
        registry.devices.pop(qualified, None)
    return registry


# ---------------------------------------------------------------------------- requests


def kind_of(qualified: str) -> str:
    return qualified.partition("=")[0]


def resolve(registry: Registry, requested: list[str]) -> list[Device]:
    """The devices for `requested` (exact qualified names, request order). All or nothing:
    any unknown name fails the whole request (as the reference library does), naming every unknown one."""
    missing = [q for q in requested if q not in registry.devices]
    if missing:
        raise InvalidInput(unresolvable(registry, missing))
    return [registry.devices[q] for q in requested]


NAMES_SHOWN = 8  # of the devices that do exist, in the one-line error


def unresolvable(registry: Registry, missing: list[str]) -> str:
    """The one-line error for `missing`: the names, the spec errors that may explain them, the
    directories read and the devices there, nearest to the missing names first. Only on this
    path is everything parsed (a kind filter skipped the other kinds' files) and difflib imported."""
    from difflib import SequenceMatcher

    message = "unresolvable CDI devices " + ", ".join(missing)
    if registry.errors:  # with a kind filter, only files that could define them
        message += " (spec errors: " + "; ".join(f"{path}: {msgs[0]}" for path, msgs in registry.errors.items()) + ")"
    if not registry.dirs:
        return message
    with_files = {os.path.normpath(os.path.dirname(path)) for path in registry.files}
    message += "; spec directories: " + ", ".join(
        one_line(d, 200) + _dir_note(d, with_files, registry.errors) for d in registry.dirs
    )
    if not registry.files:
        return message + "; no spec file there"
    everything = load_registry(registry.dirs, allow_insecure=registry.allow_insecure) if registry.skipped else registry
    names = sorted(everything.devices)
    if not names:
        return message + "; no devices there"

    def closeness(name: str) -> float:
        return max(SequenceMatcher(None, want, name).ratio() for want in missing)

    names.sort(key=closeness, reverse=True)  # stable: equally close names stay sorted
    shown = ", ".join(names[:NAMES_SHOWN])
    if len(names) > NAMES_SHOWN:
        shown += f" ... and {len(names) - NAMES_SHOWN} more"
    return message + f"; devices there, nearest first: {shown}"


def _dir_note(directory: str, with_files: set[str], errors: dict) -> str:
    """ " (missing)" or " (no .json or .yaml file)" for a spec directory that gave no file; ""
    when it gave some, or its error (unreadable, untrusted) is among the spec errors already."""
    if os.path.normpath(directory) in with_files or directory in errors:
        return ""
    return " (missing)" if not os.path.exists(directory) else " (no .json or .yaml file)"
