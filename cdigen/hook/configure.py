"""The hook's side effects: put netdevs into the container's network namespace, or none.

`configure` locates every interface first (in the runtime's netns: this hook moves it, as
runc < 1.4 does not; else already in the container under its container name: runc >= 1.4
moved it), checks names and MTU bounds, then moves+renames, sets the MTU, adds the address and
brings it up. Before it changes a device it records the device's host name and settings in
the device's alias (hook/record.py), which comes home with it. On any failure every interface
of this run that is in the container's netns goes back to the runtime's netns under its host
name and MTU (a veth or macvlan left there dies with the container), and the error names the
interface and the reason. docs/netdev.md, "Lifecycle".
"""

import os

from cdigen import netdev
from cdigen.errors import CdigenError, InvalidInput
from cdigen.hook import record as records
from cdigen.hook.plan import listed_names, target_netns
from cdigen.hook.restore import restore_host_settings
from cdigen.netdev import NetdevSettings

_STALL_ENV = "CDIGEN_TEST_STALL_AFTER_MOVE"  # seconds; tests only (a hook killed mid-way)


class _Placed:
    """An interface that is, or may now be, in the container's netns: what rollback needs."""

    __slots__ = ("cfg", "index", "mac", "restore_mtu", "restore_up", "addresses", "master", "master_name")

    def __init__(
        self,
        cfg: NetdevSettings,
        index: int,
        mac: bytes,
        restore_mtu: int | None,
        restore_up: bool,
        addresses: tuple = (),
        master: int = 0,
        master_name: str | None = None,
    ):
        self.cfg = cfg
        self.index = index  # its ifindex where last seen (the kernel keeps it across a move when free)
        self.mac = mac  # identity check: never move back a device that is not this one
        self.restore_mtu = restore_mtu  # its host MTU (recorded), else the MTU before this hook changed it
        self.restore_up = restore_up  # bring it up again on the host (it was up there before the move)
        self.addresses = addresses  # its host addresses ((address, prefixlen), ...): the move flushes them
        self.master = master  # ifindex of the bridge it was a port of on the host (the move releases it)
        self.master_name = master_name  # that bridge's name (from the record file: no ifindex known)

    def __repr__(self) -> str:
        return "_Placed(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


def _own_record(link, host: str):
    """The record in `link`'s alias when it is `host`'s, else None."""
    record = records.parse_alias(link.alias)
    return record if record is not None and record.host == host else None


def _placed_in_target(cfg: NetdevSettings, link, addresses=()) -> _Placed:
    """A listed interface found in the container: its host settings from the record in its
    alias (an earlier hook entry wrote it) and the record file, else the MTU and `addresses`
    found (runc >= 1.4 copies the host's permanent global addresses) and down (a runtime moved
    it)."""
    record = _own_record(link, cfg.host)
    if record is not None:
        stored = records.read_file(cfg.host)
        if stored is not None and stored.record == record:
            addresses, master = stored.addresses, stored.master
        else:
            addresses, master = (), None
        return _Placed(cfg, link.index, link.mac, record.mtu, record.up, addresses, master_name=master)
    return _Placed(cfg, link.index, link.mac, restore_mtu=link.mtu, restore_up=False, addresses=tuple(addresses))


def proven(cfg: NetdevSettings, link, runtime_moved=frozenset()) -> bool:
    """May the interface `link`, found in the container under cfg's container name, be taken
    for the host interface cfg.host (moved by the runtime or an earlier hook entry), rather
    than the container's own (a CNI plugin's, say)? Only with proof: cdigen's record for
    cfg.host in its alias, cfg.host among its alternative names (they move with a device),
    or a runtime known to have moved it (`runtime_moved`: see hook.runtime_moved)."""
    if link is None or link.loopback:
        return False
    return _own_record(link, cfg.host) is not None or cfg.host in link.alt_names or cfg.host in runtime_moved


def _usable_mac(mac: bytes) -> bool:
    """A MAC that can tell devices apart: not empty, not all zero (a bridge without ports, lo)."""
    return any(mac)


def _is(link, placed: _Placed) -> bool:
    """Is `link` the placed interface? By its MAC when usable, else by name (the caller found
    it by ifindex or name), and never loopback."""
    if link is None or link.loopback:
        return False
    if _usable_mac(placed.mac):
        return link.mac == placed.mac
    return link.mac == placed.mac and link.name in (placed.cfg.container_name, placed.cfg.host)


def _find_in_target(target, placed: _Placed):
    """The placed interface in the container's netns, or None when it is not there."""
    link = target.get_link(index=placed.index)
    if _is(link, placed):
        return link
    for name in (placed.cfg.container_name, placed.cfg.host):
        if "%" not in name:
            link = target.get_link(name=name)
            if _is(link, placed):
                return link
    # The move picked another ifindex (taken in the target) and a %d name: search by the
    # record in its alias, else by MAC, only when usable and unique there.
    links = target.links()
    for link in links:
        if not link.loopback and _own_record(link, placed.cfg.host) is not None:
            return link
    if not _usable_mac(placed.mac):
        return None
    same = [link for link in links if link.mac == placed.mac and not link.loopback]
    return same[0] if len(same) == 1 else None


def _mtu_problem(cfg: NetdevSettings, link) -> str | None:
    low = link.min_mtu or 0
    high = link.max_mtu or netdev.MTU_MAX
    if cfg.mtu is not None and not low <= cfg.mtu <= high:
        side = "above the device maximum" if cfg.mtu > high else "below the device minimum"
        return f"{cfg.host}: MTU {cfg.mtu} is {side} (min MTU {low}, max MTU {high})"
    return None


def _locate(
    host, target, wanted: list[NetdevSettings], placed: list[_Placed], notes: list[str], runtime_moved=frozenset()
) -> list[tuple]:
    """(cfg, link, in_target, record, addresses, master name) for every interface, checked;
    only then does anything move. `record`: what to write into the device's alias first, None
    when it carries its record already (an earlier hook entry of this container wrote it).
    `addresses`, master: its host settings, which the move loses (for the record file).

    An interface in the container under the container name is taken for the host interface
    only with proof (`proven`); else it is the container's own, and an error names both.

    A device that an earlier container left on the host under another name (or with its
    container MTU) is restored first, and `notes` says so. Interfaces the runtime already moved
    go into `placed` before any check can fail, so that a failure returns them to the host too."""
    from cdigen.hook.restore import find_marked, settle

    found, problems = [], []
    host_links = target_addresses = None
    for cfg in wanted:
        link = host.get_link(name=cfg.host)
        if link is None:
            name = cfg.container_name
            moved = target.get_link(name=name) if "%" not in name else None
            if proven(cfg, moved, runtime_moved):
                if target_addresses is None:
                    target_addresses = target.host_addresses()
                placed.append(_placed_in_target(cfg, moved, target_addresses.get(moved.index, ())))
                found.append((cfg, moved, True))
                continue
            host_links = host.links() if host_links is None else host_links
            link = (find_marked(host_links, cfg.host) or (None,))[0]
            if link is None and moved is not None and not moved.loopback:
                problems.append(
                    f"host interface {cfg.host} not found in the runtime's network namespace, and the "
                    f"container's {name} is not proven to be it (no cdigen record for {cfg.host} in its "
                    f"alias, no alternative name {cfg.host}, no runtime known to move it): the "
                    f"container's own interface is left alone"
                )
                continue
            if link is None:
                problems.append(
                    f"host interface {cfg.host} not found (not in the runtime's network namespace, "
                    f"nor as {name} in the container's)"
                )
                continue
        stale = _own_record(link, cfg.host)
        if stale is not None:
            try:
                notes.append(f"restored {settle(host, link, stale, _stored_for(stale))}")
            except CdigenError as e:
                problems.append(str(e))
                continue
            link = host.get_link(index=link.index)
        found.append((cfg, link, False))
    out = []
    host_addresses = host.host_addresses() if any(not in_target for _c, _l, in_target in found) else {}
    for cfg, link, in_target in found:
        name = cfg.container_name
        if not in_target and "%" not in name and target.get_link(name=name) is not None:
            problems.append(f"{cfg.host}: container name {name} is already taken in the container's network namespace")
        problems.append(_mtu_problem(cfg, link))
        record, addresses, master = None, (), None
        try:
            if not in_target:
                record = records.record_for(cfg.host, link)
                addresses = host_addresses.get(link.index, ())
                if link.master:
                    bridge = host.get_link(index=link.master)
                    master = bridge.name if bridge is not None else None
            elif _own_record(link, cfg.host) is None:
                record = records.record_for(cfg.host, link, up=False)  # host up state unknown
                addresses = next(p.addresses for p in placed if p.cfg.host == cfg.host)
        except CdigenError as e:
            problems.append(str(e))
        out.append((cfg, link, in_target, record, addresses, master))
    problems = [p for p in problems if p]
    if problems:
        raise CdigenError(problems[0])
    return out


def _stored_for(record):
    """The record file that goes with the alias `record`, or None when it does not match."""
    stored = records.read_file(record.host)
    return stored if stored is not None and stored.record == record else None


def _configure_one(
    host,
    target,
    target_fd: int,
    found: tuple,
    placed: list[_Placed],
) -> None:
    cfg, link, in_target, host_record, addresses, master = found
    if not in_target:
        # Placed before anything changes: rollback restores the alias, and a failed combined
        # request may have moved the device.
        record = _Placed(cfg, link.index, link.mac, link.mtu, link.up, tuple(addresses), link.master, master)
        placed.append(record)
    if host_record is not None:  # record before changing anything: it comes home with the device
        (target if in_target else host).set_link(
            f"{cfg.host}: record its host settings in its alias", link.index, alias=host_record.to_alias()
        )
        records.write_file(host_record, link, addresses, master)
    if not in_target:
        host.set_link(
            f"{cfg.host}: move into the container's network namespace as {cfg.container_name}",
            link.index,
            netns_fd=target_fd,
            name=cfg.container_name,
        )
        link = _find_in_target(target, record)
        if link is None:
            raise CdigenError(f"{cfg.host}: moved, but not found in the container's network namespace")
        record.index = link.index
        stall = os.environ.get(_STALL_ENV)
        if stall:  # tests only: a runtime's hook timeout (SIGKILL) right after the move
            import time

            time.sleep(float(stall))
    if cfg.mtu is not None:
        target.set_link(f"{cfg.host}: set MTU {cfg.mtu} on {link.name}", link.index, mtu=cfg.mtu)
    if cfg.address is not None:
        target.add_address(
            f"{cfg.host}: add address {cfg.address}/{cfg.prefixlen} to {link.name}",
            link.index,
            cfg.address,
            cfg.prefixlen,
        )
    target.set_link(f"{cfg.host}: bring {link.name} up", link.index, up=True)


def _rollback(host, target, host_fd: int, placed: list[_Placed]) -> tuple[list[str], list[str]]:
    """Move every placed interface found in the container back under its host name, MTU, up
    state and earlier alias. Returns (host names moved back, failure texts)."""
    moved_back, failures = [], []
    for record in reversed(placed):
        cfg = record.cfg
        try:
            link = _find_in_target(target, record)
            if link is None:  # never left the runtime's netns: only its alias may have changed
                back = host.get_link(name=cfg.host)
                if back is not None and back.index == record.index and back.mac == record.mac:
                    _drop_record(host, back, cfg.host)
                continue
            target.set_link(
                f"move {link.name} back to the host as {cfg.host}", link.index, netns_fd=host_fd, name=cfg.host
            )
            moved_back.append(cfg.host)
            back = host.get_link(name=cfg.host)
            if back is None:
                raise CdigenError(f"moved {link.name} back, but {cfg.host} is not on the host")
            if record.restore_mtu and back.mtu != record.restore_mtu:
                host.set_link(f"restore MTU {record.restore_mtu}", back.index, mtu=record.restore_mtu)
            restore_host_settings(host, cfg.host, back.index, record.addresses, record.master, record.master_name)
            if record.restore_up:
                host.set_link("bring it up", back.index, up=True)
            _drop_record(host, back, cfg.host)
        except CdigenError as e:
            failures.append(f"{cfg.host}: {e}")
    return moved_back, failures


def _drop_record(host, link, name: str) -> None:
    """Put back the alias that `link` had before cdigen's record, and drop the record file."""
    record = _own_record(link, name)
    if record is not None:
        host.set_link("restore its alias", link.index, alias=record.previous_alias)
    records.remove_file(name)


class _Namespaces:
    """Netlink sockets and netns fds for the hook's own netns and the container's."""

    def __init__(self, target_path: str):
        from cdigen.hook import rtnetlink

        own = rtnetlink.own_netns_path()
        if rtnetlink.netns_id(target_path) == rtnetlink.netns_id(own):
            raise InvalidInput(
                f"the container's network namespace ({target_path}) is the hook's own: cdigen "
                "hook must run as a createRuntime hook of a container with its own network namespace"
            )
        self._fds: list[int] = []
        self._socks: list = []
        try:
            self.host_fd = self._fd(rtnetlink.open_netns(own))
            self.target_fd = self._fd(rtnetlink.open_netns(target_path))
            self.host = self._sock(rtnetlink.RtnetlinkClient())
            self.target = self._sock(rtnetlink.RtnetlinkClient(target_path))
        except BaseException:
            self.close()
            raise

    def _fd(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def _sock(self, sock):
        self._socks.append(sock)
        return sock

    def rollback(self, placed: list[_Placed], error: BaseException) -> CdigenError:
        """Undo, then the one-line error to raise: the cause, what came back, what did not."""
        moved_back, failures = _rollback(self.host, self.target, self.host_fd, placed)
        message = str(error)
        if moved_back:
            message += f"; moved back to the host: {', '.join(moved_back)}"
        if failures:
            message += f"; rollback failed: {'; '.join(failures)}"
        return CdigenError(message, getattr(error, "exit_code", None))

    def close(self) -> None:
        for sock in self._socks:
            sock.close()
        for fd in self._fds:
            os.close(fd)


def configure(
    wanted: list[NetdevSettings], target_path: str, others: list[NetdevSettings] = (), runtime_moved=frozenset()
) -> list[str]:
    """Put every wanted interface into the netns at `target_path`, or none of them. Returns
    notes for the user (devices an earlier container left behind, restored first).

    `others`: the rest of config.json's linux.netDevices (host and container names). On
    failure they go back to the host too when found in the container: an earlier cdigen hook
    entry (a CDI injector adds one per requested device) or the runtime moved them, and the
    runtime is about to destroy the namespace. `runtime_moved`: host names that the runtime
    is known to have moved (`proven`).

    Each wanted host interface is locked first (record.Locks): a second hook for the same
    interface waits for this one instead of moving it from under it."""
    locks = records.Locks([cfg.host for cfg in wanted])
    try:
        spaces = _Namespaces(target_path)
    except BaseException:
        locks.close()
        raise
    placed: list[_Placed] = []
    notes: list[str] = []
    try:
        for found in _locate(spaces.host, spaces.target, wanted, placed, notes, runtime_moved):
            _configure_one(spaces.host, spaces.target, spaces.target_fd, found, placed)
    except CdigenError as e:
        raise spaces.rollback(_moved_by_others(spaces, others, runtime_moved) + placed, e) from None
    except BaseException:
        spaces.rollback(_moved_by_others(spaces, others, runtime_moved) + placed, Exception())  # a bug or a signal
        raise
    finally:
        spaces.close()
        locks.close()
    return notes


def _moved_by_others(spaces: "_Namespaces", listed: list[NetdevSettings], runtime_moved=frozenset()) -> list[_Placed]:
    """Listed interfaces that something else moved into the container: absent from the host
    under their host name, present in the container under their container name, and proven
    to be the host interface (`proven`): never the container's own."""
    placed = []
    for cfg in listed:
        try:
            if "%" in cfg.container_name or spaces.host.get_link(name=cfg.host) is not None:
                continue
            link = spaces.target.get_link(name=cfg.container_name)
        except CdigenError:
            continue
        if proven(cfg, link, runtime_moved):
            placed.append(_placed_in_target(cfg, link))  # host MTU from its record, when it has one
    return placed


def return_runtime_moved(
    config: dict, args: list[NetdevSettings], pid: int | None, error: CdigenError, runtime_moved=frozenset()
) -> CdigenError:
    """Invalid settings, so nothing is configured, but runc >= 1.4 may have moved the listed
    interfaces already and the container is about to be aborted: send them back (best effort),
    and return the error to raise."""
    try:
        spaces = _Namespaces(target_netns(config, pid))
    except CdigenError:
        return error
    try:
        placed = _moved_by_others(spaces, listed_names(config, args), runtime_moved)
        return spaces.rollback(placed, error) if placed else error
    except CdigenError:
        return error
    finally:
        spaces.close()
