"""`cdigen hook ldcache` (cdigen/hook/ldcache.py) on a bundle whose rootfs a test builds: the
links, ldconfig inside the root, paths that try to leave the root, and the command line.
The runc end-to-end tests are in test_gpu_runc.py."""

import json
import os
import shutil

import pytest

from cdigen import hookentry
from cdigen.hook import ldcache
from tests.helpers import driver
from tests.helpers.driver import VERSION, put
from tests.helpers.proc import run_cdigen

pytestmark = pytest.mark.root  # chroot

LIB = "/usr/lib/x86_64-linux-gnu"
LINKS = [(f"{LIB}/libcuda.so.1", f"libcuda.so.{VERSION}"), (f"{LIB}/libcuda.so", "libcuda.so.1")]


@pytest.fixture(autouse=True)
def needs_root():
    if os.geteuid() != 0:
        pytest.skip("chroot needs root")


def bundle(tmp_path, ldconfig: bytes | str | None = "host-copy") -> tuple[str, str]:
    """(bundle, rootfs): a rootfs holding libcuda where the spec mounts it, and an ldconfig:
    a copy of Debian's static one, the given content, or none."""
    rootfs = tmp_path / "bundle" / "rootfs"
    driver.library(rootfs, LIB, "libcuda", "libcuda.so.1", links=False)
    put(rootfs, "/etc/ld.so.conf", b"")
    if ldconfig == "host-copy":
        os.makedirs(rootfs / "sbin")
        shutil.copy2("/sbin/ldconfig", rootfs / "sbin/ldconfig")
    elif ldconfig is not None:
        put(rootfs, "/sbin/ldconfig", ldconfig, 0o755)
    (tmp_path / "bundle/config.json").write_text(json.dumps({"root": {"path": "rootfs"}, "linux": {}}))
    return str(tmp_path / "bundle"), str(rootfs)


def state(bundle_dir: str) -> bytes:
    return json.dumps({"ociVersion": "1.0.2", "id": "c", "status": "creating", "pid": 1, "bundle": bundle_dir}).encode()


def hook(bundle_dir: str, folders=(LIB,), links=LINKS, check=0, host_driver_version=None):
    args = hookentry.ldcache_args(list(folders), list(links), host_driver_version)[1:]
    return run_cdigen(*args, input=state(bundle_dir).decode(), check=check)


def cache_of(rootfs: str) -> str:
    import subprocess

    return subprocess.run(["ldconfig", "-r", rootfs, "-p"], capture_output=True, text=True, check=True).stdout


def test_links_and_cache_then_nothing_more(tmp_path):
    bundle_dir, rootfs = bundle(tmp_path)
    proc = hook(bundle_dir)
    assert (proc.stdout, proc.stderr) == ("", "")
    lib = os.path.join(rootfs, LIB.lstrip("/"))
    assert os.readlink(f"{lib}/libcuda.so.1") == f"libcuda.so.{VERSION}"
    assert os.readlink(f"{lib}/libcuda.so") == "libcuda.so.1"
    assert f"libcuda.so.1 (libc6,x86-64) => {LIB}/libcuda.so.1" in cache_of(rootfs)
    before = {n: os.lstat(f"{lib}/{n}").st_ino for n in os.listdir(lib)}
    assert hook(bundle_dir).stderr == ""  # again: the same links, not remade
    assert {n: os.lstat(f"{lib}/{n}").st_ino for n in os.listdir(lib)} == before
    assert sorted(os.listdir(rootfs)) == ["etc", "sbin", "usr"]


def test_wrong_links_replaced_files_of_the_image_left_alone(tmp_path):
    bundle_dir, rootfs = bundle(tmp_path)
    lib = os.path.join(rootfs, LIB.lstrip("/"))
    os.symlink("libcuda.so.470.1.1", f"{lib}/libcuda.so.1")  # an old driver's link in the image
    put(rootfs, f"{LIB}/libcuda.so", b"a stub the image ships")
    proc = hook(bundle_dir)
    assert proc.stderr == f"cdigen: {LIB}/libcuda.so: left alone (the image has a file there)\n"
    assert os.readlink(f"{lib}/libcuda.so.1") == f"libcuda.so.{VERSION}"
    with open(f"{lib}/libcuda.so", "rb") as f:
        assert f.read() == b"a stub the image ships"


def test_paths_never_leave_the_root(tmp_path):
    """The image's symlinks are followed inside its root: an absolute one starts again at the
    root, `..` stops there. Nothing outside the rootfs is written."""
    bundle_dir, rootfs = bundle(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    put(outside, "/libcuda.so.1.target")
    os.makedirs(os.path.join(rootfs, "opt"))
    os.symlink(str(outside), os.path.join(rootfs, "opt/escape"))  # absolute: means rootfs/<that path>
    os.symlink("../../../../../../../../" + str(outside).lstrip("/"), os.path.join(rootfs, "opt/climb"))
    links = [
        ("/opt/escape/libcuda.so.1", "libcuda.so.1.target"),
        ("/opt/climb/libcuda.so.1", "libcuda.so.1.target"),
        ("/opt/climb/../../../../x", "libcuda.so.1"),
    ]
    parsed = hookentry.parse_ldcache_argv(hookentry.ldcache_args([], links[:2])[3:])
    assert parsed == ([], links[:2], None)
    root = ldcache.RootDir(rootfs)
    try:
        notes = [ldcache.make_link(root, link, target) for link, target in links]
    finally:
        root.close()
    assert notes[0] == "/opt/escape/libcuda.so.1: not made (/opt/escape: No such file or directory)"
    assert notes[1] == "/opt/climb/libcuda.so.1: not made (/opt/climb: No such file or directory)"
    # `climb` is resolved before the `..` that follow it, as the kernel does: it leads nowhere.
    assert notes[2] == "/opt/climb/../../../../x: not made (/opt/climb/../../../..: No such file or directory)"
    assert os.listdir(outside) == ["libcuda.so.1.target"]
    # The same directories made inside the root: the links land there.
    inside = os.path.join(rootfs, str(outside).lstrip("/"))
    put(rootfs, str(outside) + "/libcuda.so.1.target")
    root = ldcache.RootDir(rootfs)
    try:
        assert [ldcache.make_link(root, link, target) for link, target in links[:2]] == [None, None]
    finally:
        root.close()
    assert os.readlink(os.path.join(inside, "libcuda.so.1")) == "libcuda.so.1.target"
    assert os.listdir(outside) == ["libcuda.so.1.target"]


def test_a_link_into_the_host_is_not_followed(tmp_path):
    """A library directory that is an absolute symlink (to /etc, say) is the root's /etc."""
    bundle_dir, rootfs = bundle(tmp_path)
    os.makedirs(os.path.join(rootfs, "usr/lib64"))
    os.rmdir(os.path.join(rootfs, "usr/lib64"))
    os.symlink("/etc", os.path.join(rootfs, "usr/lib64"))
    put(rootfs, "/etc/libcuda.so.9", b"")
    proc = hook(bundle_dir, folders=(), links=[("/usr/lib64/libcuda.so.1", "libcuda.so.9")])
    assert proc.stderr == ""
    assert os.readlink(os.path.join(rootfs, "etc/libcuda.so.1")) == "libcuda.so.9"
    assert not os.path.lexists("/etc/libcuda.so.1")


def test_the_hosts_static_ldconfig_when_the_image_has_none(tmp_path):
    bundle_dir, rootfs = bundle(tmp_path, ldconfig=None)
    assert hook(bundle_dir).stderr == ""
    assert f"libcuda.so.1 (libc6,x86-64) => {LIB}/libcuda.so.1" in cache_of(rootfs)
    assert not os.path.exists(os.path.join(rootfs, "sbin"))


def test_no_ldconfig_anywhere_is_a_note(tmp_path, monkeypatch):
    bundle_dir, rootfs = bundle(tmp_path, ldconfig=None)
    monkeypatch.setattr(ldcache, "HOST_LDCONFIG", (str(tmp_path / "none"),))
    notes = ldcache.run(state(bundle_dir), [LIB], LINKS)
    assert notes == [
        "no ldconfig in the container (/sbin/ldconfig, /usr/sbin/ldconfig) nor a static one on the host: "
        "the library links are made, the ld cache is not updated"
    ]
    assert os.readlink(os.path.join(rootfs, LIB.lstrip("/"), "libcuda.so.1")) == f"libcuda.so.{VERSION}"


def test_ldconfig_failure_is_one_line(tmp_path):
    bundle_dir, _rootfs = bundle(tmp_path, ldconfig=b"#!/nonexistent/sh\n")
    proc = hook(bundle_dir, check=1)
    assert proc.stderr == (
        "cdigen: error: ldconfig exited 127: cannot run ldconfig: "
        "[Errno 2] No such file or directory: '/sbin/ldconfig'\n"
    )


# ---------------------------------------------------------------------------- CUDA forward compatibility

COMPAT = "/usr/local/cuda/compat"


def libcuda_entries(rootfs: str) -> list[str]:
    """Where libcuda.so.1 resolves, in the cache's order: the loader takes the first."""
    return [line.split(" => ")[1] for line in cache_of(rootfs).splitlines() if "libcuda.so.1 (" in line]


@pytest.mark.parametrize(
    "host, compat, first",
    [
        (VERSION, "570.86.10", COMPAT),  # a newer branch in the image: preferred
        ("99.1", "100.2.3", COMPAT),  # numbers, not strings ("99" > "100" as text)
        (VERSION, "550.127.05", LIB),  # the same branch: the host's
        (VERSION, "535.86.10", LIB),  # older: the host's
        (None, "570.86.10", LIB),  # no --host-driver-version (a spec without it): never considered
    ],
)
def test_cuda_forward_compat_libcuda_first_only_when_its_branch_is_newer(tmp_path, host, compat, first):
    bundle_dir, rootfs = bundle(tmp_path)
    driver.library(rootfs, COMPAT, "libcuda", "libcuda.so.1", compat)  # with its libcuda.so.1 link, as images ship it

    proc = hook(bundle_dir, host_driver_version=host)

    assert (proc.stdout, proc.stderr) == ("", "")
    entries = libcuda_entries(rootfs)
    assert entries[0] == f"{first}/libcuda.so.1"
    assert entries == (
        [f"{COMPAT}/libcuda.so.1", f"{LIB}/libcuda.so.1"] if first == COMPAT else [f"{LIB}/libcuda.so.1"]
    )
    assert not os.path.exists(os.path.join(rootfs, "etc/ld.so.conf.d"))  # nothing written into the image's config


def test_cuda_forward_compat_two_libcudas_or_an_odd_name_is_a_note_and_the_hosts(tmp_path):
    bundle_dir, rootfs = bundle(tmp_path)
    driver.library(rootfs, COMPAT, "libcuda", "libcuda.so.1", "570.86.10")
    driver.library(rootfs, COMPAT, "libcuda", None, "575.1.2", links=False)
    proc = hook(bundle_dir, host_driver_version=VERSION)
    assert proc.stderr == (f"cdigen: {COMPAT}: libcuda.so.570.86.10, libcuda.so.575.1.2: not used\n")
    assert libcuda_entries(rootfs) == [f"{LIB}/libcuda.so.1"]


def test_cuda_forward_compat_directory_is_looked_up_inside_the_root(tmp_path):
    """/usr/local/cuda a symlink to the host's /usr/local/cuda-x (absolute): followed inside the root."""
    bundle_dir, rootfs = bundle(tmp_path)
    driver.library(rootfs, "/usr/local/cuda-12.8/compat", "libcuda", "libcuda.so.1", "570.86.10")
    os.symlink("/usr/local/cuda-12.8", os.path.join(rootfs, "usr/local/cuda"))
    assert hook(bundle_dir, host_driver_version=VERSION).stderr == ""
    assert libcuda_entries(rootfs)[0] == f"{COMPAT}/libcuda.so.1"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--host-driver-version", "550"], None),
        (["--host-driver-version", "r550"], "--host-driver-version 'r550': expected a driver version"),
        (["--host-driver-version", "550..1"], "--host-driver-version '550..1': expected a driver version"),
        (["--folder", "usr/lib"], "--folder 'usr/lib': expected an absolute path inside the container, without '..'"),
        (["--folder", "/usr/../etc"], "--folder '/usr/../etc': expected an absolute path"),
        (["--link", "/usr/lib/libcuda.so.1"], "--link '/usr/lib/libcuda.so.1': expected LINK=TARGET"),
        (["--link", "/usr/lib/libcuda.so.1=../libcuda.so"], "--link '/usr/lib/libcuda.so.1=../libcuda.so': expected"),
        (["--link", "/x=/etc/passwd"], "--link '/x=/etc/passwd': expected LINK=TARGET, TARGET a file name"),
        (["--folder"], "option --folder requires an argument (DIR)"),
        (["--netdev", "x"], "no such option: '--netdev'"),
        (["/usr/lib"], "unexpected argument '/usr/lib'"),
    ],
)
def test_bad_arguments_exit_2(args, message):
    if message is None:  # a good one, for contrast: it gets as far as the missing state
        proc = run_cdigen("hook", "ldcache", *args, input="", check=3)
        assert "--host-driver-version" not in proc.stderr
        return
    proc = run_cdigen("hook", "ldcache", *args, input="", check=2)
    assert proc.stderr.startswith(f"cdigen: error: hook ldcache: {message}") and proc.stderr.count("\n") == 1


def test_help_and_the_netdev_hook_untouched():
    assert run_cdigen("hook", "ldcache", "--help", check=0).stdout.startswith("usage: cdigen hook ldcache ")
    assert "cdigen hook ldcache" in run_cdigen("hook", "--help", check=0).stdout
    entry = hookentry.ldcache_hook("/usr/bin/cdigen", [LIB], LINKS)
    assert entry["hookName"] == "createContainer"
    assert not hookentry.is_cdigen_hook(entry)  # apply never reads netdev settings from it, nor rewrites it
    assert hookentry.is_cdigen_hook(hookentry.cdi_hook("/usr/bin/cdigen", []))
