"""What cdigen remembers about a host interface it puts into a container, so that the device
can be brought home (docs/netdev.md, "Lifecycle").

**The alias record** (IFLA_IFALIAS, on the device itself): it travels with the device into
the container and back, because the kernel keeps a device's alias across netns moves, also
when a dying namespace returns a physical NIC to the host under another name:

    cdigen host=ibp20s0 mtu=4092 up=1
    cdigen host=ibp20s0 mtu=4092 up=0 alias=uplink to leaf 3

`host`: the host name; `mtu`: the host MTU; `up`: 1 when the link was up on the host;
`alias=`: the alias the device had before (to the end of the text; absent when it had none).
The whole text is at most 255 bytes (IFALIASZ - 1): an earlier alias too long to fit is
refused before anything moves. Nothing else starting with "cdigen host=" is a record.

**The record file** (`$CDIGEN_STATE_DIR/netdevs/<host>.json`, default /run/cdigen): the
alias cannot be read while the device is still inside a namespace. The file says whether the
device will come back when the namespace dies (a physical NIC, ipoib, can, dsa: the kernel
returns them) or die with it (veth, macvlan, tun ...), so that the poststop hook waits only
for devices that come back. It also keeps the permanent MAC, a second identity for a device
whose alias a container changed. /run is a tmpfs: the files go at reboot, as the devices'
states do. Writing it is best effort: without it the alias record still restores the device,
but the poststop hook does not wait for it.
"""

import contextlib
import os
from collections import namedtuple

from cdigen.errors import CdigenError

PREFIX = "cdigen host="
ALIAS_MAX = 255  # IFALIASZ - 1: the kernel's limit for IFLA_IFALIAS
STATE_DIR_ENV = "CDIGEN_STATE_DIR"
DEFAULT_STATE_DIR = "/run/cdigen"
# Link kinds whose rtnl_link_ops set netns_refund: the kernel returns them to the host like a
# physical NIC (no kind) instead of destroying them with the namespace.
RETURNING_KINDS = ("ipoib", "can", "dsa")


class Record(namedtuple("Record", "host mtu up previous_alias", defaults=("",))):
    """`previous_alias`: the alias before cdigen's record; "" when there was none."""

    __slots__ = ()

    def to_alias(self) -> str:
        text = f"{PREFIX}{self.host} mtu={self.mtu} up={int(self.up)}"
        return f"{text} alias={self.previous_alias}" if self.previous_alias else text


def parse_alias(alias: str) -> Record | None:
    """The record in an interface alias, or None when the alias is not one of cdigen's."""
    from cdigen import netdev

    if not alias.startswith(PREFIX):
        return None
    fields = alias.split(" ", 4)
    if len(fields) < 4 or fields[0] != "cdigen":
        return None
    host, mtu, up = fields[1][5:], fields[2], fields[3]
    previous = fields[4] if len(fields) == 5 else None
    if not (mtu.startswith("mtu=") and mtu[4:].isdigit() and up in ("up=0", "up=1")):
        return None
    if previous is not None and not (previous.startswith("alias=") and len(previous) > 6):
        return None
    try:
        netdev.check_ifname(host)
    except netdev.NetdevError:
        return None
    mtu_value = int(mtu[4:])
    if not 0 < mtu_value <= 0xFFFFFFFF:
        return None
    return Record(host, mtu_value, up == "up=1", previous[6:] if previous else "")


def record_for(host: str, link, up: bool | None = None) -> Record:
    """The record of `link` (an rtnetlink.Link on the host, or just moved by a runtime) under
    `host`, keeping its alias; `up`: the host up state when not the link's own (unknown for a
    device a runtime moved: False). CdigenError when the alias is another host's record or too
    long to fit beside the record: raised before anything moves."""
    existing = parse_alias(link.alias)
    if existing is not None and existing.host != host:
        raise CdigenError(
            f"{host}: its interface alias is cdigen's record for {existing.host} (a device that came "
            f"back from a container and was renamed?): run `cdigen netdev restore {existing.host}`, "
            f"or clear the alias"
        )
    previous = existing.previous_alias if existing is not None else link.alias
    record = Record(host, link.mtu, link.up if up is None else up, previous)
    size = len(record.to_alias().encode("utf-8", "surrogateescape"))
    if size > ALIAS_MAX:
        room = ALIAS_MAX - (size - len(previous.encode("utf-8", "surrogateescape")))
        raise CdigenError(
            f"{host}: its interface alias is {len(previous.encode('utf-8', 'surrogateescape'))} bytes; "
            f"cdigen keeps it beside its own record in the alias, which leaves room for {room} "
            f"(the kernel allows {ALIAS_MAX}): shorten or clear it"
        )
    return record


def comes_back(kind: str | None) -> bool:
    """Does the kernel return a device of this link kind to the host when its netns dies?"""
    return kind is None or kind in RETURNING_KINDS


# ---------------------------------------------------------------------------- record files


def state_dir() -> str:
    return os.path.join(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR, "netdevs")


def _path(host: str) -> str:
    from cdigen import netdev

    netdev.check_ifname(host)  # no "/", not "." or "..": the file stays in the directory
    return os.path.join(state_dir(), f"{host}.json")


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def write_file(record: Record, link, addresses: list = (), master: str | None = None) -> None:
    """Best effort (see the module docstring): an unwritable state directory is not an error.
    `addresses`: the host's global permanent (address, prefixlen) of the device, which the
    kernel flushes at the move; `master`: the name of the bridge it was a port of."""
    import json

    from cdigen.files import atomic_write

    doc = {
        "host": record.host,
        "alias": record.to_alias(),
        "kind": link.kind,
        "returns": comes_back(link.kind),
        "perm_mac": _mac(link.perm_mac),
        "addresses": [f"{address}/{prefixlen}" for address, prefixlen in addresses],
        "master": master,
    }
    with contextlib.suppress(OSError, CdigenError):
        path = _path(record.host)
        os.makedirs(state_dir(), mode=0o755, exist_ok=True)
        atomic_write(path, (json.dumps(doc, sort_keys=True) + "\n").encode(), mode=0o644)


# record: a Record; returns: the kernel returns the device when the namespace dies; perm_mac: bytes;
# addresses: ((address, prefixlen), ...), the host addresses in the kernel's order; master: the
# bridge it was a port of on the host, or None.
FileRecord = namedtuple("FileRecord", "record returns perm_mac addresses master", defaults=((), None))


def read_file(host: str) -> FileRecord | None:
    """The record file of `host`, or None when there is none or it is unusable."""
    import json

    from cdigen.files import read_regular

    try:
        doc = json.loads(read_regular(_path(host), 1 << 16))
        record = parse_alias(doc["alias"])
        perm_mac = bytes.fromhex(doc.get("perm_mac", "").replace(":", ""))
        returns = doc["returns"]
        addresses = tuple(_address(text) for text in doc.get("addresses") or ())
        master = doc.get("master")
    except (CdigenError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if record is None or record.host != host or not isinstance(returns, bool):
        return None
    if master is not None and not _is_ifname(master):
        return None
    return FileRecord(record, returns, perm_mac, addresses, master)


def _address(text) -> tuple[str, int]:
    """("192.0.2.1", 24) for "192.0.2.1/24", canonical; ValueError for anything else."""
    import ipaddress

    if not isinstance(text, str):
        raise ValueError(text)
    iface = ipaddress.ip_interface(text)
    return str(iface.ip), iface.network.prefixlen


def _is_ifname(name) -> bool:
    from cdigen import netdev

    try:
        netdev.check_ifname(name)
    except (netdev.NetdevError, TypeError, AttributeError):
        return False
    return True


# ---------------------------------------------------------------------------- per-interface locks
# Two hooks (or a hook and a poststop hook or `netdev restore`) for the same host interface at
# once would move, rename and restore the same device from two sides: each takes an exclusive
# flock on STATE_DIR/netdevs/<host>.lock first, waiting at most LOCK_WAIT_S. The files are
# root's, mode 0600: another user cannot open them, so cannot hold the lock. Best effort like
# the record file: when the state directory cannot be written, no lock is taken.

LOCK_WAIT_S = 10.0
_LOCK_POLL_S = 0.01


class Locks:
    """Exclusive locks on the given host interfaces, taken in sorted order (no deadlock
    between two processes wanting overlapping sets); released on close (or by the kernel
    when the process dies, SIGKILL included)."""

    def __init__(self, hosts, wait_s: float = LOCK_WAIT_S):
        import fcntl
        import time

        self._held: list[tuple[int, str]] = []
        deadline = time.monotonic() + wait_s
        try:
            for host in sorted(set(hosts)):
                try:
                    path = _path(host)[: -len(".json")] + ".lock"
                    os.makedirs(state_dir(), mode=0o755, exist_ok=True)
                except (OSError, CdigenError):
                    continue  # no state directory: no lock (best effort)
                while True:
                    try:
                        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
                    except OSError:
                        break  # best effort, as above
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        os.close(fd)
                        if time.monotonic() >= deadline:
                            raise CdigenError(
                                f"{host}: another cdigen process has held its lock {path} for "
                                f"{wait_s:g} s (a hook for the same interface in another container?)"
                            ) from None
                        time.sleep(_LOCK_POLL_S)
                        continue
                    # The holder before us removes the file as it lets go (so that none are left
                    # behind): ours counts only if it is still the file at `path`.
                    try:
                        same = os.stat(path).st_ino == os.fstat(fd).st_ino
                    except OSError:
                        same = False
                    if same:
                        self._held.append((fd, path))
                        break
                    os.close(fd)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for fd, path in self._held:
            with contextlib.suppress(OSError):
                os.unlink(path)  # before unlocking: a waiter then sees a new file, and retries
            os.close(fd)  # releases the flock
        self._held = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def remove_file(host: str) -> None:
    with contextlib.suppress(OSError, CdigenError):
        os.unlink(_path(host))
