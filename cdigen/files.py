"""Reading and replacing cdigen's input and output files.

Reading: the one reader of host and input files (sysfs, procfs, /run, configs): regular files
only, opened non-blocking (a FIFO or device standing in for a file never blocks a container
start or a scan) and bounded in size. Writing: a temp file in the same directory, fsync,
rename, so a reader never sees a half-written spec or config.json and a failure leaves the
old file byte-identical. The only module that writes output files.

No contextlib here: the runtime shim reads its settings with `read_regular` on every
pass-through (`state`, `kill`...), and importing contextlib (functools, collections) costs
about 7 ms there (docs/benchmarks.md, "Runtime shim").
"""

import os

from cdigen.errors import CdigenError, InvalidInput


class UnreadableFile(InvalidInput):
    """A file that cannot be read as a bounded regular file; the message does not name it.
    `reason`: the cause alone ("Permission denied", "not a regular file"); `missing`: there
    is no such file."""

    def __init__(self, message: str, reason: str | None = None, missing: bool = False):
        super().__init__(message)
        self.reason, self.missing = reason or message, missing


def _os_error(e: OSError) -> UnreadableFile:
    return UnreadableFile(f"cannot read: {e.strerror}", e.strerror, isinstance(e, FileNotFoundError))


def open_regular(path: str) -> int:
    """A read-only fd of the regular file `path` (the caller closes it); UnreadableFile for
    anything else. Non-blocking, so that a FIFO or device standing in for it is an error,
    never a hang. sysfs and procfs files are regular (their st_size means nothing)."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise _os_error(e) from None
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError as e:
        os.close(fd)
        raise _os_error(e) from None
    if not regular:
        os.close(fd)
        raise UnreadableFile("not a regular file")
    return fd


def read_regular(path: str, limit: int) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them (UnreadableFile beyond)."""
    data = read_head(path, limit + 1)
    if len(data) > limit:
        raise UnreadableFile(f"larger than {limit} bytes")
    return data


def read_json(path: str, limit: int) -> object:
    """The JSON document (Go's rules: cdigen.strictjson) in the regular file `path`, None when
    there is no file there; InvalidInput naming the path when it is no such document."""
    from cdigen import strictjson

    if not os.path.lexists(path):
        return None
    try:
        return strictjson.loads(read_regular(path, limit))
    except (UnreadableFile, ValueError) as e:
        raise InvalidInput(f"{path}: {e}") from None


def read_head(path: str, size: int) -> bytes:
    """The first `size` bytes of the regular file `path` (all of it when shorter): for what is
    read by its start, such as a PCI config space's header."""
    fd = open_regular(path)
    try:
        chunks, got = [], 0
        while got < size:
            chunk = os.read(fd, size - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except OSError as e:
        raise _os_error(e) from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def atomic_write(path: str, data: bytes, mode: int | None = None) -> None:
    """Replace `path` with `data`. `mode`: the new file's mode; default: the existing file's
    mode, else 0644. An existing file keeps its owner and group where this process may set
    them (root writing a user's bundle must not take the user's file away).

    Never replaced: a symbolic link to a regular file (writing through it would let whoever
    owns the link choose which file root replaces; replacing it would silently detach the
    target): refused. Device nodes and FIFOs (/dev/null, /dev/stdout) are written into,
    never renamed over; a FIFO without a reader is an error, not a hang."""
    import stat

    directory = os.path.dirname(os.path.abspath(path)) or "."
    try:
        st = os.stat(path)
        link = stat.S_ISLNK(os.lstat(path).st_mode)
    except FileNotFoundError:
        st, link = None, False
    except OSError as e:
        raise CdigenError(f"cannot write {path}: {e.strerror}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        # /dev/null, /dev/stdout, a FIFO: renaming over it would replace the device node
        # itself (as root, /dev/null became a regular file). Write into it instead.
        _write_into(path, data)
        return
    if link:
        raise CdigenError(
            f"cannot write {path}: a symbolic link; cdigen replaces only regular files (write its target)"
        )
    if mode is None:
        mode = stat.S_IMODE(st.st_mode) if st is not None else 0o644
    base = os.path.basename(path)
    tmp = os.path.join(directory, f".{base}.cdigen-{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise CdigenError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if st is not None and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                try:
                    os.fchown(f.fileno(), st.st_uid, st.st_gid)
                except PermissionError:  # only root (CAP_CHOWN) may give it back
                    pass
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise CdigenError(f"cannot write {path}: {e.strerror}") from None
    # Make the rename itself durable.
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _write_into(path: str, data: bytes) -> None:
    import errno
    import fcntl

    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO without a reader: ENXIO
    except OSError as e:
        reason = "a FIFO that nobody reads" if e.errno == errno.ENXIO else e.strerror
        raise CdigenError(f"cannot write {path}: {reason}") from None
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        with os.fdopen(fd, "wb") as f:
            fd = -1
            f.write(data)
    except OSError as e:
        raise CdigenError(f"cannot write {path}: {e.strerror}") from None
    finally:
        if fd >= 0:
            os.close(fd)


def remove_stale_temps(path: str) -> list[str]:
    """Remove the temp files that `atomic_write` of `path` left behind in processes that no
    longer exist (killed while writing). Call it holding the lock that serialises writers of
    `path`. Returns the removed paths."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    prefix, suffix = f".{os.path.basename(path)}.cdigen-", ".tmp"
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        pid_text = name[len(prefix) : -len(suffix)] if name.startswith(prefix) and name.endswith(suffix) else ""
        if not (pid_text.isascii() and pid_text.isdigit()) or int(pid_text) == os.getpid():
            continue
        try:
            os.kill(int(pid_text), 0)
            continue  # its writer still runs (or the pid is reused): leave it
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError):
            continue
        try:
            os.unlink(os.path.join(directory, name))
            removed.append(os.path.join(directory, name))
        except OSError:
            pass
    return removed


DEFAULT_LOCK_TIMEOUT = 10.0  # seconds; docs/commands.md "apply"
LOCK_NOTICE_AFTER = 1.0  # seconds of waiting before the one line that says who holds the lock


class locked_dir:  # lower case: used like a function, `with locked_dir(directory):`
    """Hold an exclusive flock on `directory` for the `with` block, waiting at most `timeout`
    seconds.

    The directory, not the file: the file is replaced by rename, so a lock on its inode would
    not exclude a writer that opens the new one. Two `cdigen apply` runs on one bundle
    serialise here; each reads config.json after taking the lock. No lock file is left behind.
    Anyone who can open the directory can hold the lock, so the wait is bounded: then a
    one-line error names the directory (exit 1) and nothing is changed. A wait longer than
    LOCK_NOTICE_AFTER is said once on stderr, with the holder's pid (`flock_holder`), so that
    a slow start is never silent."""

    def __init__(self, directory: str, timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        self.directory, self.timeout = directory, timeout

    def __enter__(self) -> None:
        import fcntl
        import time

        try:
            self.fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise CdigenError(f"cannot open {self.directory}: {e.strerror}") from None
        started = time.monotonic()
        deadline, notice = started + self.timeout, started + LOCK_NOTICE_AFTER
        delay = 0.001
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                now = time.monotonic()
                if now >= deadline:
                    os.close(self.fd)
                    raise CdigenError(
                        f"{self.directory}: another process has held its lock (flock) for {self.timeout:g} s; "
                        "nothing changed"
                    ) from None
                if now >= notice:
                    notice = deadline  # once
                    self._say_waiting()
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def _say_waiting(self) -> None:
        import sys

        pid = flock_holder(self.fd)
        holder = f"pid {pid}" if pid else "another process"
        sys.stderr.write(
            f"cdigen: waiting for the lock on {self.directory} held by {holder} (up to {self.timeout:g} s)\n"
        )
        sys.stderr.flush()

    def __exit__(self, *exc) -> None:
        os.close(self.fd)  # releases the lock


def flock_holder(fd: int) -> int | None:
    """The pid of a process holding a flock on `fd`'s file, from /proc/locks: the kernel's own
    table, read only while waiting, so that holders need write nothing (no pid file to go stale
    or to leave behind). None when not known: the lock went meanwhile, or its holder is outside
    our pid namespace (the kernel shows it as 0)."""
    st = os.fstat(fd)
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        table = read_head("/proc/locks", 1 << 22).decode("ascii", "replace")
    except UnreadableFile:
        return None
    for line in table.splitlines():
        # "3: FLOCK  ADVISORY  WRITE 4242 00:2d:1234 0 EOF"; a blocked waiter's line has "->" after "3:"
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == where and fields[4].isdigit():
            return int(fields[4]) or None
    return None
