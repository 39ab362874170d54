"""Parsed YAML spec documents, kept between processes, so that a container start whose spec has
not changed does not import ruamel.yaml: that import is about half of the start-up of an
`apply` (or a runtime shim `create`) with a YAML spec (docs/benchmarks.md, "apply").

Content-addressed and exact. The key is the SHA-256 of the YAML text and the node limit it was
parsed under; the value is the document `goyaml.parse` returned, as JSON. Only documents that
JSON carries unchanged are stored: string keys; str, int, bool, None, finite float values;
no container reached twice (a YAML alias), since the loader's checks may edit what they get.
A parse error is never stored: every error is found and worded by goyaml itself, every time.

Root only, because a spec can add root hooks: the cache is `/run/cdigen/yaml-cache`, a
directory that root owns with mode 0700, holding root-owned regular files; anything else there
is ignored (and the cache is not used by other users at all). It lives on /run (tmpfs, emptied
at boot) and keeps the MAX_ENTRIES most recently written documents.
"""

import json
import math
import os
import stat

CACHE_DIR = "/run/cdigen/yaml-cache"
MAX_ENTRIES = 64
MAX_BYTES = 8 << 20
MISS = object()


def _sha256(data: bytes) -> str:
    try:
        from _sha256 import sha256  # the builtin module: no OpenSSL to load (hashlib costs ~1 ms)
    except ImportError:
        from hashlib import sha256
    return sha256(data).hexdigest()


def _path(text: str, max_nodes: int) -> str:
    key = _sha256(f"{max_nodes}\n".encode() + text.encode("utf-8", "surrogatepass"))
    return os.path.join(CACHE_DIR, key + ".json")


def _trusted_dir(create: bool) -> bool:
    if os.geteuid() != 0:
        return False
    try:
        st = os.lstat(CACHE_DIR)
    except FileNotFoundError:
        if not create:
            return False
        try:
            os.makedirs(os.path.dirname(CACHE_DIR), mode=0o755, exist_ok=True)
            os.mkdir(CACHE_DIR, 0o700)
            st = os.lstat(CACHE_DIR)
        except OSError:
            return False
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and not st.st_mode & 0o077


def get(text: str, max_nodes: int):
    """The cached document for this text, or MISS."""
    if not _trusted_dir(create=False):
        return MISS
    try:
        fd = os.open(_path(text, max_nodes), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return MISS
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022 or st.st_size > MAX_BYTES:
            return MISS
        data = os.read(fd, st.st_size + 1)
    except OSError:
        return MISS
    finally:
        os.close(fd)
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return MISS


def plain(doc: object) -> bool:
    """Whether JSON gives `doc` back exactly (module docstring)."""
    seen: set[int] = set()
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if id(node) in seen or not all(isinstance(k, str) for k in node):
                return False
            seen.add(id(node))
            stack.extend(node.values())
        elif isinstance(node, list):
            if id(node) in seen:
                return False
            seen.add(id(node))
            stack.extend(node)
        elif isinstance(node, float):
            if not math.isfinite(node):
                return False
        elif not (node is None or isinstance(node, (str, int))):  # bool is an int
            return False
    return True


def put(text: str, max_nodes: int, doc: object) -> None:
    """Keep `doc` for this text when it is plain and the cache is usable; never fails."""
    if not plain(doc) or not _trusted_dir(create=True):
        return
    from cdigen.errors import CdigenError
    from cdigen.files import atomic_write

    try:
        data = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError, UnicodeEncodeError):
        return
    if len(data) > MAX_BYTES:
        return
    try:
        atomic_write(_path(text, max_nodes), data, mode=0o600)
    except CdigenError:
        return
    _prune()


def _prune() -> None:
    try:
        entries = [e for e in os.scandir(CACHE_DIR) if e.name.endswith(".json")]
        if len(entries) <= MAX_ENTRIES:
            return
        entries.sort(key=lambda e: e.stat(follow_symlinks=False).st_mtime_ns)
        for entry in entries[: len(entries) - MAX_ENTRIES]:
            os.unlink(entry.path)
    except OSError:
        pass
