"""config.json of an OCI bundle: the only file side effects of `cdigen apply`.

`apply_devices` is the whole of `cdigen apply` as a plain function (no typer), so that a
caller on the container-start path can run it without the CLI's import cost.

Read (one-line errors for anything that is not a JSON object with a `linux` object), lock the
bundle directory, write atomically keeping the file's mode. Output is `json.dumps` with the
indentation the file already used (runc writes tabs), non-ASCII kept as UTF-8, and a final
newline; when nothing changes nothing is written, so a second identical apply leaves the
file byte-identical.
"""

import json
import os
from dataclasses import dataclass, field

from cdigen.errors import CdigenError, InvalidInput, UsageError
from cdigen.files import atomic_write, locked_dir

CONFIG_NAME = "config.json"
MAX_CONFIG_BYTES = 16 << 20


def config_path(bundle: str) -> str:
    """BUNDLE/config.json; UsageError when the bundle or its config.json does not exist."""
    if not os.path.isdir(bundle):
        raise UsageError(f"bundle {bundle!r} is not a directory" if os.path.exists(bundle)
                         else f"bundle directory {bundle!r} does not exist")
    path = os.path.join(bundle, CONFIG_NAME)
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file (is {bundle!r} an OCI bundle?)")
    return path


def read_config(path: str) -> tuple[bytes, dict]:
    """The raw bytes and the parsed document; InvalidInput unless it is a JSON object with
    a `linux` object."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise InvalidInput(f"{path}: cannot read: {e.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise InvalidInput(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        doc = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidInput(f"{path}: invalid JSON: nested too deeply") from None
    except UnicodeDecodeError as e:
        raise InvalidInput(f"{path}: invalid JSON: not UTF-8 (byte {e.start})") from None
    except ValueError as e:
        raise InvalidInput(f"{path}: invalid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{path}: expected a JSON object, got {type(doc).__name__}")
    if not isinstance(doc.get("linux"), dict):
        raise InvalidInput(f"{path}: no 'linux' object (cdigen edits linux.devices and linux.netDevices)"
                           if "linux" not in doc else f"{path}: 'linux' must be an object")
    return raw, doc


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def indent_of(raw: bytes) -> str | int:
    """The indentation unit of an indented JSON file (its first indented line), else 2."""
    for line in raw.split(b"\n")[1:]:
        stripped = line.lstrip(b" \t")
        if stripped and len(stripped) != len(line):
            unit = line[: len(line) - len(stripped)]
            return "\t" if unit.startswith(b"\t") else len(unit)
    return 2


def serialise(doc: dict, like: bytes = b"") -> bytes:
    return (json.dumps(doc, indent=indent_of(like), ensure_ascii=False) + "\n").encode("utf-8")


# ---------------------------------------------------------------------------- apply


@dataclass
class ApplyResult:
    path: str  # config.json
    old: bytes  # its bytes before
    new: bytes  # its bytes after (== old when nothing changes)
    patch: list = field(default_factory=list)  # the RFC 6902 operations
    written: bool = False
    devices: list[str] = field(default_factory=list)  # what was requested, in order


def apply_devices(bundle: str, devices: list[str] = (), netdevs: list[str] = (),
                  spec_dirs: list[str] | None = None, hook: bool = True, hook_path: str | None = None,
                  dry_run: bool = False) -> ApplyResult:
    """Inject CDI devices into BUNDLE/config.json: the whole of `cdigen apply`.

    Devices: the `cdi.k8s.io/*` annotations of config.json, then `devices`; each once.
    `netdevs`: --netdev overrides. Command-line mistakes raise UsageError (2), bad files
    InvalidInput (3), a failed write CdigenError (1); config.json is then untouched.
    Everything from reading config.json to replacing it happens under the bundle lock."""
    from cdigen import netconf
    from cdigen.cdi.spec import is_qualified_name
    from cdigen.hookentry import check_hook_path

    for name in devices:
        if not is_qualified_name(name):
            raise UsageError(f"--device {name!r}: expected vendor/class=name")
    overrides = []
    for arg in netdevs:
        try:
            overrides.append(netconf.parse_arg(arg))
        except InvalidInput as e:
            raise UsageError(f"--netdev {arg!r}: {e}") from None
    if len({o.host for o in overrides}) != len(overrides):
        raise UsageError("--netdev: a host interface is given twice")
    if hook_path is not None:
        check_hook_path(hook_path)
    path = config_path(bundle)
    with locked_dir(bundle):
        from cdigen.cdi import edits

        raw, doc = read_config(path)
        requested = list(dict.fromkeys(edits.requested_devices(doc) + list(devices)))
        result = ApplyResult(path, raw, raw, devices=requested)
        if not requested:
            return result  # nothing asked for: nothing changes, not even the hook
        import jsonpatch

        from cdigen.cdi import load

        registry = load.load_registry(spec_dirs or list(load.DEFAULT_SPEC_DIRS),
                                      {load.kind_of(q) for q in requested})
        plan = edits.plan(load.resolve(registry, requested), overrides)
        if hook and hook_path is None and (plan.netdevs or doc["linux"].get("netDevices")):
            from cdigen.hookentry import default_hook_path

            hook_path = default_hook_path()
        new_doc = edits.apply_plan(doc, plan, hook_path if hook else None)
        patch = jsonpatch.make_patch(doc, new_doc)
        result.patch = list(patch)
        if result.patch:
            patched = patch.apply(doc)
            if patched != new_doc:  # jsonpatch's list diffs are clever; never write a surprise
                raise CdigenError("internal error: the JSON patch does not reproduce the edits; nothing written")
            result.new = serialise(patched, like=raw)
            if not dry_run:
                atomic_write(path, result.new)  # keeps the mode; exit 1 on failure
                result.written = True
    return result
