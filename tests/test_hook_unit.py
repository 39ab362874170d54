"""Pure parts of the hook: arguments, planning, target netns, OCI state, netlink encoding;
plus the hook process's exits that need no privileges."""

import json
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdigen import netdev
from cdigen.cli.hook import parse_args
from cdigen.errors import InvalidInput, UsageError
from cdigen.hook import rtnetlink
from cdigen.hook.plan import netdevs_to_configure as plan
from cdigen.hook.plan import target_netns
from cdigen.oci.state import HookState, StateError, parse_state
from tests.helpers.netns import netns_skip_reason
from tests.helpers.proc import run_cdigen
from tests.helpers.runc import runc_skip_reason

ARG = "ens1f0np0=name=net0,address=192.0.2.10,mask=255.255.255.0,mtu=9000"


# ---------------------------------------------------------------------------- arguments


def netdevs(argv):
    return parse_args(argv)["netdev"]


def test_parse_args_both_spellings_in_order():
    cfgs = netdevs(["--netdev", ARG, "--netdev=ens2=name=net1,address=198.51.100.1/24"])
    assert [c.host for c in cfgs] == ["ens1f0np0", "ens2"]
    assert cfgs[0] == netdev.NetdevSettings("ens1f0np0", "net0", "192.0.2.10", 24, 9000)
    assert (cfgs[1].address, cfgs[1].prefixlen, cfgs[1].mtu) == ("198.51.100.1", 24, None)


def test_parse_args_host_alone_and_none():
    assert netdevs(["--netdev", "eth1"]) == [netdev.NetdevSettings("eth1")]
    assert parse_args([]) == {"netdev": [], "ib": [], "roce": [], "poststop": False}
    assert parse_args(["--netdev", "--poststop"]) == {
        "netdev": [netdev.NetdevSettings("--poststop")],
        "ib": [],
        "roce": [],
        "poststop": False,
    }


@pytest.mark.parametrize("argv", [["-h"], ["--help"], ["--netdev", ARG, "-h"]])
def test_parse_args_help(argv):
    assert parse_args(argv) is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--netdev"], "option --netdev requires an argument (HOSTIF=SETTINGS)"),
        (["eth0"], "unexpected argument 'eth0'"),
        (["--poststop=1"], "option --poststop does not take a value"),
        (["--netdev", "eth0=mtu=nine"], "MTU must be an integer"),
        (["--netdev", "eth0=colour=red"], "expected name=, address=, mask= or mtu="),
        (["--netdev", "eth0", "--netdev", "eth0=mtu=1500"], "--netdev eth0 given twice"),
        (["--netdev", "=name=x"], "host interface name is empty"),
    ],
)
def test_parse_args_errors_are_usage_errors(argv, message):
    with pytest.raises(UsageError) as e:
        parse_args(argv)
    assert message in str(e.value) and str(e.value).startswith("hook: ")


arg_tokens = st.sampled_from(
    [
        "--netdev",
        "--netdev=",
        "-h",
        "eth0",
        "=",
        ",",
        "name=",
        "net0",
        "mtu=",
        "9000",
        "address=",
        "192.0.2.1/24",
        "mask=",
        "255.0.0.0",
        "%d",
        "x" * 16,
    ]
)
argv_strategy = st.lists(st.one_of(st.text(max_size=12), st.lists(arg_tokens, max_size=6).map("".join)), max_size=6)


@settings(max_examples=300, deadline=None)
@given(argv_strategy)
def test_parse_args_never_raises_anything_but_usage_error(argv):
    """A one-line usage error, help (None), or settings for distinct host interfaces that a
    runtime handing them back as --netdev arguments gets again unchanged."""
    try:
        result = parse_args(argv)
    except UsageError as e:
        assert "\n" not in str(e)
        return
    if result is None:
        assert {"-h", "--help"} & set(argv)
        return
    settings = result["netdev"]
    assert all(isinstance(c, netdev.NetdevSettings) for c in settings)
    assert len({c.host for c in settings}) == len(settings)
    assert netdevs([a for c in settings for a in ("--netdev", c.to_arg())]) == settings


# ---------------------------------------------------------------------------- planning


def config(net_devices=None, namespaces=None):
    linux = {"namespaces": namespaces if namespaces is not None else [{"type": "network"}]}
    if net_devices is not None:
        linux["netDevices"] = net_devices
    return {"linux": linux}


def test_plan_without_args_takes_every_net_devices_key_in_order():
    cfgs = plan(config({"b0": {"name": "net1"}, "a0": {"name": "net0", "mtu": 9000}}), [])
    assert [(c.host, c.container_name, c.mtu) for c in cfgs] == [("b0", "net1", None), ("a0", "net0", 9000)]


def test_plan_with_args_takes_exactly_those():
    cfgs = plan(config({"a0": {"name": "net0"}, "b0": {"name": "net1"}}), netdevs(["--netdev", "b0=mtu=1500"]))
    assert [(c.host, c.container_name, c.mtu) for c in cfgs] == [("b0", "net1", 1500)]


def test_plan_config_keys_win_field_by_field():
    args = netdevs(["--netdev", "a0=name=x0,address=198.51.100.1/16,mtu=1400"])
    (cfg,) = plan(config({"a0": {"name": "net0", "mtu": 9000}}), args)
    assert (cfg.container_name, cfg.mtu) == ("net0", 9000)
    assert (cfg.address, cfg.prefixlen) == ("198.51.100.1", 16)  # not in config.json: the arg's
    (cfg,) = plan(config({"a0": {"address": "192.0.2.10", "mask": "255.255.255.0"}}), args)
    assert (cfg.container_name, cfg.address, cfg.prefixlen, cfg.mtu) == ("x0", "192.0.2.10", 24, 1400)


def test_plan_arg_for_an_interface_config_json_does_not_list():
    (cfg,) = plan(config(None), netdevs(["--netdev", ARG]))
    assert cfg == netdev.parse_arg(ARG)


@pytest.mark.parametrize(
    "devices, message",
    [
        ({"a0": {"name": "net0", "mtu": "big"}}, r"linux.netDevices\['a0'\]: MTU must be an integer"),
        ({"a0": {"name": "net0", "address": "300.1.1.1"}}, r"linux.netDevices\['a0'\]: invalid IP address"),
        ({"a0": "net0"}, "must be an object"),
        ({"a0": {"name": "net0"}, "b0": {"name": "net0"}}, "both map to container name net0"),
        (["a0"], "linux.netDevices: expected an object"),
    ],
)
def test_plan_rejects_invalid_config(devices, message):
    with pytest.raises(InvalidInput, match=message):
        plan(config(devices), [])


def test_target_netns():
    assert target_netns(config(namespaces=[{"type": "network", "path": "/var/run/netns/x"}]), 7) == "/var/run/netns/x"
    assert target_netns(config(namespaces=[{"type": "pid"}, {"type": "network"}]), 4242) == "/proc/4242/ns/net"
    with pytest.raises(InvalidInput, match="no network namespace of its own"):
        target_netns(config(namespaces=[{"type": "pid"}]), 4242)
    with pytest.raises(InvalidInput, match="has no pid"):
        target_netns(config(), None)
    with pytest.raises(InvalidInput, match="must be absolute"):
        target_netns(config(namespaces=[{"type": "network", "path": "netns/x"}]), 1)


# ---------------------------------------------------------------------------- OCI state


def test_parse_state_full():
    raw = json.dumps(
        {
            "ociVersion": "1.0.2-dev",
            "id": "c1",
            "status": "creating",
            "pid": 4420,
            "bundle": "/run/b",
            "annotations": {"k": "v"},
            "futureField": 1,
        }
    )
    assert parse_state(raw.encode()) == HookState("/run/b", 4420)


def test_parse_state_ignores_what_it_does_not_use():
    """A newer runtime's status name, or odd ids and annotations, never fail a container start."""
    raw = {"ociVersion": "9.9", "status": "hibernating", "annotations": {"a": 1}, "bundle": "/b", "pid": 7}
    assert parse_state(json.dumps(raw)) == HookState("/b", 7)
    assert parse_state(json.dumps({"bundle": "/b"})) == HookState("/b", None)


def test_parse_state_minimal_pid_absent_or_zero():
    base = {"ociVersion": "1.0.2", "id": "c1", "status": "created", "bundle": "/b"}
    assert parse_state(json.dumps(base)).pid is None
    assert parse_state(json.dumps({**base, "pid": 0})).pid is None


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "empty"),
        (b"\xff", "not UTF-8"),
        (b"{", "invalid JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"ociVersion": "1", "id": "c", "status": "creating"}', "missing 'bundle'"),
        (b'{"bundle": ""}', "'bundle' must be a non-empty string"),
        (b'{"bundle": "/b", "pid": NaN}', "NaN is not JSON"),
        (b'{"ociVersion": "1", "id": "c", "status": "creating", "bundle": "b"}', "must be an absolute path"),
        (b'{"ociVersion": "1", "id": "c", "status": "creating", "bundle": "/b", "pid": true}', "'pid' must be"),
        (b'{"ociVersion": "1", "id": "c", "status": "creating", "bundle": "/b", "pid": -3}', "'pid' must be"),
    ],
)
def test_parse_state_errors(raw, message):
    with pytest.raises(StateError, match=message) as info:
        parse_state(raw)
    assert str(info.value).startswith("OCI state on stdin: ") and "\n" not in str(info.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    max_leaves=10,
)
state_like = st.fixed_dictionaries(
    {},
    optional={k: json_values for k in ("ociVersion", "id", "status", "annotations")}
    | {
        "pid": st.one_of(json_values, st.integers(-1, 1 << 22)),
        "bundle": st.one_of(json_values, st.text(max_size=12).map(lambda t: "/" + t)),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=64), state_like))
def test_parse_state_never_raises_anything_but_state_error(given_state):
    """A one-line StateError, or the state's absolute bundle and its pid (None for absent or 0)."""
    raw = given_state if isinstance(given_state, bytes) else json.dumps(given_state).encode()
    try:
        state = parse_state(raw)
    except StateError as e:
        assert "\n" not in str(e) and str(e).startswith("OCI state on stdin: ")
        return
    assert state.bundle.startswith("/") and "\0" not in state.bundle
    assert state.pid is None or (type(state.pid) is int and state.pid > 0)
    if isinstance(given_state, dict):
        assert (state.bundle, state.pid) == (given_state["bundle"], given_state.get("pid") or None)


# ---------------------------------------------------------------------------- netlink encoding


def test_link_request_move_rename_encoding():
    body = rtnetlink.link_request(index=7, name="net0", netns_fd=5, mtu=9000, up=True)
    family, _type, index, flags, change = struct.unpack_from("=BxHiII", body)
    assert (family, index, flags, change) == (socket.AF_UNSPEC, 7, rtnetlink.IFF_UP, rtnetlink.IFF_UP)
    attrs = rtnetlink.parse_attrs(body, 16)
    assert attrs == {
        rtnetlink.IFLA_NET_NS_FD: struct.pack("=I", 5),
        rtnetlink.IFLA_IFNAME: b"net0\0",
        rtnetlink.IFLA_MTU: struct.pack("=I", 9000),
    }
    assert len(body) % 4 == 0  # every attribute padded to 4 bytes


def test_addr_request_encoding_v4_and_v6():
    v4 = rtnetlink.addr_request(3, "192.0.2.10", 24)
    assert struct.unpack_from("=BBBBI", v4) == (socket.AF_INET, 24, 0, 0, 3)
    assert rtnetlink.parse_attrs(v4, 8) == {
        rtnetlink.IFA_LOCAL: bytes([192, 0, 2, 10]),
        rtnetlink.IFA_ADDRESS: bytes([192, 0, 2, 10]),
    }
    v6 = rtnetlink.addr_request(3, "2001:db8::1", 64)
    assert struct.unpack_from("=BB", v6) == (socket.AF_INET6, 64)
    assert rtnetlink.parse_attrs(v6, 8)[rtnetlink.IFA_LOCAL] == socket.inet_pton(socket.AF_INET6, "2001:db8::1")


def test_extended_ack_text_is_read_from_a_capped_error():
    echoed = struct.pack("=IHHII", 40, rtnetlink.RTM_NEWLINK, 5, 1, 0)
    text = b"mtu greater than device maximum\0"  # 32 bytes: no padding needed
    tlv = struct.pack("=HH", 4 + len(text), rtnetlink.NLMSGERR_ATTR_MSG) + text
    payload = struct.pack("=i", -22) + echoed + tlv
    assert (
        rtnetlink._ext_ack_message(payload, rtnetlink.NLM_F_CAPPED | rtnetlink.NLM_F_ACK_TLVS)
        == "mtu greater than device maximum"
    )
    assert rtnetlink._ext_ack_message(payload, rtnetlink.NLM_F_CAPPED) is None


def test_parse_attrs_stops_at_truncated_attribute():
    good = rtnetlink._u32(rtnetlink.IFLA_MTU, 1500)
    assert rtnetlink.parse_attrs(good + struct.pack("=HH", 200, 3) + b"ab") == {
        rtnetlink.IFLA_MTU: struct.pack("=I", 1500)
    }


# ---------------------------------------------------------------------------- the process


def test_process_help_and_usage_errors():
    proc = run_cdigen("hook", "--help", check=0)
    assert proc.stdout.startswith("usage: cdigen hook [OPTIONS]\n")
    assert "--netdev HOSTIF=SETTINGS" in proc.stdout and "--poststop" in proc.stdout
    proc = run_cdigen("hook", "--xyzzy", input="{}", check=2)
    assert proc.stderr == "cdigen: error: hook: no such option: '--xyzzy' (see cdigen hook --help)\n"


def test_process_invalid_state_exit_3_one_line():
    proc = run_cdigen("hook", input="not json", check=3)
    assert proc.stderr.startswith("cdigen: error: OCI state on stdin: invalid JSON")
    assert proc.stderr.count("\n") == 1


def test_process_invalid_config_exit_3(tmp_path):
    (tmp_path / "config.json").write_text('{"linux": {"netDevices": {"eth0": {"mtu": 12}}}}')
    state = json.dumps({"ociVersion": "1.0.2", "id": "c", "status": "creating", "bundle": str(tmp_path), "pid": 1})
    proc = run_cdigen("hook", input=state, check=3)
    assert proc.stderr == "cdigen: error: config.json: linux.netDevices['eth0']: MTU 12 is outside 68..65535\n"


def test_process_missing_bundle_exit_3(tmp_path):
    state = json.dumps({"ociVersion": "1.0.2", "id": "c", "status": "creating", "bundle": str(tmp_path / "nope")})
    proc = run_cdigen("hook", input=state, check=3)
    assert proc.stderr.strip().endswith("nope/config.json: cannot read: No such file or directory")


def test_hook_path_does_not_import_typer_rich_pyroute2_or_dataclasses(tmp_path):
    """The hook is on the container-start path: lean imports only (docs/architecture.md, "Hot path")."""
    (tmp_path / "config.json").write_text('{"linux": {"namespaces": [{"type": "network"}]}}')
    state = json.dumps({"ociVersion": "1.0.2", "id": "c", "status": "creating", "bundle": str(tmp_path)})
    code = (
        "import sys, io; sys.stdin = io.TextIOWrapper(io.BytesIO(sys.argv[1].encode()));"
        "from cdigen.entry import main; rc = main(['hook']);"
        "print(rc, sorted(m for m in ('typer', 'rich', 'click', 'pyroute2', 'ruamel', 'jsonschema', 'jsonpatch',"
        " 'dataclasses', 'inspect') if m in sys.modules))"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code, state], capture_output=True, text=True, check=True).stdout
    assert out == "0 []\n"


def test_real_part_tests_skip_with_a_clear_reason_without_root(monkeypatch):
    import os

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert netns_skip_reason() == "needs root (network namespaces, veth pairs)"
    assert runc_skip_reason() == "needs root (network namespaces, veth pairs)"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr("shutil.which", lambda name: None if name == "runc" else f"/usr/bin/{name}")
    assert runc_skip_reason() == "needs runc (apt-get install runc)"
