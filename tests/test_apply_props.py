"""Property-based: whatever spec files and config.json hold, `apply_devices` (all of `cdigen
apply` but the CLI) either succeeds or raises a one-line CdigenError and leaves config.json
byte-identical. In-process, so that hundreds of inputs stay fast."""

import json
import os
import shutil
import tempfile

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cdigen import netdev
from cdigen.errors import CdigenError
from cdigen.apply import apply_devices
from tests.apply_fixtures import HOOK_PATH, base_config, gpu_spec, to_yaml

KINDS = ["cdigen.io/gpu", "example.com/fpga"]
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.sampled_from(
    ["", "/dev/null", "dev/x", "/a/../b", "eth0", "net0", "A=1", "=x", "c", "rwm", "createRuntime", "1.1.0",
     "cdigen.io/gpu", "gpu0", "name=net9,mtu=9000", "mtu=5", "address=10.0.0.1/8"]))
_value = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["path", "hostPath", "type", "major", "minor", "name", "env", "hostInterfaceName", "containerPath",
                     "hookName", "args", "options", "x"]), inner, max_size=4), max_leaves=10)


def mutate(doc, data, depth=0):
    """Replace, delete or add one value somewhere in `doc` (JSON-like)."""
    if isinstance(doc, dict) and doc and depth < 6 and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(doc)))
        doc[key] = mutate(doc[key], data, depth + 1)
        return doc
    if isinstance(doc, list) and doc and depth < 6 and data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(doc) - 1))
        doc[i] = mutate(doc[i], data, depth + 1)
        return doc
    action = data.draw(st.sampled_from(["replace", "add", "delete"]))
    if action == "add" and isinstance(doc, dict):
        doc[data.draw(st.sampled_from(["extra", "env", "mounts", "annotations", "netDevices", "process", "linux"]))] = \
            data.draw(_value)
        return doc
    if action == "delete" and isinstance(doc, (dict, list)) and doc:
        if isinstance(doc, dict):
            del doc[data.draw(st.sampled_from(sorted(doc)))]
        else:
            del doc[data.draw(st.integers(0, len(doc) - 1))]
        return doc
    return data.draw(_value)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), fmt=st.sampled_from(["yaml", "json"]), mutate_spec=st.booleans(), mutate_config=st.booleans(),
       request=st.lists(st.sampled_from(["cdigen.io/gpu=gpu0", "cdigen.io/gpu=gpu1"] * 3 + ["cdigen.io/gpu=gpu9"]),
                        min_size=1, max_size=3),
       netdevs=st.lists(st.sampled_from(["ens0f0np0=mtu=9000", "ens1f0np0=name=net0", "ens0f0np0=address=2001:db8::1/64",
                                         "eth5=mtu=1500", "ens1f0np0=address=10.0.0.2/8,mtu=68"]), max_size=2,
                                     unique_by=lambda a: a.partition("=")[0]))
def test_no_input_yields_a_traceback(data, fmt, mutate_spec, mutate_config, request, netdevs):
    spec = gpu_spec(2, settings={"ens0f0np0": "name=net0,address=192.0.2.1/24,mtu=9000"})
    config = base_config()
    config["annotations"] = {"cdi.k8s.io/x": "cdigen.io/gpu=gpu1"}
    if mutate_spec:
        spec = mutate(spec, data)
    if mutate_config:
        config = mutate(config, data)
    tmp = tempfile.mkdtemp(prefix="cdigen-prop-")
    try:
        os.makedirs(f"{tmp}/cdi")
        os.makedirs(f"{tmp}/bundle")
        with open(f"{tmp}/cdi/spec.{fmt}", "w") as f:
            f.write(to_yaml(spec) if fmt == "yaml" else json.dumps(spec))
        raw = json.dumps(config, indent="\t").encode()
        with open(f"{tmp}/bundle/config.json", "wb") as f:
            f.write(raw)
        try:
            result = apply_devices(f"{tmp}/bundle", request, [netdev.parse_arg(a) for a in netdevs], [f"{tmp}/cdi"],
                                   hook_path=HOOK_PATH)
        except CdigenError as e:
            event(f"exit {e.exit_code}")
            assert "\n" not in str(e)
            with open(f"{tmp}/bundle/config.json", "rb") as f:
                assert f.read() == raw
        else:
            event("applied")
            with open(f"{tmp}/bundle/config.json", "rb") as f:
                assert f.read() == result.new
    finally:
        shutil.rmtree(tmp)


def test_a_device_requested_twice_is_injected_once(tmp_path):
    (tmp_path / "cdi").mkdir()
    (tmp_path / "cdi" / "gpu.json").write_text(json.dumps(gpu_spec(1)))
    (tmp_path / "b").mkdir()
    config = base_config()
    config["annotations"] = {"cdi.k8s.io/a": "cdigen.io/gpu=gpu0,cdigen.io/gpu=gpu0"}
    (tmp_path / "b" / "config.json").write_text(json.dumps(config))
    result = apply_devices(str(tmp_path / "b"), ["cdigen.io/gpu=gpu0"], spec_dirs=[str(tmp_path / "cdi")],
                           hook_path=HOOK_PATH)
    assert result.devices == ["cdigen.io/gpu=gpu0"]
    assert json.loads(result.new)["process"]["env"].count("NVIDIA_VISIBLE_DEVICES=void") == 1
