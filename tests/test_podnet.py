"""cdigen/pod/: the pod's network facts from annotations, device-info files and the CNI result
cache, merged with their precedence, matched to a fake host tree; every bad input one line."""

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdigen.errors import EXIT_INVALID, InvalidInput
from cdigen.pod import network
from cdigen.pod.annotations import NETWORK_STATUS, NETWORK_STATUS_OLD, POD_NETWORKS, is_sandbox, sandbox_id
from cdigen.pod.model import DeviceInfo, NetworkFacts, Route
from cdigen.pod.network import network_facts
from tests.helpers.hostnet import (
    bundle,
    cni_cache,
    cni_result,
    devinfo_file,
    pci_devinfo,
    pci_function,
    status_entry,
    virtual_netdev,
)

SANDBOX = "4c7e1e4b1d6a4f1f9d5b1e0e8a7c6b5a4c7e1e4b1d6a4f1f9d5b1e0e8a7c6b5a"
VF, VF2 = "0000:85:02.5", "0000:85:02.6"

# The example in ovn-kubernetes go-controller/pkg/util/pod_annotation.go (quoted in
# ecosystem.md §3.2), byte for byte.
OVN_EXAMPLE = (
    '{"default":{"ip_addresses":["192.168.0.5/24"],"mac_address":"0a:58:fd:98:00:01",'
    '"gateway_ips":["192.168.0.1"],"ip_address":"192.168.0.5/24","gateway_ip":"192.168.0.1"}}'
)
DEFAULT_STATUS = status_entry(
    "ovn-kubernetes", "eth0", ["192.168.0.5"], "0a:58:fd:98:00:01", default=True, gateway=["192.168.0.1"]
)


def sriov_status(**kw):
    args = {"ips": ["10.56.217.171"], "mac": "0a:58:0a:38:d9:ab", "mtu": 9000, "devinfo": pci_devinfo(VF)} | kw
    return status_entry("default/sriov-net", "net1", **args)


def sriov_ovn(**kw):
    return {"ip_addresses": ["10.56.217.171/24"], "mac_address": "0a:58:0a:38:d9:ab"} | kw


def annotations(status=None, ovn=None) -> dict:
    out = {}
    if status is not None:
        out[NETWORK_STATUS] = status if isinstance(status, str) else json.dumps(status)
    if ovn is not None:
        out[POD_NETWORKS] = ovn if isinstance(ovn, str) else json.dumps(ovn)
    return out


def rejects(ann, root, *fragments, **kw) -> str:
    with pytest.raises(InvalidInput) as info:
        network_facts(ann, str(root), **kw)
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == EXIT_INVALID
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.fixture
def root(tmp_path):
    return tmp_path / "root"


# ---------------------------------------------------------------------------- the formats' own examples


def test_ovn_source_example_is_the_default_network_on_no_device(root):
    (facts,) = network_facts({POD_NETWORKS: OVN_EXAMPLE}, str(root))
    assert facts == NetworkFacts(
        name="default",
        interface="eth0",
        addresses=("192.168.0.5/24",),
        mac="0a:58:fd:98:00:01",
        gateways=("192.168.0.1",),
        routes=(Route("0.0.0.0/0", "192.168.0.1"),),
        default=True,
        sources=("pod-networks",),
    )
    assert facts.device is None


def test_network_status_and_pod_networks_with_a_netdev_vf(root):
    pci_function(root, VF, "mlx5_core", {"ens1f0v5": "0a:58:0a:38:d9:ab"})
    ann = annotations([DEFAULT_STATUS, sriov_status()], json.loads(OVN_EXAMPLE) | {"default/sriov-net": sriov_ovn()})
    default, sriov = network_facts(ann, str(root))
    assert default.default and default.host_interface is None and default.addresses == ("192.168.0.5/24",)
    assert default.sources == ("pod-networks", "network-status")
    assert sriov == NetworkFacts(
        name="default/sriov-net",
        interface="net1",
        host_interface="ens1f0v5",
        pci_address=VF,
        addresses=("10.56.217.171/24",),  # the mask from pod-networks, the IP in both
        mtu=9000,  # pod-networks has no MTU: network-status's
        mac="0a:58:0a:38:d9:ab",
        pci_driver="mlx5_core",
        device_info=DeviceInfo("pci", "1.1.0", pci_address=VF),
        sources=("pod-networks", "network-status"),
    )
    assert not sriov.vfio


def test_vfio_function_is_the_device_without_a_host_interface(root):
    pci_function(root, VF, "vfio-pci")
    ann = annotations([DEFAULT_STATUS, sriov_status()], {"default": json.loads(OVN_EXAMPLE)["default"]})
    ann[POD_NETWORKS] = json.dumps(json.loads(ann[POD_NETWORKS]) | {"default/sriov-net": sriov_ovn()})
    _, sriov = network_facts(ann, str(root))
    assert (sriov.host_interface, sriov.pci_address, sriov.pci_driver, sriov.vfio) == (None, VF, "vfio-pci", True)
    assert sriov.device == f"PCI function {VF}"


def test_multi_net_spec_style_cidr_in_network_status_is_a_mask_source(root):
    pci_function(root, VF, "vfio-pci")
    (facts,) = network_facts(annotations([sriov_status(ips=["10.56.217.171/24"])]), str(root))
    assert facts.addresses == ("10.56.217.171/24",)


def test_old_annotation_name_is_read_when_the_new_one_is_absent(root):
    pci_function(root, VF, "vfio-pci")
    ann = {NETWORK_STATUS_OLD: json.dumps([sriov_status(ips=["10.56.217.171/24"])])}
    assert network_facts(ann, str(root))[0].pci_address == VF


# ---------------------------------------------------------------------------- precedence


def test_cni_result_wins_for_mtu_and_routes_and_orders_the_addresses(root):
    pci_function(root, VF, "vfio-pci")
    cni_cache(
        root,
        "sriov-net",
        SANDBOX,
        "net1",
        cni_result(
            "net1",
            ["fd00::5/64", "10.56.217.171/24"],
            mac="0a:58:0a:38:d9:ab",
            mtu=8000,
            gateway="10.56.217.1",
            routes=[{"dst": "0.0.0.0/0", "gw": "10.56.217.1"}, {"dst": "192.0.2.7/24"}],
        ),
    )
    pod_networks = sriov_ovn(ip_addresses=["10.56.217.171/24", "fd00::5/64"], gateway_ips=["10.56.217.254"])
    status = [sriov_status(ips=["10.56.217.171", "fd00::5"], mtu=9000, gateway=["10.56.217.250"])]
    (facts,) = network_facts(annotations(status, {"default/sriov-net": pod_networks}), str(root), SANDBOX)
    assert facts.addresses == ("fd00::5/64", "10.56.217.171/24")  # the CNI result's order
    assert facts.mtu == 8000  # CNI result over network-status
    # a route without gw takes the gateway of its family from `ips` (libcni ConfigureIface);
    # the destination is normalised to its network
    assert facts.routes == (Route("0.0.0.0/0", "10.56.217.1"), Route("192.0.2.0/24", "10.56.217.1"))
    assert facts.gateways == ("10.56.217.1",)
    assert facts.sources == ("CNI result", "pod-networks", "network-status")


def test_pod_networks_routes_beat_network_status_gateways(root):
    pci_function(root, VF, "vfio-pci")
    pod_networks = {
        "default/sriov-net": sriov_ovn(
            gateway_ips=["10.56.217.254"], routes=[{"dest": "10.96.0.0/16", "nextHop": "10.56.217.253"}]
        )
    }
    (facts,) = network_facts(annotations([sriov_status(gateway=["10.56.217.250"])], pod_networks), str(root))
    assert facts.routes == (Route("0.0.0.0/0", "10.56.217.254"), Route("10.96.0.0/16", "10.56.217.253"))
    assert facts.gateways == ("10.56.217.254",)


def test_network_status_gateway_is_a_default_route_when_nothing_else_has_routes(root):
    pci_function(root, VF, "vfio-pci")
    ann = annotations([sriov_status(gateway=["10.56.217.1"])], {"default/sriov-net": sriov_ovn()})
    (facts,) = network_facts(ann, str(root))
    assert facts.routes == (Route("0.0.0.0/0", "10.56.217.1"),)


def test_cni_result_alone_names_networks_and_eth0_is_the_default_one(root):
    pci_function(root, VF, "vfio-pci")
    cni_cache(root, "ovn-kubernetes", SANDBOX, "eth0", cni_result("eth0", ["10.128.0.5/23"], mac="0a:58:0a:80:00:05"))
    cni_cache(root, "sriov-net", SANDBOX, "net1", cni_result("net1", ["10.56.217.171/24"], pci=VF), legacy=True)
    cni_cache(root, "sriov-net", "othersandbox", "net1", "{not json: another pod's, never read")
    default, sriov = network_facts({}, str(root), SANDBOX)
    assert (default.name, default.interface, default.default, default.device) == ("ovn-kubernetes", "eth0", True, None)
    assert (sriov.name, sriov.pci_address, sriov.addresses) == ("sriov-net", VF, ("10.56.217.171/24",))


def test_cni_result_addresses_of_other_interfaces_are_not_this_ones(root):
    pci_function(root, VF, "vfio-pci")
    result = cni_result("net1", ["10.56.217.171/24"], pci=VF)
    result["ips"].append({"address": "10.0.0.1/16", "interface": 0})  # the bridge's
    cni_cache(root, "sriov-net", SANDBOX, "net1", result)
    assert network_facts({}, str(root), SANDBOX)[0].addresses == ("10.56.217.171/24",)


def test_device_info_file_stands_in_for_a_missing_device_info(root):
    # multus-cni #973: no device-info in network-status when the NAD is a plugin chain
    pci_function(root, VF, "vfio-pci")
    devinfo_file(root, "default/sriov-net", SANDBOX, "net1", pci_devinfo(VF, **{"rdma-device": "mlx5_3"}))
    status = [sriov_status(ips=["10.56.217.171/24"], devinfo=None)]
    (facts,) = network_facts(annotations(status), str(root), SANDBOX)
    assert facts.pci_address == VF and facts.device_info.rdma_device == "mlx5_3"
    # without the container id no file is read, and the network matches nothing
    rejects(annotations(status), root, "network default/sriov-net", "no device matches")


# ---------------------------------------------------------------------------- matching


def test_match_by_container_name(root):
    virtual_netdev(root, "ens3f0", "02:aa:bb:cc:dd:01")
    status = [status_entry("default/host", "net0", ["192.0.2.10/24"], "0a:58:00:00:00:01")]
    (facts,) = network_facts(annotations(status), str(root), netdevs={"ens3f0": "net0", "ens3f1": "net1"})
    assert facts.host_interface == "ens3f0"


def test_match_by_mac(root):
    virtual_netdev(root, "tap0", "0a:58:00:00:00:01", tap=True)
    virtual_netdev(root, "eth9", "02:00:00:00:00:09")
    status = [status_entry("default/tap", "net0", ["192.0.2.10/24"], "0A:58:00:00:00:01")]
    assert network_facts(annotations(status), str(root))[0].host_interface == "tap0"


def test_mac_shared_by_two_netdevs_is_ambiguous(root):
    virtual_netdev(root, "bond0", "0a:58:00:00:00:01")
    virtual_netdev(root, "bond0.10", "0a:58:00:00:00:01")
    status = [status_entry("default/vlan", "net0", ["192.0.2.10/24"], "0a:58:00:00:00:01")]
    rejects(annotations(status), root, "network default/vlan", "matches several host interfaces: bond0, bond0.10")


def test_rules_that_disagree_are_an_error(root):
    pci_function(root, VF, "mlx5_core", {"ens1f0v5": "0a:58:0a:38:d9:ab"})
    virtual_netdev(root, "ens3f0", "02:aa:bb:cc:dd:01")
    ann = annotations([sriov_status(ips=["10.56.217.171/24"])])
    rejects(ann, root, "default/sriov-net", "rules disagree", "ens1f0v5", "ens3f0", netdevs={"ens3f0": "net1"})


def test_pci_address_not_on_the_host(root):
    rejects(annotations([sriov_status(ips=["10.56.217.171/24"])]), root, "default/sriov-net", VF, "not in /sys/bus/pci")


def test_network_on_no_device(root):
    status = [DEFAULT_STATUS, status_entry("default/macvlan", "net1", ["192.0.2.10/24"], "0a:58:00:00:00:01")]
    rejects(annotations(status, json.loads(OVN_EXAMPLE)), root, "network default/macvlan", "no device matches")


def test_two_networks_on_one_device(root):
    pci_function(root, VF, "vfio-pci")
    status = [
        sriov_status(ips=["10.56.217.171/24"]),
        status_entry("default/other", "net2", ["10.1.0.5/24"], "0a:58:00:00:00:02", devinfo=pci_devinfo(VF)),
    ]
    rejects(annotations(status), root, "network default/other", f"PCI function {VF} is network default/sriov-net's too")


def test_vhost_user_socket_is_the_device(root):
    info = devinfo("vhost-user", "1.0.0", mode="server", path="/var/run/vhu/net1.sock")
    (facts,) = network_facts(annotations([sriov_status(ips=["10.56.217.171/24"], devinfo=info)]), str(root))
    assert facts.device == "vhost-user /var/run/vhu/net1.sock" and facts.host_interface is None


# ---------------------------------------------------------------------------- disagreements and bad input


@pytest.mark.parametrize(
    ("status", "ovn", "fragments"),
    [
        ([sriov_status()], {"default/sriov-net": sriov_ovn(ip_addresses=["10.56.217.171/23"])}, []),
        ([sriov_status()], None, ["address 10.56.217.171 has no prefix length", "network-status carries bare IPs"]),
        ([sriov_status(ips=["10.56.217.171/24"])], {"default/sriov-net": sriov_ovn(ip_addresses=["10.56.217.171/23"])},
         ["the mask of 10.56.217.171 disagrees: pod-networks says /23, network-status says /24"]),
        ([sriov_status(ips=["10.56.217.172"])], {"default/sriov-net": sriov_ovn()}, ["addresses disagree"]),
        ([sriov_status(mac="0a:58:0a:38:d9:ac")], {"default/sriov-net": sriov_ovn()}, ["the MAC disagrees"]),
    ],
    ids=["ok-mask-from-ovn", "bare-ip-no-cidr-source", "mask-disagrees", "address-sets-differ", "mac-disagrees"],
)  # fmt: skip
def test_address_and_mac_disagreements(root, status, ovn, fragments):
    pci_function(root, VF, "vfio-pci")
    if not fragments:
        assert network_facts(annotations(status, ovn), str(root))[0].addresses == ("10.56.217.171/23",)
        return
    rejects(annotations(status, ovn), root, "network default/sriov-net", *fragments)


def test_mask_disagreement_between_cni_result_and_pod_networks(root):
    pci_function(root, VF, "vfio-pci")
    cni_cache(root, "sriov-net", SANDBOX, "net1", cni_result("net1", ["10.56.217.171/25"]))
    ann = annotations([sriov_status()], {"default/sriov-net": sriov_ovn()})
    message = "mask of 10.56.217.171 disagrees: CNI result says /25, pod-networks says /24"
    rejects(ann, root, message, container_id=SANDBOX)


def test_device_info_from_annotation_and_file_disagree(root):
    pci_function(root, VF, "vfio-pci")
    pci_function(root, VF2, "vfio-pci")
    devinfo_file(root, "default/sriov-net", SANDBOX, "net1", pci_devinfo(VF2))
    ann = annotations([sriov_status(ips=["10.56.217.171/24"])])
    rejects(ann, root, "device-info disagrees", container_id=SANDBOX)


def test_pci_id_of_the_cni_result_disagrees_with_device_info(root):
    pci_function(root, VF, "vfio-pci")
    cni_cache(root, "sriov-net", SANDBOX, "net1", cni_result("net1", ["10.56.217.171/24"], pci=VF2))
    rejects(annotations([sriov_status()]), root, "PCI address disagrees", container_id=SANDBOX)


def ns(*entries, **entry) -> dict:
    """A network-status annotation: the entries given, or one named "a" with `entry`'s keys."""
    return {NETWORK_STATUS: json.dumps(list(entries) or [{"name": "a", **entry}])}


def ovn(**networks) -> dict:
    return {POD_NETWORKS: json.dumps({k.replace("_", "/"): v for k, v in networks.items()})}


def devinfo(kind, version="1.1.0", **sub):
    return {"type": kind, "version": version, **({kind: sub} if sub else {})}


VHU_BAD_MODE = devinfo("vhost-user", **{"mode": "x", "path": "/s"})
ROUTE_V6_VIA_V4 = {"ip_addresses": ["10.0.0.5/24"], "routes": [{"dest": "fd00::/64", "nextHop": "10.0.0.1"}]}
V6_DEFAULT_MTU_1200 = ovn(default={"ip_addresses": ["fd00::5/64"]}) | ns(
    {"name": "x", "interface": "eth0", "default": True, "mtu": 1200}
)


@pytest.mark.parametrize(
    ("ann", "fragment"),
    [
        ({NETWORK_STATUS: "[{"}, "k8s.v1.cni.cncf.io/network-status: invalid JSON"),
        ({NETWORK_STATUS: "{}"}, "expected a JSON list"),
        (ns({"interface": "net1"}), "missing 'name'"),
        (ns(ips="10.0.0.1"), "'ips' must be a list"),
        (ns(ips=["10.0.0.300"]), "invalid IP address"),
        (ns(mac="0a:58:zz:00:00:01"), "invalid MAC address"),
        (ns(mtu=20), "MTU 20 is outside"),
        (ns(mtu="9000"), "MTU must be an integer"),
        (ns(mtu=True), "MTU must be an integer"),
        (ns(interface="net/1"), "contains '/'"),
        (ns(default="yes"), "'default' must be true or false"),
        (ns({"name": "a", "interface": "n"}, {"name": "a", "interface": "n"}), "listed twice"),
        (ns({"name": "a", "interface": "n"}, {"name": "b", "interface": "n"}), "interface n is"),
        (ns(**{"device-info": devinfo("pci")}), "no 'pci' object"),
        (ns(**{"device-info": devinfo("usb")}), "unknown device-info type"),
        (ns(**{"device-info": {"type": "pci", "pci": {}}}), "missing 'version'"),
        (ns(**{"device-info": devinfo("pci", "2.0.0", x=1)}), "not 1.x.y"),
        (ns(**{"device-info": devinfo("pci", **{"pci-address": "85:02.5"})}), "invalid PCI address"),
        (ns(**{"device-info": VHU_BAD_MODE}), "mode must be client or server"),
        ({NETWORK_STATUS: 5}, "expected a string"),
        ({NETWORK_STATUS: '[{"name": "a", "ips": [NaN]}]'}, "invalid JSON"),
        ({POD_NETWORKS: "[]"}, "expected a JSON object"),
        (ovn(default={"ip_addresses": ["10.0.0.5"]}), "expected an address with a prefix length"),
        (ovn(default={"ip_addresses": ["10.0.0.5/33"]}), "invalid prefix length"),
        (ovn(default={"routes": [{"nextHop": "10.0.0.1"}]}), "missing 'dest'"),
        (ovn(default=ROUTE_V6_VIA_V4), "address families differ"),
        (ovn(a_b={"ip_addresses": ["10.0.0.5/24"]}), "network a/b: no source names its interface"),
        (V6_DEFAULT_MTU_1200, "MTU 1200 is outside 1280..65535"),
    ],
)
def test_bad_annotations_are_one_line_invalid_input(root, ann, fragment):
    rejects(ann, root, fragment)


def test_bad_cache_and_device_info_files_name_the_file(root):
    pci_function(root, VF, "vfio-pci")
    bad = {"kind": "cniCacheV1", "ifName": "net1", "result": {"ips": [{"address": "10.0.0.1"}]}}
    cni_cache(root, "sriov-net", SANDBOX, "net1", json.dumps(bad))
    rejects({}, root, f"/var/lib/cni/results/sriov-net-{SANDBOX}-net1", "prefix length", container_id=SANDBOX)


def test_bad_device_info_file(root):
    devinfo_file(root, "default/sriov-net", SANDBOX, "net1", "{")
    ann = annotations([sriov_status(ips=["10.56.217.171/24"], devinfo=None)])
    path = f"/var/run/k8s.cni.cncf.io/devinfo/cni/default-sriov-net-{SANDBOX}_net1"
    rejects(ann, root, f"{path}: invalid JSON", container_id=SANDBOX)


@pytest.mark.parametrize(
    "fifo, named",
    [
        ("sys/devices/virtual/net/eth9/address", "/sys/class/net/eth9/address"),  # read by the MAC match
        (f"var/run/k8s.cni.cncf.io/devinfo/cni/default-tap-{SANDBOX}_net0", None),
        (f"var/lib/cni/results/default-tap-{SANDBOX}-net0", None),
    ],
)
def test_a_fifo_in_the_tree_is_one_line_never_a_hang(tmp_path, root, fifo, named):
    """A FIFO where a file is read: refused in one line, exit 3 (a plain open would wait for a
    writer forever); a whole `cdigen dan` process, bounded by a timeout."""
    virtual_netdev(root, "eth9", "02:00:00:00:00:09")
    path = root / fifo
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    status = [status_entry("default/tap", "net0", ["192.0.2.10/24"], "0a:58:00:00:00:01")]
    ann = annotations(status) | {"io.kubernetes.cri.sandbox-id": SANDBOX}
    argv = ["dan", str(bundle(tmp_path, ann)), "--root", str(root), "--dan-dir", str(tmp_path / "dans")]
    proc = subprocess.run([sys.executable, "-m", "cdigen", *argv], capture_output=True, text=True, timeout=10)
    assert proc.returncode == EXIT_INVALID
    assert proc.stderr == f"cdigen: error: {named or '/' + fifo}: not a regular file\n"


def test_sandbox_id_and_container_type_annotations():
    assert sandbox_id({"io.kubernetes.cri.sandbox-id": "abc"}) == "abc"
    assert sandbox_id({"io.kubernetes.cri-o.SandboxID": "abc", "io.kubernetes.cri.sandbox-id": "abc"}) == "abc"
    with pytest.raises(InvalidInput, match="disagrees"):
        sandbox_id({"io.kubernetes.cri.sandbox-id": "abc", "io.kubernetes.cri-o.SandboxID": "def"})
    assert is_sandbox({}) and is_sandbox({"io.kubernetes.cri.container-type": "sandbox"})
    assert not is_sandbox({"io.kubernetes.cri-o.ContainerType": "container"})


# ---------------------------------------------------------------------------- for apply, the shim, the CNI plugin


def test_netdev_settings_take_the_first_ipv4_address_and_the_mtu(root):
    pci_function(root, VF, "mlx5_core", {"ens1f0v5": "0a:58:0a:38:d9:ab"})
    ovn_doc = {"default/sriov-net": sriov_ovn(ip_addresses=["fd00::5/64", "10.56.217.171/24"])}
    (facts,) = network_facts(annotations([sriov_status(ips=["fd00::5", "10.56.217.171"])], ovn_doc), str(root))
    settings = network.netdev_settings(facts)
    assert (settings.host, settings.name, settings.address, settings.mask, settings.mtu) == (
        "ens1f0v5",
        None,
        "10.56.217.171",
        "255.255.255.0",
        9000,
    )
    ann = annotations([sriov_status(ips=["fd00::5", "10.56.217.171"])], ovn_doc)
    assert network.overrides_for(ann, {"ens1f0v5": "net1"}, str(root)) == [settings]
    assert network.overrides_for({}, {"ens1f0v5": "net1"}, str(root)) == []  # no annotation: nothing read


def test_netdev_settings_of_a_network_without_host_interface(root):
    pci_function(root, VF, "vfio-pci")
    (facts,) = network_facts(annotations([sriov_status(ips=["10.56.217.171/24"])]), str(root))
    with pytest.raises(InvalidInput, match="no host interface"):
        network.netdev_settings(facts)


def test_facts_from_a_plugin_result(root):
    pci_function(root, VF, "vfio-pci")
    result = cni_result("net1", ["10.56.217.171/24"], mac="0a:58:0a:38:d9:ab", mtu=9000)
    facts = network.facts_from_result(result, "net1", "sriov-net", str(root), device_info=pci_devinfo(VF))
    assert (facts.name, facts.pci_address, facts.vfio, facts.mtu) == ("sriov-net", VF, True, 9000)


# ---------------------------------------------------------------------------- no input produces a traceback

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
status_like = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.sampled_from(["a", "b", "default/x", ""]) | json_values,
            "interface": st.sampled_from(["eth0", "net1", "n/1", ""]) | json_values,
            "ips": st.lists(st.sampled_from(["10.0.0.1", "10.0.0.1/24", "fd00::1", "x"]), max_size=3) | json_values,
            "mac": st.sampled_from(["0a:58:00:00:00:01", "zz"]) | json_values,
            "mtu": st.integers(0, 70000) | json_values,
            "default": st.booleans() | json_values,
            "gateway": st.lists(st.sampled_from(["10.0.0.254", "fd00::fe", "bad"]), max_size=2) | json_values,
            "device-info": json_values,
        },
    ),
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(status=status_like | json_values, ovn=json_values)
def test_no_input_produces_a_traceback(tmp_path_factory, status, ovn):
    root = tmp_path_factory.getbasetemp() / "empty-root"
    ann = {NETWORK_STATUS: json.dumps(status), POD_NETWORKS: json.dumps(ovn)}
    try:
        out = network_facts(ann, str(root))
    except InvalidInput as e:
        assert "\n" not in str(e)
    else:
        assert all(f.default and f.device is None for f in out)  # nothing else matches an empty host
