"""Container names numbered per container: `--netdev-name 'net{n}'` gives every container its
NICs as net0, net1... in the order of its devices, whichever GPUs it got (docs/netdev.md,
"Names"). apply, the runtime shim (through apply) and the hook (for an engine that injected the
spec itself) number them alike; podman and runc end to end are in tests/test_podman.py."""

import json
import os

import pytest
from ruamel.yaml import YAML

from cdigen import netdev
from cdigen.errors import BadArgument
from cdigen.hook.plan import netdevs_to_configure
from cdigen.hookentry import oci_hook
from cdigen.netdev import NetdevError, NetdevSettings
from cdigen.scan.build import check_name_template
from tests.helpers.proc import run_cdigen, run_in_process
from tests.helpers.specs import HOOK_PATH, make_bundle

KIND = "cdigen.io/gpu"
TWO_SWITCHES = "numa 0\npci 0000:40 numa=0 ports: switch(gpu ib) switch(gpu ib)"


def test_numbered_counts_only_the_names_that_ask_for_it():
    settings = [
        NetdevSettings("ib3", "net{n}"),
        NetdevSettings("ib0", "storage"),
        NetdevSettings("ib5", "net{n}"),
        NetdevSettings("ib7"),
    ]
    assert [cfg.container_name for cfg in netdev.numbered(settings)] == ["net0", "storage", "net1", "ib7"]


def test_numbered_refuses_a_name_that_grows_past_15_bytes():
    settings = [NetdevSettings(f"ib{i}", "abcdefghijklmn{n}") for i in range(11)]
    with pytest.raises(NetdevError, match="abcdefghijklmn10.*longer than 15 bytes"):
        netdev.numbered(settings)


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("net{n}", None),
        ("{n}", None),
        ("n{n}{n}", "only one {n}"),
        ("net%d{n}", "only one {n}"),
        ("abcdefghijklmno{n}", "longer than 15 bytes"),
        ("net/{n}", "contains '/'"),
    ],
)
def test_container_name_template_rules(name, error):
    if error is None:
        assert netdev.make("ib0", name).name == name
    else:
        with pytest.raises(NetdevError, match=error):
            netdev.make("ib0", name)


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("net{n}", None),
        ("gpu{gpu}nic{n}", None),
        ("net{index:02}", None),
        ("net{n:02}", "takes no width"),
        ("net", "must contain {n} or {index}"),
        ("net{gpu}", "must contain {n} or {index}"),
        ("net{x}", "only {n}, {index} and {gpu}"),
    ],
)
def test_scan_name_template(template, error):
    if error is None:
        assert check_name_template(template) == template
    else:
        with pytest.raises(BadArgument, match=error):
            check_name_template(template)


def scan(tree, spec_dir, *options: str) -> dict:
    root = tree(TWO_SWITCHES)
    os.makedirs(spec_dir, exist_ok=True)
    out = os.path.join(spec_dir, "cdigen.yaml")
    run_in_process("scan", "--root", root, "--hook-path", HOOK_PATH, *options, "-o", out, check=0)
    with open(out) as f:
        return YAML(typ="safe", pure=True).load(f)


def hook_values(device: dict) -> list[str]:
    args = device["containerEdits"]["hooks"][0]["args"]
    return [a for i, a in enumerate(args) if args[i - 1] == "--netdev"]


def test_scan_leaves_the_template_for_the_container(tree, tmp_path):
    spec = scan(tree, tmp_path / "cdi", "--netdev-name", "net{n}")
    for device in spec["devices"][:2]:
        assert all("=name=net{n}" in v for v in hook_values(device)), device


def test_scan_for_cdi_1_1_0_leaves_netdevices_out_for_numbered_names(tree, tmp_path):
    """A netDevices name is one per device and runc >= 1.4 would create it as written; the
    hook gives a `{n}` name per container. Fixed names still go into netDevices."""
    spec = scan(tree, tmp_path / "a", "--netdev-name", "net{n}", "--cdi-version", "1.1.0")
    assert all("netDevices" not in d["containerEdits"] for d in spec["devices"])
    assert spec["cdiVersion"] == "0.6.0"  # the annotations; nothing needs 1.1.0 now

    fixed = scan(tree, tmp_path / "b", "--netdev-name", "net{index}", "--cdi-version", "1.1.0")
    assert fixed["cdiVersion"] == "1.1.0"
    assert [d["containerEdits"]["netDevices"][0]["name"] for d in fixed["devices"][:2]] == ["net0", "net1"]


def injected_config(*entries: list[str], net_devices: dict | None = None) -> dict:
    """config.json as a CDI injector leaves it: one `cdigen hook` createRuntime entry per
    device, in the order of the devices."""
    config = {"linux": {"namespaces": [{"type": "network"}]}}
    config["hooks"] = {"createRuntime": [oci_hook(HOOK_PATH, values) for values in entries]}
    if net_devices:
        config["linux"]["netDevices"] = net_devices
    return config


def test_each_hook_numbers_the_whole_container_alike():
    config = injected_config(["ib5=name=net{n},mtu=9000"], ["ib2=name=net{n}", "ib3=name=net{n}"])
    first = netdevs_to_configure(config, netdev.parse_args(["ib5=name=net{n},mtu=9000"]))
    second = netdevs_to_configure(config, netdev.parse_args(["ib2=name=net{n}", "ib3=name=net{n}"]))
    assert [(c.host, c.name) for c in first + second] == [("ib5", "net0"), ("ib2", "net1"), ("ib3", "net2")]


def test_hook_takes_the_name_config_json_fixes():
    """An injector that wrote linux.netDevices with a fixed name: that name, not a number,
    and the other NICs are numbered without it."""
    config = injected_config(["ib5=name=net{n}"], ["ib2=name=net{n}"], net_devices={"ib5": {"name": "storage"}})
    second = netdevs_to_configure(config, netdev.parse_args(["ib2=name=net{n}"]))
    first = netdevs_to_configure(config, netdev.parse_args(["ib5=name=net{n}"]))
    assert (first[0].name, second[0].name) == ("storage", "net0")


def test_hook_run_by_hand_numbers_its_own_after_the_containers():
    config = injected_config(["ib5=name=net{n}"])
    alone = netdevs_to_configure(config, netdev.parse_args(["ib9=name=net{n}"]))
    assert alone[0].name == "net1"


def apply(tmp_path, spec_dir, *devices: str, options=(), bundle_name="bundle"):
    bundle = make_bundle(tmp_path, name=bundle_name)
    args = [a for d in devices for a in ("--device", f"{KIND}={d}")]
    proc = run_cdigen("apply", bundle, "--spec-dir", spec_dir, "--hook-path", HOOK_PATH, *args, *options)
    with open(os.path.join(bundle, "config.json")) as f:
        return proc, json.load(f)


@pytest.mark.parametrize("order", [("gpu0", "gpu1"), ("gpu1", "gpu0")])
def test_apply_numbers_in_the_order_of_the_devices(tree, tmp_path, order):
    spec = scan(tree, tmp_path / "cdi", "--netdev-name", "net{n}")
    host = {d["name"]: hook_values(d)[0].partition("=")[0] for d in spec["devices"][:2]}

    proc, config = apply(tmp_path, tmp_path / "cdi", *order)

    assert proc.returncode == 0, proc.stderr
    names = {h: e["name"] for h, e in config["linux"]["netDevices"].items()}
    assert names == {host[order[0]]: "net0", host[order[1]]: "net1"}
    for entry in config["hooks"]["createRuntime"] + config["hooks"]["poststop"]:
        assert "{n}" not in " ".join(entry["args"])


def test_apply_one_device_gets_net0_whichever_it_is(tree, tmp_path):
    spec = scan(tree, tmp_path / "cdi", "--netdev-name", "net{n}")
    host = hook_values(spec["devices"][1])[0].partition("=")[0]

    proc, config = apply(tmp_path, tmp_path / "cdi", "gpu1")

    assert proc.returncode == 0, proc.stderr
    assert {h: e["name"] for h, e in config["linux"]["netDevices"].items()} == {host: "net0"}


def test_apply_refuses_a_number_that_meets_a_fixed_name(tree, tmp_path):
    """A NIC named net0 by the caller beside one numbered net0: refused, nothing written."""
    spec = scan(tree, tmp_path / "cdi", "--netdev-name", "net{n}")
    host0, host1 = (hook_values(d)[0].partition("=")[0] for d in spec["devices"][:2])

    proc, config = apply(tmp_path, tmp_path / "cdi", "gpu0", "gpu1", options=("--netdev", f"{host0}=name=eth9"))
    assert proc.returncode == 0, proc.stderr
    assert config["linux"]["netDevices"][host1]["name"] == "net0"  # eth9 takes no number

    taken = ("--netdev", f"{host1}=name=net0")
    proc, config = apply(tmp_path, tmp_path / "cdi", "gpu0", "gpu1", options=taken, bundle_name="b2")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "both map to container name net0" in proc.stderr
    assert "netDevices" not in config["linux"]


def test_a_spec_with_numbered_names_stays_on_the_fast_yaml_path(tree, tmp_path):
    """`net{n}` is a plain scalar in block YAML: apply reads such a spec without ruamel.yaml
    (whose import would cost more than the rest of apply; docs/benchmarks.md)."""
    from cdigen.cdi import goyaml

    scan(tree, tmp_path / "cdi", "--netdev-name", "net{n}")
    text = (tmp_path / "cdi" / "cdigen.yaml").read_text()
    assert "name=net{n}" in text
    assert goyaml.parse_subset(text) is not goyaml.NOT_IN_SUBSET
