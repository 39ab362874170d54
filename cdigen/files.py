"""Reading and replacing cdigen's input and output files.

Reading: regular files only, opened non-blocking (a FIFO or device standing in for a file
never blocks a container start) and bounded in size. Writing: a temp file in the same
directory, fsync, rename, so a reader never sees a half-written spec or config.json and a
failure leaves the old file byte-identical. The only module that writes output files.
"""

import contextlib
import os

from cdigen.errors import CdigenError, InvalidInput


class UnreadableFile(InvalidInput):
    """A file that cannot be read as a bounded regular file; the message does not name it."""


def read_regular(path: str, limit: int) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them (UnreadableFile beyond)."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise UnreadableFile(f"cannot read: {e.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnreadableFile("not a regular file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise UnreadableFile(f"cannot read: {e.strerror}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise UnreadableFile(f"larger than {limit} bytes")
    return b"".join(chunks)


def atomic_write(path: str, data: bytes, mode: int | None = None) -> None:
    """Replace `path` with `data`. `mode`: the new file's mode; default: the existing file's
    mode, else 0644."""
    import stat

    directory = os.path.dirname(os.path.abspath(path)) or "."
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise CdigenError(f"cannot write {path}: {e.strerror}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        # /dev/null, /dev/stdout, a FIFO: renaming over it would replace the device node
        # itself (as root, /dev/null became a regular file). Write into it instead.
        _write_into(path, data)
        return
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
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise CdigenError(f"cannot write {path}: {e.strerror}") from None
    # Make the rename itself durable.
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _write_into(path: str, data: bytes) -> None:
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        raise CdigenError(f"cannot write {path}: {e.strerror}") from None


@contextlib.contextmanager
def locked_dir(directory: str):
    """Hold an exclusive flock on `directory` for the block.

    The directory, not the file: the file is replaced by rename, so a lock on its inode would
    not exclude a writer that opens the new one. Two `cdigen apply` runs on one bundle
    serialise here; each reads config.json after taking the lock. No lock file is left behind."""
    import fcntl

    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise CdigenError(f"cannot open {directory}: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
