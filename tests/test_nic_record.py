"""The NIC lifecycle's pure parts: the alias record and its file, the hook entries of both
phases, the netlink encoding of IFLA_IFALIAS, and the exits of `hook --poststop` and
`netdev restore` that need no privileges. The real-namespace part is test_nic_lifecycle.py."""

import json
import struct
import subprocess
import sys
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdigen import hookentry
from cdigen.argv import parse as argv_parse
from cdigen.errors import CdigenError, UsageError
from cdigen.hook import record, rtnetlink
from cdigen.hook.record import Record, comes_back, parse_alias, record_for
from tests.helpers.proc import run_cdigen


def fake_link(alias="", mtu=1500, up=True, kind=None, perm_mac=b""):
    return SimpleNamespace(alias=alias, mtu=mtu, up=up, kind=kind, perm_mac=perm_mac)


# ---------------------------------------------------------------------------- the alias record


def test_record_text_format():
    assert Record("ibp20s0", 4092, True).to_alias() == "cdigen host=ibp20s0 mtu=4092 up=1"
    assert Record("ibp20s0", 4092, False, "uplink to leaf 3").to_alias() == (
        "cdigen host=ibp20s0 mtu=4092 up=0 alias=uplink to leaf 3"
    )


@pytest.mark.parametrize(
    "alias",
    [
        "cdigen host=ibp20s0 mtu=4092 up=1",
        "cdigen host=ibp20s0 mtu=4092 up=0 alias=uplink to leaf 3",
        "cdigen host=e mtu=68 up=1 alias= spaces = and alias= inside ",
    ],
)
def test_record_round_trip(alias):
    assert parse_alias(alias).to_alias() == alias


@pytest.mark.parametrize(
    "alias",
    [
        "",
        "uplink to leaf 3",
        "cdigen",
        "cdigen host=",
        "cdigen host=eth0",
        "cdigen host=eth0 mtu=1500",
        "cdigen host=a/b mtu=1500 up=1",
        "cdigen host=eth0 mtu=abc up=1",
        "cdigen host=eth0 mtu=0 up=1",
        "cdigen host=eth0 mtu=1500 up=2",
        "cdigen host=eth0 mtu=1500 up=1 ",
        "cdigen host=eth0 mtu=1500 up=1 alias=",
        "cdigen host=eth0 mtu=1500 up=1 note=x",
        "cdigen  host=eth0 mtu=1500 up=1",
        "Cdigen host=eth0 mtu=1500 up=1",
    ],
)
def test_other_aliases_are_not_records(alias):
    assert parse_alias(alias) is None


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=80), st.text(max_size=60).map(lambda t: "cdigen host=" + t)))
def test_parse_alias_never_raises(alias):
    parsed = parse_alias(alias)
    assert parsed is None or parsed.to_alias() == alias


def test_record_keeps_a_foreign_alias_and_the_link_settings():
    assert record_for("eth1", fake_link("rack 7 port 2", mtu=9000, up=False)) == Record(
        "eth1", 9000, False, "rack 7 port 2"
    )
    assert record_for("eth1", fake_link(up=True), up=False).up is False  # a runtime moved it: unknown


def test_record_of_a_device_carrying_its_own_stale_record_keeps_the_earliest_alias():
    stale = "cdigen host=eth1 mtu=1500 up=1 alias=rack 7"
    assert record_for("eth1", fake_link(stale, mtu=1400)) == Record("eth1", 1400, True, "rack 7")


def test_another_hosts_record_is_refused():
    with pytest.raises(CdigenError, match=r"eth1: its interface alias is cdigen's record for eth9 .*restore eth9"):
        record_for("eth1", fake_link("cdigen host=eth9 mtu=1500 up=1"))


def test_alias_that_does_not_fit_beside_the_record_is_refused():
    fits = "x" * (255 - len("cdigen host=eth1 mtu=65535 up=1 alias="))
    assert len(record_for("eth1", fake_link(fits, mtu=65535)).to_alias().encode()) == 255
    with pytest.raises(CdigenError) as e:
        record_for("eth1", fake_link(fits + "y", mtu=65535))
    assert str(e.value) == (
        "eth1: its interface alias is 218 bytes; cdigen keeps it beside its own record in the alias, "
        "which leaves room for 217 (the kernel allows 255): shorten or clear it"
    )


def test_which_devices_come_back():
    assert comes_back(None) and comes_back("ipoib") and comes_back("can")
    assert not any(comes_back(k) for k in ("veth", "macvlan", "ipvlan", "tun", "bridge"))


# ---------------------------------------------------------------------------- the record file


def test_record_file_round_trip_and_removal(tmp_path, monkeypatch):
    monkeypatch.setenv("CDIGEN_STATE_DIR", str(tmp_path))
    rec = Record("ibp20s0", 4092, True)
    host_addresses = [("192.0.2.1", 24), ("2001:db8::1", 64)]
    record.write_file(rec, fake_link(kind=None, perm_mac=bytes.fromhex("b8cef6000001")), host_addresses, "br0")
    path = tmp_path / "netdevs" / "ibp20s0.json"
    assert json.loads(path.read_text()) == {
        "alias": "cdigen host=ibp20s0 mtu=4092 up=1",
        "host": "ibp20s0",
        "kind": None,
        "perm_mac": "b8:ce:f6:00:00:01",
        "returns": True,
        "addresses": ["192.0.2.1/24", "2001:db8::1/64"],
        "master": "br0",
    }
    stored = record.read_file("ibp20s0")
    assert (stored.record, stored.returns, stored.perm_mac) == (rec, True, bytes.fromhex("b8cef6000001"))
    assert (stored.addresses, stored.master) == (tuple(host_addresses), "br0")
    record.write_file(Record("cdgv0", 1500, False), fake_link(kind="veth"))
    assert record.read_file("cdgv0").returns is False
    record.remove_file("ibp20s0")
    assert not path.exists() and record.read_file("ibp20s0") is None
    record.remove_file("ibp20s0")  # already gone: fine


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        "{}",
        '{"alias": "x", "returns": true}',
        '{"alias": "cdigen host=other mtu=1 up=1", "returns": true}',
        '{"alias": "cdigen host=eth0 mtu=1 up=1", "returns": true, "addresses": ["192.0.2.1/33"]}',
        '{"alias": "cdigen host=eth0 mtu=1 up=1", "returns": true, "addresses": [7]}',
        '{"alias": "cdigen host=eth0 mtu=1 up=1", "returns": true, "master": "a/b"}',
        '{"alias": "cdigen host=eth0 mtu=1 up=1", "returns": true, "master": 3}',
    ],
)
def test_unusable_record_files_are_ignored(tmp_path, monkeypatch, text):
    monkeypatch.setenv("CDIGEN_STATE_DIR", str(tmp_path))
    (tmp_path / "netdevs").mkdir()
    (tmp_path / "netdevs" / "eth0.json").write_text(text)
    assert record.read_file("eth0") is None


def test_record_file_is_best_effort_and_never_leaves_its_directory(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("CDIGEN_STATE_DIR", str(tmp_path / "file"))  # not a directory
    record.write_file(Record("eth0", 1500, True), fake_link())  # no exception
    monkeypatch.setenv("CDIGEN_STATE_DIR", str(tmp_path))
    record.write_file(Record("..", 1500, True), fake_link())
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["file"]


# ---------------------------------------------------------------------------- netlink encoding


def test_alias_is_sent_without_nul_and_cleared_with_a_lone_nul():
    def alias_attr(alias):
        return rtnetlink.parse_attrs(rtnetlink.link_request(7, alias=alias), 16)[rtnetlink.IFLA_IFALIAS]

    assert alias_attr("cdigen host=eth0 mtu=1500 up=1") == b"cdigen host=eth0 mtu=1500 up=1"
    assert alias_attr("x" * 255) == b"x" * 255
    assert alias_attr("") == b"\0"
    assert rtnetlink.IFLA_IFALIAS not in rtnetlink.parse_attrs(rtnetlink.link_request(7, mtu=1500), 16)


def test_parse_link_reads_alias_and_permanent_mac():
    body = struct.pack("=BxHiII", 0, 1, 5, 0, 0)
    body += rtnetlink._str(rtnetlink.IFLA_IFNAME, "net0")
    body += rtnetlink._attr(rtnetlink.IFLA_IFALIAS, b"cdigen host=eth0 mtu=1500 up=1")
    body += rtnetlink._attr(rtnetlink.IFLA_PERM_ADDRESS, bytes.fromhex("b8cef6000001"))
    link = rtnetlink.parse_link(body)
    assert (link.name, link.alias, link.perm_mac) == (
        "net0",
        "cdigen host=eth0 mtu=1500 up=1",
        bytes.fromhex("b8cef6000001"),
    )
    bare = rtnetlink.parse_link(struct.pack("=BxHiII", 0, 1, 5, 0, 0))
    assert (bare.alias, bare.perm_mac) == ("", b"")


# ---------------------------------------------------------------------------- hook entries


ARG = "ibp20s0=name=net0,mtu=4092"


def test_entries_of_both_phases():
    assert hookentry.cdi_hooks("/usr/bin/cdigen", [ARG]) == [
        {"hookName": "createRuntime", "path": "/usr/bin/cdigen", "args": ["cdigen", "hook", "--netdev", ARG]},
        {"hookName": "poststop", "path": "/usr/bin/cdigen", "args": ["cdigen", "hook", "--poststop", "--netdev", ARG]},
    ]
    assert hookentry.oci_hook("/usr/bin/cdigen", poststop=True) == {
        "path": "/usr/bin/cdigen",
        "args": ["cdigen", "hook", "--poststop"],
    }


def test_poststop_entry_is_a_cdigen_hook_and_takes_new_settings():
    entry = hookentry.oci_hook("/usr/bin/cdigen", [ARG], poststop=True)
    assert hookentry.is_cdigen_hook(entry)
    refreshed = hookentry.with_netdev_args(entry, {"ibp20s0": "ibp20s0=name=net5"})
    assert refreshed["args"] == ["cdigen", "hook", "--poststop", "--netdev", "ibp20s0=name=net5"]


@pytest.mark.parametrize(
    "argv, values, poststop",
    [
        (["--poststop", "--netdev", ARG], [ARG], True),
        (["--netdev", ARG, "--poststop"], [ARG], True),
        (["--netdev", ARG], [ARG], False),
        (["--netdev", "--poststop"], ["--poststop"], False),  # a value, not the flag
        (["--poststop"], [], True),
    ],
)
def test_parse_hook_argv_accepts_the_poststop_flag(argv, values, poststop):
    assert hookentry.parse_hook_argv(argv) == values
    assert argv_parse(argv, hookentry.HOOK)["poststop"] is poststop


# ---------------------------------------------------------------------------- processes without privileges


def stopped_state(bundle) -> str:
    return json.dumps({"ociVersion": "1.0.2", "id": "c", "status": "stopped", "bundle": str(bundle)})


def test_poststop_invalid_state_exit_3_one_line():
    proc = run_cdigen("hook", "--poststop", input="[]", check=3)
    assert proc.stderr == "cdigen: error: OCI state on stdin: expected a JSON object, got list\n"


def test_poststop_refuses_a_host_name_that_is_not_an_interface_name(tmp_path):
    (tmp_path / "config.json").write_text('{"linux": {"netDevices": {"../../etc/x": {"name": "net0"}}}}')
    proc = run_cdigen("hook", "--poststop", input=stopped_state(tmp_path), check=3)
    assert (
        proc.stderr == "cdigen: error: config.json: linux.netDevices: host interface name '../../etc/x' contains '/'\n"
    )


def test_poststop_usage_error_exit_2():
    proc = run_cdigen("hook", "--poststop", "--frobnicate", input="{}", check=2)
    assert proc.stderr == "cdigen: error: hook: no such option: '--frobnicate' (see cdigen hook --help)\n"


def test_poststop_without_net_devices_is_a_no_op(tmp_path):
    (tmp_path / "config.json").write_text('{"linux": {}}')
    proc = run_cdigen("hook", "--poststop", input=stopped_state(tmp_path), check=0)
    assert (proc.stdout, proc.stderr) == ("", "")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["a/b"], "netdev restore: HOSTIF 'a/b' contains '/' (see cdigen netdev restore --help)"),
        (["x" * 16], f"netdev restore: HOSTIF '{'x' * 16}' is longer than 15 bytes (see cdigen netdev restore --help)"),
        (["--all"], "netdev restore: no such option: '--all' (see cdigen netdev restore --help)"),
    ],
)
def test_netdev_restore_usage_errors(argv, message):
    from cdigen.cli.netdev import parse_args

    with pytest.raises(UsageError) as e:
        parse_args(argv)
    assert str(e.value) == message
    proc = run_cdigen("netdev", "restore", *argv, check=2)
    assert proc.stderr == f"cdigen: error: {message}\n" and proc.stdout == ""


def test_netdev_restore_help_and_group_listing():
    assert run_cdigen("netdev", "restore", "--help", check=0).stdout.startswith("usage: cdigen netdev restore [HOSTIF]")
    assert "restore" in run_cdigen("netdev", "--help", check=0).stdout
    assert "netdev" in run_cdigen("--help", check=0).stdout


def test_poststop_and_restore_paths_do_not_import_typer_rich_yaml_or_dataclasses(tmp_path):
    """Both run where time counts (container deletion, boot): lean imports only."""
    (tmp_path / "config.json").write_text('{"linux": {}}')
    code = (
        "import sys, io; sys.stdin = io.TextIOWrapper(io.BytesIO(sys.argv[1].encode()));"
        "from cdigen.entry import main; rc = main(sys.argv[2:]);"
        "print(rc, sorted(m for m in ('typer', 'rich', 'click', 'pyroute2', 'ruamel', 'jsonschema', 'jsonpatch',"
        " 'dataclasses', 'inspect') if m in sys.modules))"
    )
    # `restore cdgnosuch0` reads the host's links (the rtnetlink client) and finds nothing to restore: 1.
    for argv, rc in (
        (["hook", "--poststop"], 0),
        (["netdev", "restore", "--help"], 0),
        (["netdev", "restore", "cdgnosuch0"], 1),
    ):
        out = subprocess.run(
            [sys.executable, "-c", code, stopped_state(tmp_path), *argv], capture_output=True, text=True, check=True
        ).stdout
        assert out.splitlines()[-1] == f"{rc} []", argv
