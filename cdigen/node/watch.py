"""Keeping the spec true: kernel uevents and a slow periodic rescan trigger a scan; the spec
file is replaced (atomically) only when its bytes change; the device table learns every scan.

Kernel uevents come from a NETLINK_KOBJECT_UEVENT socket (group 1, the kernel's own messages,
not udev's). Any user may listen; in a container the socket gets the uevents of devices
without a network namespace (PCI, InfiniBand, DRM, modules) whatever its namespace, and those
of network interfaces only in the namespace they live in (the agent needs the host's network
namespace to see a netdev renamed). Events of virtual devices (veths, bridges) are ignored: a
container start makes them and they are never a GPU or a NIC. A burst (VFs created, a driver
reloaded) is one rescan, QUIET_S after its last event and at most MAX_DELAY_S after its first.
"""

import ctypes
import errno
import os
import select
import socket
import threading
import time

from cdigen.errors import CdigenError, InvalidInput
from cdigen.node.inventory import DeviceTable, Scan, scan
from cdigen.node.log import Log

NETLINK_KOBJECT_UEVENT = 15
KERNEL_GROUP = 1
QUIET_S, MAX_DELAY_S = 0.1, 0.5
RELEVANT = ("pci", "net", "infiniband", "infiniband_verbs", "infiniband_mad", "drm", "module", "nvidia-caps")
MAX_SPEC_BYTES = 16 << 20


def uevent_socket(log: Log):
    """The kernel's uevent socket, or None (said once): then only the periodic rescan runs."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT)
        try:  # a burst must not overrun the queue; root may go past rmem_max
            sock.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)  # SO_RCVBUFFORCE
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((0, KERNEL_GROUP))
    except OSError as e:
        log.say(f"warning: no kernel uevents ({e.strerror}); rescanning periodically only")
        return None
    return sock


def parse_uevent(data: bytes) -> dict[str, str] | None:
    """A kernel uevent, `ACTION@DEVPATH\\0KEY=VALUE\\0...`, as its keys; None: not one."""
    header, _, rest = data.partition(b"\0")
    if b"@" not in header:
        return None  # udev's messages (group 2) start with "libudev"
    fields = {}
    for item in rest.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            fields[key.decode(errors="replace")] = value.decode(errors="replace")
    return fields


def relevant(event: dict[str, str]) -> bool:
    return event.get("SUBSYSTEM") in RELEVANT and not event.get("DEVPATH", "").startswith("/devices/virtual/")


def drain(sock) -> bool:
    """Read every queued message; whether one asks for a rescan (a lost one, ENOBUFS, does)."""
    wanted = False
    while True:
        try:
            data = sock.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return wanted
        except OSError as e:
            if e.errno == errno.ENOBUFS:
                wanted = True
                continue
            raise
        if not data:
            return wanted
        event = parse_uevent(data)
        wanted = wanted or (event is not None and relevant(event))


class Inotify:
    """inotify(7) through libc: the kubelet directory and the config file's directory are
    watched, not polled."""

    CREATE, DELETE, DELETE_SELF, MOVE_SELF, MOVED_TO, MOVED_FROM, CLOSE_WRITE = (
        0x100, 0x200, 0x400, 0x800, 0x80, 0x40, 0x8,
    )  # fmt: skip
    CHANGES = CREATE | DELETE | DELETE_SELF | MOVE_SELF | MOVED_TO | MOVED_FROM | CLOSE_WRITE

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))

    def watch(self, path: str, mask: int = CHANGES) -> bool:
        return self.libc.inotify_add_watch(self.fd, os.fsencode(path), mask) >= 0

    def fileno(self) -> int:
        return self.fd

    def read(self) -> list[tuple[int, str]]:
        """(mask, name) of each queued event."""
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        events, at = [], 0
        while at + 16 <= len(data):
            _wd, mask, _cookie, size = (
                int.from_bytes(data[at : at + 4], "little"),
                *(int.from_bytes(data[at + i : at + i + 4], "little") for i in (4, 8, 12)),
            )
            events.append((mask, data[at + 16 : at + 16 + size].rstrip(b"\0").decode(errors="replace")))
            at += 16 + size
        return events

    def wait(self, timeout: float | None, stop: "Stop") -> list[tuple[int, str]]:
        """The events, after waiting at most `timeout` (None: no limit) or until `stop`."""
        if self.fd in select.select([self.fd, stop], [], [], timeout)[0]:
            return self.read()
        return []

    def close(self) -> None:
        os.close(self.fd)


class Stop:
    """A threading.Event that select() can wait on too (a pipe, readable once set): the
    loops sleep until something happens, and SIGTERM ends them at once."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.read_end, self.write_end = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)

    def set(self) -> None:  # called from a signal handler too
        self.event.set()
        os.write(self.write_end, b"x")

    def is_set(self) -> bool:
        return self.event.is_set()

    def fileno(self) -> int:
        return self.read_end

    def wait(self, timeout: float | None) -> bool:
        select.select([self.read_end], [], [], timeout)
        return self.is_set()


class Keeper:
    """One scan at a time: the spec file rewritten when its bytes change, removed when there
    is no GPU; the table updated; each change and each trouble said once."""

    def __init__(self, settings, netdevs: dict, hook_path: str, table: DeviceTable, log: Log) -> None:
        self.settings, self.netdevs, self.hook_path, self.table, self.log = settings, netdevs, hook_path, table, log
        self.warned: set[tuple[str, str]] = set()

    def refresh(self) -> Scan:
        result = scan(self.settings, self.netdevs, self.hook_path)
        for w in result.warnings:
            if (w.path, w.reason) not in self.warned:
                self.warned.add((w.path, w.reason))
                self.log.say(f"warning: {w.path}: {w.reason}")
        self._keep(result)  # first: kubelet may allocate a device as soon as it hears of it
        changes = self.table.update(result)
        if changes:
            self.log.say("devices: " + ", ".join(f"{name} {health}" for name, health in changes))
        return result

    def refresh_logged(self) -> None:
        """refresh, its error said once (the next rescan tries again)."""
        try:
            self.refresh()
        except CdigenError as e:
            self.log.set("scan", f"error: {e}; retried at each rescan")
            return
        self.log.clear("scan", "the scan works again")

    def _keep(self, result: Scan) -> None:
        path = self.settings.spec
        try:
            if result.spec is None:
                self.log.set("gpu", f"{result.no_gpu}: no spec")
                if os.path.lexists(path):
                    os.unlink(path)
                    self.log.say(f"removed {path}")
                return
            self.log.clear("gpu")
            if self._current(path) == result.spec:
                self.log.clear("write", f"{path} is writable again; it was up to date")
                return
            from cdigen.files import atomic_write

            umask = os.umask(0o022)  # the engines' own spec directories are 0755
            try:
                os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            finally:
                os.umask(umask)
            atomic_write(path, result.spec, 0o644)
        except (OSError, CdigenError) as e:
            reason = e.strerror if isinstance(e, OSError) else str(e).removeprefix(f"cannot write {path}: ")
            self.log.set("write", f"error: cannot write {path}: {reason}; retried at each rescan")
            return
        self.log.clear("write")
        self.log.say(f"wrote {path}")

    @staticmethod
    def _current(path: str) -> bytes | None:
        from cdigen.files import UnreadableFile, read_regular

        try:
            return read_regular(path, MAX_SPEC_BYTES)
        except (UnreadableFile, InvalidInput):
            return None


def run(keeper: Keeper, events, stop: Stop) -> None:
    """Rescan on relevant uevents from `events` (a socket, or None) and every rescan_seconds,
    until `stop`."""
    period = keeper.settings.rescan_seconds
    due = time.monotonic() + period
    first = pending = None
    while not stop.is_set():
        timeout = max(0.0, min(due, pending or due) - time.monotonic())
        if events is None:
            stop.wait(timeout)
        elif events in select.select([events, stop], [], [], timeout)[0] and drain(events):
            now = time.monotonic()
            first = first or now
            pending = min(now + QUIET_S, first + MAX_DELAY_S)
        now = time.monotonic()
        if not stop.is_set() and ((pending is not None and now >= pending) or now >= due):
            keeper.refresh_logged()
            first = pending = None
            due = time.monotonic() + period
