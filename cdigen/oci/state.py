"""The OCI container state that a runtime writes to a hook's stdin (runtime-spec runtime.md
§State):

    {"ociVersion": "1.0.2", "id": "c1", "status": "creating", "pid": 4242,
     "bundle": "/abs/path", "annotations": {"k": "v"}}

cdigen reads only what it uses: `bundle` (required, absolute) and `pid` (the container's init
as the runtime sees it; may be absent). Every other key is left alone, whatever its value: a
runtime with a newer state (a new `status` name, say) must not fail every container start.
Pure parsing; errors are one line (exit 3).
"""

from collections import namedtuple

from cdigen import strictjson
from cdigen.errors import InvalidInput


class StateError(InvalidInput):
    pass


# A named tuple, not a dataclass: `dataclasses` (with inspect) costs more import time than
# `cdigen hook ldcache` spends on its work (docs/benchmarks.md).
HookState = namedtuple("HookState", ["bundle", "pid"], defaults=[None])


def _fail(message: str):
    raise StateError(f"OCI state on stdin: {message}"[:300])


def parse_state(data: bytes | str) -> HookState:
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            _fail(f"not UTF-8 (byte {e.start})")
    if not data.strip():
        _fail("empty (a runtime writes the container state there)")
    try:
        doc = strictjson.loads(data)
    except ValueError as e:
        _fail(f"invalid JSON: {e}")
    if not isinstance(doc, dict):
        _fail(f"expected a JSON object, got {type(doc).__name__}")
    if "bundle" not in doc:
        _fail("missing 'bundle'")
    bundle = doc["bundle"]
    if not isinstance(bundle, str) or not bundle:
        _fail(f"'bundle' must be a non-empty string, got {bundle!r}")
    if not bundle.startswith("/"):
        _fail(f"'bundle' must be an absolute path, got {bundle!r}")
    if "\0" in bundle:
        _fail("'bundle' contains a NUL byte")
    pid = doc.get("pid")
    if pid is not None:
        if isinstance(pid, bool) or not isinstance(pid, int) or pid < 0:
            _fail(f"'pid' must be a non-negative integer, got {pid!r}")
        pid = pid or None  # the Go runtime omits 0 ("no process"); treat an explicit 0 alike
    return HookState(bundle=bundle, pid=pid)
