"""Debian's podman (4.3.1, CDI library v0.5.2) as a real CDI consumer, fenced off from the
host's podman state and from the host's CDI specs.

Every podman call runs as `unshare --mount sh -c SETUP podman ...`, in a mount namespace of its
own (made private by unshare) where
- a tmpfs hides the host's /run (podman's, conmon's and the runtimes' state under /run, and
  /var/run/cdi, the only spec directory podman 4.3 reads besides /etc/cdi: it has neither
  `cdi_spec_dirs` in containers.conf nor `--cdi-spec-dir`); the test's spec directory is
  bind-mounted on /run/cdi there, and an empty tmpfs covers /etc/cdi if the host has one;
- the host's /run/cdigen (where `cdigen hook` keeps its records of moved interfaces) is
  bind-mounted back, so that what the hook leaves there stays visible to the test;
- for crun only, the cgroup2 hierarchy of a hybrid layout (/sys/fs/cgroup/unified) is
  unmounted: crun refuses hybrid mode (`cgroups in hybrid mode not supported, drop all
  controllers from cgroupv2`), runc does not mind.
The rest is in files of the test's directory: containers.conf (CONTAINERS_CONF, the only
file read then) and storage.conf (CONTAINERS_STORAGE_CONF) with the vfs driver, cgroupfs,
file events, no OCI hooks directory, and `default_ulimits` at 1024 (without
CAP_SYS_RESOURCE podman's default, the hard limit raised, is refused here). The root
filesystem is a busybox directory run with `--rootfs`: `podman import` would work too but
writes its blob-info cache to /var/lib/containers/cache whatever --root says. Containers and
conmon go under a cgroup parent of the test's own (`--cgroup-parent`), removed in cleanup().
"""

import contextlib
import os
import shutil
import subprocess
import time
import uuid

from tests.helpers.runc import runc_skip_reason

CGROUP_ROOT = "/sys/fs/cgroup"
HYBRID_V2 = "/sys/fs/cgroup/unified"
HOOK_STATE = "/run/cdigen"  # cdigen hook's records (cdigen/hook/record.py); host side

# $1: spec directory, $2: an empty directory to carry the host's /run/cdigen across, $3:
# "unified" to unmount $4 (the hybrid cgroup2 hierarchy); then podman's argv.
_SETUP = r"""
mount --bind /run/cdigen "$2"
mount -t tmpfs cdigen-test-run /run
mkdir /run/cdi /run/cdigen
mount --bind "$1" /run/cdi
mount --bind "$2" /run/cdigen
umount "$2"
if [ -d /etc/cdi ]; then mount -t tmpfs cdigen-test-cdi /etc/cdi; fi
if [ "$3" = unified ]; then umount "$4"; fi
shift 4
exec "$@"
"""


def podman_skip_reason() -> str | None:
    reason = runc_skip_reason()
    if reason:
        return reason
    for tool in ("podman", "conmon"):
        if not shutil.which(tool):
            return f"needs {tool} (apt-get install podman)"
    return None


def crun_skip_reason() -> str | None:
    return None if shutil.which("crun") else "needs crun (apt-get install crun)"


class Podman:
    """podman with its own configuration, storage and state under `directory`."""

    def __init__(self, directory, rootfs: str):
        self.dir = str(directory)
        self.rootfs = rootfs
        self.cgroup_parent = f"cdigen-test-{uuid.uuid4().hex[:8]}"
        # The hook makes /run/cdigen on the host anyway; made here, it goes in cleanup().
        self.made_hook_state = not os.path.isdir(HOOK_STATE)
        os.makedirs(HOOK_STATE, exist_ok=True)
        for sub in ("storage", "run", "tmp", "networks", "hooks.d", "no-cdi", "host-state"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        d = self.dir
        self.containers_conf = os.path.join(d, "containers.conf")
        with open(self.containers_conf, "w") as f:
            f.write(
                "[containers]\n"
                'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
                "[engine]\n"
                'cgroup_manager = "cgroupfs"\n'
                'events_logger = "file"\n'
                f'events_logfile_path = "{d}/events.log"\n'
                f'tmp_dir = "{d}/tmp"\n'
                f'static_dir = "{d}/storage/libpod"\n'
                f'volume_path = "{d}/storage/volumes"\n'
                f'hooks_dir = ["{d}/hooks.d"]\n'
                "[network]\n"
                f'network_config_dir = "{d}/networks"\n'
            )
        self.storage_conf = os.path.join(d, "storage.conf")
        with open(self.storage_conf, "w") as f:
            f.write(f'[storage]\ndriver = "vfs"\ngraphroot = "{d}/storage"\nrunroot = "{d}/run"\n')

    def podman(self, spec_dir, *args: str, runtime: str = "runc", timeout: int = 60) -> subprocess.CompletedProcess:
        """`podman --root .. --runroot .. ARGS` in the fenced mount namespace, with `spec_dir`
        as the CDI spec directory."""
        unified = "unified" if runtime == "crun" and os.path.ismount(HYBRID_V2) else "-"
        os.makedirs(HOOK_STATE, exist_ok=True)  # in case another test's cleanup removed it
        argv = ["podman", "--root", f"{self.dir}/storage", "--runroot", f"{self.dir}/run", *args]
        env = dict(os.environ, CONTAINERS_CONF=self.containers_conf, CONTAINERS_STORAGE_CONF=self.storage_conf)
        return subprocess.run(
            [
                "unshare",
                "--mount",
                "sh",
                "-euc",
                _SETUP,
                "sh",
                str(spec_dir),
                f"{self.dir}/host-state",
                unified,
                HYBRID_V2,
            ]
            + argv,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def run(
        self, spec_dir, devices: list[str], command: list[str], runtime: str = "runc", debug: bool = False
    ) -> subprocess.CompletedProcess:
        """`podman run --rm --runtime RUNTIME --network none --device D... --rootfs ROOTFS CMD`.

        `--network none`: the container gets a network namespace of its own holding only lo
        (made by the runtime; no netavark/CNI, no host bridge or firewall rules), which is all
        the hook needs. Not `--log-level debug` for a container that starts: conmon then stays
        20 s ("Exceeded conmon timeout") before podman returns; a refusal comes back at once."""
        args = ["--log-level", "debug"] if debug else []
        args += ["run", "--rm", "--runtime", runtime, "--cgroup-parent", f"/{self.cgroup_parent}"]
        args += ["--network", "none"]
        for device in devices:
            args += ["--device", device]
        return self.podman(spec_dir, *args, "--rootfs", self.rootfs, *command, runtime=runtime)

    def containers(self) -> list[str]:
        proc = self.podman(os.path.join(self.dir, "no-cdi"), "ps", "--all", "--format", "{{.ID}}")
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()

    def processes(self) -> list[str]:
        """Command lines of processes still working on this podman's state (conmon, `podman
        container cleanup`): while any is left, so is its mount namespace."""
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            if int(pid) == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if f"{self.dir}/" in cmdline:
                found.append(cmdline.strip())
        return found

    @staticmethod
    def hook_records(hostif: str) -> list[str]:
        """Files of cdigen hook's host state that name `hostif`."""
        return [os.path.join(sub, f) for sub, _, files in os.walk(HOOK_STATE) for f in files if hostif in f]

    def cgroups(self) -> list[str]:
        """Our cgroup parent in every hierarchy (v1 controllers, hybrid and pure v2)."""
        found = []
        if not os.path.isdir(CGROUP_ROOT):
            return found
        for top in [CGROUP_ROOT] + [os.path.join(CGROUP_ROOT, e) for e in sorted(os.listdir(CGROUP_ROOT))]:
            path = os.path.join(top, self.cgroup_parent)
            if os.path.isdir(path):
                found.append(path)
        return found

    def container_cgroups(self) -> list[str]:
        """The containers' cgroups (libpod-<id>) left under our parent."""
        return [os.path.join(p, e) for p in self.cgroups() for e in os.listdir(p) if e.startswith("libpod-")]

    def wait_idle(self, timeout: float = 15) -> list[str]:
        """Wait until no process works on this podman's state; returns those left."""
        deadline = time.monotonic() + timeout
        while (left := self.processes()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left

    def cleanup(self) -> None:
        for cid in self.containers():
            self.podman(os.path.join(self.dir, "no-cdi"), "rm", "--force", cid)
        self.wait_idle()
        for path in self.cgroups():  # empty by now: the parent and its conmon child
            for sub, _, _ in os.walk(path, topdown=False):
                with contextlib.suppress(OSError):
                    os.rmdir(sub)
        if self.made_hook_state:  # only if empty: a concurrent hook may be using it
            for sub, _, _ in os.walk(HOOK_STATE, topdown=False):
                with contextlib.suppress(OSError):
                    os.rmdir(sub)
