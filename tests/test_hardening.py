"""Hostile and careless input (issue 12): every parser refuses what it cannot carry through in
one short line with a documented exit code, and the files cdigen writes keep their owner, are
never written through a symlink, and are not left behind by a killed writer."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdigen import netdev, strictjson
from cdigen.cdi import goyaml, load
from cdigen.errors import CdigenError
from cdigen.files import atomic_write, locked_dir, remove_stale_temps

# ---------------------------------------------------------------------------- JSON


@pytest.mark.parametrize(
    "text, message",
    [
        ("1e999", "too large"),
        ('{"a": -1e999}', "too large"),
        ("1" * 5000, "an integer of 5000 digits"),
        ('["\\ud800"]', "lone UTF-16 surrogate"),
        ('{"\\udc00x": 1}', "lone UTF-16 surrogate"),
        ('{"path": "/dev/a\\u0000b"}', "NUL character"),
        ("[" * 100000 + "]" * 100000, "nested too deeply"),
        ("NaN", "NaN is not JSON"),
        ("[Infinity]", "Infinity is not JSON"),
    ],
)
def test_strict_json_refuses_what_it_cannot_write_back(text, message):
    with pytest.raises(ValueError, match=message) as info:
        strictjson.loads(text)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_strict_json_keeps_what_it_can_write_back():
    doc = strictjson.loads('{"a": "\\ud83d\\ude00", "b": 1e300, "c": ' + "9" * 4300 + ', "d": "\\u00e9"}')
    assert doc["a"] == "\U0001f600" and doc["b"] == 1e300 and doc["d"] == "é"
    assert json.loads(json.dumps(doc, ensure_ascii=False)) == doc  # round trip


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_strict_json_reads_back_what_python_writes_unless_it_cannot_be_written(doc):
    text = json.dumps(doc)
    try:
        out = strictjson.loads(text)
    except ValueError as e:  # only for strings that cannot be written as UTF-8 or carry a NUL
        assert "surrogate" in str(e) or "NUL" in str(e)
        with pytest.raises((UnicodeEncodeError, AssertionError)):
            json.dumps(doc, ensure_ascii=False).encode("utf-8")
            assert "\\u0000" not in text
    else:
        assert out == doc
        json.dumps(out, ensure_ascii=False).encode("utf-8")  # writable


def _json_loads_outcome(loads, text):
    try:
        return "ok", loads(text)
    except ValueError as e:
        return type(e).__name__, str(e)


def _json_library(text, object_pairs_hook=None):
    """strictjson.loads as it was: json.loads with the same hooks, whatever the scanner."""
    doc = json.loads(
        text,
        parse_constant=strictjson._reject_constant,
        parse_float=strictjson._parse_float,
        parse_int=strictjson._parse_int,
        object_pairs_hook=object_pairs_hook,
    )
    if "\\u" in text:
        strictjson._check_strings(doc)
    return doc


json_texts = st.one_of(
    json_values.map(json.dumps),
    json_values.map(lambda d: json.dumps(d, ensure_ascii=False, indent=1)),
    st.text(alphabet=' \t\n\r{}[]":,0123456789.eE+-tfnulrsaNIy\\\ufeff\u00e9', max_size=30),
    st.tuples(
        json_values.map(json.dumps), st.sampled_from(["", " ", "\n", "x", "}", ",1", "\ufeff"]), st.booleans()
    ).map(lambda t: t[1] + t[0] if t[2] else t[0] + t[1]),
    st.sampled_from(
        ['{"a": 1, "a": 2}', '{"a": {"b": 1, "b": 1}}', '[{"x": NaN}]', '{"a": 1e999}', '{"a": "\\u0000"}']
        + ['{"a": "\\ud800"}', '{"a": 1} x', '"\\u00e9"', '{"a": "\x01"}', "[1,]", '{"a" 1}', " " * 3]
    ),
)


@settings(max_examples=500, deadline=None)
@given(json_texts, st.sampled_from([None, load._no_duplicates]))
def test_strict_json_scanner_path_agrees_with_json_loads(text, pairs_hook):
    """strictjson parses with json's C scanner directly (no `json`/`re` import); whatever the
    text and the object hook (the spec loader refuses duplicate keys with one), the document or
    the error (type and message) is json.loads's."""
    ours = _json_loads_outcome(lambda t: strictjson.loads(t, object_pairs_hook=pairs_hook), text)
    assert ours == _json_loads_outcome(lambda t: _json_library(t, pairs_hook), text)


def test_strict_json_imports_neither_json_nor_re():
    code = (
        "import sys; from cdigen import strictjson; "
        'doc = strictjson.loads(b\' {"runtime": "runc", "n": [1, 2.5, true, null, "\\\\u00e9"]}\\n\'); '
        "print(doc['n'][4], sorted({'json', 're'} & set(sys.modules)))"
    )
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=repo)  # no site: re
    assert out.stdout.split() == ["é", "[]"], out.stderr


# ---------------------------------------------------------------------------- YAML


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a: " + "1" * 5000, {"a": "1" * 5000}),  # out of int64 range: yaml.v2 keeps the text
        ("a: 1e999", {"a": "1e999"}),  # ParseFloat range error: the text too
        ("a: 0x1F", {"a": 31}),
        ("a: 0777", {"a": 511}),
    ],
)
def test_yaml_numbers_as_go_reads_them(text, expected):
    assert goyaml.parse(text, 1000) == expected


@pytest.mark.parametrize("text", ['a: "x\\0y"', 'a: "\\x00"', '"\\0": 1'])
def test_yaml_nul_is_refused(text):
    with pytest.raises(goyaml.YamlError, match="NUL character"):
        goyaml.parse(text, 1000)


def test_long_lines_and_flow_documents_keep_the_c_parser():
    one_line = "{kind: a/b, devices: [" + ", ".join(f"{{name: d{i}, env: [A=1]}}" for i in range(20000)) + "]}"
    assert len(one_line) > 500_000 and goyaml._shallow_enough_for_c(one_line)
    block = "a:\n" + "".join(f"  - name: d{i}\n    env: [A=1]\n" for i in range(2000))
    assert goyaml._shallow_enough_for_c(block)
    assert not goyaml._shallow_enough_for_c("a: " + "[" * 3000 + "]" * 3000)
    assert not goyaml._shallow_enough_for_c("- " * 1500 + "a")  # compact nested sequences
    with pytest.raises(goyaml.YamlError, match="nested more than"):
        goyaml.parse("a: " + "[" * 3000 + "]" * 3000, 10**6)


# ---------------------------------------------------------------------------- netdev settings


@pytest.mark.parametrize(
    "arg, message",
    [
        ("eth0=mtu=²", "MTU must be an integer, got '²'"),
        ("eth0=mtu=" + "9" * 5000, "MTU must be an integer, got '9999"),
        ("eth0=mtu=99999999999", "MTU 99999999999 is outside 68..65535"),
        ("eth0=address=10.0.0.1/²", "invalid mask '²'"),
        ("eth0=address=10.0.0.1/" + "1" * 5000, "invalid mask '1111"),
        ("eth0=address=" + "1" * 5000, "invalid IP address '1111"),
        ("e" * 5000 + "=mtu=1500", "is longer than 15 bytes"),
    ],
)
def test_netdev_settings_refuse_odd_numbers_in_one_short_line(arg, message):
    with pytest.raises(netdev.NetdevError) as info:
        netdev.parse_arg(arg)
    assert message in str(info.value) and len(str(info.value)) < 200


# ---------------------------------------------------------------------------- command lines

HUGE = "x" * 100_000


@pytest.mark.parametrize(
    "argv",
    [
        ["apply", "B", "--device", HUGE],
        ["apply", "B", "--netdev", HUGE],
        ["apply", "B", "--netdev", f"eth0=name={HUGE}"],
        ["apply", "B", f"--{HUGE}"],
        ["apply", "B", HUGE],
        ["apply", "B", "--lock-timeout", HUGE],
        ["hook", "--netdev", HUGE],
        ["hook", HUGE],
        ["hook", "ldcache", "--folder", "/" + HUGE],
        ["hook", "ldcache", "--link", HUGE],
        ["dan", HUGE],
        ["netdev", "restore", HUGE],
        ["netdev", "udev-rule", "--cdigen", HUGE],
    ],
    ids=lambda argv: " ".join(a[:12] for a in argv),
)
def test_a_huge_argument_is_never_echoed_whole(tmp_path, argv):
    from tests.helpers.proc import run_cdigen

    argv = [str(tmp_path) if a == "B" else a for a in argv]  # a real bundle: the value is what is wrong
    (tmp_path / "config.json").write_text('{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "linux": {}}')
    proc = run_cdigen(*argv, input="", check=2)
    assert proc.stderr.startswith("cdigen: error: ") and proc.stderr.count("\n") == 1 and len(proc.stderr) < 300


# ---------------------------------------------------------------------------- files


def test_owner_and_group_are_kept_when_root_rewrites_a_users_file(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to create a file of another user")
    path = tmp_path / "config.json"
    path.write_text("{}")
    os.chown(path, 1000, 1000)
    path.chmod(0o640)
    atomic_write(str(path), b'{"a": 1}')
    st_ = path.stat()
    assert (st_.st_uid, st_.st_gid, st_.st_mode & 0o777) == (1000, 1000, 0o640)
    assert path.read_bytes() == b'{"a": 1}'


def test_a_symlink_is_never_written_through_nor_replaced(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("precious")
    link = tmp_path / "config.json"
    link.symlink_to(target)
    with pytest.raises(CdigenError, match="a symbolic link"):
        atomic_write(str(link), b"{}")
    assert link.is_symlink() and target.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "elsewhere"]


def test_a_fifo_without_reader_is_an_error_not_a_hang(tmp_path):
    fifo = tmp_path / "out.yaml"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(CdigenError, match="a FIFO that nobody reads"):
        atomic_write(str(fifo), b"x")
    assert time.monotonic() - started < 1


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{}")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".config.json.cdigen-{dead.pid}.tmp"
    alive = tmp_path / f".config.json.cdigen-{os.getppid()}.tmp"
    other = tmp_path / ".other.cdigen-1.tmp"
    for p in (stale, alive, other):
        p.write_text("partial")
    assert remove_stale_temps(str(path)) == [str(stale)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["config.json", alive.name, other.name])


def test_kill_9_of_a_writer_leaves_old_content_and_the_next_write_cleans_up(tmp_path):
    """A writer killed while its temp file is half written: the target keeps the old bytes, and
    the leftover goes with the next locked write."""
    path = tmp_path / "config.json"
    path.write_bytes(b"old")
    code = (
        "import os, time\n"
        f"name = {str(tmp_path)!r} + '/.config.json.cdigen-%d.tmp' % os.getpid()\n"
        "fd = os.open(name, os.O_WRONLY | os.O_CREAT, 0o600)\n"
        "os.write(fd, b'half'); print('ready', flush=True); time.sleep(60)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline() == "ready\n"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert path.read_bytes() == b"old"
    with locked_dir(str(tmp_path)):
        remove_stale_temps(str(path))
        atomic_write(str(path), b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"] and path.read_bytes() == b"new"


def test_the_bundle_lock_wait_is_bounded(tmp_path):
    held, release = threading.Event(), threading.Event()

    def holder():
        with locked_dir(str(tmp_path)):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    started = time.monotonic()
    try:
        with (
            pytest.raises(CdigenError, match=r"another process has held its lock \(flock\) for 0.3 s; nothing changed"),
            locked_dir(str(tmp_path), timeout=0.3),
        ):
            pass
        assert 0.3 <= time.monotonic() - started < 2
    finally:
        release.set()
        thread.join()


# ---------------------------------------------------------------------------- who may write a spec root loads


@pytest.fixture
def root_only():
    if os.geteuid() != 0:
        pytest.skip("the rule applies to root only")


@pytest.mark.parametrize(
    "mode, owner, reason",
    [
        (0o666, 0, "writable by group and others (mode 0666)"),
        (0o646, 0, "writable by others (mode 0646)"),
        (0o664, 0, "writable by its group (mode 0664)"),
        (0o644, 1000, "owned by uid 1000"),
    ],
)
def test_root_refuses_specs_others_can_change(tmp_path, root_only, mode, owner, reason):
    from cdigen.apply import apply_devices
    from cdigen.cdi import load
    from tests.helpers.specs import gpu_spec, make_bundle, write_spec

    spec_dir = tmp_path / "cdi"
    path = write_spec(spec_dir, "gpu.yaml", gpu_spec(1))
    os.chmod(path, mode)
    os.chown(path, owner, 0)
    registry = load.load_registry([str(spec_dir)])
    assert registry.errors == {str(path): [f"not loaded: {reason}, and cdigen runs as root"]}
    assert registry.devices == {}
    bundle = make_bundle(tmp_path)
    before = (bundle / "config.json").read_bytes()
    with pytest.raises(CdigenError, match=f"unresolvable CDI devices cdigen.io/gpu=gpu0 .*{re.escape(reason)}"):
        apply_devices(str(bundle), ["cdigen.io/gpu=gpu0"], spec_dirs=[str(spec_dir)], hook_path="/usr/bin/cdigen")
    assert (bundle / "config.json").read_bytes() == before
    result = apply_devices(
        str(bundle),
        ["cdigen.io/gpu=gpu0"],
        spec_dirs=[str(spec_dir)],
        hook_path="/usr/bin/cdigen",
        allow_insecure_specs=True,
    )
    assert result.patch  # the operator's explicit choice


def test_root_refuses_a_spec_directory_others_can_write(tmp_path, root_only):
    from cdigen.cdi import load
    from tests.helpers.specs import gpu_spec, write_spec

    spec_dir = tmp_path / "cdi"
    write_spec(spec_dir, "gpu.yaml", gpu_spec(1))
    os.chmod(spec_dir, 0o777)
    registry = load.load_registry([str(spec_dir)])
    assert registry.errors == {
        str(spec_dir): ["not loaded: writable by group and others (mode 0777), and cdigen runs as root"]
    }
    proc = subprocess.run(
        [sys.executable, "-m", "cdigen", "validate", "--spec-dir", str(spec_dir)], capture_output=True, text=True
    )
    assert proc.returncode == 3 and f"{spec_dir}: not loaded: writable by group and others" in proc.stdout


def test_a_config_json_nested_too_deep_is_invalid_input_not_a_recursion_error(tmp_path):
    from cdigen.apply import apply_devices
    from cdigen.errors import InvalidInput
    from tests.helpers.specs import gpu_spec, make_bundle, write_spec

    spec_dir = tmp_path / "cdi"
    write_spec(spec_dir, "gpu.yaml", gpu_spec(1))
    config = {"ociVersion": "1.0.2", "linux": {}, "x": json.loads("[" * 600 + "]" * 600)}
    bundle = make_bundle(tmp_path, json.dumps(config))
    before = (bundle / "config.json").read_bytes()
    with pytest.raises(InvalidInput, match="nested more than 100 levels deep"):
        apply_devices(str(bundle), ["cdigen.io/gpu=gpu0"], spec_dirs=[str(spec_dir)], hook_path="/usr/bin/cdigen")
    assert (bundle / "config.json").read_bytes() == before
    assert strictjson.deeper_than(config, 100) and not strictjson.deeper_than({"a": [[{}]]}, 4)


# ---------------------------------------------------------------------------- sysfs garbage


def test_garbage_sysfs_files_are_warnings_and_the_rest_is_scanned(tree):
    """Unicode digits, a huge NUMA range and a FIFO standing in for a sysfs file: each one
    warning naming the file; the other GPUs and NICs are still found, and nothing hangs."""
    from cdigen.scan.sysfs import discover

    root = tree("numa 0-1\npci 0000:10 numa=0 ports: switch(gpu ib gpu ib)")
    gpus = sorted(os.listdir(f"{root}/proc/driver/nvidia/gpus"))
    info = f"{root}/proc/driver/nvidia/gpus/{gpus[0]}/information"
    with open(info) as f:
        text = f.read()
    with open(info, "w") as f:
        f.write(
            "".join(
                line if not line.startswith("Device Minor") else "Device Minor: \t ²\n"
                for line in text.splitlines(keepends=True)
            )
        )
    with open(f"{root}/sys/devices/system/node/online", "w") as f:
        f.write("0-999999999999\n")
    netdev = sorted(os.listdir(f"{root}/sys/class/net"))[0]
    mtu = os.path.realpath(f"{root}/sys/class/net/{netdev}/mtu")
    os.unlink(mtu)
    os.mkfifo(mtu)
    started = time.monotonic()
    topo = discover(root)
    assert time.monotonic() - started < 5
    reasons = {w.path.rsplit("/", 1)[-1]: w.reason for w in topo.warnings}
    assert reasons["information"] == "no valid 'Device Minor' (got '²')"
    assert reasons["online"] == "not a node list: '0-999999999999'"
    assert reasons["mtu"] == "unreadable: not a regular file"
    assert [g.minor for g in topo.gpus].count(None) == 1 and len(topo.usable_gpus) == 1
    assert len([n for n in topo.nics if n.rdma]) == 2 and topo.numa_nodes is None


def test_apply_waits_for_a_held_bundle_lock_only_as_long_as_told(tmp_path):
    """Another user's process holding the bundle directory's flock: apply gives up after
    --lock-timeout with one line naming the directory, exit 1, config.json unchanged."""
    from tests.helpers.proc import run_cdigen
    from tests.helpers.specs import gpu_spec, make_bundle, write_spec

    spec_dir = tmp_path / "cdi"
    write_spec(spec_dir, "gpu.yaml", gpu_spec(1))
    bundle = make_bundle(tmp_path)
    before = (bundle / "config.json").read_bytes()
    apply = ["apply", bundle, "--device", "cdigen.io/gpu=gpu0", "--spec-dir", spec_dir]
    apply += ["--hook-path", "/usr/bin/cdigen", "--lock-timeout", "0.5"]
    code = f"import fcntl, os, time\nfd = os.open({str(bundle)!r}, os.O_RDONLY)\nfcntl.flock(fd, fcntl.LOCK_EX)\n"
    holder = subprocess.Popen(
        [sys.executable, "-c", code + "print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "held\n"
        started = time.monotonic()
        proc = run_cdigen(*apply, check=1)
        assert 0.5 <= time.monotonic() - started < 5
        assert (
            proc.stderr
            == f"cdigen: error: {bundle}: another process has held its lock (flock) for 0.5 s; nothing changed\n"
        )
        assert (bundle / "config.json").read_bytes() == before
    finally:
        holder.kill()
        holder.wait()
    run_cdigen(*apply, check=0)  # the lock released: the same apply goes through


def test_allow_insecure_specs_on_the_command_line(tmp_path, root_only):
    from tests.helpers.proc import run_cdigen
    from tests.helpers.specs import gpu_spec, make_bundle, write_spec

    spec_dir = tmp_path / "cdi"
    os.chmod(write_spec(spec_dir, "gpu.yaml", gpu_spec(1)), 0o666)
    bundle = make_bundle(tmp_path)
    args = ("apply", bundle, "--device", "cdigen.io/gpu=gpu0", "--spec-dir", spec_dir, "--hook-path", "/usr/bin/cdigen")
    proc = run_cdigen(*args, check=3)
    assert "writable by group and others (mode 0666), and cdigen runs as root" in proc.stderr
    run_cdigen(*args, "--allow-insecure-specs", check=0)


def test_apply_killed_at_random_leaves_old_or_new_content_and_the_next_apply_cleans_up(tmp_path):
    """kill -9 of a real `cdigen apply` at random moments: config.json is always either the old
    or the new bytes, and after the next apply no temp file is left."""
    import random

    from tests.helpers.specs import gpu_spec, make_bundle, write_spec

    spec_dir = tmp_path / "cdi"
    write_spec(spec_dir, "gpu.yaml", gpu_spec(2))
    bundle = make_bundle(tmp_path)
    old = (bundle / "config.json").read_bytes()
    args = [
        sys.executable,
        "-m",
        "cdigen",
        "apply",
        str(bundle),
        "--device",
        "cdigen.io/gpu=gpu1",
        "--spec-dir",
        str(spec_dir),
        "--hook-path",
        "/usr/bin/cdigen",
    ]
    subprocess.run(args, check=True, capture_output=True)
    new = (bundle / "config.json").read_bytes()
    assert new != old
    rng = random.Random(7)
    for _ in range(12):
        (bundle / "config.json").write_bytes(old)
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert (bundle / "config.json").read_bytes() in (old, new)
    subprocess.run(args, check=True, capture_output=True)
    assert (bundle / "config.json").read_bytes() == new
    assert sorted(p.name for p in bundle.iterdir()) == ["config.json"]


def test_a_fifo_as_the_containers_network_namespace_is_an_error_not_a_hang(tmp_path):
    fifo = tmp_path / "netns"
    os.mkfifo(fifo)
    linux = {"namespaces": [{"type": "network", "path": str(fifo)}], "netDevices": {"cdigenfifo0": {"name": "net0"}}}
    config = {"ociVersion": "1.0.2", "linux": linux}
    (tmp_path / "config.json").write_text(json.dumps(config))
    state = json.dumps({"ociVersion": "1.0.2", "id": "c", "status": "creating", "bundle": str(tmp_path), "pid": 1})
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "cdigen", "hook"], input=state, capture_output=True, text=True, timeout=30
    )
    assert time.monotonic() - started < 10
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1
    assert f"cannot open network namespace {fifo}: not a namespace file" in proc.stderr
