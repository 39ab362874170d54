"""The runtime shim (`cdigen runtime`, `cdigen-runtime`): its reading of runc's and crun's
command lines, its settings, and the whole process -- first in front of a fake runtime that
records what it was started with (no root needed), then in front of Debian's runc driven the
way containerd's runc shim drives it (create, start, state, delete) with a busybox bundle,
and as podman's `--runtime`. The container must see the injected device node, environment
and configured netdev; a failed injection must start nothing, change nothing and say why in
one line, on stderr and in the runtime's --log file."""

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdigen.errors import InvalidInput, UsageError
from cdigen.shim import CONFIG_KEYS, load_settings, own_script, parse_runtime_args, resolve_runtime
from tests.helpers.netns import ip
from tests.helpers.proc import CDIGEN, SHIM
from tests.helpers.runc import build_rootfs, parse_ip_addr, runc_bundle
from tests.helpers.specs import FPGA_SPEC, base_config, cdi_spec, make_bundle, scan_device, write_spec

FPGA = "example.com/fpga=f1"


# ---------------------------------------------------------------------------- argument parsing

CONTAINERD = [
    "--root",
    "/run/containerd/runc/k8s.io",
    "--log",
    "/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1/log.json",
    "--log-format",
    "json",
    "create",
    "--bundle",
    "/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1",
    "--pid-file",
    "/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1/init.pid",
    "c1",
]


@pytest.mark.parametrize(
    "argv, command, bundle, cid",
    [
        (CONTAINERD, "create", "/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1", "c1"),
        # conmon (podman, CRI-O): --systemd-cgroup and --log-format=json, --no-pivot, console
        (
            ["--systemd-cgroup", "--log-format=json", "--log", "/l", "create", "--bundle", "/b", "--pid-file", "/p"]
            + ["--console-socket", "/s", "--no-pivot", "c2"],
            "create",
            "/b",
            "c2",
        ),
        # crun's argp forms: --opt=value everywhere, --preserve-fds N
        (
            ["--root=/r", "--log=/l", "--cgroup-manager=cgroupfs", "create", "--bundle=/b", "--preserve-fds", "2"]
            + ["--no-new-keyring", "c3"],
            "create",
            "/b",
            "c3",
        ),
        # Go's flag package: one dash for long options; bool flags as --debug=true
        (
            ["-root", "/r", "--debug=true", "-criu", "/usr/sbin/criu", "create", "-bundle", "/b", "c4"],
            "create",
            "/b",
            "c4",
        ),
        # --rootless takes a value (runc: true|false|auto)
        (["--rootless", "false", "--debug", "create", "-b", "/b", "c5"], "create", "/b", "c5"),
        # options after the ID (urfave/cli reorders, argp permutes); short forms
        (["create", "c6", "--bundle", "/b"], "create", "/b", "c6"),
        (["create", "-b=/b", "c7"], "create", "/b", "c7"),
        (["create", "-b/b", "c8"], "create", "/b", "c8"),
        # the default bundle is the current directory; `--` ends the options
        (["create", "c9"], "create", ".", "c9"),
        (["create", "--bundle", "/b", "--", "-c10"], "create", "/b", "-c10"),
        (["run", "-d", "--keep", "--bundle", "/b", "c11"], "run", "/b", "c11"),
        # an option we do not know: a value unless a subcommand follows it
        (["--frobnicate", "x", "create", "-b", "/b", "c12"], "create", "/b", "c12"),
        (["--frobnicate", "create", "-b", "/b", "c13"], "create", "/b", "c13"),
        (["--", "create", "c14"], "create", ".", "c14"),
    ],
)
def test_create_found_among_global_options(argv, command, bundle, cid):
    args = parse_runtime_args(argv)
    assert (args.command, args.bundle, args.container_id, args.help) == (command, bundle, cid, False)


def test_runtime_log_options_found():
    args = parse_runtime_args(CONTAINERD)
    assert (args.log, args.log_format) == (CONTAINERD[3], "json")
    args = parse_runtime_args(["--log=/x", "state", "c"])
    assert (args.log, args.log_format) == ("/x", "text")


@pytest.mark.parametrize(
    "argv, command",
    [
        (["--version"], None),
        (["-v"], None),
        (["--help"], None),
        ([], None),
        (["--root"], None),  # the value is missing: the runtime says so
        (["--root", "/r", "state", "c"], "state"),
        (["--root", "/r", "start", "c"], "start"),
        (["--debug", "kill", "c", "9"], "kill"),
        (["--rootless", "true", "delete", "--force", "c"], "delete"),
        (["features"], "features"),
        (["--criu", "/usr/sbin/criu", "checkpoint", "c"], "checkpoint"),
        (["exec", "--bundle", "/b", "c", "sh"], "exec"),  # exec's -b is not create's
    ],
)
def test_other_subcommands_are_not_create(argv, command):
    args = parse_runtime_args(argv)
    assert args.command == command and args.container_id is None


@pytest.mark.parametrize("argv", [["create", "--help", "c"], ["create", "-h"], ["run", "-?"], ["create", "--usage"]])
def test_create_help_injects_nothing(argv):
    assert parse_runtime_args(argv).help


@pytest.mark.parametrize("argv", [["create"], ["create", "a", "b"], ["create", "--bundle"]])
def test_create_without_exactly_one_id(argv):
    assert parse_runtime_args(argv).container_id is None


@given(
    st.lists(
        st.sampled_from(["create", "run", "--bundle", "-b", "--root", "--log", "--", "x", "-b=y", "--"]) | st.text()
    )
)
def test_parsing_never_raises(argv):
    parse_runtime_args(argv)


# ---------------------------------------------------------------------------- settings


def test_settings_from_config_file_then_environment(tmp_path):
    path = tmp_path / "runtime.json"
    path.write_text(json.dumps({"runtime": "crun", "spec_dirs": ["/a", "/b"], "log": "/l", "hook_path": "/h"}))
    env = {"CDIGEN_RUNTIME_CONFIG": str(path)}
    s = load_settings(env)
    assert (s.runtime, s.spec_dirs, s.log, s.hook_path) == ("crun", ["/a", "/b"], "/l", "/h")
    s = load_settings(env | {"CDIGEN_RUNTIME": "/usr/sbin/runc", "CDIGEN_RUNTIME_LOG": "/other"})
    assert (s.runtime, s.log) == ("/usr/sbin/runc", "/other")


@pytest.mark.parametrize(
    "text, message",
    [
        ("{", "invalid JSON"),
        ("[]", "expected a JSON object"),
        ('{"runtim": "runc"}', "unknown key 'runtim'"),
        ('{"spec_dirs": "/etc/cdi"}', "spec_dirs: expected a list of paths"),
        ('{"runtime": ""}', "runtime: empty"),
        ('{"log": 1}', "log: expected a string"),
    ],
)
def test_bad_config_file(tmp_path, text, message):
    path = tmp_path / "runtime.json"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=message):
        load_settings({"CDIGEN_RUNTIME_CONFIG": str(path)})
    assert set(CONFIG_KEYS) == {"runtime", "spec_dirs", "log", "hook_path"}


def test_hook_path_is_the_console_script_of_the_installation(tmp_path, monkeypatch):
    """Without a configured hook_path, the hook entries name the `cdigen` console script: the
    one the shim runs as (a link, `cdigen runtime`) or the one beside the `cdigen-runtime`
    script; None (the default hook path) when there is none."""
    link = tmp_path / "cdigen-runtime"
    link.symlink_to(CDIGEN)
    lone = tmp_path / "lone" / "cdigen-runtime"
    lone.parent.mkdir()
    lone.write_text("#!/bin/sh\n")
    lone.chmod(0o755)
    for argv0, expected in ((SHIM, CDIGEN), (str(link), CDIGEN), (CDIGEN, CDIGEN), (str(lone), None), ("", None)):
        monkeypatch.setattr(sys, "argv", [argv0])
        assert own_script() == (os.path.realpath(expected) if expected else None), argv0


def test_never_execs_itself(tmp_path):
    link = tmp_path / "cdigen-runtime"
    link.symlink_to(CDIGEN)
    other = tmp_path / "my-runtime"  # another name, the same file
    other.symlink_to(CDIGEN)
    for name in (str(link), CDIGEN, str(other)):
        with pytest.raises(UsageError, match="is cdigen itself"):
            resolve_runtime(name)
    with pytest.raises(UsageError, match="is cdigen itself"):
        resolve_runtime("cdigen", {"PATH": os.path.dirname(CDIGEN)})
    assert resolve_runtime("sh", {"PATH": "/nonexistent:/bin"}) == "/bin/sh"


# ---------------------------------------------------------------------------- the process, before a fake runtime

FAKE_RUNTIME = """#!/bin/sh
# Records its arguments (NUL-separated), its ignored signals and environment, and the bundle's
# config.json as it was when the runtime started.
out="$FAKE_OUT"
printf '%s\\0' "$@" > "$out/args"
grep '^SigIgn' /proc/self/status > "$out/sigign"
env > "$out/env"
while [ $# -gt 0 ]; do
  case "$1" in --bundle|-b) cp "$2/config.json" "$out/config.json";; esac
  shift
done
exit 0
"""


@pytest.fixture
def fake(tmp_path):
    """A fake runtime, a runtime.json naming the spec directory, and the shim's environment."""
    runtime = tmp_path / "fake-runc"
    runtime.write_text(FAKE_RUNTIME)
    runtime.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    spec_dir = tmp_path / "cdi"
    write_spec(spec_dir, "example-fpga.json", FPGA_SPEC)
    config = tmp_path / "runtime.json"
    config.write_text(json.dumps({"runtime": str(runtime), "spec_dirs": [str(spec_dir)], "hook_path": CDIGEN}))
    env = dict(os.environ, CDIGEN_RUNTIME_CONFIG=str(config), CDIGEN_RUNTIME_LOG=str(tmp_path / "shim.log"))
    env["FAKE_OUT"] = str(out)
    for key in ("CDIGEN_RUNTIME", "CDIGEN_DEBUG", "CDIGEN_RUNTIME_SHIM"):
        env.pop(key, None)
    shim = tmp_path / "cdigen-runtime"
    shim.symlink_to(CDIGEN)
    return {"out": out, "env": env, "shim": str(shim), "log": tmp_path / "shim.log", "dir": tmp_path}


def shim(fake, *argv, env=None, via="script"):
    """The shim as an engine starts it: the installed `cdigen-runtime` script (default), a
    `cdigen-runtime` link to the `cdigen` console script, or `cdigen runtime`."""
    cmd = {"script": [SHIM], "link": [fake["shim"]], "subcommand": [CDIGEN, "runtime"]}[via] + list(argv)
    return subprocess.run(cmd, capture_output=True, text=True, env=fake["env"] | (env or {}), timeout=60)


def received(fake) -> list[str] | None:
    path = fake["out"] / "args"
    return path.read_text().split("\0")[:-1] if path.exists() else None


@pytest.mark.parametrize(
    "argv",
    [
        ["--root", "/r", "state", "c1"],
        ["--root", "/r", "start", "c1"],
        ["--root", "/r", "kill", "c1", "KILL"],
        ["--root", "/r", "delete", "--force", "c1"],
        ["features"],
        ["--version"],
        ["create", "--help"],
    ],
)
@pytest.mark.parametrize("via", ["script", "link"])
def test_pass_through_gets_the_original_arguments(fake, argv, via):
    proc = shim(fake, *argv, via=via)
    assert proc.returncode == 0, proc.stderr
    assert received(fake) == argv
    assert proc.stderr == ""


def test_pass_through_imports_only_the_shim(fake):
    """A pass-through is Python's start, the shim's own modules and an exec: none of the stdlib
    modules that cost more than the rest together (re, json, enum, contextlib, signal...;
    docs/architecture.md, "Hot path"). Without site (whose editable-install finder imports re
    itself), cdigen found on PYTHONPATH."""
    env = fake["env"] | {"PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    del env["CDIGEN_RUNTIME_LOG"]  # the debugging log is JSON lines: it imports json
    proc = subprocess.run(
        [sys.executable, "-S", "-X", "importtime", SHIM, "--root", "/r", "state", "c1"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0 and received(fake) == ["--root", "/r", "state", "c1"], proc.stderr
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert {"cdigen.cli.runtime", "cdigen.shim", "cdigen.strictjson"} <= imported  # it did read runtime.json
    heavy = {"re", "json", "enum", "contextlib", "functools", "collections", "signal", "typing", "dataclasses"}
    assert not heavy & imported


def test_pass_through_never_reads_config_json(fake, tmp_path):
    bundle = make_bundle(tmp_path, "not json at all")
    proc = shim(fake, "--root", "/r", "delete", "--bundle", str(bundle), "c1")  # a (bogus) bundle option
    assert proc.returncode == 0 and received(fake)[-1] == "c1"
    proc = shim(fake, "--root", "/r", "create", "--bundle", str(bundle), "c1")  # create: the runtime says it
    assert proc.returncode == 0 and (bundle / "config.json").read_text() == "not json at all"


@pytest.mark.parametrize("via", ["script", "link"])
def test_create_injects_devices_from_the_container_env(fake, tmp_path, via):
    config = base_config()
    config["process"]["env"].append(f"CDIGEN_DEVICES={FPGA}, ")
    bundle = make_bundle(tmp_path, config)
    argv = ["--root", "/r", "--log", str(tmp_path / "log.json"), "--log-format", "json"]
    argv += ["create", "--bundle", str(bundle), "--pid-file", str(bundle / "init.pid"), "c1"]

    proc = shim(fake, *argv, via=via)

    assert proc.returncode == 0, proc.stderr
    assert received(fake) == argv
    seen = json.loads((fake["out"] / "config.json").read_text())  # as the runtime found it
    assert {"FPGA=f1", "FPGA_RUNTIME=1"} <= set(seen["process"]["env"])
    assert "/usr/lib/fpga" in {m["destination"] for m in seen["mounts"]}
    assert seen == json.loads((bundle / "config.json").read_text())
    log = [json.loads(line) for line in fake["log"].read_text().splitlines()]
    assert log[-1]["injected"] == [FPGA] and log[-1]["exec"].endswith("fake-runc")


def test_create_injects_devices_from_annotations(fake, tmp_path):
    config = base_config()
    config["annotations"] = {"cdi.k8s.io/fpga": FPGA}
    bundle = make_bundle(tmp_path, config)
    proc = shim(fake, "create", "-b", str(bundle), "c1", via="subcommand")
    assert proc.returncode == 0, proc.stderr
    assert "FPGA=f1" in json.loads((bundle / "config.json").read_text())["process"]["env"]


def test_create_without_devices_changes_nothing(fake, tmp_path):
    bundle = make_bundle(tmp_path)
    before = (bundle / "config.json").read_bytes()
    proc = shim(fake, "create", "--bundle", str(bundle), "c1")
    assert proc.returncode == 0 and received(fake) == ["create", "--bundle", str(bundle), "c1"]
    assert (bundle / "config.json").read_bytes() == before


def test_run_from_the_bundle_directory(fake, tmp_path):
    config = base_config()
    config["process"]["env"].append(f"CDIGEN_DEVICES={FPGA}")
    bundle = make_bundle(tmp_path, config)
    proc = subprocess.run(
        [fake["shim"], "run", "--detach", "c1"], cwd=bundle, capture_output=True, text=True, env=fake["env"]
    )
    assert proc.returncode == 0, proc.stderr
    assert "FPGA=f1" in json.loads((bundle / "config.json").read_text())["process"]["env"]


def test_signals_and_environment_of_the_runtime(fake):
    shim(fake, "state", "c1")
    ignored = int((fake["out"] / "sigign").read_text().split()[1], 16)
    assert not ignored & (1 << (13 - 1)), "SIGPIPE ignored in the runtime"  # Python ignores it
    assert not ignored & (1 << (25 - 1)), "SIGXFSZ ignored in the runtime"
    env = (fake["out"] / "env").read_text().splitlines()
    assert any(line.startswith("CDIGEN_RUNTIME_SHIM=") for line in env)


@pytest.mark.parametrize(
    "env_devices, code, message",
    [
        (
            "example.com/fpga=f9",
            3,
            "unresolvable CDI devices example.com/fpga=f9; spec directories: {cdi}; devices there, nearest first: "
            "example.com/fpga=f0, example.com/fpga=f1",
        ),
        ("nvidia.com/gpu", 3, "config.json: process.env CDIGEN_DEVICES: 'nvidia.com/gpu': expected vendor/class=name"),
    ],
)
@pytest.mark.parametrize("log_format", ["json", "text"])
def test_failed_injection_starts_nothing(fake, tmp_path, env_devices, code, message, log_format):
    config = base_config()
    config["process"]["env"].append(f"CDIGEN_DEVICES={env_devices}")
    bundle = make_bundle(tmp_path, config)
    before = (bundle / "config.json").read_bytes()
    log = tmp_path / "log.json"
    argv = ["--log", str(log), "--log-format", log_format, "create", "--bundle", str(bundle), "c1"]
    message = message.format(cdi=tmp_path / "cdi")

    proc = shim(fake, *argv)

    assert proc.returncode == code
    assert proc.stderr == f"cdigen: error: runtime create c1: {message}\n"
    assert received(fake) is None  # never started
    assert (bundle / "config.json").read_bytes() == before
    line = log.read_text()
    assert line.count("\n") == 1
    if log_format == "json":  # what containerd's shim reads back as the reason
        entry = json.loads(line)
        assert entry["level"] == "error" and entry["msg"] == proc.stderr.strip() and entry["time"]
    else:
        assert line.startswith('time="') and " level=error msg=" in line and message in line
    logged = json.loads(fake["log"].read_text().splitlines()[-1])
    assert logged["exit"] == code and message in logged["error"]


@pytest.mark.parametrize(
    "env, code, message",
    [
        ({"CDIGEN_RUNTIME": "/nonexistent/runc"}, 1, "runtime '/nonexistent/runc': not an executable file"),
        ({"CDIGEN_RUNTIME": "no-such-runtime"}, 1, "runtime 'no-such-runtime': not found on PATH"),
        ({"CDIGEN_RUNTIME": CDIGEN}, 2, "is cdigen itself"),
        ({"CDIGEN_RUNTIME_SHIM": "1"}, 2, "runtime loop"),
        ({"CDIGEN_RUNTIME_CONFIG": "/nonexistent.json"}, 3, "/nonexistent.json: cannot read"),
    ],
)
def test_bad_settings_fail_before_anything(fake, env, code, message):
    proc = shim(fake, "state", "c1", env=env)
    assert proc.returncode == code
    assert proc.stderr.startswith("cdigen: error: runtime: ") and message in proc.stderr
    assert proc.stderr.count("\n") == 1 and received(fake) is None


def test_crun_config_file_option(fake, tmp_path):
    """crun's --config FILE: a file asking for devices is refused (they would go into the
    wrong file); one asking for none is passed on."""
    config = base_config()
    config["annotations"] = {"cdi.k8s.io/fpga": FPGA}
    bundle = make_bundle(tmp_path, config)
    (bundle / "other.json").write_text(json.dumps(config))
    proc = shim(fake, "create", "--bundle", str(bundle), "--config", "other.json", "c1")
    assert proc.returncode == 2 and "injected into BUNDLE/config.json only" in proc.stderr and received(fake) is None
    (bundle / "plain.json").write_text(json.dumps(base_config()))
    proc = shim(fake, "create", "--bundle", str(bundle), "-f", "plain.json", "c1")
    assert proc.returncode == 0 and received(fake)[-1] == "c1"


# ---------------------------------------------------------------------------- with Debian's runc

KIND = "test.cdigen.io/net"
SETTINGS = "address=192.0.2.10,mask=255.255.255.0,mtu=9000"
NODE = {"path": "/dev/cdigen-test0", "type": "c", "major": 1, "minor": 3}  # /dev/null's numbers
INSIDE = ["sh", "-c", "ip addr && echo @@ && busybox stat -c '%n %t %T' /dev/cdigen-test0 && echo @@ && busybox env"]


def nic_spec(spec_dir, hostif: str) -> None:
    nic = scan_device(
        "nic0", [NODE], nics=[(hostif, "net0")], settings={hostif: f"name=net0,{SETTINGS}"}, hook_path=CDIGEN
    )
    write_spec(spec_dir, "test-net.yaml", cdi_spec([nic], KIND))


def runtime_config(tmp_path, spec_dir) -> str:
    path = tmp_path / "runtime.json"
    path.write_text(json.dumps({"runtime": "runc", "spec_dirs": [str(spec_dir)], "log": str(tmp_path / "shim.log")}))
    return str(path)


class Engine:
    """Drives the shim the way containerd's runc shim drives runc."""

    def __init__(self, tmp_path, config: str):
        self.shim = SHIM
        self.root = str(tmp_path / "runc-state")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CDIGEN_")}
        self.env["CDIGEN_RUNTIME_CONFIG"] = config
        self.ids: list[str] = []

    def __call__(self, *argv: str, **kw) -> subprocess.CompletedProcess:
        cmd = [str(self.shim), "--root", self.root, *argv]
        return subprocess.run(cmd, env=self.env, stdin=subprocess.DEVNULL, timeout=60, **kw)

    def create(self, bundle: str, out) -> tuple[str, int, str]:
        """(container ID, exit code, stderr). The container inherits create's stdio: files,
        not pipes (a pipe would stay open until the container exits)."""
        cid = f"cdigen-shim-{uuid.uuid4().hex[:8]}"
        self.ids.append(cid)
        err = f"{out}.err"
        with open(out, "wb") as f, open(err, "wb") as e:
            proc = self(
                "--log", f"{bundle}/log.json", "--log-format", "json", "create", "--bundle", bundle,
                "--pid-file", f"{bundle}/init.pid", cid, stdout=f, stderr=e,
            )  # fmt: skip
        with open(err) as e:
            return cid, proc.returncode, e.read()

    def state(self, cid: str) -> dict:
        proc = self("state", cid, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def cleanup(self):
        for cid in self.ids:
            self("delete", "--force", cid, capture_output=True)


@pytest.fixture
def engine(tmp_path, needs_runc):
    spec_dir = tmp_path / "cdi"
    made = Engine(tmp_path, runtime_config(tmp_path, spec_dir))
    made.spec_dir = spec_dir
    yield made
    made.cleanup()


def bundle_asking(tmp_path, rootfs, env_devices: str | None = None, annotation: str | None = None) -> str:
    bundle = runc_bundle(tmp_path / "bundle", rootfs, INSIDE)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    if env_devices:
        config["process"]["env"].append(f"CDIGEN_DEVICES={env_devices}")
    if annotation:
        config["annotations"] = {"cdi.k8s.io/test": annotation}
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
    return bundle


@pytest.mark.root
@pytest.mark.runc
@pytest.mark.parametrize("ask", ["env", "annotation"])
def test_runc_create_start_state_delete(engine, net, rootfs, tmp_path, ask):
    end, peer = net.veth(mtu=1500)
    ip("link", "set", peer, "up")
    nic_spec(engine.spec_dir, end)
    wanted = f"{KIND}=nic0"
    bundle = bundle_asking(tmp_path, rootfs, **({"env_devices": wanted} if ask == "env" else {"annotation": wanted}))
    out = tmp_path / "container.out"

    cid, code, stderr = engine.create(bundle, out)

    assert code == 0, stderr
    assert engine.state(cid)["status"] == "created"
    assert engine("start", cid).returncode == 0
    deadline = time.monotonic() + 20
    while engine.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.state(cid)["status"] == "stopped"
    assert engine("delete", cid).returncode == 0
    assert engine("list", "-q", capture_output=True, text=True).stdout.split() == []

    ip_out, node_out, env_out = out.read_text().split("@@\n")
    inside = parse_ip_addr(ip_out)
    assert sorted(inside) == ["lo", "net0"], ip_out
    assert inside["net0"]["mtu"] == 9000 and "UP" in inside["net0"]["flags"]
    assert "192.0.2.10/24" in inside["net0"]["addrs"]
    assert node_out.split() == ["/dev/cdigen-test0", "1", "3"]
    env = env_out.split()
    assert not any(e.startswith("CDIGEN_RUNTIME") for e in env)  # the shim's own marker stays outside
    log = [json.loads(line) for line in (tmp_path / "shim.log").read_text().splitlines()]
    assert [e["argv"][6] for e in log[:1]] == ["create"] and log[0]["injected"] == [wanted]
    assert {e["argv"][2] for e in log[1:]} == {"state", "start", "delete", "list"}
    assert all(e["injected"] == [] and e["exec"].endswith("/runc") for e in log[1:])


@pytest.mark.root
@pytest.mark.runc
def test_runc_failed_injection_leaves_no_container(engine, net, rootfs, tmp_path):
    end, _ = net.veth(mtu=1500)
    nic_spec(engine.spec_dir, end)
    bundle = bundle_asking(tmp_path, rootfs, env_devices=f"{KIND}=nic9")
    config = os.path.join(bundle, "config.json")
    with open(config, "rb") as f:
        before = f.read()

    cid, code, stderr = engine.create(bundle, tmp_path / "container.out")

    assert code == 3
    message = (
        f"cdigen: error: runtime create {cid}: unresolvable CDI devices {KIND}=nic9; spec directories: "
        f"{engine.spec_dir}; devices there, nearest first: {KIND}=nic0"
    )
    assert stderr == message + "\n"
    with open(os.path.join(bundle, "log.json")) as f:
        assert json.loads(f.read())["msg"] == message
    with open(config, "rb") as f:
        assert f.read() == before
    assert engine("list", "-q", capture_output=True, text=True).stdout.split() == []
    assert not os.path.exists(os.path.join(bundle, "init.pid"))


# ---------------------------------------------------------------------------- as podman's --runtime


@pytest.fixture(scope="module")
def podman(needs_runc, tmp_path_factory):
    from tests.helpers.podman import Podman, podman_skip_reason

    reason = podman_skip_reason()
    if reason:
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("podman-shim")
    made = Podman(directory, build_rootfs(directory))
    yield made
    made.cleanup()


def podman_run(podman, tmp_path, spec_dir, env_devices: str, command: list[str]):
    """`podman run --runtime cdigen-runtime -e CDIGEN_DEVICES=..`: podman itself injects no CDI
    device (no --device); the shim finds the spec in /var/run/cdi, which is the test's spec
    directory in podman's private mount namespace (tests/helpers/podman.py)."""
    args = ["run", "--rm", "--runtime", SHIM, "--cgroup-parent", f"/{podman.cgroup_parent}"]
    args += ["--network", "none", "-e", f"CDIGEN_DEVICES={env_devices}", "--rootfs", podman.rootfs, *command]
    return podman.podman(spec_dir, *args)


@pytest.mark.root
@pytest.mark.runc
def test_podman_runtime_shim(podman, net, tmp_path):
    end, peer = net.veth(mtu=1500)
    ip("link", "set", peer, "up")
    spec_dir = tmp_path / "cdi"
    nic_spec(spec_dir, end)

    proc = podman_run(podman, tmp_path, spec_dir, f"{KIND}=nic0", INSIDE)

    assert proc.returncode == 0, proc.stderr
    ip_out, node_out, env_out = proc.stdout.split("@@\n")
    inside = parse_ip_addr(ip_out)
    assert sorted(inside) == ["lo", "net0"], ip_out
    assert inside["net0"]["mtu"] == 9000 and "192.0.2.10/24" in inside["net0"]["addrs"]
    assert node_out.split() == ["/dev/cdigen-test0", "1", "3"]
    assert f"CDIGEN_DEVICES={KIND}=nic0" in env_out.split()
    assert podman.containers() == []


@pytest.mark.root
@pytest.mark.runc
def test_podman_shows_the_shims_error(podman, tmp_path):
    spec_dir = tmp_path / "cdi"
    write_spec(spec_dir, "example-fpga.json", FPGA_SPEC)

    proc = podman_run(podman, tmp_path, spec_dir, "example.com/fpga=f9", ["true"])

    assert proc.returncode != 0
    assert "cdigen: error: runtime create " in proc.stderr
    assert "unresolvable CDI devices example.com/fpga=f9" in proc.stderr
    assert podman.containers() == []


def test_apply_knows_the_pod_network_annotations():
    """apply tests for these keys without importing cdigen/pod/ (start-up time)."""
    from cdigen import apply
    from cdigen.pod import annotations

    assert set(apply.POD_NETWORK_ANNOTATIONS) == set(annotations.ANNOTATIONS)
