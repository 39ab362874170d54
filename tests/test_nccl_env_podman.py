"""NCCL and UCX in a container that podman (CDI 0.5.2, Debian 12) injected the spec into itself:
no cdigen code before the hooks, and CDI `env` could not carry per-device lists. Each device's
`cdigen hook` createRuntime entry, which moves its NIC anyway, writes the container's
/etc/nccl.conf from all of the container's entries (no hook process of its own), so `--device`
twice names both NICs, in the order asked, one device only its own, and the image's own lines
stay; a read-only root is left alone and the container starts (docs/nccl.md). The host as in
tests/test_podman.py: a fake sysfs tree of two InfiniBand NICs whose interface names are veth
ends on this host."""

import shutil
import tempfile

import pytest

from cdigen.hook.nccl import BEGIN, END
from tests.helpers.podman import Podman, crun_skip_reason, podman_skip_reason
from tests.helpers.runc import build_rootfs
from tests.helpers.scanned import KIND, fake_host, hook_args, ready_again, scan, veth_pair

pytestmark = [pytest.mark.usefixtures("needs_runc"), pytest.mark.root, pytest.mark.runc]

IMAGE_CONF = "NCCL_DEBUG=WARN\nNCCL_ALGO=Ring\n"


@pytest.fixture
def podman(needs_runc, tmp_path):
    """podman with a root of this test's own (podman --rootfs runs in the directory itself),
    its state under a short path (podman refuses a runroot of more than 50 characters)."""
    reason = podman_skip_reason()
    if reason:
        pytest.skip(reason)
    directory = tempfile.mkdtemp(prefix="cdigen-podman-")
    made = Podman(directory, build_rootfs(tmp_path))
    yield made
    made.cleanup()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_podman_device_twice_names_both_nics_and_keeps_the_images_lines(podman, net, tree, tmp_path, runtime):
    if runtime == "crun" and (reason := crun_skip_reason()):
        pytest.skip(reason)
    root, (nic0, nic1) = fake_host(tree)
    spec = scan(root, [nic0, nic1], tmp_path / "cdi", "--for", "podman-4", names="net{n}")
    rdma0, rdma1 = (hook_args(spec, gpu)[-1] for gpu in ("gpu0", "gpu1"))
    entries = [h for part in [spec, *spec["devices"]] for h in part.get("containerEdits", {}).get("hooks", [])]
    assert [h["hookName"] for h in entries if h["args"][:2] == ["cdigen", "hook"]] == ["createRuntime", "poststop"] * 3
    (tmp_path / "rootfs" / "etc").mkdir()
    (tmp_path / "rootfs" / "etc" / "nccl.conf").write_text(IMAGE_CONF)
    peers = {nic0: veth_pair(net, nic0), nic1: veth_pair(net, nic1)}

    both = podman.run(tmp_path / "cdi", [f"{KIND}=gpu1", f"{KIND}=gpu0"], ["cat", "/etc/nccl.conf"], runtime=runtime)

    assert both.returncode == 0, both.stderr
    assert both.stdout == f"{BEGIN}NCCL_IB_HCA=={rdma1},{rdma0}\nNCCL_SOCKET_IFNAME==net0,net1\n{END}{IMAGE_CONF}"
    assert podman.wait_idle() == []
    peers = {nic: ready_again(net, nic, peer) for nic, peer in peers.items()}

    alone = podman.run(tmp_path / "cdi", [f"{KIND}=gpu0"], ["cat", "/etc/nccl.conf"], runtime=runtime)

    assert alone.returncode == 0, alone.stderr
    assert alone.stdout == f"{BEGIN}NCCL_IB_HCA=={rdma0}\nNCCL_SOCKET_IFNAME==net0\n{END}{IMAGE_CONF}"
    assert podman.wait_idle() == []
    ready_again(net, nic0, peers[nic0])

    (tmp_path / "rootfs" / "etc" / "nccl.conf").write_text(IMAGE_CONF)
    argv = ["run", "--rm", "--runtime", runtime, "--cgroup-parent", f"/{podman.cgroup_parent}", "--network", "none"]
    read_only = podman.podman(
        tmp_path / "cdi", *argv, "--read-only", "--device", f"{KIND}=gpu0", "--rootfs", podman.rootfs,
        "sh", "-c", "cat /etc/nccl.conf && ip -o link show net0", runtime=runtime,
    )  # fmt: skip

    assert read_only.returncode == 0, read_only.stderr
    assert read_only.stdout.startswith(IMAGE_CONF) and ": net0" in read_only.stdout  # the NIC is there all the same
    assert (tmp_path / "rootfs" / "etc" / "nccl.conf").read_text() == IMAGE_CONF
    assert podman.wait_idle() == []
