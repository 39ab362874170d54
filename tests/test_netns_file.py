"""The path named as a container's network namespace must be a namespace file (nsfs), not
merely a file: a regular file or a FIFO there is one line of error, exit 3, nothing moved."""

import os

import pytest

from cdigen.errors import InvalidInput
from cdigen.hook import rtnetlink
from tests.helpers.netns import link, state, write_bundle
from tests.helpers.proc import run_cdigen


@pytest.mark.parametrize("kind", ["regular", "fifo", "directory"])
def test_only_a_namespace_file_is_taken_as_a_network_namespace(tmp_path, kind):
    path = tmp_path / "netns"
    {"regular": path.touch, "fifo": lambda: os.mkfifo(path), "directory": path.mkdir}[kind]()
    for call in (rtnetlink.netns_id, rtnetlink.open_netns):
        with pytest.raises(InvalidInput, match=f"^cannot open network namespace {path}: not a namespace file$"):
            call(str(path))
    own = rtnetlink.own_netns_path()
    assert rtnetlink.netns_id("/proc/self/ns/net") == rtnetlink.netns_id(own)
    os.close(rtnetlink.open_netns(own))


@pytest.mark.root
def test_a_regular_file_as_the_netns_is_an_error_and_nothing_moves(net, tmp_path):
    end, _ = net.veth(mtu=1500)
    fake = tmp_path / "netns"
    fake.write_bytes(b"")
    bundle = write_bundle(tmp_path / "bundle", {end: {"name": "net0", "mtu": 9000}}, netns_path=str(fake))

    proc = run_cdigen("hook", input=state(bundle))

    assert proc.returncode == 3
    assert proc.stderr == f"cdigen: error: cannot open network namespace {fake}: not a namespace file\n"
    assert link(end)["mtu"] == 1500  # still on the host, untouched
