"""What the `cdigen hook` createRuntime entries tell NCCL and UCX in the container about the
NICs it got (docs/nccl.md), for what the container's environment does not say already: all of
it where an engine injected the spec itself, the RoCE GID index after `apply` or the shim.

Each entry of the container, once its own NICs are in and addressed, writes the keys that
neither the environment (NCCL and UCX read it first: the user's variables win) nor the image's
lines set, in front of those lines between two marker lines. The last entry, which sees every
NIC addressed, adds NCCL_IB_GID_INDEX: the index of the RoCE v2 GID of the container's
address, which exists only now (sysfs). A block of an earlier run is replaced (a root directory
that several containers share shows the last one's NICs, never a mix), and running an entry
again changes nothing.

- /etc/nccl.conf: hookentry.library_variables' NCCL_* and NCCL_IB_GID_INDEX;
- every ucx.conf of UCX_CONFS the image has, else the user's $HOME/ucx.conf (made when HOME
  is there): UCX_NET_DEVICES (UCX picks the GID itself).

The hook runs in the runtime's mount namespace: the files are those of config.json's root.path,
every path kept inside it (hook/ldcache.py RootDir). Best effort: a problem is one warning line,
never a failed container.
"""

import contextlib
import os
import stat

from cdigen import hookentry
from cdigen.files import UnreadableFile, read_head
from cdigen.oci.config import process_env

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
BEGIN = "# cdigen hook: the NICs of this container (docs/nccl.md); the environment wins\n"
END = "# cdigen hook: end\n"
GID_INDEX = "NCCL_IB_GID_INDEX"
# The kernel adds a RoCE GID from a workqueue once the address is set: wait that long at most.
GID_WAIT_S = 0.5


def tell_libraries(
    bundle: str, config: dict, argv: list[str], sys_root: str = "/", gid_wait: float = GID_WAIT_S
) -> list[str]:
    """Write what NCCL and UCX read into the root of the container whose `bundle` and
    config.json are given, as the hook entry with the arguments `argv` (those after `hook`).
    Returns warnings for stderr; never raises."""
    try:
        return _tell(bundle, config, argv, sys_root, gid_wait)
    except Exception as e:  # a container must not fail for its libraries' settings
        return [f"{e}; NCCL and UCX not told"]


def _tell(bundle: str, config: dict, argv: list[str], sys_root: str, gid_wait: float) -> list[str]:
    nics, ports = hookentry.container_nics(config)
    wanted = hookentry.library_variables(nics, ports)
    if not wanted:
        return []  # no cdigen NIC in this container, or a spec from before cdigen told the libraries
    present = process_env(config)
    notes: list[str] = []
    roce = [port for port, is_roce in ports.items() if is_roce]
    if roce and GID_INDEX not in present and hookentry.runtime_entries(config)[-1:] == [argv]:
        index, notes = roce_gid_index(nics, roce, sys_root, gid_wait)
        if index is not None:
            wanted[GID_INDEX] = str(index)
    wanted = {key: value for key, value in wanted.items() if key not in present}
    if not wanted:
        return notes  # `apply` or the shim put it all into the environment
    root_entry = config.get("root")
    if isinstance(root_entry, dict) and root_entry.get("readonly") is True:  # read-only in the container only:
        return [*notes, "the container's root is read-only; NCCL and UCX not told"]  # this side could write it
    from cdigen.hook.ldcache import RootDir, root_of

    root = RootDir(root_of(bundle, config))
    try:
        notes += add_lines(root, NCCL_CONF, {k: v for k, v in wanted.items() if k.startswith("NCCL_")}, create=True)
        if "UCX_NET_DEVICES" in wanted:
            # The image's system files where it has them; else the user's $HOME/ucx.conf, which
            # every UCX that reads a file reads too (1.12 and later), made when HOME exists.
            system = [path for path in UCX_CONFS if _is(root, path, stat.S_ISREG)]
            home = _home(config)
            paths = system or ([f"{home}/ucx.conf"] if home and _is(root, home, stat.S_ISDIR) else [])
            for path in paths:
                notes += add_lines(root, path, {"UCX_NET_DEVICES": wanted["UCX_NET_DEVICES"]}, create=not system)
    finally:
        root.close()
    return notes


def _is(root, path: str, kind) -> bool:
    """Whether `path` inside `root` (a RootDir) is there and of `kind` (stat.S_ISREG...)."""
    try:
        parent, name, _ = root.resolve(path)
        return kind(os.stat(name, dir_fd=parent).st_mode)
    except OSError:
        return False


def _home(config: dict) -> str | None:
    """The container user's home: config.json's HOME, else /root for uid 0 (runc's rule finds
    it in the image's passwd only as the container starts); None when not known."""
    home = process_env(config).get("HOME")
    if home is None:
        process = config.get("process") if isinstance(config.get("process"), dict) else {}
        user = process.get("user") if isinstance(process.get("user"), dict) else {}
        home = "/root" if user.get("uid", 0) == 0 else None
    return home if home and home.startswith("/") else None


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
    rename (its mode and owner kept). Returns notes."""
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
