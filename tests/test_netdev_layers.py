"""The one layered merge of netdev settings (`cdigen.netdev.layered`), walked pair by pair through
the paths that use it: `apply` (spec hook arguments, netDevices, annotation, the pod's network,
the caller's --netdev), the hook (its arguments under config.json's entry), `validate` and
`scan --netdev-config`. A later layer replaces only what it gives; an address alone keeps the
mask below it; an address with no mask anywhere is an error naming the interface."""

import itertools
import json

import pytest

from cdigen import netdev
from cdigen.apply import apply_devices
from cdigen.errors import EXIT_INVALID, EXIT_USAGE, CdigenError
from cdigen.hook.plan import netdevs_to_configure
from tests.helpers.proc import run_cdigen
from tests.helpers.specs import HOOK_PATH, cdi_spec, device, make_bundle, write_spec

HOST = "ens0f0np0"
LAYERS = netdev.LAYERS
FULL = "name=netl,address=192.0.2.10/24,mtu=9000"  # what a lower layer gives


def spec_for(layers: dict[str, str]) -> dict:
    """A spec whose device gpu0 carries HOST with these settings texts in its spec layers."""
    edits: dict = {"deviceNodes": [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3}]}
    annotations = {}
    # a host interface is carried by a hook argument or a netDevices entry; a bare one sets nothing
    arg = f"{HOST}={layers['hook arguments']}" if "hook arguments" in layers else HOST
    if "hook arguments" in layers or "netDevices" not in layers:
        edits["hooks"] = [{"hookName": "createRuntime", "path": HOOK_PATH, "args": ["cdigen", "hook", "--netdev", arg]}]
    if "netDevices" in layers:
        edits["netDevices"] = [{"hostInterfaceName": HOST, "name": layers["netDevices"].removeprefix("name=")}]
    if "annotation" in layers:
        annotations[f"netdev.cdigen.io/{HOST}"] = layers["annotation"]
    return cdi_spec([device("gpu0", edits, annotations)], "cdigen.io/gpu")


def applied(tmp_path, layers: dict[str, str]) -> dict:
    """config.json's linux.netDevices[HOST] after `apply_devices` with every layer given."""
    spec_dir = tmp_path / "cdi"
    write_spec(spec_dir, "gpu.json", spec_for(layers))
    bundle = make_bundle(tmp_path)
    setting = {k: [netdev.parse_arg(f"{HOST}={v}")] for k, v in layers.items() if k in ("pod network", "option")}
    apply_devices(
        str(bundle),
        ["cdigen.io/gpu=gpu0"],
        overrides=setting.get("option", []),
        network=setting.get("pod network", []),
        spec_dirs=[str(spec_dir)],
        hook_path=HOOK_PATH,
    )
    return json.loads((bundle / "config.json").read_text())["linux"]["netDevices"][HOST]


def lower_text(layer: str) -> str:
    return "name=netl" if layer == "netDevices" else FULL  # netDevices carries a name only


@pytest.mark.parametrize("lower,upper", list(itertools.combinations(LAYERS, 2)))
def test_an_upper_layer_replaces_only_what_it_gives(tmp_path, lower, upper):
    if upper == "netDevices":
        got = applied(tmp_path, {lower: FULL, upper: "name=netu"})
        assert got == {"name": "netu", "address": "192.0.2.10", "mask": "255.255.255.0", "mtu": 9000}
    elif lower == "netDevices":
        got = applied(tmp_path, {lower: "name=netl", upper: "address=192.0.2.12/25"})
        assert got == {"name": "netl", "address": "192.0.2.12", "mask": "255.255.255.128"}
    else:  # the upper address alone keeps the lower mask: never a silent /32
        got = applied(tmp_path, {lower: FULL, upper: "address=192.0.2.12"})
        assert got == {"name": "netl", "address": "192.0.2.12", "mask": "255.255.255.0", "mtu": 9000}


@pytest.mark.parametrize("lower,upper", [p for p in itertools.combinations(LAYERS, 2) if "netDevices" not in p])
def test_a_mask_never_crosses_address_families(tmp_path, lower, upper):
    with pytest.raises(CdigenError, match=f"{HOST}: address 2001:db8::5 has no mask") as e:
        applied(tmp_path, {lower: FULL, upper: "address=2001:db8::5"})
    assert e.value.exit_code == (EXIT_USAGE if upper == "option" else EXIT_INVALID)


@pytest.mark.parametrize("layer", [name for name in LAYERS if name != "netDevices"])
def test_an_address_with_no_mask_anywhere_is_an_error_naming_the_interface(tmp_path, layer):
    with pytest.raises(CdigenError, match=f"{HOST}: address 192.0.2.12 has no mask") as e:
        applied(tmp_path, {layer: "name=net0,address=192.0.2.12"})
    assert e.value.exit_code == (EXIT_USAGE if layer == "option" else EXIT_INVALID)


@pytest.mark.parametrize("layer", [name for name in LAYERS if name != "netDevices"])
def test_an_explicit_slash_32_stays_valid(tmp_path, layer):
    for text in ("address=192.0.2.12/32", "address=192.0.2.12,mask=32", "address=192.0.2.12,mask=255.255.255.255"):
        got = applied(tmp_path / text, {layer: text})
        assert got == {"name": HOST, "address": "192.0.2.12", "mask": "255.255.255.255"}


def test_the_hook_layers_config_json_over_its_arguments():
    args = [netdev.parse_arg(f"{HOST}={FULL}")]
    config = {"linux": {"netDevices": {HOST: {"name": "net0", "address": "192.0.2.12"}}}}
    assert netdevs_to_configure(config, args)[0].to_oci() == {
        "name": "net0",
        "address": "192.0.2.12",
        "mask": "255.255.255.0",
        "mtu": 9000,
    }
    with pytest.raises(CdigenError, match=f"{HOST}: address 192.0.2.12 has no mask") as e:
        netdevs_to_configure(config, [])
    assert e.value.exit_code == EXIT_INVALID


# ---------------------------------------------------------------------------- whole processes


def first_host() -> str:
    """The host interface of gpu0 in the switch-pair example (its first hook `--netdev`)."""
    spec = json.loads(run_cdigen("scan", "--example", "switch-pair", "--format", "json", check=0).stdout)
    args = next(d for d in spec["devices"] if d["name"] == "gpu0")["containerEdits"]["hooks"][0]["args"]
    return args[args.index("--netdev") + 1].partition("=")[0]


@pytest.fixture
def scan_spec_dir(tmp_path):
    """The switch-pair example scanned with a /24 on gpu0's NIC, as docs/commands.md's walk-through does."""
    host = first_host()
    config = tmp_path / "nics.yaml"
    config.write_text(f"{host}: {{address: 192.0.2.10/24}}\n")
    spec_dir = tmp_path / "cdi"
    spec_dir.mkdir()
    run_cdigen("scan", "--example", "switch-pair", "--netdev-config", config, "-o", spec_dir / "cdigen.yaml", check=0)
    return spec_dir, host


def test_apply_with_an_address_alone_keeps_the_spec_mask(tmp_path, scan_spec_dir):
    spec_dir, host = scan_spec_dir
    bundle = make_bundle(tmp_path)
    run_cdigen(
        "apply", bundle, "--spec-dir", spec_dir, "--hook-path", HOOK_PATH, "--device", "cdigen.io/gpu=gpu0",
        "--netdev", f"{host}=address=192.0.2.12", check=0,
    )  # fmt: skip
    entry = json.loads((bundle / "config.json").read_text())["linux"]["netDevices"][host]
    assert (entry["address"], entry["mask"]) == ("192.0.2.12", "255.255.255.0")


def test_apply_with_an_address_and_no_mask_anywhere_exits_2_and_writes_nothing(tmp_path):
    spec_dir = tmp_path / "cdi"
    write_spec(spec_dir, "gpu.json", spec_for({"hook arguments": "name=net0"}))
    bundle = make_bundle(tmp_path)
    before = (bundle / "config.json").read_bytes()
    proc = run_cdigen(
        "apply", bundle, "--spec-dir", spec_dir, "--hook-path", HOOK_PATH, "--device", "cdigen.io/gpu=gpu0",
        "--netdev", f"{HOST}=address=192.0.2.12",
    )  # fmt: skip
    assert proc.returncode == EXIT_USAGE
    assert proc.stderr == f"cdigen: error: --netdev {HOST}: address 192.0.2.12 has no mask; give ADDRESS/LEN or mask=\n"
    assert (bundle / "config.json").read_bytes() == before


def test_validate_flags_a_spec_address_without_a_mask(tmp_path):
    spec_dir = tmp_path / "cdi"
    write_spec(spec_dir, "gpu.json", spec_for({"annotation": "address=192.0.2.12"}))
    proc = run_cdigen("validate", "--spec-dir", spec_dir)
    assert proc.returncode == EXIT_INVALID
    assert f"{HOST}: address 192.0.2.12 has no mask" in proc.stdout + proc.stderr


def test_scan_netdev_config_address_without_a_mask_is_refused(tmp_path):
    config = tmp_path / "nics.yaml"
    host = first_host()
    config.write_text(f"{host}: {{address: 192.0.2.10}}\n")
    out = tmp_path / "spec.yaml"
    proc = run_cdigen("scan", "--example", "switch-pair", "--netdev-config", config, "-o", out)
    assert proc.returncode == EXIT_INVALID
    assert proc.stderr.count("\n") == 1 and f"{host}: address 192.0.2.10 has no mask" in proc.stderr
    assert not out.exists()
