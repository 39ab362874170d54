"""Every netlink side effect of cdigen: a minimal rtnetlink client on the standard library.

Only what the hook needs: read one link (RTM_GETLINK by name or index, or dump all),
change one link (RTM_NEWLINK: move to a netns + rename, MTU, up/down, interface alias) and add
an address (RTM_NEWADDR). Every request carries NLM_F_ACK; a kernel error becomes `NetlinkError` with
the errno and the kernel's extended-ack text when it sends one ("mtu greater than device
maximum").

Not pyroute2 or `ip`: the hook runs at every container creation; pyroute2's import alone is
over its time budget, and `ip` costs a process per step and errors as text to parse
(docs/benchmarks.md, "hook").

A netlink socket stays bound to the netns it was created in, so a socket for another netns is
created after `setns` into it, and the thread returns to its own netns right away (Python 3.11
has no os.setns; ctypes calls libc's). Every message built here is exercised against the real
kernel in tests/test_hook_netns.py.
"""

# The builtin `_socket`, not `socket`: the same socket type underneath, but importing `socket`
# turns its constants into enums and imports selectors (docs/benchmarks.md).
import _socket as socket
import contextlib
import os
import struct
from collections import namedtuple

from cdigen.errors import CdigenError, InvalidInput

# linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h, linux/if.h
NETLINK_ROUTE = 0
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_REPLACE, NLM_F_CREATE = 0x100, 0x400
NLM_F_DUMP = 0x300
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200  # flags of an NLMSG_ERROR reply
NLMSGERR_ATTR_MSG = 1
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 270, 10, 11
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR = 16, 18, 20, 22
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_IFALIAS = 1, 3, 4, 10, 18, 20
IFLA_NET_NS_FD, IFLA_EXT_MASK, IFLA_MIN_MTU, IFLA_MAX_MTU, IFLA_PERM_ADDRESS = 28, 29, 50, 51, 54
IFLA_PROP_LIST, IFLA_ALT_IFNAME = 52, 53
IFALIASZ = 256  # include/linux/if.h: an alias is at most 255 bytes (the policy's limit)
IFLA_INFO_KIND = 1
RTEXT_FILTER_SKIP_STATS = 1 << 3
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
IFA_F_PERMANENT = 0x80
RT_SCOPE_UNIVERSE = 0
IFF_UP, IFF_LOOPBACK = 0x1, 0x8
CLONE_NEWNET = 0x40000000

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTATTR = struct.Struct("=HH")  # len, type


class NetlinkError(CdigenError):
    """The kernel refused a request. `errno` is the positive errno."""

    def __init__(self, what: str, errno: int, detail: str | None = None):
        reason = detail or os.strerror(errno)
        super().__init__(f"{what}: {reason}")
        self.errno = errno


class Link(
    namedtuple(
        "Link",
        (
            "index",  # the ifindex (this field hides tuple.index)
            "name",
            "mtu",
            "min_mtu",  # None: the kernel did not report it (no lower bound known)
            "max_mtu",  # None or 0: no upper bound reported
            "flags",
            "kind",  # IFLA_INFO_KIND: "veth", "macvlan", "tun"; None for physical NICs
            "mac",  # bytes
            "alias",  # IFLA_IFALIAS; "" when none (survives netns moves, docs/netdev.md)
            "perm_mac",  # IFLA_PERM_ADDRESS: the burnt-in MAC; b"" for virtual devices
            "master",  # IFLA_MASTER: ifindex of the bridge (bond, ...) it is a port of; 0 for none
            "alt_names",  # IFLA_PROP_LIST/IFLA_ALT_IFNAME (they move with the device)
        ),
        defaults=("", b"", 0, ()),
    )
):
    __slots__ = ()

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)

    @property
    def loopback(self) -> bool:
        return bool(self.flags & IFF_LOOPBACK)


# ---------------------------------------------------------------------------- encoding


def _attr(kind: int, payload: bytes) -> bytes:
    length = _RTATTR.size + len(payload)
    return _RTATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack("=I", value))


def _str(kind: int, value: str) -> bytes:
    return _attr(kind, value.encode("utf-8", "surrogateescape") + b"\0")


def _iter_attrs(data: bytes, offset: int = 0, end: int | None = None):
    """(type, payload) of every rtattr TLV in order, repeated types included (IFLA_PROP_LIST);
    the nested/byte-order flag bits are masked off. Stops at a truncated attribute."""
    end = len(data) if end is None else end
    while offset + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size or offset + length > end:
            return
        yield kind & 0x3FFF, data[offset + _RTATTR.size : offset + length]
        offset += (length + 3) & ~3


def parse_attrs(data: bytes, offset: int = 0, end: int | None = None) -> dict[int, bytes]:
    """rtattr TLVs -> {type: payload} (the last of a repeated type)."""
    return dict(_iter_attrs(data, offset, end))


def link_request(
    index: int = 0,
    name: str | None = None,
    netns_fd: int | None = None,
    mtu: int | None = None,
    up: bool | None = None,
    alias: str | None = None,
    master: int | None = None,
) -> bytes:
    """Body of an RTM_NEWLINK/RTM_GETLINK: ifinfomsg + attributes. An `alias` is sent without
    its NUL (as `ip link set ... alias` does), so that all 255 bytes are usable; "" is sent as
    a lone NUL (the string policy refuses an empty attribute), which leaves no alias to read."""
    flags = change = 0
    if up is not None:
        change = IFF_UP
        flags = IFF_UP if up else 0
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, flags, change)
    if netns_fd is not None:
        body += _u32(IFLA_NET_NS_FD, netns_fd)
    if name is not None:
        body += _str(IFLA_IFNAME, name)
    if mtu is not None:
        body += _u32(IFLA_MTU, mtu)
    if alias is not None:
        body += _attr(IFLA_IFALIAS, alias.encode("utf-8", "surrogateescape") or b"\0")
    if master is not None:  # 0 releases it from its master
        body += _u32(IFLA_MASTER, master)
    return body


def addr_request(index: int, address: str, prefixlen: int) -> bytes:
    """Body of an RTM_NEWADDR for a global-scope address (IFA_LOCAL = IFA_ADDRESS, as `ip` sends)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    packed = socket.inet_pton(family, address)
    return _IFADDRMSG.pack(family, prefixlen, 0, 0, index) + _attr(IFA_LOCAL, packed) + _attr(IFA_ADDRESS, packed)


def parse_link(body: bytes) -> Link:
    _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(body, 0)
    attrs = parse_attrs(body, _IFINFOMSG.size)

    def u32(kind: int) -> int | None:
        value = attrs.get(kind)
        return struct.unpack("=I", value[:4])[0] if value and len(value) >= 4 else None

    alt_names: tuple[str, ...] = ()
    if IFLA_PROP_LIST in attrs:
        alt_names = tuple(
            value.rstrip(b"\0").decode("utf-8", "surrogateescape")
            for kind, value in _iter_attrs(attrs[IFLA_PROP_LIST])
            if kind == IFLA_ALT_IFNAME
        )
    kind = None
    if IFLA_LINKINFO in attrs:
        raw_kind = parse_attrs(attrs[IFLA_LINKINFO]).get(IFLA_INFO_KIND)
        if raw_kind is not None:
            kind = raw_kind.rstrip(b"\0").decode("utf-8", "replace")
    return Link(
        index=index,
        name=attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode("utf-8", "surrogateescape"),
        mtu=u32(IFLA_MTU) or 0,
        min_mtu=u32(IFLA_MIN_MTU),
        max_mtu=u32(IFLA_MAX_MTU),
        flags=flags,
        kind=kind,
        mac=attrs.get(IFLA_ADDRESS, b""),
        alias=attrs.get(IFLA_IFALIAS, b"").rstrip(b"\0").decode("utf-8", "surrogateescape"),
        perm_mac=attrs.get(IFLA_PERM_ADDRESS, b""),
        master=u32(IFLA_MASTER) or 0,
        alt_names=alt_names,
    )


def parse_addr(body: bytes) -> tuple[int, str, int, int, int]:
    """(ifindex, address, prefixlen, scope, flags) of an RTM_NEWADDR reply (IFA_LOCAL, else
    IFA_ADDRESS; the 32-bit IFA_FLAGS when present)."""
    family, prefixlen, flags, scope, index = _IFADDRMSG.unpack_from(body, 0)
    attrs = parse_attrs(body, _IFADDRMSG.size)
    raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS) or b""
    if IFA_FLAGS in attrs and len(attrs[IFA_FLAGS]) >= 4:
        flags = struct.unpack("=I", attrs[IFA_FLAGS][:4])[0]
    try:
        address = socket.inet_ntop(family, raw)
    except (ValueError, OSError):
        address = ""
    return index, address, prefixlen, scope, flags


def _ext_ack_message(msg: bytes, msg_flags: int) -> str | None:
    """The kernel's extended-ack text in an NLMSG_ERROR payload (after errno + echoed request)."""
    if not msg_flags & NLM_F_ACK_TLVS or len(msg) < 4 + _NLMSGHDR.size:
        return None
    echoed_len = _NLMSGHDR.unpack_from(msg, 4)[0]
    offset = 4 + (_NLMSGHDR.size if msg_flags & NLM_F_CAPPED else (echoed_len + 3) & ~3)
    text = parse_attrs(msg, offset).get(NLMSGERR_ATTR_MSG)
    return text.rstrip(b"\0").decode("utf-8", "replace") if text else None


# ---------------------------------------------------------------------------- netns helpers


def _setns(fd: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def own_netns_path() -> str:
    return "/proc/thread-self/ns/net"


def _namespace_file(path: str, st: os.stat_result) -> None:
    """InvalidInput unless `st` is that of a namespace file. All of them (/proc/PID/ns/*, bind
    mounts such as /var/run/netns/NAME) live on nsfs, one filesystem: the device of our own."""
    if st.st_dev != os.stat(own_netns_path()).st_dev:  # a regular file, a FIFO, a device...
        raise InvalidInput(f"cannot open network namespace {path}: not a namespace file")


def netns_id(path: str) -> tuple[int, int]:
    """(st_dev, st_ino) of a namespace file: equal ids = the same namespace."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise CdigenError(f"cannot open network namespace {path}: {e.strerror}") from None
    _namespace_file(path, st)
    return st.st_dev, st.st_ino


def open_netns(path: str) -> int:
    """An O_RDONLY fd of a namespace file (for IFLA_NET_NS_FD and setns); the caller closes it.
    Checked before the open (opening a FIFO or device has effects) and after it (replaced)."""
    netns_id(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # never blocks on a FIFO
    except OSError as e:
        raise CdigenError(f"cannot open network namespace {path}: {e.strerror}") from None
    try:
        _namespace_file(path, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


# ---------------------------------------------------------------------------- the client


class RtnetlinkClient:
    """One NETLINK_ROUTE socket, bound to one network namespace."""

    def __init__(self, netns_path: str | None = None):
        """A socket in `netns_path` (a /proc/PID/ns/net or /var/run/netns/NAME file), or in
        this thread's own netns when None."""
        if netns_path is None:
            self._sock = self._new_socket()
        else:
            target = open_netns(netns_path)
            home = open_netns(own_netns_path())
            try:
                try:
                    _setns(target)
                except OSError as e:
                    raise CdigenError(f"cannot enter network namespace {netns_path}: {e.strerror}") from None
                try:
                    self._sock = self._new_socket()
                finally:
                    _setns(home)  # never stay in the container's netns
            finally:
                os.close(target)
                os.close(home)
        self._seq = 0

    @staticmethod
    def _new_socket() -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        sock.bind((0, 0))
        for opt in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):  # short error replies, with kernel text
            with contextlib.suppress(OSError):  # old kernel: plain errno only
                sock.setsockopt(SOL_NETLINK, opt, 1)
        return sock

    def close(self) -> None:
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, what: str, msg_type: int, body: bytes, flags: int = 0) -> list[bytes]:
        """Send one request with NLM_F_ACK; return the bodies of the replies before the ACK
        (or NLMSG_DONE for a dump). Raise NetlinkError naming `what` on a kernel error."""
        try:
            return self._exchange(what, msg_type, body, flags)
        except OSError as e:  # the socket itself failed (ENOBUFS, EPERM): still one line
            raise CdigenError(f"{what}: netlink: {e.strerror or e}") from None

    def _exchange(self, what: str, msg_type: int, body: bytes, flags: int) -> list[bytes]:
        self._seq += 1
        seq = self._seq
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), msg_type, NLM_F_REQUEST | NLM_F_ACK | flags, seq, 0)
        self._sock.send(header + body)
        replies: list[bytes] = []
        while True:
            data = self._sock.recv(1 << 16)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, rtype, rflags, rseq, _pid = _NLMSGHDR.unpack_from(data, offset)
                if length < _NLMSGHDR.size:
                    raise CdigenError(f"{what}: malformed netlink reply")
                payload = data[offset + _NLMSGHDR.size : offset + length]
                offset += (length + 3) & ~3
                if rseq != seq:
                    continue  # a stale reply to an earlier request
                if rtype == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", payload, 0)[0]
                    if err == 0:
                        return replies
                    raise NetlinkError(what, err, _ext_ack_message(payload, rflags))
                if rtype == NLMSG_DONE:
                    return replies
                replies.append(payload)

    # -- links

    def get_link(self, name: str | None = None, index: int = 0) -> Link | None:
        """The link with this name or index, or None when there is none."""
        body = link_request(index=index, name=name) + _u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
        try:
            replies = self.request(f"look up interface {name or index}", RTM_GETLINK, body)
        except NetlinkError as e:
            if e.errno == 19:  # ENODEV
                return None
            raise
        return parse_link(replies[0]) if replies else None

    def links(self) -> list[Link]:
        body = link_request() + _u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
        return [parse_link(r) for r in self.request("list interfaces", RTM_GETLINK, body, NLM_F_DUMP)]

    def set_link(
        self,
        what: str,
        index: int,
        *,
        name: str | None = None,
        netns_fd: int | None = None,
        mtu: int | None = None,
        up: bool | None = None,
        alias: str | None = None,
        master: int | None = None,
    ) -> None:
        """One RTM_NEWLINK on an existing link: move to `netns_fd` and/or rename, MTU, up/down,
        interface alias ("" removes it), master (the bridge's ifindex).

        Kernel order for a combined request (docs/netdev.md, "Lifecycle"): netns move, MTU, rename,
        alias, flags; a failure part-way leaves the earlier changes committed."""
        self.request(what, RTM_NEWLINK, link_request(index, name, netns_fd, mtu, up, alias, master))

    # -- addresses

    def add_address(self, what: str, index: int, address: str, prefixlen: int) -> None:
        """Add (or refresh, NLM_F_REPLACE: already present is fine) an address."""
        self.request(what, RTM_NEWADDR, addr_request(index, address, prefixlen), NLM_F_CREATE | NLM_F_REPLACE)

    def host_addresses(self) -> dict[int, list[tuple[str, int]]]:
        """ifindex -> [(address, prefixlen)] of every global, permanent address (IPv4, then
        IPv6; in the kernel's order): the settings a move into another netns flushes. One
        RTM_GETADDR dump; link-local and autoconfigured (temporary) addresses are left out,
        the kernel makes them again."""
        out: dict[int, list[tuple[str, int]]] = {}
        body = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        for reply in self.request("list addresses", RTM_GETADDR, body, NLM_F_DUMP):
            index, address, prefixlen, scope, flags = parse_addr(reply)
            if address and scope == RT_SCOPE_UNIVERSE and flags & IFA_F_PERMANENT:
                out.setdefault(index, []).append((address, prefixlen))
        return out
