"""Bring home the devices cdigen put into containers: their host name, host MTU, up state and
earlier alias, from the record in their alias (cdigen/hook/record.py; docs/netdev.md,
"Lifecycle").

Three callers: the poststop hook (`poststop`), the createRuntime hook when it finds a device
that an earlier container left behind (`settle`), and `cdigen netdev restore` (`restore_all`).
"""

import os
import time

from cdigen.errors import CdigenError
from cdigen.hook import record as records
from cdigen.hook.record import Record

# How long the poststop hook waits for a device that the kernel returns asynchronously after
# the namespace's last process is gone (cleanup_net runs in a workqueue). Only devices whose
# record file says they come back are waited for.
RETURN_WAIT_S = 3.0
_POLL_S = 0.02


def describe(record: Record, link, origin: str | None = None) -> str:
    """What restoring `link` changes, e.g. "ibp20s0 (was net0, MTU 9000 -> 4092)"; `origin`:
    where it was before it came to this netns ("net1 in /run/netns/ns1")."""
    changes = []
    if origin:
        changes.append(f"was {origin}")
    elif link.name != record.host:
        changes.append(f"was {link.name}")
    if link.mtu != record.mtu:
        changes.append(f"MTU {link.mtu} -> {record.mtu}")
    return f"{record.host} ({', '.join(changes)})" if changes else record.host


def settle(client, link, record: Record, stored=None, origin: str | None = None) -> str:
    """Give `link`, a device in `client`'s netns carrying `record`, its host name, MTU,
    master, addresses, up state and earlier alias; return what changed (`describe`). The
    master and addresses come from the record file `stored` (read here when None): the alias
    has no room for them. The alias goes last, so that a failure part-way leaves the record
    for a later try. `origin`: for `describe`. CdigenError when the host name is taken by
    another device, the bridge is gone, or the kernel refuses a step."""
    if stored is None:
        stored = records.read_file(record.host)
    if stored is not None and stored.record.host != record.host:
        stored = None
    done = describe(record, link, origin)
    host = record.host
    if link.name != host:
        holder = client.get_link(name=host)
        if holder is not None and holder.index != link.index:
            raise CdigenError(
                f"{host}: cannot take its name back from {link.name}: another interface (index "
                f"{holder.index}) is called {host}"
            )
        if link.up:  # renaming an up device fails (EBUSY) unless its driver allows it
            client.set_link(f"{host}: set {link.name} down to rename it", link.index, up=False)
        client.set_link(f"{host}: rename {link.name} back to {host}", link.index, name=host)
    if link.mtu != record.mtu:
        client.set_link(f"{host}: restore MTU {record.mtu}", link.index, mtu=record.mtu)
    if stored is not None:
        restore_host_settings(client, host, link.index, stored.addresses, master_name=stored.master)
    if record.up:
        client.set_link(f"{host}: bring it up", link.index, up=True)
    client.set_link(f"{host}: restore its alias", link.index, alias=record.previous_alias)
    records.remove_file(host)
    return done


def restore_host_settings(client, host: str, index: int, addresses, master: int = 0, master_name=None) -> None:
    """Put `index` back into its bridge (by ifindex `master`, else by name) and give it its
    host addresses (a move flushes both). IPv6 addresses are added newest first, because the
    kernel puts each new one before the others of its scope: the order comes out as it was."""
    if master_name and not master:
        bridge = client.get_link(name=master_name)
        if bridge is None:
            raise CdigenError(f"{host}: cannot put it back into {master_name}: no such interface on the host")
        master = bridge.index
    if master:
        client.set_link(f"{host}: put it back into its bridge ({master_name or master})", index, master=master)
    ipv4 = [a for a in addresses if ":" not in a[0]]
    ipv6 = [a for a in addresses if ":" in a[0]]
    for address, prefixlen in ipv4 + ipv6[::-1]:
        client.add_address(f"{host}: restore address {address}/{prefixlen}", index, address, prefixlen)


def marked(links: list) -> list[tuple]:
    """(link, record) for every link carrying a cdigen record."""
    out = []
    for link in links:
        record = records.parse_alias(link.alias)
        if record is not None:
            out.append((link, record))
    return out


def find_marked(links: list, host: str, stored=None) -> tuple | None:
    """(link, record) of the device that is `host`'s: by its alias record, else (when the
    record file `stored` gives one) by its permanent MAC, for a device whose alias a container
    changed."""
    for link, record in marked(links):
        if record.host == host:
            return link, record
    if stored is not None and stored.perm_mac:
        for link in links:
            if link.perm_mac == stored.perm_mac:
                return link, stored.record
    return None


# ---------------------------------------------------------------------------- poststop


def _alive_netns(path: str | None):
    """An RtnetlinkClient and fd for the container's namespace when it outlives the container
    (a path in config.json that is still a namespace other than ours), else None."""
    from cdigen.hook import rtnetlink

    if not path:
        return None
    try:
        if rtnetlink.netns_id(path) == rtnetlink.netns_id(rtnetlink.own_netns_path()):
            return None
        return rtnetlink.RtnetlinkClient(path)
    except CdigenError:
        return None  # gone with the container: the kernel returns what comes back


def _bring_back(target, host_fd: int, hosts: list) -> dict[str, str]:
    """Move every listed device still in a living container netns back to the host under its
    host name (the hook or the runtime put it there; nothing else will take it out). Returns
    host -> failure text."""
    failures = {}
    links = target.links()
    for cfg in hosts:
        found = find_marked(links, cfg.host, records.read_file(cfg.host))
        if found is None:
            continue
        link = found[0]
        try:
            target.set_link(
                f"{cfg.host}: move {link.name} back to the host", link.index, netns_fd=host_fd, name=cfg.host
            )
        except CdigenError as e:
            failures[cfg.host] = str(e)
    return failures


def poststop(hosts: list, netns_path: str | None, wait_s: float = RETURN_WAIT_S) -> list[str]:
    """The poststop hook's work for the listed interfaces (NetdevSettings; only `host` is
    used). Returns what it restored; CdigenError naming every interface it could not bring home
    (after trying all of them)."""
    from cdigen.hook import rtnetlink

    if not hosts:
        return []
    restored: list[str] = []
    failures: dict[str, str] = {}
    with rtnetlink.RtnetlinkClient() as host:
        target = _alive_netns(netns_path)
        if target is not None:
            try:
                host_fd = rtnetlink.open_netns(rtnetlink.own_netns_path())
                try:
                    failures.update(_bring_back(target, host_fd, hosts))
                finally:
                    os.close(host_fd)
            finally:
                target.close()
        waiting = {}
        links = host.links()
        for cfg in hosts:
            stored = records.read_file(cfg.host)
            found = find_marked(links, cfg.host, stored)
            if found is not None:
                _settle_into(host, found, restored, failures, stored)
            elif stored is not None and stored.returns and not any(link.name == cfg.host for link in links):
                waiting[cfg.host] = stored
            else:
                records.remove_file(cfg.host)  # home already, or it died with the namespace
        deadline = time.monotonic() + wait_s
        while waiting and time.monotonic() < deadline:
            time.sleep(_POLL_S)
            links = host.links()
            for name, stored in list(waiting.items()):
                found = find_marked(links, name, stored)
                if found is not None:
                    del waiting[name]
                    _settle_into(host, found, restored, failures, stored)
        for name in waiting:
            failures[name] = (
                f"{name}: not back on the host {wait_s:g} s after the container ended (still in a "
                f"namespace?); `cdigen netdev restore` brings it home once it is back"
            )
    if failures:
        raise CdigenError("; ".join(failures.values()))
    return restored


def _settle_into(host, found: tuple, restored: list, failures: dict, stored=None) -> None:
    link, record = found
    failures.pop(record.host, None)  # a failed move out of a living netns that still got it here
    try:
        restored.append(settle(host, link, record, stored))
    except CdigenError as e:
        failures[record.host] = str(e)


# ---------------------------------------------------------------------------- cdigen netdev restore


def restore_all(only: list[str] = ()) -> tuple[list[str], list[str]]:
    """Every device in this netns that carries a cdigen record (or only those of the host
    names in `only`) back to its host name, MTU, up state and alias, and first into this
    netns those left in another one that no process is in (`left_away`). Returns (what was
    restored or already home, failures); tries every device before returning."""
    from cdigen.hook import rtnetlink

    done, failures = [], []
    away = left_away(only)
    try:
        with rtnetlink.RtnetlinkClient() as client:
            hosts = only or sorted(
                {record.host for _link, record in marked(client.links())}
                | {record.host for *_, found in away for _link, record in found}
            )
            with records.Locks(hosts):  # not while a hook for one of them is half-way
                origins = _bring_home(away, hosts, failures)
                _restore_locked(client, only, done, failures, origins)
    finally:
        for _path, _pid, other, _found in away:
            other.close()
    return done, failures


def _wanted(links: list, only) -> list[tuple]:
    found = marked(links)
    return [(link, record) for link, record in found if record.host in only] if only else found


def _restore_locked(client, only, done: list, failures: list, origins: dict) -> None:
    """restore_all's work on this netns, with the interfaces' locks held. `origins`: host ->
    where `_bring_home` found it ("net1 in /run/netns/ns1"; None: left there)."""
    links = client.links()
    found = _wanted(links, only)
    for link, record in found:
        try:
            done.append(f"restored {settle(client, link, record, origin=origins.get(record.host))}")
        except CdigenError as e:
            failures.append(str(e))
    hosts_found = {record.host for _link, record in found} | origins.keys()
    names = {link.name for link in links}
    for host in only:
        if host in hosts_found:
            continue
        if host in names:
            done.append(f"{host}: already home")
        else:
            failures.append(f"{host}: not on the host, and no interface carries cdigen's record for it")


# ---------------------------------------------------------------------------- other namespaces
# A `cdigen hook` createRuntime entry without its poststop twin leaves the device inside the
# container's netns; when something other than a process holds that netns (`ip netns add`, a
# CNI plugin's or an engine's bind mount), it outlives the container, and the device with it.


def left_away(only=()) -> list[tuple]:
    """(path, pid, client, [(link, record)]) of every other network namespace holding a device
    that carries a cdigen record (of `only`'s hosts, when given); `client`: an RtnetlinkClient
    there (the caller closes it). Without `only`, only namespaces that no process is in: a
    device in a running container's namespace is in use. With `only`, all of them, so that a
    named device still in use is reported where it is (`pid`: a process in that namespace)."""
    from cdigen.hook import rtnetlink

    out = []
    for path, pid in other_namespaces():
        if pid is not None and not only:
            continue
        try:
            client = rtnetlink.RtnetlinkClient(path)
        except CdigenError:
            continue  # gone meanwhile
        try:
            found = _wanted(client.links(), only)
        except CdigenError:
            found = []
        if found:
            out.append((path, pid, client, found))
        else:
            client.close()
    return out


def _bring_home(away: list, hosts, failures: list) -> dict:
    """Move the devices of `hosts` (whose locks are held) that `left_away` found, looked up
    again now, into this netns under their host names. Returns host -> where each was (None:
    still in use there)."""
    from cdigen.hook import rtnetlink
    from cdigen.values import one_line

    origins: dict = {}
    if not away:
        return origins
    home = rtnetlink.open_netns(rtnetlink.own_netns_path())
    try:
        for path, pid, client, _found in away:
            for link, record in _wanted(client.links(), hosts):
                where = f"{link.name} in {one_line(path, 200)}"
                if pid is not None:
                    origins[record.host] = None
                    failures.append(f"{record.host}: in use as {where}, where process {pid} runs: left there")
                    continue
                try:
                    client.set_link(
                        f"{record.host}: move {where} back to the host", link.index, netns_fd=home, name=record.host
                    )
                    origins[record.host] = where
                except CdigenError as e:
                    origins[record.host] = None
                    failures.append(str(e))
    finally:
        os.close(home)
    return origins


def other_namespaces() -> list[tuple[str, int | None]]:
    """(path, pid) of every network namespace other than this one that can be found, each once
    (by inode): the namespace files mounted in this mount namespace (/proc/self/mountinfo:
    `ip netns add`'s /run/netns/NAME and any other bind mount), then those of processes
    (/proc/PID/ns/net). `pid`: a process in it; None when only a mount holds it."""
    from cdigen.hook import rtnetlink

    own = os.stat(rtnetlink.own_netns_path())
    in_use: dict[tuple, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                st = os.stat(f"/proc/{name}/ns/net")
            except OSError:
                continue  # gone, or a kernel thread's
            in_use.setdefault((st.st_dev, st.st_ino), int(name))
    found: dict[tuple, tuple[str, int | None]] = {}
    for path in _netns_mounts():
        try:
            key = rtnetlink.netns_id(path)
        except CdigenError:
            continue  # unmounted meanwhile
        found.setdefault(key, (path, in_use.get(key)))
    for key, pid in in_use.items():
        found.setdefault(key, (f"/proc/{pid}/ns/net", pid))
    found.pop((own.st_dev, own.st_ino), None)
    return list(found.values())


def _netns_mounts() -> list[str]:
    """Mount points of network namespace files: mountinfo lines of nsfs whose root is `net:[…]`."""
    from cdigen.files import UnreadableFile, read_head

    try:
        text = read_head("/proc/self/mountinfo", 1 << 24).decode("utf-8", "surrogateescape")
    except UnreadableFile:
        return []
    out = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) > 4 and fields[3].startswith("net:[") and " - nsfs " in line:
            out.append(_unescape(fields[4]))
    return out


def _unescape(text: str) -> str:
    """A mountinfo path: the kernel writes space, tab, newline and backslash as \\ooo."""
    head, *rest = text.split("\\")
    return head + "".join(chr(int(part[:3], 8)) + part[3:] for part in rest)
