"""`cdigen hook nccl`: the createContainer hook that tells NCCL and UCX in a container which NICs
it got (docs/nccl.md), for an engine that injected the spec itself and set no variable.

The runtime runs it in the container's mount namespace after the createRuntime hooks moved and
addressed the NICs, before the container's root becomes its `/`. It writes, in front of the
image's lines and between two marker lines, the keys those lines do not set: NCCL and UCX read
their environment first, so the user's variables win, then these files. A block of an earlier
run is replaced (a root directory that several containers share shows the last one's NICs,
never a mix), and running it again for the same container changes nothing.

- /etc/nccl.conf: hookentry.library_variables' NCCL_* and, for RoCE NICs, NCCL_IB_GID_INDEX:
  the index of the RoCE v2 GID of the container's address, which exists only now (sysfs);
- every ucx.conf of UCX_CONFS the image has: UCX_NET_DEVICES (UCX picks the GID itself).

Best effort: a problem is a note (one line on stderr), never a failed container. Paths stay
inside the container's root (hook/ldcache.py RootDir).
"""

import contextlib
import os
import stat

from cdigen import hookentry
from cdigen.files import UnreadableFile, read_head

NCCL_CONF = "/etc/nccl.conf"
# Where UCX (1.12 and later) reads ucx.conf: its build's $sysconfdir/ucx, and since 1.17 also
# <libdir>/../etc/ucx (ucs/config/parser.c). These are the prefixes of distribution packages
# and MLNX_OFED/DOCA, of source builds, and of HPC-X in NVIDIA's NGC images.
UCX_CONFS = (
    "/etc/ucx/ucx.conf",
    "/usr/local/etc/ucx/ucx.conf",
    "/usr/local/ucx/etc/ucx/ucx.conf",
    "/opt/hpcx/ucx/etc/ucx/ucx.conf",
)
MAX_CONF_BYTES = 1 << 20
BEGIN = "# cdigen hook nccl: the NICs of this container (docs/nccl.md); the environment wins\n"
END = "# cdigen hook nccl: end\n"
# The kernel adds a RoCE GID from a workqueue once the address is set: wait that long at most.
GID_WAIT_S = 0.5


def run(state: bytes, topo_file: str | None, sys_root: str = "/", gid_wait: float = GID_WAIT_S) -> list[str]:
    """Write what NCCL and UCX read into the root of the container the OCI `state` describes.
    Returns notes for stderr; CdigenError when config.json or the root cannot be read."""
    from cdigen.hook.ldcache import RootDir, root_of
    from cdigen.oci.config import CONFIG_NAME, read_config
    from cdigen.oci.state import parse_state

    bundle = parse_state(state).bundle
    config = read_config(os.path.join(bundle, CONFIG_NAME))[1]
    nics, ports = hookentry.container_nics(config)
    wanted = hookentry.library_variables(nics, ports, topo_file)
    if not wanted:
        return []  # no cdigen NIC in this container
    nccl = {key: value for key, value in wanted.items() if key.startswith("NCCL_")}
    roce = [port for port, is_roce in ports.items() if is_roce]
    index, notes = roce_gid_index(nics, roce, sys_root, gid_wait)
    if index is not None:
        nccl["NCCL_IB_GID_INDEX"] = str(index)
    root = RootDir(root_of(bundle, config))
    try:
        notes += add_lines(root, NCCL_CONF, nccl, create=True)
        if "UCX_NET_DEVICES" in wanted:
            for path in UCX_CONFS:
                notes += add_lines(root, path, {"UCX_NET_DEVICES": wanted["UCX_NET_DEVICES"]}, create=False)
    finally:
        root.close()
    return notes


# ---------------------------------------------------------------------------- RoCE GID index


def roce_gid_index(nics: list, roce: list[str], sys_root: str = "/", wait: float = GID_WAIT_S) -> tuple:
    """(index, notes): the index of the RoCE v2 GID of its netdev's container address on each
    port of `roce` (sysfs gids, gid_attrs/types and gid_attrs/ndevs), when those found agree:
    NCCL_IB_GID_INDEX is one value for every NIC. None otherwise, or with no port whose netdev
    cdigen addresses. NCCL before 2.21.5 uses GID 0 (RoCE v1, link-local) unless told; later
    releases and UCX choose a RoCE v2 GID per device themselves."""
    addresses = {cfg.container_name: cfg.address for cfg in nics if cfg.address}
    found: dict[str, int] = {}
    notes = []
    for port in roce:
        device, _, number = port.rpartition(":")
        base = os.path.join(sys_root, "sys/class/infiniband", device, "ports", number)
        netdev = _sysfs(f"{base}/gid_attrs/ndevs/0")  # the port's netdev, by its name in the container
        if netdev not in addresses:
            continue
        index = _gid_index(base, _gid(addresses[netdev]), netdev, wait)
        if index is None:
            notes.append(f"{port}: no RoCE v2 GID of {netdev}'s address {addresses[netdev]}")
        else:
            found[port] = index
    if len(set(found.values())) > 1:
        each = ", ".join(f"{port} {index}" for port, index in found.items())
        notes.append(f"the RoCE v2 GIDs of the container's addresses have different indices ({each})")
    if notes:
        notes[-1] += "; NCCL_IB_GID_INDEX not set"
    return (next(iter(found.values())) if len(set(found.values())) == 1 else None), notes


def _gid(address: str) -> int:
    """The GID of an IP address: IPv6 as it is, IPv4 mapped (::ffff:a.b.c.d), as a number."""
    import ipaddress

    ip = ipaddress.ip_address(address.partition("/")[0])
    return int(ip) | (0xFFFF << 32) if ip.version == 4 else int(ip)


def _gid_index(base: str, gid: int, netdev: str, wait: float) -> int | None:
    """The lowest index of `gid` as a RoCE v2 GID of `netdev` on the port at `base`, waiting up
    to `wait` seconds for the kernel to add it."""
    import time

    deadline = time.monotonic() + wait
    while True:
        try:
            indices = sorted(int(i) for i in os.listdir(f"{base}/gids") if i.isdecimal())
        except OSError:
            return None
        for i in indices:
            text = _sysfs(f"{base}/gids/{i}")
            if (
                text is not None
                and _gid_number(text) == gid
                and _sysfs(f"{base}/gid_attrs/types/{i}") == "RoCE v2"
                and _sysfs(f"{base}/gid_attrs/ndevs/{i}") == netdev
            ):
                return i
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.01)


def _gid_number(text: str) -> int | None:
    """`0000:0000:0000:0000:0000:ffff:c000:020a` as a number; None for anything else."""
    digits = text.replace(":", "")
    if len(digits) != 32 or text.count(":") != 7:
        return None
    try:
        return int(digits, 16)
    except ValueError:
        return None


def _sysfs(path: str) -> str | None:
    """A sysfs attribute's text, stripped; None when it cannot be read (an empty GID entry's
    type reads as EINVAL)."""
    try:
        return read_head(path, 128).decode("ascii", "replace").strip()
    except UnreadableFile:
        return None


# ---------------------------------------------------------------------------- the files


def add_lines(root, path: str, wanted: dict[str, str], create: bool) -> list[str]:
    """Put `KEY=VALUE` for each key of `wanted` that the other lines of the file at `path`
    inside `root` (a RootDir) do not set, between BEGIN and END in front of them, replacing an
    earlier such block; make the file when missing only with `create`. It is replaced by a
    rename (its mode and owner kept), so a file the engine bind-mounted there is never written
    (the rename fails: a note). Returns notes."""
    try:
        parent, name, _ = root.resolve(path)
    except OSError as e:
        return [f"{path}: not written ({e.strerror})"] if create else []
    try:
        text, st = _read_at(parent, name)
    except FileNotFoundError:
        if not create:
            return []
        text, st = "", None
    except (OSError, ValueError) as e:
        return [f"{path}: left alone ({e.strerror if isinstance(e, OSError) else e})"]
    lines = text.splitlines(keepends=True)
    if BEGIN in lines and END in lines[lines.index(BEGIN) :]:
        begin = lines.index(BEGIN)
        del lines[begin : lines.index(END, begin) + 1]
    present = {
        line.partition("=")[0].strip() for line in lines if "=" in line and not line.lstrip().startswith(("#", ";"))
    }
    block = "".join(f"{key}={value}\n" for key, value in wanted.items() if key not in present)
    new = (BEGIN + block + END if block else "") + "".join(lines)
    if new == text or (st is None and not block):
        return []
    data = new.encode("utf-8", "surrogateescape")
    temp = f".{name}.cdigen-{os.getpid()}"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent)
        try:
            if st is not None:
                os.fchown(fd, st.st_uid, st.st_gid)
            os.fchmod(fd, 0o644 if st is None else stat.S_IMODE(st.st_mode))
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        # No fsync: the file lives as long as this container's root, which a crash ends too.
        os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=parent)
        return [f"{path}: not written ({e.strerror})"]
    return []


def _read_at(parent: int, name: str) -> tuple[str, os.stat_result]:
    """The text and stat of the regular file `name` in the directory `parent` (not a link);
    ValueError when it is not a regular file or is larger than MAX_CONF_BYTES."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_size > MAX_CONF_BYTES:
            raise ValueError(f"larger than {MAX_CONF_BYTES} bytes")
        chunks = []
        while chunk := os.read(fd, MAX_CONF_BYTES + 1):
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "surrogateescape"), st
    finally:
        os.close(fd)
