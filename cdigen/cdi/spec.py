"""The CDI spec model: names, versions and the reference Go loader's checks.

Mirrors `tags.cncf.io/container-device-interface` v1.1.0 (specs-go/config.go, pkg/parser,
pkg/cdi/spec.go, device.go, container-edits.go, specs-go/version.go); the rules are explained in
docs/cdi-conformance.md. Where HEAD and v1.1.0 differ we follow v1.1.0, the newest
release any runtime vendors, except that a one-letter vendor or class is read as at HEAD
(every release panics on it): `validate` reports it (`released_library_problem`), and cdigen
never writes one (`check_vendor`, `check_class`).

Pure: operates on already-parsed documents (dicts, lists, scalars).
"""

from cdigen.errors import BadArgument, InvalidInput
from cdigen.values import quoted, version_tuple

LIBRARY_VERSION = "1.1.0"  # the newest released library, whose rules cdigen follows by default
CDI_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0", "1.1.0")
TARGET_VERSIONS = CDI_VERSIONS[2:]  # what cdigen writes and checks for: 0.3.0 is the oldest any engine loads
HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


class SpecError(InvalidInput):
    """A spec the reference loader would reject; the message names the field."""


# ---------------------------------------------------------------------------- names

_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_VC_MIDDLE = _ALNUM | frozenset("_.-")
_NAME_MIDDLE = _VC_MIDDLE | frozenset(":")


def _check_vendor_or_class(what: str, value: str, as_read: bool) -> str:
    if not isinstance(value, str) or value == "":
        raise SpecError(f"invalid {what}. empty name")
    if value[0] not in _ALPHA:
        raise SpecError(f"invalid {what} {quoted(value)}, should start with a letter")
    if len(value) == 1 and not as_read:  # a release slices value[1:0] here
        raise SpecError(
            f"invalid {what} {quoted(value)}: one letter, on which every released Go CDI library "
            "(through v1.1.0) panics while loading the spec directory, crashing the engine that loads it"
        )
    for ch in value[1:-1]:
        if ch not in _VC_MIDDLE:
            raise SpecError(f"invalid {what} {quoted(value)}, invalid character {quoted(ch)}")
    if value[-1] not in _ALNUM:
        raise SpecError(f"invalid {what} {quoted(value)}, should end with a letter or digit")
    return value


def check_vendor(value: str, as_read: bool = False) -> str:
    """A vendor cdigen may write; `as_read`: one the loader accepts (one letter too, as HEAD)."""
    return _check_vendor_or_class("vendor", value, as_read)


def check_class(value: str, as_read: bool = False) -> str:
    """A class cdigen may write; `as_read`: one the loader accepts (one letter too, as HEAD)."""
    return _check_vendor_or_class("class", value, as_read)


def released_library_problem(kind: str) -> str | None:
    """Why every released Go CDI library crashes on the kind of a spec that loads, or None."""
    vendor, cls = split_kind(kind)
    try:
        check_vendor(vendor)
        check_class(cls)
    except SpecError as e:
        return f"kind: {e}"
    return None


def check_device_name(value: str) -> str:
    if not isinstance(value, str) or value == "":
        raise SpecError("invalid (empty) device name")
    if value[0] not in _ALNUM:
        raise SpecError(f"invalid device name {quoted(value)}, should start with a letter or digit")
    for ch in value[1:-1]:
        if ch not in _NAME_MIDDLE:
            raise SpecError(f"invalid device name {quoted(value)}, invalid character {quoted(ch)}")
    if value[-1] not in _ALNUM:
        raise SpecError(f"invalid device name {quoted(value)}, should end with a letter or digit")
    return value


def split_kind(kind: str) -> tuple[str, str]:
    """`vendor/class` split at the first '/' (a missing '/' gives an empty vendor, as in Go)."""
    vendor, sep, cls = kind.partition("/")
    return (vendor, cls) if sep else ("", "")


def parse_qualified_name(device: str) -> tuple[str, str, str]:
    """`vendor/class=name` -> (vendor, class, name); SpecError unless fully qualified."""
    if not isinstance(device, str):
        raise SpecError(f"invalid device {quoted(device)}: not a string")
    kind, sep, name = device.partition("=")
    vendor, cls = split_kind(kind) if sep else ("", "")
    if not vendor:
        raise SpecError(f"unqualified device {quoted(device)}, missing vendor")
    if not cls:
        raise SpecError(f"unqualified device {quoted(device)}, missing class")
    if not name:
        raise SpecError(f"unqualified device {quoted(device)}, missing device name")
    try:
        check_vendor(vendor, as_read=True)
        check_class(cls, as_read=True)
        check_device_name(name)
    except SpecError as e:
        raise SpecError(f"invalid device {quoted(device)}: {e}") from None
    return vendor, cls, name


def is_qualified_name(device: str) -> bool:
    try:
        parse_qualified_name(device)
    except SpecError:
        return False
    return True


# ---------------------------------------------------------------------------- versions


def version_key(version: str) -> tuple[int, ...]:
    """Sort key of a version string ("0.5.0", "v1.1.0"); () for anything else."""
    return version_tuple(version) or ()


def check_target_version(version: str, argument: str = "cdi_version") -> str:
    """`version` when cdigen can write or check for it; BadArgument(`argument`) otherwise."""
    if version not in TARGET_VERSIONS:
        raise BadArgument(argument, f"{quoted(version)}: not one of {', '.join(TARGET_VERSIONS)}")
    return version


def _edits_list(spec: dict):
    edits = [spec.get("containerEdits") or {}]
    edits += [d.get("containerEdits") or {} for d in spec.get("devices") or []]
    return edits


def minimum_version(spec: dict) -> str:
    """The lowest cdiVersion whose loader accepts every field `spec` uses."""
    edits = _edits_list(spec)
    devices = spec.get("devices") or []
    rdts = [e["intelRdt"] for e in edits if e.get("intelRdt") is not None]
    if any(e.get("netDevices") for e in edits) or any(
        r.get("schemata") is not None or r.get("enableMonitoring") for r in rdts
    ):
        return "1.1.0"
    if rdts or any(e.get("additionalGids") for e in edits):
        return "0.7.0"
    if (
        spec.get("annotations")
        or any(d.get("annotations") for d in devices)
        or "." in split_kind(spec.get("kind") or "")[1]
    ):
        return "0.6.0"
    if any(str(d.get("name") or "")[:1].isdigit() for d in devices) or any(
        n.get("hostPath") for e in edits for n in e.get("deviceNodes") or []
    ):
        return "0.5.0"
    if any(m.get("type") for e in edits for m in e.get("mounts") or []):
        return "0.4.0"
    return "0.3.0"


def check_version(spec: dict, loader: str = LIBRARY_VERSION) -> str:
    """The declared cdiVersion, checked as the library of version `loader` checks it: up to
    v0.5.x an exact string of its own list; from v0.6.0 an optional `v` prefix, and the spec
    must declare at least the minimum its fields need."""
    version = spec.get("cdiVersion", "")
    known = versions_up_to(loader)
    modern = version_key(loader) >= version_key("0.6.0")
    if (version[1:] if modern and version.startswith("v") else version) not in known:
        raise SpecError(f"cdiVersion: invalid version {quoted(version)}")
    required = max(minimum_version(spec), "0.3.0", key=version_key)
    if modern and version_key(version) < version_key(required):
        raise SpecError(f"cdiVersion: the spec version must be at least v{required} (is {version})")
    return version


def versions_up_to(loader: str) -> tuple[str, ...]:
    """The cdiVersion values a library of version `loader` accepts: its own and older ones."""
    return tuple(v for v in CDI_VERSIONS if version_key(v) <= version_key(loader))


# ---------------------------------------------------------------------------- structure
# Field tables mirror specs-go/config.go: canonical name -> type tag.

_STR, _INT, _UINT32, _BOOL, _STRLIST, _STRMAP, _UINT32LIST = "str", "int", "uint32", "bool", "[]str", "map", "[]uint32"

_DEVICE_NODE = {
    "path": _STR,
    "hostPath": _STR,
    "type": _STR,
    "major": _INT,
    "minor": _INT,
    "fileMode": _UINT32,
    "permissions": _STR,
    "uid": _UINT32,
    "gid": _UINT32,
}
_MOUNT = {"hostPath": _STR, "containerPath": _STR, "options": _STRLIST, "type": _STR}
_HOOK = {"hookName": _STR, "path": _STR, "args": _STRLIST, "env": _STRLIST, "timeout": _INT}
_INTEL_RDT = {
    "closID": _STR,
    "l3CacheSchema": _STR,
    "memBwSchema": _STR,
    "schemata": _STRLIST,
    "enableMonitoring": _BOOL,
}
_NET_DEVICE = {"hostInterfaceName": _STR, "name": _STR}
_EDITS = {
    "env": _STRLIST,
    "deviceNodes": [_DEVICE_NODE],
    "netDevices": [_NET_DEVICE],
    "hooks": [_HOOK],
    "mounts": [_MOUNT],
    "intelRdt": _INTEL_RDT,
    "additionalGids": _UINT32LIST,
}
_DEVICE = {"name": _STR, "annotations": _STRMAP, "containerEdits": _EDITS}
_SPEC = {"cdiVersion": _STR, "kind": _STR, "annotations": _STRMAP, "devices": [_DEVICE], "containerEdits": _EDITS}

# The first library version whose structs have a field (specs-go/config.go at each tag): an
# older loader fails on it as an unknown field. Every other field is known since v0.3.0.
_FIELD_SINCE = {
    (id(_DEVICE_NODE), "hostPath"): "0.5.0",
    (id(_MOUNT), "type"): "0.4.0",
    (id(_SPEC), "annotations"): "0.6.0",
    (id(_DEVICE), "annotations"): "0.6.0",
    (id(_EDITS), "intelRdt"): "0.7.0",
    (id(_EDITS), "additionalGids"): "0.7.0",
    (id(_EDITS), "netDevices"): "1.1.0",
    (id(_INTEL_RDT), "schemata"): "1.1.0",
    (id(_INTEL_RDT), "enableMonitoring"): "1.1.0",
}
_tables_by_loader: dict[str, dict] = {}


def _fields_for(loader: str) -> dict:
    """The spec's field table as a library of version `loader` knows it."""
    if loader not in _tables_by_loader:

        def known(table: dict) -> dict:
            out = {}
            for name, tag in table.items():
                since = _FIELD_SINCE.get((id(table), name), "0.3.0")
                if version_key(since) <= version_key(loader):
                    if isinstance(tag, list):
                        tag = [known(tag[0])]
                    elif isinstance(tag, dict):
                        tag = known(tag)
                    out[name] = tag
            return out

        _tables_by_loader[loader] = known(_SPEC)
    return _tables_by_loader[loader]


_INT_RANGES = {_INT: (-(1 << 63), (1 << 63) - 1), _UINT32: (0, (1 << 32) - 1)}


def _go_string(value, where: str) -> str:
    """sigs.k8s.io/yaml turns scalars into strings for string fields (`name: 0` -> "0")."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    raise SpecError(f"{where}: expected a string, got {_kind_of(value)}")


def _kind_of(value) -> str:
    return {dict: "a mapping", list: "a list"}.get(type(value), type(value).__name__)


def _go_int(value, tag: str, where: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{where}: expected an integer, got {quoted(value)}")
    low, high = _INT_RANGES[tag]
    if not low <= value <= high:
        raise SpecError(f"{where}: {value} is out of range")
    return value


def _convert(value, schema, where: str):
    if isinstance(schema, dict):
        return _convert_object(value, schema, where)
    if isinstance(schema, list):
        if not isinstance(value, list):
            raise SpecError(f"{where}: expected a list, got {_kind_of(value)}")
        return [_convert_object(v, schema[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if schema == _STR:
        return _go_string(value, where)
    if schema in (_INT, _UINT32):
        return _go_int(value, schema, where)
    if schema == _BOOL:
        if not isinstance(value, bool):
            raise SpecError(f"{where}: expected true or false, got {quoted(value)}")
        return value
    if schema == _STRLIST:
        if not isinstance(value, list):
            raise SpecError(f"{where}: expected a list, got {_kind_of(value)}")
        return [_go_string(v if v is not None else "", f"{where}[{i}]") for i, v in enumerate(value)]
    if schema == _UINT32LIST:
        if not isinstance(value, list):
            raise SpecError(f"{where}: expected a list, got {_kind_of(value)}")
        return [_go_int(v, _UINT32, f"{where}[{i}]") for i, v in enumerate(value)]
    if schema == _STRMAP:
        if not isinstance(value, dict):
            raise SpecError(f"{where}: expected a mapping, got {_kind_of(value)}")
        return {_go_string(k, where): ("" if v is None else _go_string(v, f"{where}[{k!r}]")) for k, v in value.items()}
    raise AssertionError(schema)


def _convert_object(value, fields: dict, where: str) -> dict:
    if not isinstance(value, dict):
        raise SpecError(f"{where or 'spec'}: expected a mapping, got {_kind_of(value)}")
    folded = {k.lower(): k for k in fields}
    out: dict = {}
    for key, item in value.items():
        # encoding/json matches field names case-insensitively; the last duplicate wins.
        canon = folded.get(key.lower()) if isinstance(key, str) else None
        if canon is None:
            raise SpecError(f"{where + '.' if where else ''}{key}: unknown field")
        if item is None:  # JSON null leaves the zero value
            out.pop(canon, None)
            continue
        out[canon] = _convert(item, fields[canon], f"{where + '.' if where else ''}{canon}")
    return out


# ---------------------------------------------------------------------------- rules


def _check_env(env: list[str], where: str) -> None:
    for i, var in enumerate(env):
        if var.find("=") <= 0:
            raise SpecError(f"{where}[{i}]: invalid environment variable {quoted(var)}")


def check_edits(edits: dict, where: str) -> None:
    _check_env(edits.get("env", []), f"{where}.env")
    for i, node in enumerate(edits.get("deviceNodes", [])):
        at = f"{where}.deviceNodes[{i}]"
        if not node.get("path"):
            raise SpecError(f"{at}: invalid (empty) device path")
        if node.get("type", "") not in ("", "b", "c", "u", "p"):
            raise SpecError(f"{at}: device {quoted(node['path'])}: invalid type {quoted(node['type'])}")
        perms = node.get("permissions", "")
        if perms and set(perms) - set("rwm"):
            hint = " ('none' is accepted only by unreleased CDI HEAD)" if perms == "none" else ""
            raise SpecError(f"{at}: device {quoted(node['path'])}: invalid permissions {quoted(perms)}{hint}")
    for i, hook in enumerate(edits.get("hooks", [])):
        at = f"{where}.hooks[{i}]"
        if hook.get("hookName", "") not in HOOK_NAMES:
            raise SpecError(f"{at}: invalid hook name {quoted(hook.get('hookName', ''))}")
        if not hook.get("path"):
            raise SpecError(f"{at}: invalid hook {quoted(hook['hookName'])} with empty path")
        _check_env(hook.get("env", []), f"{at}.env")
    for i, mount in enumerate(edits.get("mounts", [])):
        at = f"{where}.mounts[{i}]"
        if not mount.get("hostPath"):
            raise SpecError(f"{at}: invalid mount, empty host path")
        if not mount.get("containerPath"):
            raise SpecError(f"{at}: invalid mount, empty container path")
    rdt = edits.get("intelRdt")
    if rdt is not None:
        clos = rdt.get("closID", "")
        if clos not in ("", "/") and (len(clos) >= 4096 or clos in (".", "..") or "/" in clos or "\n" in clos):
            raise SpecError(f"{where}.intelRdt.closID: invalid ClosID {quoted(clos)}")
    hosts: dict[str, str] = {}
    names: dict[str, str] = {}
    for i, nd in enumerate(edits.get("netDevices", [])):
        at = f"{where}.netDevices[{i}]"
        host, name = nd.get("hostInterfaceName", ""), nd.get("name", "")
        if not host:
            raise SpecError(f"{at}: invalid linux net device, empty hostInterfaceName")
        if not name:
            raise SpecError(f"{at}: invalid linux net device, empty name")
        if host in hosts:
            raise SpecError(
                f"{at}: duplicate hostInterfaceName {quoted(host)} with names {quoted(hosts[host])} and {quoted(name)}"
            )
        if name in names:
            raise SpecError(
                f"{at}: duplicate name {quoted(name)} with hostInterfaceName {quoted(names[name])} and {quoted(host)}"
            )
        hosts[host], names[name] = name, host


def _edits_empty(edits: dict) -> bool:
    return (
        not any(edits.get(k) for k in ("env", "deviceNodes", "hooks", "mounts", "additionalGids", "netDevices"))
        and edits.get("intelRdt") is None
    )


def check_spec(raw: object, loader: str = LIBRARY_VERSION) -> dict:
    """Check a parsed spec document as the reference loader of version `loader` does; return
    it normalised (canonical key case, Go scalar coercion, nulls dropped). Raises SpecError."""
    if raw is None:
        raise SpecError("no Spec data")
    if loader not in TARGET_VERSIONS:
        raise ValueError(f"no CDI library of version {loader}")
    spec = _convert_object(raw, _SPEC if loader == LIBRARY_VERSION else _fields_for(loader), "")
    check_version(spec, loader)
    vendor, cls = split_kind(spec.get("kind", ""))
    check_vendor(vendor, as_read=True)
    check_class(cls, as_read=True)
    check_edits(spec.get("containerEdits", {}), "containerEdits")
    seen: set[str] = set()
    for i, device in enumerate(spec.get("devices", [])):
        at = f"devices[{i}]"
        name = device.get("name", "")
        try:
            check_device_name(name)
        except SpecError as e:
            raise SpecError(f"{at}.name: {e}") from None
        edits = device.get("containerEdits", {})
        if _edits_empty(edits):
            raise SpecError(f"{at}: invalid device {quoted(name)}, empty device edits")
        check_edits(edits, f"{at}.containerEdits")
        if name in seen:
            raise SpecError(f"{at}: invalid spec, multiple device {quoted(name)}")
        seen.add(name)
    if not seen:
        raise SpecError("invalid spec, no devices")
    return spec
