"""Property-based: whatever spec files and config.json hold, `apply_devices` (all of `cdigen
apply` but the CLI) either applies the request idempotently or refuses it in one line and
leaves config.json byte-identical. In-process, so that hundreds of inputs stay fast."""

import json
import os
import shutil
import tempfile

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cdigen import netdev
from cdigen.apply import apply_devices
from cdigen.cdi import load
from cdigen.errors import BadArgument, CdigenError
from tests.helpers.specs import HOOK_PATH, base_config, gpu_spec, to_yaml
from tests.helpers.strategies import mutate

_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.sampled_from(
        [
            "",
            "/dev/null",
            "dev/x",
            "/a/../b",
            "eth0",
            "net0",
            "A=1",
            "=x",
            "c",
            "rwm",
            "createRuntime",
            "1.1.0",
            "cdigen.io/gpu",
            "gpu0",
            "name=net9,mtu=9000",
            "mtu=5",
            "address=10.0.0.1/8",
        ]
    ),
)
_value = st.recursive(
    _scalar,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "path",
                    "hostPath",
                    "type",
                    "major",
                    "minor",
                    "name",
                    "env",
                    "hostInterfaceName",
                    "containerPath",
                    "hookName",
                    "args",
                    "options",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=10,
)
_KEYS = ["extra", "env", "mounts", "annotations", "netDevices", "process", "linux"]


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def node_paths(registry: load.Registry, devices: list[str]) -> set:
    """Paths of the device nodes of `devices` and of their specs' own edits."""
    paths = set()
    for name in devices:
        device = registry.devices[name]
        for edits in (device.spec.data.get("containerEdits") or {}, device.data.get("containerEdits") or {}):
            paths |= {node["path"] for node in edits.get("deviceNodes") or []}
    return paths


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    fmt=st.sampled_from(["yaml", "json"]),
    mutate_spec=st.booleans(),
    mutate_config=st.booleans(),
    request=st.lists(
        st.sampled_from(["cdigen.io/gpu=gpu0", "cdigen.io/gpu=gpu1"] * 3 + ["cdigen.io/gpu=gpu9"]),
        min_size=1,
        max_size=3,
    ),
    netdevs=st.lists(
        st.sampled_from(
            [
                "ens0f0np0=mtu=9000",
                "ens1f0np0=name=net0",
                "ens0f0np0=address=2001:db8::1/64",
                "eth5=mtu=1500",
                "ens1f0np0=address=10.0.0.2/8,mtu=68",
            ]
        ),
        max_size=2,
        unique_by=lambda a: a.partition("=")[0],
    ),
)
def test_any_input_is_applied_idempotently_or_refused_in_one_line(
    data, fmt, mutate_spec, mutate_config, request, netdevs
):
    """Refused: exit 2 (a --netdev that fits no requested device) or 3 (a bad spec or
    config.json, an unresolvable device), one line, config.json byte-identical. Applied:
    config.json holds what the result says, as JSON whose linux.devices has every device node
    of every requested device, and applying the same request again writes nothing."""
    spec = gpu_spec(2, settings={"ens0f0np0": "name=net0,address=192.0.2.1/24,mtu=9000"})
    config = base_config()
    config["annotations"] = {"cdi.k8s.io/x": "cdigen.io/gpu=gpu1"}
    if mutate_spec:
        spec = mutate(spec, data, _value, _KEYS)
    if mutate_config:
        config = mutate(config, data, _value, _KEYS)
    tmp = tempfile.mkdtemp(prefix="cdigen-prop-")
    try:
        os.makedirs(f"{tmp}/cdi")
        os.makedirs(f"{tmp}/bundle")
        with open(f"{tmp}/cdi/spec.{fmt}", "w") as f:
            f.write(to_yaml(spec) if fmt == "yaml" else json.dumps(spec))
        raw = json.dumps(config, indent="\t").encode()
        path = f"{tmp}/bundle/config.json"
        with open(path, "wb") as f:
            f.write(raw)

        def apply():
            return apply_devices(
                f"{tmp}/bundle", request, [netdev.parse_arg(a) for a in netdevs], [f"{tmp}/cdi"], hook_path=HOOK_PATH
            )

        try:
            result = apply()
        except CdigenError as e:
            event(f"exit {e.exit_code}")
            assert "\n" not in str(e)
            assert e.exit_code in (2, 3), e
            assert e.exit_code == 3 or (isinstance(e, BadArgument) and e.argument == "netdev"), e
            assert read(path) == raw
            return
        event("applied")
        assert read(path) == result.new
        after = json.loads(result.new)
        present = {node.get("path") for node in after["linux"].get("devices") or [] if isinstance(node, dict)}
        assert node_paths(load.load_registry([f"{tmp}/cdi"]), result.devices) <= present
        inode = os.stat(path).st_ino
        again = apply()
        assert (again.patch, again.new) == ([], result.new)
        assert read(path) == result.new and os.stat(path).st_ino == inode  # not even rewritten
    finally:
        shutil.rmtree(tmp)


def test_a_device_requested_twice_is_injected_once(tmp_path):
    (tmp_path / "cdi").mkdir()
    (tmp_path / "cdi" / "gpu.json").write_text(json.dumps(gpu_spec(1)))
    (tmp_path / "b").mkdir()
    config = base_config()
    config["annotations"] = {"cdi.k8s.io/a": "cdigen.io/gpu=gpu0,cdigen.io/gpu=gpu0"}
    (tmp_path / "b" / "config.json").write_text(json.dumps(config))
    result = apply_devices(
        str(tmp_path / "b"), ["cdigen.io/gpu=gpu0"], spec_dirs=[str(tmp_path / "cdi")], hook_path=HOOK_PATH
    )
    assert result.devices == ["cdigen.io/gpu=gpu0"]
    assert json.loads(result.new)["process"]["env"].count("NVIDIA_VISIBLE_DEVICES=void") == 1
