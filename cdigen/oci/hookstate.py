"""The OCI container state that a runtime writes to a hook's stdin (runtime-spec runtime.md
§State, schema/state-schema.json):

    {"ociVersion": "1.0.2", "id": "c1", "status": "creating", "pid": 4242,
     "bundle": "/abs/path", "annotations": {"k": "v"}}

`ociVersion`, `id`, `status` and `bundle` are required; `pid` is the container's init as the
runtime sees it (runc: a host pid) and may be absent; unknown keys are ignored, as the spec
lets runtimes add them. Pure parsing; errors are one line (exit 3).
"""

import json
from dataclasses import dataclass, field

from cdigen.errors import InvalidInput

# runtime.md §State; runc also reports "paused".
STATUSES = ("creating", "created", "running", "stopped", "paused")


class StateError(InvalidInput):
    pass


@dataclass(frozen=True)
class HookState:
    oci_version: str
    id: str
    status: str
    bundle: str
    pid: int | None = None
    annotations: dict[str, str] = field(default_factory=dict)


def _fail(message: str):
    raise StateError(f"OCI state on stdin: {message}")


def _required_str(doc: dict, key: str) -> str:
    if key not in doc:
        _fail(f"missing {key!r}")
    value = doc[key]
    if not isinstance(value, str) or not value:
        _fail(f"{key!r} must be a non-empty string, got {value!r}"[:200])
    return value


def parse_state(data: bytes | str) -> HookState:
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            _fail(f"not UTF-8 (byte {e.start})")
    if not data.strip():
        _fail("empty (a runtime writes the container state there)")
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as e:
        _fail(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}")
    except RecursionError:
        _fail("invalid JSON: nested too deeply")
    if not isinstance(doc, dict):
        _fail(f"expected a JSON object, got {type(doc).__name__}")
    oci_version = _required_str(doc, "ociVersion")
    container_id = _required_str(doc, "id")
    status = _required_str(doc, "status")
    if status not in STATUSES:
        _fail(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}"[:200])
    bundle = _required_str(doc, "bundle")
    if not bundle.startswith("/"):
        _fail(f"'bundle' must be an absolute path, got {bundle!r}"[:200])
    if "\0" in bundle:
        _fail("'bundle' contains a NUL byte")
    pid = doc.get("pid")
    if pid is not None:
        if isinstance(pid, bool) or not isinstance(pid, int) or pid < 0:
            _fail(f"'pid' must be a non-negative integer, got {pid!r}"[:200])
        pid = pid or None  # the Go runtime omits 0 ("no process"); treat an explicit 0 alike
    annotations = doc.get("annotations")
    if annotations is None:
        annotations = {}
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        _fail("'annotations' must be an object of strings")
    return HookState(oci_version=oci_version, id=container_id, status=status, bundle=bundle,
                     pid=pid, annotations=annotations)
