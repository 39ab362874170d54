"""Netdev settings: the kernel's interface-name rules, masks, MTU, and the three text shapes."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdigen import netdev
from cdigen.netdev import NetdevError


@pytest.mark.parametrize("name", ["eth0", "ens1f0np0", "a" * 15, "ibp20s0", "net-0_a.b", "v\u00e9th"])
def test_valid_interface_names(name):
    assert netdev.check_ifname(name) == name


@pytest.mark.parametrize(
    "name,why",
    [
        ("", "empty"),
        ("a" * 16, "longer than 15 bytes"),
        ("\u00e9" * 8, "longer than 15 bytes"),
        (".", "not allowed"),
        ("..", "not allowed"),
        ("a/b", "'/'"),
        ("a:b", "':'"),
        ("a b", "' '"),
        ("a\tb", "'\\\\t'"),
        ("a\xa0b", "'\\\\xa0'"),
        ("a%d", "'%'"),
        ("a,b", "','"),
        ("a=b", "'='"),
    ],
)
def test_invalid_interface_names(name, why):
    with pytest.raises(NetdevError, match=why):
        netdev.check_ifname(name)


@pytest.mark.parametrize("name,ok", [("net%d", True), ("n%d%d", False), ("n%s", False), ("%", False)])
def test_one_percent_d_template_allowed_for_container_names(name, ok):
    if ok:
        assert netdev.check_ifname(name, allow_template=True) == name
    else:
        with pytest.raises(NetdevError):
            netdev.check_ifname(name, allow_template=True)


def test_cidr_and_mask_forms_agree():
    a = netdev.parse_arg("ens1=name=net0,address=192.0.2.10/24,mtu=9000")
    b = netdev.parse_arg("ens1=mtu=9000,mask=255.255.255.0,address=192.0.2.10,name=net0")
    assert a == b
    assert a.to_oci() == {"name": "net0", "address": "192.0.2.10", "mask": "255.255.255.0", "mtu": 9000}
    assert netdev.parse_arg(a.to_arg()) == a  # the hook argument round-trips


def test_ipv6():
    cfg = netdev.parse_arg("ens1=address=2001:DB8::0:1/64,mtu=1280")
    assert (cfg.address, cfg.mask, cfg.family) == ("2001:db8::1", "64", 6)
    assert netdev.make("ens1", address="2001:db8::1", mask="ffff:ffff:ffff:ffff::").prefixlen == 64


@pytest.mark.parametrize(
    "arg,why",
    [
        ("x=address=192.0.2.1,mask=255.0.255.0", "not contiguous"),
        ("x=address=192.0.2.1/33", "too long"),
        ("x=address=192.0.2.1/24,mask=255.255.0.0", "disagree"),
        ("x=address=192.0.2.300", "invalid IP address"),
        ("x=address=192.0.2.1,mask=64", "too long"),  # a prefix length is fine, 64 is not IPv4
        ("x=address=2001:db8::1,mask=255.255.255.0", "not an IPv6 mask"),
        ("x=mask=255.255.255.0", "needs an address"),
        ("x=mtu=67", "outside 68..65535"),
        ("x=mtu=65536", "outside"),
        ("x=mtu=9k", "integer"),
        ("x=address=2001:db8::1/64,mtu=1279", "1280..65535 for IPv6"),
        ("x=name=eth0,name=eth1", "given twice"),
        ("x=colour=red", "expected name="),
        ("x=name=" + "n" * 16, "longer than 15"),
    ],
)
def test_invalid_settings(arg, why):
    with pytest.raises(NetdevError, match=why):
        netdev.parse_arg(arg)


def test_annotations_and_oci_entries():
    ann = {
        "netdev.cdigen.io/ens1": "name=net0,address=192.0.2.10,mask=255.255.255.0,mtu=9000",
        "other.example/x": "ignored",
    }
    cfgs = netdev.from_annotations(ann)
    assert list(cfgs) == ["ens1"]
    assert netdev.from_oci("ens1", cfgs["ens1"].to_oci()) == cfgs["ens1"]
    assert netdev.from_oci("ens1", {"name": "net1"}).to_oci() == {"name": "net1"}
    with pytest.raises(NetdevError, match="must be an object"):
        netdev.from_oci("ens1", ["net0"])


def test_merge_overrides_only_what_is_set():
    base = netdev.parse_arg("ens1=name=net0,address=192.0.2.10/24,mtu=9000")
    merged = netdev.layered("ens1", {"option": netdev.parse_arg("ens1=address=198.51.100.7/25")}, below=base)
    assert merged.to_oci() == {"name": "net0", "address": "198.51.100.7", "mask": "255.255.255.128", "mtu": 9000}
    with pytest.raises(NetdevError, match="for IPv6"):  # the merged result is re-validated
        netdev.layered(
            "ens1",
            {
                "netDevices": netdev.parse_arg("ens1=mtu=1279"),
                "option": netdev.parse_arg("ens1=address=2001:db8::1/64"),
            },
        )


def test_two_hosts_never_share_a_container_name():
    with pytest.raises(NetdevError, match="both map to container name net0"):
        netdev.check_unique_names([netdev.make("a", "net0"), netdev.make("b", "net0")])
    netdev.check_unique_names([netdev.make("a", "net%d"), netdev.make("b", "net%d"), netdev.make("c")])


_values = st.one_of(
    st.integers(-5, 70000).map(str),
    st.ip_addresses().map(str),
    st.tuples(st.ip_addresses(), st.integers(0, 130)).map(lambda a: f"{a[0]}/{a[1]}"),
    st.sampled_from(["255.255.255.0", "255.0.255.0", "64", "net0", "net%d", "n" * 15, "n" * 16, "a/b", " 9000 "]),
    st.text(max_size=6),
)
_args = st.tuples(
    st.one_of(st.sampled_from(["eth0", "ens1f0np0", "a" * 15, "a" * 16, "%d", " eth1 ", ""]), st.text(max_size=8)),
    st.lists(st.tuples(st.sampled_from(["name", "address", "mask", "mtu", "colour"]), _values), max_size=4),
).map(lambda a: a[0] + "=" + ",".join(f"{k}={v}" for k, v in a[1]))


@given(st.one_of(st.text(max_size=60), _args))
def test_parse_arg_never_raises_anything_else(text):
    """parse_arg refuses with a one-line NetdevError, or accepts a setting that the kernel and
    the OCI schema would take (MTU 68..65535, 1280.. with IPv6; a prefix length that fits the
    address) and that survives every shape it travels in unchanged."""
    try:
        cfg = netdev.parse_arg(text)
    except NetdevError as e:
        assert "\n" not in str(e)
        return
    assert netdev.check_ifname(cfg.host) == cfg.host
    assert cfg.name is None or netdev.check_ifname(cfg.name, allow_template=True) == cfg.name
    if cfg.mtu is not None:
        assert (1280 if cfg.family == 6 else 68) <= cfg.mtu <= 65535
    assert cfg.prefixlen is None or cfg.address is not None  # one layer: a mask never comes alone
    if cfg.prefixlen is not None:
        assert 0 <= cfg.prefixlen <= (32 if cfg.family == 4 else 128)
    elif cfg.address is not None:  # an address without a mask needs one from a lower layer
        with pytest.raises(netdev.LayerError, match="has no mask"):
            netdev.layered(cfg.host, {"option": cfg})
    assert netdev.parse_arg(cfg.to_arg()) == cfg
    assert netdev.from_annotations({netdev.annotation_key(cfg.host): cfg.to_text()}) == {cfg.host: cfg}
    assert netdev.from_oci(cfg.host, cfg.to_oci()).to_oci() == cfg.to_oci()
