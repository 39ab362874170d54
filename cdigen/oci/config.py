"""config.json of an OCI bundle: finding, reading, checking the parts cdigen edits, writing.

Read: one-line errors for anything that is not a JSON object with a `linux` object. Written
as `json.dumps` with the indentation the file already used (runc writes tabs), non-ASCII kept
as UTF-8, and a final newline. Knows nothing of CDI.
"""

import json
import os

from cdigen import strictjson
from cdigen.errors import BadArgument, InvalidInput
from cdigen.files import UnreadableFile, read_regular
from cdigen.values import quoted

CONFIG_NAME = "config.json"
MAX_CONFIG_BYTES = 16 << 20
PATH_LIMIT = 200  # characters of a bundle path in a message: a real one whole, a huge one cut
MAX_CONFIG_DEPTH = 100  # runtime-spec configs nest about 8 levels; deeper ones exhaust the recursion of the patch


def config_path(bundle: str) -> str:
    """BUNDLE/config.json; BadArgument("bundle") when the bundle or its config.json does not exist."""
    if not os.path.isdir(bundle):
        raise BadArgument(
            "bundle",
            f"{quoted(bundle, PATH_LIMIT)} is not a directory"
            if os.path.exists(bundle)
            else f"directory {quoted(bundle, PATH_LIMIT)} does not exist",
        )
    path = os.path.join(bundle, CONFIG_NAME)
    if not os.path.exists(path):
        raise BadArgument("bundle", f"{path}: no such file (is {quoted(bundle, PATH_LIMIT)} an OCI bundle?)")
    return path


def read_config(path: str) -> tuple[bytes, dict]:
    """The raw bytes and the parsed document; InvalidInput unless it is a JSON object with
    a `linux` object."""
    try:
        raw = read_regular(path, MAX_CONFIG_BYTES)
    except UnreadableFile as e:
        raise InvalidInput(f"{path}: {e}") from None
    try:
        doc = strictjson.loads(raw)
    except UnicodeDecodeError as e:
        raise InvalidInput(f"{path}: invalid JSON: not UTF-8 (byte {e.start})") from None
    except ValueError as e:
        raise InvalidInput(f"{path}: invalid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{path}: expected a JSON object, got {type(doc).__name__}")
    if strictjson.deeper_than(doc, MAX_CONFIG_DEPTH):
        raise InvalidInput(f"{path}: invalid JSON: nested more than {MAX_CONFIG_DEPTH} levels deep")
    if not isinstance(doc.get("linux"), dict):
        raise InvalidInput(
            f"{path}: no 'linux' object (cdigen edits linux.devices and linux.netDevices)"
            if "linux" not in doc
            else f"{path}: 'linux' must be an object"
        )
    return raw, doc


def net_devices(config: dict) -> dict:
    """linux.netDevices of a read config ({} when absent); InvalidInput unless an object."""
    devices = config["linux"].get("netDevices")
    if devices is None:
        return {}
    if not isinstance(devices, dict):
        raise InvalidInput("config.json: linux.netDevices: expected an object")
    return devices


def process_env(config: dict) -> dict[str, str]:
    """process.env of a read config as {name: value}; a name's first entry counts, as for
    getenv(). Entries that are no NAME=VALUE string are skipped ({} without a list)."""
    process = config.get("process")
    env = process.get("env") if isinstance(process, dict) else None
    out: dict[str, str] = {}
    for entry in env if isinstance(env, list) else ():
        if isinstance(entry, str) and "=" in entry:
            name, _, value = entry.partition("=")
            out.setdefault(name, value)
    return out


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
