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
from dataclasses import dataclass

from cdigen import netdev
from cdigen.errors import CdigenError, InvalidInput
from cdigen.hook import record as records
from cdigen.hook.plan import listed_names, target_netns
from cdigen.netdev import NetdevSettings


@dataclass
class _Placed:
    """An interface that is, or may now be, in the container's netns: what rollback needs."""

    cfg: NetdevSettings
    index: int  # its ifindex where last seen (the kernel keeps it across a move when free)
    mac: bytes  # identity check: never move back a device that is not this one
    restore_mtu: int | None  # its host MTU (recorded), else the MTU before this hook changed it
    restore_up: bool  # bring it up again on the host (it was up there before the move)


def _own_record(link, host: str):
    """The record in `link`'s alias when it is `host`'s, else None."""
    record = records.parse_alias(link.alias)
    return record if record is not None and record.host == host else None


def _placed_in_target(cfg: NetdevSettings, link) -> _Placed:
    """A listed interface found in the container: its host settings from the record in its
    alias (an earlier hook entry wrote it), else the MTU found and down (a runtime moved it)."""
    record = _own_record(link, cfg.host)
    if record is not None:
        return _Placed(cfg, link.index, link.mac, restore_mtu=record.mtu, restore_up=record.up)
    return _Placed(cfg, link.index, link.mac, restore_mtu=link.mtu, restore_up=False)


def _is(link, placed: _Placed) -> bool:
    names = (placed.cfg.container_name, placed.cfg.host)
    return link is not None and link.mac == placed.mac and (bool(placed.mac) or link.name in names)


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
    # The move picked another ifindex (taken in the target) and a %d name: search by MAC.
    return next((link for link in target.links() if _is(link, placed)), None)


def _mtu_problem(cfg: NetdevSettings, link) -> str | None:
    low = link.min_mtu or 0
    high = link.max_mtu or netdev.MTU_MAX
    if cfg.mtu is not None and not low <= cfg.mtu <= high:
        side = "above the device maximum" if cfg.mtu > high else "below the device minimum"
        return f"{cfg.host}: MTU {cfg.mtu} is {side} (min MTU {low}, max MTU {high})"
    return None


def _locate(host, target, wanted: list[NetdevSettings], placed: list[_Placed], notes: list[str]) -> list[tuple]:
    """(cfg, link, in_target, record) for every interface, checked; only then does anything
    move. `record`: what to write into the device's alias first, None when it carries its
    record already (an earlier hook entry of this container wrote it).

    A device that an earlier container left on the host under another name (or with its
    container MTU) is restored first, and `notes` says so. Interfaces the runtime already moved
    go into `placed` before any check can fail, so that a failure returns them to the host too."""
    from cdigen.hook.restore import find_marked, settle

    found, problems = [], []
    host_links = None
    for cfg in wanted:
        link = host.get_link(name=cfg.host)
        if link is None:
            name = cfg.container_name
            moved = target.get_link(name=name) if "%" not in name else None
            if moved is not None and not moved.loopback:
                placed.append(_placed_in_target(cfg, moved))
                found.append((cfg, moved, True))
                continue
            host_links = host.links() if host_links is None else host_links
            link = (find_marked(host_links, cfg.host) or (None,))[0]
            if link is None:
                problems.append(
                    f"host interface {cfg.host} not found (not in the runtime's network namespace, "
                    f"nor as {name} in the container's)"
                )
                continue
        stale = _own_record(link, cfg.host)
        if stale is not None:
            try:
                notes.append(f"restored {settle(host, link, stale)}")
            except CdigenError as e:
                problems.append(str(e))
                continue
            link = host.get_link(index=link.index)
        found.append((cfg, link, False))
    out = []
    for cfg, link, in_target in found:
        name = cfg.container_name
        if not in_target and "%" not in name and target.get_link(name=name) is not None:
            problems.append(f"{cfg.host}: container name {name} is already taken in the container's network namespace")
        problems.append(_mtu_problem(cfg, link))
        record = None
        try:
            if not in_target:
                record = records.record_for(cfg.host, link)
            elif _own_record(link, cfg.host) is None:
                record = records.record_for(cfg.host, link, up=False)  # host up state unknown
        except CdigenError as e:
            problems.append(str(e))
        out.append((cfg, link, in_target, record))
    problems = [p for p in problems if p]
    if problems:
        raise CdigenError(problems[0])
    return out


def _configure_one(
    host, target, target_fd: int, cfg: NetdevSettings, link, in_target: bool, host_record, placed: list[_Placed]
) -> None:
    if not in_target:
        # Placed before anything changes: rollback restores the alias, and a failed combined
        # request may have moved the device.
        record = _Placed(cfg, link.index, link.mac, restore_mtu=link.mtu, restore_up=link.up)
        placed.append(record)
    if host_record is not None:  # record before changing anything: it comes home with the device
        (target if in_target else host).set_link(
            f"{cfg.host}: record its host settings in its alias", link.index, alias=host_record.to_alias()
        )
        records.write_file(host_record, link)
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
                if back is not None and back.mac == record.mac:
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


def configure(wanted: list[NetdevSettings], target_path: str, others: list[NetdevSettings] = ()) -> list[str]:
    """Put every wanted interface into the netns at `target_path`, or none of them. Returns
    notes for the user (devices an earlier container left behind, restored first).

    `others`: the rest of config.json's linux.netDevices (host and container names). On
    failure they go back to the host too when found in the container: an earlier cdigen hook
    entry (a CDI injector adds one per requested device) or the runtime moved them, and the
    runtime is about to destroy the namespace."""
    spaces = _Namespaces(target_path)
    placed: list[_Placed] = []
    notes: list[str] = []
    try:
        for cfg, link, in_target, record in _locate(spaces.host, spaces.target, wanted, placed, notes):
            _configure_one(spaces.host, spaces.target, spaces.target_fd, cfg, link, in_target, record, placed)
    except CdigenError as e:
        raise spaces.rollback(_moved_by_others(spaces, others) + placed, e) from None
    except BaseException:
        spaces.rollback(_moved_by_others(spaces, others) + placed, Exception())  # a bug or a signal
        raise
    finally:
        spaces.close()
    return notes


def _moved_by_others(spaces: "_Namespaces", listed: list[NetdevSettings]) -> list[_Placed]:
    """Listed interfaces that something else moved into the container: absent from the host
    under their host name, present in the container under their container name."""
    placed = []
    for cfg in listed:
        try:
            if "%" in cfg.container_name or spaces.host.get_link(name=cfg.host) is not None:
                continue
            link = spaces.target.get_link(name=cfg.container_name)
        except CdigenError:
            continue
        if link is not None and not link.loopback:
            placed.append(_placed_in_target(cfg, link))  # host MTU from its record, when it has one
    return placed


def return_runtime_moved(config: dict, args: list[NetdevSettings], pid: int | None, error: CdigenError) -> CdigenError:
    """Invalid settings, so nothing is configured, but runc >= 1.4 may have moved the listed
    interfaces already and the container is about to be aborted: send them back (best effort),
    and return the error to raise."""
    try:
        spaces = _Namespaces(target_netns(config, pid))
    except CdigenError:
        return error
    try:
        placed = _moved_by_others(spaces, listed_names(config, args))
        return spaces.rollback(placed, error) if placed else error
    except CdigenError:
        return error
    finally:
        spaces.close()
