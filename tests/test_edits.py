"""Injection semantics (cdi-semantics.md §4, §6 vectors 27-35, 38), in-process and pure,
except for the host device nodes, which are the machine's real /dev/null, /dev/zero, a FIFO."""

import copy
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdigen import netdev
from cdigen.cdi import edits
from cdigen.cdi.load import Device, Spec
from cdigen.errors import BadArgument, CdigenError, InvalidInput
from tests.helpers.bad_specs import BAD_NETDEV_SETTINGS, BAD_PATHS, HOST_DEVICE_NODE_ERRORS
from tests.helpers.specs import HOOK_PATH, base_config, cdi_spec, device, devices_of, gpu_spec, loaded

EMPTY = {"linux": {}}


def make_spec(
    device_edits: dict | list[dict],
    spec_edits: dict | None = None,
    kind: str = "vendor.com/device",
    path: str = "/etc/cdi/test.yaml",
    annotations: list[dict] | None = None,
) -> Spec:
    """A loaded spec of devices dev0, dev1... with these edits (and annotations, in order)."""
    many = device_edits if isinstance(device_edits, list) else [device_edits]
    annotations = list(annotations or []) + [None] * (len(many) - len(annotations or []))
    devices = [device(f"dev{i}", e, a) for i, (e, a) in enumerate(zip(many, annotations, strict=True))]
    return loaded(cdi_spec(devices, kind, edits=spec_edits or None), path)


def inject(config: dict, devices: list[Device], overrides=(), hook_path=None) -> dict:
    merged = edits.merge_device_edits(devices)
    edits.with_netdev_layers(merged, overrides=overrides)
    return edits.apply_edits(config, merged, hook_path)


# ---------------------------------------------------------------------------- env


def test_env_last_injected_value_wins():  # vector 27
    out = inject({"linux": {}}, devices_of(make_spec({"env": ["FOO=old", "FOO=new"]})))
    assert out["process"]["env"] == ["FOO=new"]


def test_env_existing_key_is_replaced_in_place():  # vector 27, HEAD semantics (our choice)
    config = {"linux": {}, "process": {"env": ["FOO=old", "BAR=old"]}}
    out = inject(config, devices_of(make_spec({"env": ["FOO=new"]})))
    assert out["process"]["env"] == ["FOO=new", "BAR=old"]
    assert config["process"]["env"] == ["FOO=old", "BAR=old"]  # the input is not modified


def test_spec_edits_come_once_before_the_first_device_of_their_spec():  # vector 38 and §4.1
    a = make_spec([{"env": ["A0=1"]}, {"env": ["A1=1"]}], {"env": ["A_SPEC=1"]}, kind="a.com/x", path="/a.yaml")
    b = make_spec({"env": ["B0=1"]}, {"env": ["B_SPEC=1"]}, kind="b.com/x", path="/b.yaml")
    config = {"linux": {}, "process": {"env": ["ORIG_VAR1=1", "ORIG_VAR2=2"]}}
    out = inject(config, devices_of(a, 0) + devices_of(b, 0) + devices_of(a, 1))
    assert out["process"]["env"] == ["ORIG_VAR1=1", "ORIG_VAR2=2", "A_SPEC=1", "A0=1", "B_SPEC=1", "B0=1", "A1=1"]


# ---------------------------------------------------------------------------- device nodes


def test_device_node_completed_from_the_host():  # vector 28
    out = inject(EMPTY, devices_of(make_spec({"deviceNodes": [{"path": "/dev/null"}]})))
    assert out["linux"]["devices"] == [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}]
    assert out["linux"]["resources"]["devices"] == [
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
    ]


def test_minimal_node_without_host_node_is_used_as_is():  # vector 29
    node = {"path": "/dev/nil", "type": "c", "major": 1, "minor": 3}
    out = inject(EMPTY, devices_of(make_spec({"deviceNodes": [node]})))
    assert out["linux"]["devices"] == [{"path": "/dev/nil", "type": "c", "major": 1, "minor": 3}]
    assert out["linux"]["resources"]["devices"][0]["access"] == "rwm"


def test_minimal_node_gets_the_host_file_mode_but_keeps_its_numbers():  # v1.1.0 (commit 457489d)
    node = {
        "path": "/dev/mine",
        "hostPath": "/dev/null",
        "type": "c",
        "major": 7,
        "minor": 9,
        "permissions": "rw",
        "uid": 5,
    }
    out = inject(
        {"linux": {}, "process": {"user": {"uid": 1000, "gid": 1000}}}, devices_of(make_spec({"deviceNodes": [node]}))
    )
    assert out["linux"]["devices"] == [
        {"path": "/dev/mine", "type": "c", "major": 7, "minor": 9, "fileMode": 0o666, "uid": 5, "gid": 1000}
    ]
    assert out["linux"]["resources"]["devices"] == [
        {"allow": True, "type": "c", "major": 7, "minor": 9, "access": "rw"}
    ]


def test_fifo_gets_no_cgroup_rule(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o640)
    out = inject(EMPTY, devices_of(make_spec({"deviceNodes": [{"path": "/dev/fifo", "hostPath": str(fifo)}]})))
    assert out["linux"]["devices"] == [{"path": "/dev/fifo", "type": "p", "major": 0, "minor": 0, "fileMode": 0o640}]
    assert "resources" not in out["linux"] or not out["linux"]["resources"].get("devices")


@pytest.mark.parametrize("node, message", HOST_DEVICE_NODE_ERRORS)
def test_device_node_errors(node, message):
    with pytest.raises(InvalidInput) as e:
        edits.merge_device_edits(devices_of(make_spec({"deviceNodes": [node]})))
    assert message in str(e.value)
    assert str(e.value).startswith("/etc/cdi/test.yaml: device 'vendor.com/device=dev0': ")


def test_symlink_is_not_followed(tmp_path):
    (tmp_path / "null").symlink_to("/dev/null")
    with pytest.raises(InvalidInput, match="is not a device node"):
        edits.merge_device_edits(
            devices_of(make_spec({"deviceNodes": [{"path": "/dev/n", "hostPath": str(tmp_path / "null")}]}))
        )


def test_injected_node_replaces_one_with_the_same_path():
    config = {
        "linux": {
            "devices": [
                {"path": "/dev/null", "type": "c", "major": 9, "minor": 9},
                {"path": "/dev/other", "type": "c", "major": 8, "minor": 8},
            ]
        }
    }
    out = inject(config, devices_of(make_spec({"deviceNodes": [{"path": "/dev/null"}]})))
    assert [d["path"] for d in out["linux"]["devices"]] == ["/dev/other", "/dev/null"]
    assert out["linux"]["devices"][1]["major"] == 1


# ---------------------------------------------------------------------------- mounts


def mount(dest: str) -> dict:
    return {"destination": dest, "type": "bind", "source": "/src"}


def test_mounts_sorted_by_depth_stably():  # vector 30
    config = {"linux": {}, "mounts": [mount("/dest/path/b"), mount("/dest/path/a")]}
    out = inject(config, devices_of(make_spec({"mounts": [{"hostPath": "/e", "containerPath": "/dest/edit"}]})))
    assert [m["destination"] for m in out["mounts"]] == ["/dest/edit", "/dest/path/b", "/dest/path/a"]
    config = {"linux": {}, "mounts": [mount("/dest/path/c"), mount("/dest/path/b")]}
    out = inject(config, devices_of(make_spec({"mounts": [{"hostPath": "/a", "containerPath": "/dest/path/a"}]})))
    assert [m["destination"] for m in out["mounts"]] == ["/dest/path/c", "/dest/path/b", "/dest/path/a"]


def test_mount_with_same_destination_is_replaced_and_shaped_like_oci():
    config = {"linux": {}, "mounts": [mount("/x"), mount("/y")]}
    cdi = {"hostPath": "/host/x", "containerPath": "/x", "type": "bind", "options": ["ro", "rbind"]}
    out = inject(config, devices_of(make_spec({"mounts": [cdi]})))
    assert out["mounts"] == [
        mount("/y"),
        {"destination": "/x", "type": "bind", "source": "/host/x", "options": ["ro", "rbind"]},
    ]


def test_bind_mounts_unchanged_with_a_user_namespace():  # v1.1.0 (HEAD would add idmap)
    config = {"linux": {"namespaces": [{"type": "user"}]}}
    out = inject(config, devices_of(make_spec({"mounts": [{"hostPath": "/a", "containerPath": "/b", "type": "bind"}]})))
    assert out["mounts"] == [{"destination": "/b", "type": "bind", "source": "/a"}]


@pytest.mark.parametrize(
    "path, clean",
    [
        ("", "."),
        ("/", "/"),
        ("//a//b/", "/a/b"),
        ("/a/../..", "/"),
        ("a/../../b", "../b"),
        ("/a/./b/.", "/a/b"),
    ],
)
def test_go_clean(path, clean):
    assert edits.go_clean(path) == clean


# ---------------------------------------------------------------------------- hooks, rdt, gids, netdevs


def test_hooks_land_in_their_lists():  # vector 32
    names = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
    hooks = [{"hookName": n, "path": f"/bin/{n}", "args": [n, "x"], "env": ["A=1"], "timeout": 3} for n in names]
    out = inject(EMPTY, devices_of(make_spec({"hooks": hooks})))
    assert out["hooks"] == {n: [{"path": f"/bin/{n}", "args": [n, "x"], "env": ["A=1"], "timeout": 3}] for n in names}


def test_intel_rdt_replaced_whole():  # vector 33
    config = {"linux": {"intelRdt": {"closID": "clos-1", "schemata": ["L3:0=ff"], "enableMonitoring": True}}}
    out = inject(config, devices_of(make_spec({"intelRdt": {"closID": "clos-2", "l3CacheSchema": "L3:0=f"}})))
    assert out["linux"]["intelRdt"] == {"closID": "clos-2", "l3CacheSchema": "L3:0=f"}


def test_net_devices_overwrite_existing_keys():  # vector 34
    config = {"linux": {"netDevices": {"eno1": {"name": "netdev1"}}}}
    spec = make_spec(
        {
            "netDevices": [
                {"hostInterfaceName": "eno1", "name": "netdev2"},
                {"hostInterfaceName": "eno2", "name": "netdev1"},
            ]
        }
    )
    assert inject(config, devices_of(spec))["linux"]["netDevices"] == {
        "eno1": {"name": "netdev2"},
        "eno2": {"name": "netdev1"},
    }


@pytest.mark.parametrize(
    "existing, gids, expected",
    [  # vector 35
        (None, [4, 5, 6, 5, 6, 4], [4, 5, 6]),
        ([4], [4, 5], [4, 5]),
    ],
)
def test_additional_gids(existing, gids, expected):
    config = {"linux": {}} if existing is None else {"linux": {}, "process": {"user": {"additionalGids": existing}}}
    out = inject(config, devices_of(make_spec({"additionalGids": gids})))
    assert out["process"]["user"]["additionalGids"] == expected


def test_gid_zero_changes_nothing():  # vector 35
    assert inject(EMPTY, devices_of(make_spec({"additionalGids": [0]}))) == EMPTY


# ---------------------------------------------------------------------------- cdigen's netdev settings


def gpu_devices(**kw) -> list[Device]:
    return devices_of(loaded(gpu_spec(**kw), "/etc/cdi/gpu.yaml"))


def test_netdev_settings_come_from_annotations_then_overrides():
    devices = gpu_devices(count=2, settings={"ens0f0np0": "name=net0,address=192.0.2.10/24,mtu=9000"})
    override = netdev.parse_arg("ens1f0np0=address=2001:db8::1/64,mtu=1500")
    out = inject(EMPTY, devices, [override], hook_path=HOOK_PATH)
    assert out["linux"]["netDevices"] == {
        "ens0f0np0": {"name": "net0", "address": "192.0.2.10", "mask": "255.255.255.0", "mtu": 9000},
        "ens1f0np0": {"name": "net1", "address": "2001:db8::1", "mask": "64", "mtu": 1500},
    }


@pytest.mark.parametrize(
    "arg, error, message",
    [
        ("eth7=mtu=9000", BadArgument, "no requested device carries host interface eth7"),
        ("ens0f0np0=name=net1", BadArgument, "both map to container name net1"),
        ("ens0f0np0=mtu=1000", BadArgument, "outside 1280..65535 for IPv6"),  # with the spec's IPv6 address
    ],
)
def test_bad_overrides_are_bad_arguments(arg, error, message):
    devices = gpu_devices(count=2, settings={"ens0f0np0": "name=net0,address=2001:db8::1/64"})
    with pytest.raises(error) as e:
        inject(EMPTY, devices, [netdev.parse_arg(arg)])
    assert message in str(e.value) and e.value.argument == "netdev" and e.value.exit_code == 2


def test_two_hosts_one_container_name_from_files_is_invalid_input():
    a = make_spec({"netDevices": [{"hostInterfaceName": "eth1", "name": "net0"}]}, kind="a.com/x")
    b = make_spec({"netDevices": [{"hostInterfaceName": "eth2", "name": "net0"}]}, kind="b.com/x")
    with pytest.raises(InvalidInput, match="eth1 and eth2 both map to container name net0") as e:
        inject(EMPTY, devices_of(a) + devices_of(b))
    assert not isinstance(e.value, BadArgument) and e.value.exit_code == 3
    with pytest.raises(InvalidInput, match="both map to container name net0"):  # with one already there
        inject({"linux": {"netDevices": {"eth9": {"name": "net0"}}}}, devices_of(a))


@pytest.mark.parametrize("netdev, annotation, message", BAD_NETDEV_SETTINGS)
def test_bad_netdev_settings_in_specs_are_invalid_input(netdev, annotation, message):
    annotations = [{"netdev.cdigen.io/eth0": annotation}] if annotation else None
    spec = make_spec({"netDevices": [netdev]}, annotations=annotations)
    with pytest.raises(InvalidInput) as e:
        edits.merge_device_edits(devices_of(spec))
    assert message in str(e.value) and not isinstance(e.value, BadArgument)
    assert edits.spec_problems(spec.data) != []


def test_cdigen_hook_added_once_when_net_devices_are_there():
    spec = make_spec({"netDevices": [{"hostInterfaceName": "eth0", "name": "net0"}]})
    out = inject(EMPTY, devices_of(spec), hook_path="/opt/cdigen")
    assert out["hooks"] == {
        "createRuntime": [{"path": "/opt/cdigen", "args": ["cdigen", "hook"]}],
        "poststop": [{"path": "/opt/cdigen", "args": ["cdigen", "hook", "--poststop"]}],
    }
    assert inject(out, devices_of(spec), hook_path="/opt/cdigen") == out
    assert "hooks" not in inject(EMPTY, devices_of(spec), hook_path=None)
    # the spec's own `cdigen hook` entries (as scan writes them) are enough
    out = inject(EMPTY, gpu_devices(count=1), hook_path="/opt/cdigen")
    assert [h["path"] for h in out["hooks"]["createRuntime"]] == [HOOK_PATH]
    assert [h["path"] for h in out["hooks"]["poststop"]] == [HOOK_PATH]


# ---------------------------------------------------------------------------- paths, request, config shape


@pytest.mark.parametrize("container_edits, message", BAD_PATHS)
def test_relative_and_dotdot_paths_are_refused(container_edits, message):
    with pytest.raises(InvalidInput) as e:
        edits.merge_device_edits(devices_of(make_spec(container_edits)))
    assert message in str(e.value)


def test_a_tmpfs_source_is_free_form():
    spec = make_spec({"mounts": [{"hostPath": "tmpfs", "containerPath": "/run/x", "type": "tmpfs"}]})
    assert inject(EMPTY, devices_of(spec))["mounts"] == [{"destination": "/run/x", "type": "tmpfs", "source": "tmpfs"}]


@pytest.mark.parametrize(
    "annotations, expected",
    [
        (
            {"cdi.k8s.io/a": "v.com/c=d1,v.com/c=d2", "other": "x", "cdi.k8s.io/b": "v.com/c=d3"},
            ["v.com/c=d1", "v.com/c=d2", "v.com/c=d3"],
        ),
        ({}, []),
    ],
)
def test_requested_devices_from_annotations(annotations, expected):
    assert edits.requested_devices({"annotations": annotations}) == expected


@pytest.mark.parametrize("value", ["", "v.com/c=d1,", "v.com/c=d1, v.com/c=d2", "/dev/null", 5])
def test_bad_request_annotations(value):
    with pytest.raises(InvalidInput, match="config.json: annotation cdi.k8s.io/x: "):
        edits.requested_devices({"annotations": {"cdi.k8s.io/x": value}})


@pytest.mark.parametrize(
    "config, message",
    [
        ({"linux": {}, "process": []}, "process: expected an object"),
        ({"linux": {}, "process": {"env": "A=1"}}, "process.env: expected a list"),
        ({"linux": {}, "process": {"env": [1]}}, "process.env[0]: expected a string"),
        ({"linux": {"devices": {}}}, "linux.devices: expected a list"),
        ({"linux": {"devices": ["x"]}}, "linux.devices[0]: expected an object"),
        ({"linux": {"resources": []}}, "linux.resources: expected an object"),
        ({"linux": {"netDevices": []}}, "linux.netDevices: expected an object"),
        ({"linux": {}, "mounts": [1]}, "mounts[0]: expected an object"),
        ({"linux": {}, "hooks": {"createRuntime": {}}}, "hooks.createRuntime: expected a list"),
    ],
)
def test_config_of_the_wrong_shape_is_invalid_input(config, message):
    with pytest.raises(InvalidInput, match=f"config.json: {message}".replace("[", r"\[").replace("]", r"\]")):
        inject(
            config,
            gpu_devices(count=1)
            + devices_of(
                make_spec({"env": ["A=1"], "mounts": [{"hostPath": "/a", "containerPath": "/b"}]}, kind="x.com/y")
            ),
            hook_path=HOOK_PATH,
        )


# ---------------------------------------------------------------------------- idempotence, properties

EDIT_CHOICES = [
    {"env": ["A=1", "B=2"]},
    {"env": ["A=3"]},
    {"deviceNodes": [{"path": "/dev/null"}, {"path": "/dev/zero", "permissions": "rw"}]},
    {"deviceNodes": [{"path": "/dev/nvidia9", "type": "c", "major": 195, "minor": 9}]},
    {"mounts": [{"hostPath": "/usr/lib/x", "containerPath": "/usr/lib/x", "options": ["ro", "bind"]}]},
    {"mounts": [{"hostPath": "/opt/a", "containerPath": "/proc/driver/x"}, {"hostPath": "/b", "containerPath": "/b"}]},
    {"hooks": [{"hookName": "createContainer", "path": "/bin/true", "args": ["true"]}]},
    {"hooks": [{"hookName": "createRuntime", "path": "/usr/local/bin/cdigen", "args": ["cdigen", "hook"]}]},
    {"additionalGids": [44, 0, 44, 107]},
    {"intelRdt": {"closID": "c1"}},
    {"netDevices": [{"hostInterfaceName": "eth1", "name": "net1"}]},
    {"netDevices": [{"hostInterfaceName": "eth2", "name": "net2"}]},
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.integers(0, len(EDIT_CHOICES) - 1), min_size=1, max_size=5),
    spec_pick=st.one_of(st.none(), st.integers(0, len(EDIT_CHOICES) - 1)),
    order=st.permutations(range(5)),
)
def test_applying_the_same_devices_twice_changes_nothing(picks, spec_pick, order):
    spec = make_spec([EDIT_CHOICES[p] for p in picks], None if spec_pick is None else EDIT_CHOICES[spec_pick])
    devices = devices_of(spec, *[i for i in order if i < len(picks)])
    once = inject(base_config(), devices, hook_path=HOOK_PATH)
    assert inject(once, devices, hook_path=HOOK_PATH) == once


_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 70000), st.text(max_size=6)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
_config_keys = {
    "process": st.one_of(
        _values,
        st.fixed_dictionaries(
            {},
            optional={
                "env": _values,
                "user": st.one_of(
                    _values,
                    st.fixed_dictionaries({}, optional={"uid": _values, "gid": _values, "additionalGids": _values}),
                ),
            },
        ),
    ),
    "mounts": st.one_of(
        _values,
        st.lists(
            st.one_of(
                _values,
                st.fixed_dictionaries(
                    {"destination": st.one_of(st.text(max_size=8), _values)}, optional={"source": _values}
                ),
            ),
            max_size=3,
        ),
    ),
    "hooks": st.one_of(_values, st.dictionaries(st.sampled_from(["createRuntime", "prestart"]), _values, max_size=2)),
    "annotations": _values,
    "linux": st.fixed_dictionaries(
        {},
        optional={
            "devices": _values,
            "resources": st.one_of(_values, st.fixed_dictionaries({}, optional={"devices": _values})),
            "netDevices": _values,
            "intelRdt": _values,
        },
    ),
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    config=st.fixed_dictionaries(
        {"linux": _config_keys["linux"]}, optional={k: v for k, v in _config_keys.items() if k != "linux"}
    ),
    picks=st.lists(st.integers(0, len(EDIT_CHOICES) - 1), min_size=1, max_size=4),
)
def test_any_config_gives_a_result_or_a_one_line_error(config, picks):
    """A config.json of the wrong shape is invalid input (exit 3) named in one line; any other
    gets every node, env key and mount of the devices, and a second injection changes
    nothing. The input document is never modified."""
    spec = make_spec([EDIT_CHOICES[p] for p in picks])
    before = copy.deepcopy(config)
    try:
        edits.requested_devices(config)
        out = inject(config, devices_of(spec), hook_path=HOOK_PATH)
    except CdigenError as e:
        assert "\n" not in str(e)
        assert isinstance(e, InvalidInput) and e.exit_code == 3 and str(e).startswith("config.json: "), e
    else:
        injected = [EDIT_CHOICES[p] for p in picks]
        nodes = {n["path"] for e in injected for n in e.get("deviceNodes", [])}
        if nodes:
            assert nodes <= {n.get("path") for n in out["linux"]["devices"] if isinstance(n, dict)}
        env = {v.partition("=")[0] for e in injected for v in e.get("env", [])}
        if env:
            assert env <= {v.partition("=")[0] for v in out["process"]["env"]}
        mounts = {m["containerPath"] for e in injected for m in e.get("mounts", [])}
        if mounts:
            assert mounts <= {m.get("destination") for m in out["mounts"]}
        assert inject(out, devices_of(spec), hook_path=HOOK_PATH) == out
    assert config == before
