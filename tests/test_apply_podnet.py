"""`cdigen apply` with the pod's network facts in config.json's annotations: address, mask and
MTU of the requested devices' host interfaces come from them (spec < pod network < --netdev);
bad facts are exit 3 with config.json byte-identical."""

import json

import pytest

from cdigen.errors import EXIT_INVALID, EXIT_OK
from cdigen.pod.annotations import NETWORK_STATUS, POD_NETWORKS
from tests.helpers.hostnet import cni_cache, cni_result, pci_devinfo, pci_function, status_entry
from tests.helpers.proc import run_cdigen
from tests.helpers.specs import HOOK_PATH, base_config, cdi_spec, make_bundle, scan_device, write_spec

KIND = "cdigen.io/gpu"
VF, OTHER_VF = "0000:85:02.5", "0000:85:02.6"
SANDBOX = "5b1e0e8a7c6b5a4c7e1e4b1d6a4f1f9d5b1e0e8a7c6b5a4c7e1e4b1d6a4f1f9d"


@pytest.fixture
def spec_dir(tmp_path):
    d = tmp_path / "cdi"
    gpu0 = scan_device(
        "gpu0",
        nics=[("ens1f0v5", "net1"), ("ens2f0", "net2")],
        settings={"ens1f0v5": "name=net1,mtu=1500", "ens2f0": "name=net2,address=198.51.100.9,mask=255.255.255.0"},
    )
    write_spec(d, "cdigen.json", cdi_spec([gpu0], kind=KIND))
    return d


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "root"
    pci_function(root, VF, "mlx5_core", {"ens1f0v5": "0a:58:0a:38:d9:ab"})
    pci_function(root, OTHER_VF, "mlx5_core", {"ens1f0v6": "0a:58:0a:38:d9:ac"})
    return root


def pod_annotations(**extra) -> dict:
    status = [
        status_entry("ovn-kubernetes", "eth0", ["10.128.0.5"], "0a:58:0a:80:00:05", default=True),
        status_entry("default/sriov-a", "net1", ["10.56.217.171"], "0a:58:0a:38:d9:ab", 9000, devinfo=pci_devinfo(VF)),
        status_entry("default/host-b", "net2", ["192.0.2.20"], mtu=4000),  # matched by its container name
        status_entry("default/sriov-c", "net7", ["10.57.0.7"], "0a:58:0a:38:d9:ac", devinfo=pci_devinfo(OTHER_VF)),
    ]
    ovn = {
        "default": {"ip_addresses": ["10.128.0.5/23"], "mac_address": "0a:58:0a:80:00:05"},
        "default/sriov-a": {"ip_addresses": ["10.56.217.171/24"], "mac_address": "0a:58:0a:38:d9:ab"},
        "default/host-b": {"ip_addresses": ["192.0.2.20/26"]},
        "default/sriov-c": {"ip_addresses": ["10.57.0.7/16"], "mac_address": "0a:58:0a:38:d9:ac"},
    }
    ann = {NETWORK_STATUS: json.dumps(status), POD_NETWORKS: json.dumps(ovn)}
    return ann | extra


def pod_bundle(tmp_path, annotations: dict):
    config = base_config()
    config["annotations"] = annotations
    return make_bundle(tmp_path, config)


def apply(bundle, spec_dir, root, *args, check=None):
    return run_cdigen(
        "apply", bundle, "--spec-dir", spec_dir, "--hook-path", HOOK_PATH, "--root", root,
        "--device", f"{KIND}=gpu0", *args, check=check,
    )  # fmt: skip


def net_devices(bundle) -> dict:
    return json.loads((bundle / "config.json").read_text())["linux"]["netDevices"]


def test_pod_network_fills_address_mask_and_mtu(tmp_path, spec_dir, root):
    bundle = pod_bundle(tmp_path, pod_annotations())
    apply(bundle, spec_dir, root, check=EXIT_OK)
    assert net_devices(bundle) == {
        # device-info pci -> sysfs netdev; the mask from pod-networks, the MTU from network-status
        "ens1f0v5": {"name": "net1", "address": "10.56.217.171", "mask": "255.255.255.0", "mtu": 9000},
        # matched by its container name; the pod's address wins over the spec's
        "ens2f0": {"name": "net2", "address": "192.0.2.20", "mask": "255.255.255.192", "mtu": 4000},
    }  # ens1f0v6 (another device's) and the default network are left alone
    hooks = json.loads((bundle / "config.json").read_text())["hooks"]["createRuntime"]
    assert "ens1f0v5=name=net1,address=10.56.217.171,mask=255.255.255.0,mtu=9000" in hooks[0]["args"]


def test_netdev_option_wins_over_the_pod_network(tmp_path, spec_dir, root):
    bundle = pod_bundle(tmp_path, pod_annotations())
    apply(bundle, spec_dir, root, "--netdev", "ens1f0v5=mtu=4200", check=EXIT_OK)
    assert net_devices(bundle)["ens1f0v5"] == {
        "name": "net1",
        "address": "10.56.217.171",
        "mask": "255.255.255.0",
        "mtu": 4200,
    }


def test_cni_result_cache_of_the_sandbox_is_read(tmp_path, spec_dir, root):
    cni_cache(root, "sriov-a", SANDBOX, "net1", cni_result("net1", ["10.56.217.171/24"], mtu=8000, pci=VF))
    bundle = pod_bundle(tmp_path, pod_annotations(**{"io.kubernetes.cri.sandbox-id": SANDBOX}))
    apply(bundle, spec_dir, root, check=EXIT_OK)
    assert net_devices(bundle)["ens1f0v5"]["mtu"] == 8000  # the CNI result's MTU wins


def test_without_network_annotations_nothing_is_read(tmp_path, spec_dir):
    bundle = pod_bundle(tmp_path, {"io.kubernetes.cri.sandbox-id": SANDBOX})
    apply(bundle, spec_dir, tmp_path / "no-such-root", check=EXIT_OK)
    assert net_devices(bundle)["ens1f0v5"] == {"name": "net1", "mtu": 1500}


def only(*status) -> dict:
    """Annotations with just these network-status entries (no pod-networks)."""
    return {NETWORK_STATUS: json.dumps(list(status)), POD_NETWORKS: "{}"}


def ovn_changed(network: str, entry: dict) -> dict:
    ovn = json.loads(pod_annotations()[POD_NETWORKS])
    return {POD_NETWORKS: json.dumps(ovn | {network: entry})}


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({NETWORK_STATUS: "[{"}, "k8s.v1.cni.cncf.io/network-status: invalid JSON"),
        (ovn_changed("default/sriov-a", {"ip_addresses": ["10.56.217.172/24"]}), "addresses disagree"),
        (only(status_entry("a", "net1", ["10.0.0.1/24"], devinfo=pci_devinfo(VF)))
         | {POD_NETWORKS: json.dumps({"a": {"ip_addresses": ["10.0.0.1/25"]}})},
         "network a: the mask of 10.0.0.1 disagrees: pod-networks says /25, network-status says /24"),
        (only(status_entry("x/y", "net5", ["10.0.0.1/24"], "0a:58:00:00:00:09")), "network x/y: no device matches it"),
        (only(status_entry("a", "net1", ["10.0.0.1/24"], devinfo=pci_devinfo(VF)),
              status_entry("b", "net4", ["10.0.0.2/24"], devinfo=pci_devinfo(VF))), "is network a's too"),
        (only(status_entry("a", "net1", ["10.0.0.1"], devinfo=pci_devinfo(VF))), "address 10.0.0.1 has no prefix"),
    ],
    ids=["malformed-json", "addresses-disagree", "mask-disagrees", "no-matching-device", "two-networks-one-device",
         "bare-ip"],
)  # fmt: skip
def test_bad_pod_network_is_exit_3_and_config_unchanged(tmp_path, spec_dir, root, change, fragment):
    bundle = pod_bundle(tmp_path, pod_annotations() | change)
    before = (bundle / "config.json").read_bytes()
    proc = apply(bundle, spec_dir, root)
    assert proc.returncode == EXIT_INVALID, proc.stderr
    assert proc.stderr.count("\n") == 1 and fragment in proc.stderr, proc.stderr
    assert (bundle / "config.json").read_bytes() == before


def test_pod_network_that_breaks_a_netdev_rule_is_exit_3(tmp_path, spec_dir, root):
    # IPv6 from the pod with the spec's MTU 1500 is fine; with an MTU of 1200 it is not (IPV6_MIN_MTU)
    status = [status_entry("a", "net1", ["fd00::1"], mtu=1200, devinfo=pci_devinfo(VF))]
    ann = {NETWORK_STATUS: json.dumps(status), POD_NETWORKS: json.dumps({"a": {"ip_addresses": ["fd00::1/64"]}})}
    bundle = pod_bundle(tmp_path, ann)
    before = (bundle / "config.json").read_bytes()
    proc = apply(bundle, spec_dir, root)
    assert proc.returncode == EXIT_INVALID and "MTU 1200 is outside 1280..65535" in proc.stderr, proc.stderr
    assert (bundle / "config.json").read_bytes() == before
