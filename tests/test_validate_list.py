"""What `cdigen validate` and `cdigen list` tell a user (issue 18, points 4 and 5): full names and
the NICs of every target in `list`, no silent success for a spec directory that is not there,
warnings for hooks that fail or strand a NIC, and one-letter vendor or class names refused."""

import os
import subprocess
import sys

import pytest

from cdigen.cdi import load
from cdigen.cdi.spec import TARGET_VERSIONS
from tests.helpers.proc import run_cdigen, run_in_process
from tests.helpers.specs import cdi_spec, device, write_spec

UUID_NAME = "GPU-62a97ac3-19fe-6bb6-79ab-5d0e1b2c3f40"


def cdigen_hooks(path: str, netdevs: list[str], poststop: bool = True) -> list[dict]:
    """The `cdigen hook` entries of a spec for target 0.5.0: the settings only in the arguments."""
    args = ["cdigen", "hook"] + [a for value in netdevs for a in ("--netdev", value)]
    hooks = [{"hookName": "createRuntime", "path": path, "args": args}]
    if poststop:
        hooks.append({"hookName": "poststop", "path": path, "args": args[:2] + ["--poststop"] + args[2:]})
    return hooks


def node(index: int) -> dict:
    return {"path": f"/dev/nvidia{index}", "type": "c", "major": 195, "minor": index}


@pytest.fixture
def hook_bin(tmp_path):
    """An executable named cdigen, so that hook paths raise no warning of their own."""
    path = tmp_path / "bin" / "cdigen"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def target_050(tmp_path, hook_bin):
    """A spec as written for the default target 0.5.0: the NICs only in the hook arguments;
    container names as written, templates included, and one NIC that keeps its host name."""
    devices = [
        device(
            UUID_NAME, {"deviceNodes": [node(0)], "hooks": cdigen_hooks(hook_bin, ["ibp20s0=name=net{n},mtu=4092"])}
        ),
        device(
            "gpu1",
            {"deviceNodes": [node(1)], "hooks": cdigen_hooks(hook_bin, ["ibp22s0=name=net%d", "ens1f0=mtu=9000"])},
        ),
    ]
    return write_spec(tmp_path / "cdi", "gpu.yaml", cdi_spec(devices, "cdigen.io/gpu", "0.5.0"))


# ---------------------------------------------------------------------------- list


def test_list_piped_is_tab_separated_with_full_names_and_the_hook_arguments_nics(target_050):
    proc = run_cdigen("list", "--spec-dir", target_050.parent, env={"COLUMNS": "40"}, check=0)
    assert proc.stdout.splitlines() == [
        "KIND\tDEVICE\tNETDEVS\tSPEC FILE",
        f"cdigen.io/gpu\t{UUID_NAME}\tibp20s0>net{{n}}\t{target_050}",
        f"cdigen.io/gpu\tgpu1\tibp22s0>net%d ens1f0\t{target_050}",
    ]
    assert proc.stderr == ""


def test_list_json_has_the_hook_arguments_nics(target_050):
    import json

    out = json.loads(run_cdigen("list", "--spec-dir", target_050.parent, "--json", check=0).stdout)
    assert [(d["name"], d["netDevices"]) for d in out["kinds"]["cdigen.io/gpu"]] == [
        (UUID_NAME, {"ibp20s0": "net{n}"}),
        ("gpu1", {"ibp22s0": "net%d", "ens1f0": None}),
    ]


def test_list_on_a_narrow_terminal_cuts_nothing(target_050):
    """On a terminal the columns are aligned, and still never cut or wrapped."""
    master, slave = os.openpty()
    env = dict(os.environ, COLUMNS="40", NO_COLOR="1")
    proc = subprocess.run(
        [sys.executable, "-m", "cdigen", "list", "--spec-dir", str(target_050.parent)],
        stdout=slave,
        stderr=subprocess.PIPE,
        env=env,
        timeout=120,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the other end is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.returncode == 0, proc.stderr
    lines = b"".join(chunks).decode().replace("\r\n", "\n").splitlines()
    assert [line.split() for line in lines] == [
        ["KIND", "DEVICE", "NETDEVS", "SPEC", "FILE"],
        ["cdigen.io/gpu", UUID_NAME, "ibp20s0>net{n}", str(target_050)],
        ["cdigen.io/gpu", "gpu1", "ibp22s0>net%d", "ens1f0", str(target_050)],
    ]
    assert len({line.index("NETDEVS") if i == 0 else line.index("ibp") for i, line in enumerate(lines)}) == 1


def test_list_a_spec_dir_that_does_not_exist(tmp_path):
    proc = run_cdigen("list", "--spec-dir", tmp_path / "typo", check=2)
    assert proc.stderr == f"cdigen: error: --spec-dir {tmp_path}/typo: no such directory\n"
    assert proc.stdout == ""


# ---------------------------------------------------------------------------- validate: spec directories


def test_validate_a_spec_dir_named_that_does_not_exist_is_an_error(tmp_path):
    (tmp_path / "cdi").mkdir()
    proc = run_cdigen("validate", "--spec-dir", tmp_path / "cdi", "--spec-dir", tmp_path / "cdj", check=2)
    assert proc.stderr == f"cdigen: error: --spec-dir {tmp_path}/cdj: no such directory\n"
    assert proc.stdout == ""


def test_validate_an_empty_directory_says_nothing_was_found(tmp_path):
    proc = run_cdigen("validate", "--spec-dir", tmp_path, check=0)
    assert proc.stdout == f"0 spec files found in {tmp_path}\n"
    assert proc.stderr == ""


def test_validate_without_the_default_directories_warns(tmp_path, monkeypatch):
    defaults = (str(tmp_path / "etc-cdi"), str(tmp_path / "run-cdi"))
    monkeypatch.setattr(load, "DEFAULT_SPEC_DIRS", defaults)
    proc = run_in_process("validate", check=0)
    assert proc.stderr == f"cdigen: warning: no CDI spec directory: {defaults[0]} and {defaults[1]} do not exist\n"
    assert proc.stdout == f"0 spec files found in {defaults[0]}, {defaults[1]}\n"
    os.mkdir(defaults[1])  # one of them is enough: no warning
    proc = run_in_process("validate", check=0)
    assert (proc.stdout, proc.stderr) == (f"0 spec files found in {defaults[0]}, {defaults[1]}\n", "")


# ---------------------------------------------------------------------------- validate: hooks


def test_validate_warns_about_hook_paths_this_host_cannot_run(tmp_path, hook_bin):
    not_executable = tmp_path / "plain"
    not_executable.write_text("")
    hooks = [
        {"hookName": "createContainer", "path": str(tmp_path / "gone" / "prepare")},
        {"hookName": "createContainer", "path": str(not_executable)},
        {"hookName": "createContainer", "path": str(tmp_path)},
        {"hookName": "createContainer", "path": hook_bin},
    ]
    devices = [device("d0", {"env": ["A=1"], "hooks": hooks}), device("d1", {"env": ["A=1"], "hooks": hooks[:1]})]
    spec = write_spec(tmp_path / "cdi", "s.yaml", cdi_spec(devices, "example.com/dev", "0.5.0"))
    proc = run_cdigen("validate", spec, check=0)
    tail = (
        "on this host: a runtime here fails to start a container with it (ignore this if the spec is for another host)"
    )
    assert proc.stderr.splitlines() == [
        f"cdigen: warning: {spec}: devices[0].containerEdits.hooks[0] (and 1 more): "
        f"hook path {tmp_path}/gone/prepare does not exist {tail}",
        f"cdigen: warning: {spec}: devices[0].containerEdits.hooks[1]: "
        f"hook path {not_executable} is not an executable file {tail}",
        f"cdigen: warning: {spec}: devices[0].containerEdits.hooks[2]: "
        f"hook path {tmp_path} is not an executable file {tail}",
    ]
    assert proc.stdout.endswith("1 spec file, 2 devices: valid\n")


def test_validate_warns_about_a_createruntime_entry_without_its_poststop_twin(tmp_path, hook_bin):
    other = tmp_path / "other" / "cdigen"
    other.parent.mkdir()
    other.symlink_to(hook_bin)
    twin_elsewhere = cdigen_hooks(str(other), ["ens3=name=net0"])[1]
    devices = [
        device("good", {"deviceNodes": [node(0)], "hooks": cdigen_hooks(hook_bin, ["ens0=name=net0"])}),
        device("alone", {"deviceNodes": [node(1)], "hooks": cdigen_hooks(hook_bin, ["ens1=name=net0"], False)}),
        device(  # the poststop entry brings home ens2a only
            "half",
            {
                "deviceNodes": [node(2)],
                "hooks": cdigen_hooks(hook_bin, ["ens2a", "ens2b=mtu=9000"], False)
                + cdigen_hooks(hook_bin, ["ens2a"])[1:],
            },
        ),
        device(  # a twin of another path does not count
            "other-path",
            {"deviceNodes": [node(3)], "hooks": [cdigen_hooks(hook_bin, ["ens3=name=net0"])[0], twin_elsewhere]},
        ),
        device("shared", {"deviceNodes": [node(4)], "hooks": cdigen_hooks(hook_bin, ["ens4=name=net0"], False)}),
        device(  # neither ldcache's entry nor a poststop entry alone needs a twin
            "ldcache",
            {
                "deviceNodes": [node(5)],
                "hooks": [
                    {"hookName": "createContainer", "path": hook_bin, "args": ["cdigen", "hook", "ldcache"]},
                    cdigen_hooks(hook_bin, ["ens5"])[1],
                ],
            },
        ),
    ]
    edits = {"hooks": cdigen_hooks(hook_bin, ["ens4=name=net0"])[1:]}  # the spec's own: shared's twin
    spec = write_spec(tmp_path / "cdi", "s.yaml", cdi_spec(devices, "cdigen.io/gpu", "0.5.0", edits))
    proc = run_cdigen("validate", spec, check=0)
    twin = "cdigen hook createRuntime entry without its poststop twin (same path, --poststop, the same --netdev)"
    stays = "the NIC would stay in the container's namespace when the container ends"
    assert proc.stderr.splitlines() == [
        f"cdigen: warning: {spec}: devices[1].containerEdits.hooks[0]: {twin} for ens1: {stays}",
        f"cdigen: warning: {spec}: devices[2].containerEdits.hooks[0]: {twin} for ens2b: {stays}",
        f"cdigen: warning: {spec}: devices[3].containerEdits.hooks[0]: {twin} for ens3: {stays}",
    ]
    assert proc.stdout.endswith("1 spec file, 6 devices: valid\n")


# ---------------------------------------------------------------------------- one-letter vendor or class


@pytest.mark.parametrize("kind, what", [("example.io/g", "class 'g'"), ("e/gpu", "vendor 'e'")])
def test_validate_refuses_a_one_letter_vendor_or_class_for_every_target(tmp_path, kind, what):
    devices = [device("gpu0", {"deviceNodes": [node(0)]})]
    spec = write_spec(tmp_path / "cdi", "s.yaml", cdi_spec(devices, kind, "0.3.0"))
    for target in ("--for", "podman-4"), *(("--cdi-version", v) for v in TARGET_VERSIONS):
        proc = run_in_process("validate", spec, *target, check=3)
        assert proc.stdout.splitlines() == [
            f"{spec}: kind: invalid {what}: one letter, on which every released Go CDI library (through v1.1.0) "
            "panics while loading the spec directory, crashing the engine that loads it",
            f"{spec}: cdiVersion 0.3.0 (needs 0.3.0): no engine release (its kind crashes them)",
        ], target
    assert run_cdigen("validate", spec, check=3).stderr == "cdigen: error: 1 problem in 1 of 1 spec file\n"
    two_letters = cdi_spec(devices, kind.replace("/g", "/gp").replace("e/", "ex/"), "0.3.0")
    run_cdigen("validate", write_spec(tmp_path / "ok", "s.yaml", two_letters), check=0)


@pytest.mark.parametrize("option, value", [("--vendor", "x"), ("--class", "g")])
def test_scan_refuses_a_one_letter_vendor_or_class(option, value, tmp_path):
    out = tmp_path / "spec.yaml"
    proc = run_cdigen("scan", "--example", "workstation", "--hook-path", "/usr/bin/cdigen", option, value, "-o", out)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"cdigen: error: {option} invalid {option[2:]} '{value}': one letter, ")
    assert proc.stderr.count("\n") == 1 and "panics" in proc.stderr
    assert not out.exists()
