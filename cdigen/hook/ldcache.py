"""`cdigen hook ldcache`: the createContainer hook that makes the driver libraries mounted into
a container findable (docs/gpu.md, "Inside the container").

The runtime runs it in the container's mount namespace once the spec's mounts are in place,
before the container's root becomes its `/`. It finds that root from the OCI state's bundle
(`root.path` of config.json, relative to the bundle or absolute), then does two things and
nothing else:

1. makes each `--link LINK=TARGET` (the SONAME links, `libcuda.so.1 -> libcuda.so.<version>`,
   and the development links, `libcuda.so -> libcuda.so.1`), where TARGET is there;
2. runs ldconfig over the `--folder` directories: the container's own `/sbin/ldconfig`, else
   the host's static one, in both cases inside the container's root (chroot) with every
   capability dropped, no new privileges, a bare environment and no inherited files. With
   `--host-driver-version`, an image whose CUDA forward-compatibility libcuda
   (`/usr/local/cuda/compat/libcuda.so.<version>`) has a newer driver branch than the host's
   gets that directory first on ldconfig's command line: ldconfig caches directories in
   command-line order, and the loader takes a library's first cache entry (docs/gpu.md).

Paths inside the root are resolved one component at a time from a directory descriptor of
the root (openat with O_NOFOLLOW): a symlink is read and followed inside the root, an absolute
target starts again at the root, `..` stops there. A link is only ever made or replaced where
a symlink or nothing is; a file the image put there is left alone. Running it twice changes
nothing the first run did not.
"""

import contextlib
import errno
import os
import stat

from cdigen.errors import CdigenError, InvalidInput
from cdigen.values import version_tuple

CONTAINER_LDCONFIG = ("/sbin/ldconfig", "/usr/sbin/ldconfig")
HOST_LDCONFIG = ("/sbin/ldconfig.real", "/sbin/ldconfig", "/usr/sbin/ldconfig")  # Ubuntu's .real: the ELF
LDCONFIG_TIMEOUT_S = 30.0
MAX_LINKS = 40
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class LdcacheError(CdigenError):
    """ldconfig failed, or the container's root cannot be opened."""


class RootDir:
    """A container root as a directory descriptor; paths below it resolved inside it."""

    def __init__(self, path: str):
        try:
            self.fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise LdcacheError(f"container root {path}: {e.strerror}") from None
        self.path = path
        self._dirs: dict[tuple[str, ...], int] = {(): self.fd}

    def close(self) -> None:
        for fd in set(self._dirs.values()):
            os.close(fd)
        self._dirs = {}

    def _dir(self, names: tuple[str, ...]) -> int:
        """The descriptor of the directory at resolved `names` (each a real directory)."""
        if names not in self._dirs:
            parent = self._dir(names[:-1])
            self._dirs[names] = os.open(names[-1], _DIR_FLAGS, dir_fd=parent)
        return self._dirs[names]

    def resolve(self, path: str, follow_last: bool = True) -> tuple[int, str, tuple[str, ...]]:
        """(descriptor of the parent directory, final name, resolved components) of `path`
        inside the root. Every directory component is resolved; the final one too when
        `follow_last` and it is a symlink. OSError (ENOENT, ENOTDIR, ELOOP) when it cannot be."""
        pending = [p for p in reversed(path.split("/")) if p not in ("", ".")]
        done: list[str] = []
        links = 0
        while pending:
            name = pending.pop()
            if name == "..":
                if done:
                    done.pop()
                continue
            if name == "." or not name:
                continue
            last = not pending
            parent = self._dir(tuple(done))
            try:
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                if last:
                    return parent, name, (*done, name)
                raise
            if stat.S_ISLNK(st.st_mode) and (not last or follow_last):
                links += 1
                if links > MAX_LINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
                target = os.readlink(name, dir_fd=parent)
                if target.startswith("/"):
                    done = []
                pending.extend(p for p in reversed(target.split("/")) if p not in ("", "."))
                continue
            if last:
                return parent, name, (*done, name)
            if not stat.S_ISDIR(st.st_mode):
                raise OSError(errno.ENOTDIR, "not a directory", path)
            done.append(name)
            self._dir(tuple(done))
        return self._dir(()), ".", ()


def container_root(state: bytes) -> str:
    """The container's root on this side: config.json `root.path` of the state's bundle."""
    from cdigen.oci.config import CONFIG_NAME, read_config
    from cdigen.oci.state import parse_state

    bundle = parse_state(state).bundle
    return root_of(bundle, read_config(os.path.join(bundle, CONFIG_NAME))[1])


def root_of(bundle: str, config: dict) -> str:
    """config.json `root.path`, relative to the bundle or absolute; InvalidInput unless a string."""
    from cdigen.oci.config import CONFIG_NAME

    root = config.get("root")
    path = root.get("path") if isinstance(root, dict) else None
    if not isinstance(path, str) or not path or "\0" in path:
        raise InvalidInput(f"{bundle}/{CONFIG_NAME}: root.path: expected a non-empty string")
    return os.path.normpath(os.path.join(bundle, path))


def make_link(root: RootDir, link: str, target: str) -> str | None:
    """`link` -> `target` (a name in the link's directory), unless it is there already.
    Returns a note when it was not made."""
    try:
        parent, name, _ = root.resolve(link, follow_last=False)
    except OSError as e:
        return f"{link}: not made ({os.path.dirname(link)}: {e.strerror})"
    try:
        os.stat(target, dir_fd=parent, follow_symlinks=False)
    except OSError:
        return f"{link}: not made ({target} is not in {os.path.dirname(link)})"
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISLNK(st.st_mode):
            return f"{link}: left alone (the image has a file there)"
        if os.readlink(name, dir_fd=parent) == target:
            return None
    temp = f".{name}.cdigen-{os.getpid()}"
    try:
        os.symlink(target, temp, dir_fd=parent)
        os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)  # replaces a symlink atomically
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=parent)
        return f"{link}: not made ({e.strerror})"
    return None


def _is_static_elf(fd: int) -> bool:
    """An ELF executable without a PT_INTERP (it runs inside any root)."""
    import struct

    head = os.pread(fd, 64, 0)
    if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
        return False
    phoff = struct.unpack_from("<Q", head, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
    table = os.pread(fd, phentsize * min(phnum, 256), phoff)
    return all(struct.unpack_from("<I", table, i)[0] != 3 for i in range(0, len(table) - 3, phentsize))


def find_ldconfig(root: RootDir) -> tuple[str | int, str] | None:
    """(what to exec inside the root, description): the container's own ldconfig (a path
    there), else the host's static one (an open descriptor); None when there is neither."""
    for path in CONTAINER_LDCONFIG:
        try:
            parent, name, names = root.resolve(path)
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return "/" + "/".join(names), f"the container's {path}"
    for path in HOST_LDCONFIG:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        if stat.S_ISREG(os.fstat(fd).st_mode) and _is_static_elf(fd):
            return fd, f"the host's {path}"
        os.close(fd)
    return None


def _privilege_dropper():
    """A function that leaves no capability in any set (the bounding set too, so that exec as
    uid 0 gains none) and forbids new privileges through exec. Made before chroot: ctypes and
    libc are the host's, the container's root has neither."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, pr_set_no_new_privs = 24, 38

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3: two 32-bit words

    def drop() -> None:
        for cap in range(64):
            if libc.prctl(pr_capbset_drop, cap, 0, 0, 0) != 0 and ctypes.get_errno() == errno.EINVAL:
                break  # past the kernel's last capability
        if libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        if libc.capset(ctypes.byref(header), data) != 0:
            raise OSError(ctypes.get_errno(), "capset")

    return drop


def run_ldconfig(root: RootDir, program: str | int, folders: list[str]) -> None:
    """Run ldconfig inside the root, sandboxed; LdcacheError with its last line if it fails."""
    import select
    import time

    drop_privileges = _privilege_dropper()
    read_end, write_end = os.pipe()
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            os.dup2(null, 0)
            os.dup2(write_end, 1)
            os.dup2(write_end, 2)
            os.fchdir(root.fd)
            os.chroot(".")
            os.chdir("/")
            drop_privileges()
            if isinstance(program, int):  # the host's binary: keep its descriptor until exec
                os.closerange(3, program)
                os.closerange(program + 1, 65536)
            else:
                os.closerange(3, 65536)
            os.execve(program, ["ldconfig", *folders], {"PATH": SAFE_PATH})
        except BaseException as e:  # the child must exit, whatever happened
            os.write(2, f"cannot run ldconfig: {e}\n".encode())
        finally:
            os._exit(127)
    os.close(write_end)
    os.close(null)
    output = b""
    deadline = time.monotonic() + LDCONFIG_TIMEOUT_S
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, 9)  # SIGKILL (the signal module's import costs more than the hook's work)
                output += b"\ntimed out"
                break
            ready, _, _ = select.select([read_end], [], [], left)
            if ready:
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                output = (output + chunk)[-4096:]
    finally:
        os.close(read_end)
        status = os.waitpid(pid, 0)[1]
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        lines = [line for line in output.decode("utf-8", "replace").splitlines() if line.strip()]
        raise LdcacheError(f"ldconfig exited {code}: {lines[-1] if lines else 'no output'}")


CUDA_COMPAT_DIR = "/usr/local/cuda/compat"  # where CUDA images keep the forward-compat libcuda


def cuda_compat_folder(root: RootDir, host_driver_version: str) -> tuple[str | None, str | None]:
    """(CUDA_COMPAT_DIR, None) when the image's forward-compatibility libcuda belongs to a newer
    driver branch (major version) than the host's, else (None, a note or None). As nvidia-ctk's
    enable-cuda-compat hook, but comparing the majors as numbers."""
    try:
        parent, name, _ = root.resolve(CUDA_COMPAT_DIR)
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=parent)
    except OSError:
        return None, None  # no compat libraries in this image
    try:
        names = os.listdir(fd)
    finally:
        os.close(fd)
    versions = [
        n[len("libcuda.so.") :] for n in names if n.startswith("libcuda.so.") and "." in n[len("libcuda.so.") :]
    ]
    if not versions:
        return None, None
    image = version_tuple(versions[0])
    if len(versions) > 1 or image is None:
        return None, f"{CUDA_COMPAT_DIR}: {', '.join(sorted('libcuda.so.' + v for v in versions))}: not used"
    if image[0] > version_tuple(host_driver_version)[0]:
        return CUDA_COMPAT_DIR, None
    return None, None


def run(
    state: bytes, folders: list[str], links: list[tuple[str, str]], host_driver_version: str | None = None
) -> list[str]:
    """The hook's work for the container the OCI `state` describes. Returns notes for stderr
    (links not made, no ldconfig); LdcacheError when ldconfig fails."""
    root = RootDir(container_root(state))
    try:
        notes = [note for link, target in links if (note := make_link(root, link, target))]
        if not folders:
            return notes
        if host_driver_version:
            compat, note = cuda_compat_folder(root, host_driver_version)
            notes += [note] if note else []
            folders = [compat, *folders] if compat else folders
        found = find_ldconfig(root)
        if found is None:
            notes.append(
                f"no ldconfig in the container ({', '.join(CONTAINER_LDCONFIG)}) nor a static one on the host: "
                "the library links are made, the ld cache is not updated"
            )
            return notes
        program, _what = found
        try:
            run_ldconfig(root, program, folders)
        finally:
            if isinstance(program, int):
                os.close(program)
        return notes
    finally:
        root.close()
