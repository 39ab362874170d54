"""`cdigen device-plugin` and `cdigen refresh` against a kubelet stand-in (tests/helpers/kubelet.py):
registration, ListAndWatch, GetPreferredAllocation and Allocate as kubelet calls them; kubelet
restarting and not there yet; a device that leaves and comes back (the fake sysfs tree changed,
then a uevent); the spec written only when it changes; bad input said once, never a crash.

The agent runs as a process with a config file; the host is a fake sysfs tree (cdigen/examples),
the kubelet directory one of the test's own.
"""

import io
import os
import signal
import socket
import threading
import time

import grpc
import pytest

from cdigen.examples import EXAMPLES, fakesys
from cdigen.node.config import KEYS
from tests.helpers.kubelet import Agent, Kubelet
from tests.helpers.proc import fast_tmpdir, run_cdigen

HOOK = "/usr/bin/cdigen"
# gpu0..gpu7 by minor, in PCI order: two per PCIe switch, four per NUMA node.
SWITCHES = [("gpu0", "gpu1"), ("gpu2", "gpu3"), ("gpu4", "gpu5"), ("gpu6", "gpu7")]
ALL = [g for pair in SWITCHES for g in pair]


def write_config(directory: str, **settings) -> str:
    """A config file (JSON, which is YAML) in `directory`; the spec and the kubelet directory
    there too unless given."""
    import json

    settings = {
        "spec": f"{directory}/cdi/cdigen.yaml",
        "kubelet_dir": f"{directory}/kubelet",
        "hook_path": HOOK,
        **settings,
    }
    path = os.path.join(directory, "node-agent.yaml")
    with open(path, "w") as f:
        json.dump(settings, f)
    return path


def gpus(root: str) -> dict[str, str]:
    """GPU device name (gpu<minor>) -> PCI address, read from the fake tree."""
    base = os.path.join(root, "proc/driver/nvidia/gpus")
    out = {}
    for bdf in os.listdir(base):
        with open(os.path.join(base, bdf, "information")) as f:
            minor = next(line.split()[-1] for line in f if line.startswith("Device Minor"))
        out[f"gpu{minor}"] = bdf
    return out


def unbind(root: str, bdf: str) -> None:
    """The driver let go of the function (as `echo BDF > .../unbind` leaves sysfs)."""
    link = os.path.join(root, "sys/bus/pci/devices", bdf, "driver")
    os.rename(link, link + ".away")


def bind(root: str, bdf: str) -> None:
    link = os.path.join(root, "sys/bus/pci/devices", bdf, "driver")
    os.rename(link + ".away", link)


def nic_of(root: str, gpu_bdf: str) -> str:
    """The NIC beside a GPU under its switch port (the next function in PCI order)."""
    functions = sorted(os.listdir(os.path.join(root, "sys/bus/pci/devices")))
    return functions[functions.index(gpu_bdf) + 1]


@pytest.fixture
def host():
    """(root of the HGX example tree, a scratch directory with a short path for sockets)."""
    roots = [fakesys.build(EXAMPLES["hgx-h100"], fast_tmpdir()), fast_tmpdir()]
    yield roots
    import shutil

    for root in roots:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def kubelet(host):
    made = Kubelet(os.path.join(host[1], "kubelet"))
    made.start()
    yield made
    made.stop()


@pytest.fixture
def agents():
    started = []

    def start(config: str, *command: str) -> Agent:
        started.append(Agent(config, *command))
        return started[-1]

    yield start
    for agent in started:
        agent.stop()


# ---------------------------------------------------------------------------- kubelet's calls


def test_registers_and_offers_the_spec_devices(host, kubelet, agents):
    root, scratch = host
    agent = agents(write_config(scratch, root=root))

    kubelet.wait(lambda k: k.lists)

    (registration,) = kubelet.registrations
    assert registration.version == "v1beta1"
    assert registration.endpoint == "cdigen.io-gpu.sock"  # a file name in kubelet's directory
    assert registration.resource_name == "cdigen.io/gpu"
    assert registration.options.get_preferred_allocation_available and not registration.options.pre_start_required
    assert kubelet.options.get_preferred_allocation_available
    assert kubelet.latest() == {g: ("Healthy", [0 if n < 4 else 1]) for n, g in enumerate(ALL)}
    # The spec is the one `cdigen scan` writes with the same settings.
    scanned = os.path.join(scratch, "scanned.yaml")
    run_cdigen("scan", "--root", root, "--hook-path", HOOK, "-o", scanned, check=0)
    with open(scanned, "rb") as a, open(os.path.join(scratch, "cdi/cdigen.yaml"), "rb") as b:
        assert a.read() == b.read()
    assert any(line.endswith("cdi/cdigen.yaml") and "wrote" in line for line in agent.lines())


def test_preferred_allocation_one_switch_then_one_numa_node(host, kubelet, agents):
    agents(write_config(host[1], root=host[0]))
    kubelet.wait(lambda k: k.lists)

    assert kubelet.preferred(ALL, [], 2) == ["gpu0", "gpu1"]
    assert sorted(kubelet.preferred(ALL, ["gpu5"], 2)) == ["gpu4", "gpu5"]  # its switch's other GPU
    # Only gpu6 and gpu7 share a switch among these: they are chosen, not the first two.
    assert sorted(kubelet.preferred(["gpu1", "gpu2", "gpu4", "gpu6", "gpu7"], [], 2)) == ["gpu6", "gpu7"]
    assert sorted(kubelet.preferred(ALL, ["gpu6"], 4)) == ["gpu4", "gpu5", "gpu6", "gpu7"]  # one NUMA node
    assert sorted(kubelet.preferred(["gpu0", "gpu2", "gpu5"], [], 2)) == ["gpu0", "gpu2"]  # one NUMA node, 2 switches


def test_allocate_answers_cdi_names_annotation_and_env(host, kubelet, agents):
    agents(write_config(host[1], root=host[0], resource="example.com/gpu-nic"))
    kubelet.wait(lambda k: k.lists)

    response = kubelet.allocate(["gpu3", "gpu2"], ["gpu7"])

    first, second = response.container_responses
    names = ["cdigen.io/gpu=gpu3", "cdigen.io/gpu=gpu2"]
    assert [d.name for d in first.cdi_devices] == names
    assert dict(first.annotations) == {"cdi.k8s.io/example.com_gpu-nic": ",".join(names)}
    assert dict(first.envs) == {"CDIGEN_DEVICES": ",".join(names)}
    assert not first.mounts and not first.devices
    assert [d.name for d in second.cdi_devices] == ["cdigen.io/gpu=gpu7"]


def test_allocate_of_an_unknown_id_is_invalid_argument_naming_it(host, kubelet, agents):
    agents(write_config(host[1], root=host[0]))
    kubelet.wait(lambda k: k.lists)

    with pytest.raises(grpc.RpcError) as e:
        kubelet.allocate(["gpu1", "gpu99"])

    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'gpu99'" in e.value.details() and "cdigen.io/gpu" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        kubelet.preferred(["gpu0", "nope"], [], 1)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'nope'" in e.value.details()


# ---------------------------------------------------------------------------- kubelet comes and goes


def test_registers_again_when_kubelet_restarts(host, kubelet, agents):
    agent = agents(write_config(host[1], root=host[0]))
    kubelet.wait(lambda k: k.lists)

    kubelet.restart()  # every socket removed, kubelet.sock made anew

    kubelet.wait(lambda k: len(k.registrations) == 2 and len(k.lists) >= 2)
    assert kubelet.latest() == {g: ("Healthy", [0 if n < 4 else 1]) for n, g in enumerate(ALL)}
    assert kubelet.allocate(["gpu0"]).container_responses[0].cdi_devices[0].name == "cdigen.io/gpu=gpu0"
    agent.wait_line("kubelet restarted: registering again")
    assert agent.stop() == 0
    assert os.listdir(kubelet.dir) == ["kubelet.sock"]  # its own socket removed on SIGTERM


def test_waits_for_kubelet_and_says_so_once(host, agents):
    root, scratch = host
    kubelet = Kubelet(os.path.join(scratch, "kubelet"))  # neither directory nor socket yet
    agent = agents(write_config(scratch, root=root))
    agent.wait_line("waiting for kubelet: no directory")
    deadline = time.monotonic() + 1.0  # several retries of the backoff (0.2, 0.4 s...)
    while time.monotonic() < deadline:
        assert len([line for line in agent.lines() if "waiting" in line]) == 1, agent.lines()
        time.sleep(0.05)

    os.makedirs(kubelet.dir)
    agent.wait_line(f"waiting for kubelet: no {kubelet.dir}/kubelet.sock")
    kubelet.start()
    try:
        kubelet.wait(lambda k: k.lists)
    finally:
        kubelet.stop()
    waiting = [line for line in agent.lines() if "waiting for kubelet" in line]
    assert len(waiting) == 2, agent.lines()
    assert agent.proc.poll() is None


# ---------------------------------------------------------------------------- the spec stays true


def _uevent_trigger() -> str | None:
    """A real PCI device's uevent file, for a synthetic `change` uevent from the kernel."""
    base = "/sys/bus/pci/devices"
    if os.geteuid() != 0 or not os.path.isdir(base):
        return None
    for bdf in sorted(os.listdir(base)):
        path = os.path.join(base, bdf, "uevent")
        if os.access(path, os.W_OK):
            return path
    return None


def test_device_leaves_and_returns_on_kernel_uevents(host, kubelet, agents):
    """The real NETLINK_KOBJECT_UEVENT socket: the tree changes, then the kernel sends a
    uevent (a synthetic `change` of a real PCI device), and kubelet hears of it at once."""
    trigger = _uevent_trigger()
    try:
        socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 15).bind((0, 1))
    except OSError as e:
        pytest.skip(f"no kernel uevent socket here: {e}")
    if trigger is None:
        pytest.skip("needs root and a PCI device whose uevent file can be written")
    root, scratch = host
    agent = agents(write_config(scratch, root=root, rescan_seconds=3600))
    kubelet.wait(lambda k: k.lists)
    agent.wait_line("wrote")
    spec = os.path.join(scratch, "cdi/cdigen.yaml")
    by_name = gpus(root)

    def uevent_then(expected: dict[str, str]) -> None:
        with open(trigger, "w") as f:
            f.write("change")
        kubelet.wait(
            lambda k: {i: h for i, (h, _) in k.latest().items()} == {**dict.fromkeys(ALL, "Healthy"), **expected},
            timeout=5,
        )

    unbind(root, by_name["gpu1"])  # the GPU's driver let go
    uevent_then({"gpu1": "Unhealthy"})
    with open(spec) as f:
        assert "name: gpu1" not in f.read()
    nic = nic_of(root, by_name["gpu2"])
    unbind(root, nic)  # gpu2's NIC gone: the pair is broken
    uevent_then({"gpu1": "Unhealthy", "gpu2": "Unhealthy"})

    bind(root, by_name["gpu1"])
    bind(root, nic)
    uevent_then({})
    with open(spec) as f:
        assert "name: gpu1" in f.read()
    assert [line for line in agent.lines() if "Unhealthy" in line] == [
        "cdigen: devices: gpu1 Unhealthy",
        "cdigen: devices: gpu2 Unhealthy",
    ]


def test_injected_uevents_rescan_and_virtual_devices_do_not(host):
    """The refresh loop with its uevent source injected (a socketpair; no root needed): a PCI
    uevent rescans, a veth's does not."""
    from cdigen.node import agent, watch
    from cdigen.node.log import Log

    root, scratch = host
    keeper = agent.keeper(agent.settings_of(write_config(scratch, root=root, rescan_seconds=3600)), Log(io.StringIO()))
    keeper.refresh()
    scans = []
    refresh = keeper.refresh
    keeper.refresh = lambda: scans.append(time.monotonic()) or refresh()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    stop = watch.Stop()
    loop = threading.Thread(target=watch.run, args=(keeper, ours, stop))
    loop.start()
    try:
        theirs.send(b"add@/devices/virtual/net/veth1\0ACTION=add\0DEVPATH=/devices/virtual/net/veth1\0SUBSYSTEM=net\0")
        theirs.send(b"libudev\0whatever")  # udev's own messages are not the kernel's
        unbind(root, gpus(root)["gpu4"])
        sent = time.monotonic()
        theirs.send(
            b"unbind@/devices/pci0000:90/0000:90:01.0\0ACTION=unbind\0DEVPATH=/devices/pci0000:90/x\0SUBSYSTEM=pci\0"
        )
        deadline = sent + 2
        while keeper.table.health.get("gpu4") != "Unhealthy" and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        loop.join()
    assert keeper.table.health["gpu4"] == "Unhealthy"
    assert len(scans) == 1 and scans[0] - sent < watch.MAX_DELAY_S + 0.2


def test_refresh_writes_only_when_the_spec_changes(host):
    root, scratch = host
    config = write_config(scratch, root=root)
    spec = os.path.join(scratch, "cdi/cdigen.yaml")

    first = run_cdigen("refresh", "--config", config, check=0)
    before = os.stat(spec)
    again = run_cdigen("refresh", "--config", config, check=0)

    assert f"wrote {spec}" in first.stderr and "wrote" not in again.stderr
    after = os.stat(spec)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert oct(after.st_mode & 0o777) == "0o644" and oct(os.stat(os.path.dirname(spec)).st_mode & 0o777) == "0o755"
    unbind(root, gpus(root)["gpu3"])
    changed = run_cdigen("refresh", "--config", config, check=0)
    assert f"wrote {spec}" in changed.stderr
    with open(spec) as f:
        assert "name: gpu3" not in f.read()
    for name, bdf in gpus(root).items():
        if name != "gpu3":
            unbind(root, bdf)
    none = run_cdigen("refresh", "--config", config, check=4)
    assert f"removed {spec}" in none.stderr and not os.path.exists(spec)
    assert os.listdir(os.path.dirname(spec)) == []  # no temporary file left


# ---------------------------------------------------------------------------- bad input


def test_refresh_into_an_unwritable_directory_is_one_line_exit_1(host, read_only_dir):
    root, scratch = host
    spec_dir = read_only_dir({})

    proc = run_cdigen("refresh", "--config", write_config(scratch, root=root, spec=f"{spec_dir}/cdigen.yaml"), check=1)

    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert errors == [
        f"cdigen: error: cannot write {spec_dir}/cdigen.yaml: Read-only file system; retried at each rescan"
    ]
    assert os.listdir(spec_dir) == []


def test_unwritable_spec_directory_is_said_once_and_devices_still_served(host, kubelet, agents, read_only_dir):
    root, scratch = host
    spec_dir = read_only_dir({"other.yaml": "kept\n"})
    agent = agents(write_config(scratch, root=root, spec=f"{spec_dir}/cdigen.yaml", rescan_seconds=0.1))

    kubelet.wait(lambda k: k.lists and all(h == "Healthy" for h, _ in k.latest().values()))
    unbind(root, gpus(root)["gpu0"])  # a later rescan, seen by kubelet
    kubelet.wait(lambda k: k.latest().get("gpu0", ("",))[0] == "Unhealthy")

    errors = [line for line in agent.lines() if "error" in line]
    assert errors == [
        f"cdigen: error: cannot write {spec_dir}/cdigen.yaml: Read-only file system; retried at each rescan"
    ]
    assert os.listdir(spec_dir) == ["other.yaml"]  # nothing half-written
    assert agent.proc.poll() is None


def test_malformed_config_is_said_once_then_waited_on(host, kubelet, agents):
    root, scratch = host
    config = write_config(scratch, root=root)
    with open(config) as f:
        good = f.read()
    with open(config, "w") as f:
        f.write("resource: [unclosed\n")
    agent = agents(config)

    line = agent.wait_line("error")
    assert line.startswith(f"cdigen: error: {config}: not YAML") and line.endswith(
        "waiting for the config file to change"
    )
    with open(config, "w") as f:  # another bad value: said, once
        f.write(good[:-1] + ', "resource": "gpu"}')
    agent.wait_line("resource")
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        assert len([x for x in agent.lines() if "error" in x]) == 2, agent.lines()
        time.sleep(0.05)
    assert kubelet.registrations == []

    with open(config, "w") as f:
        f.write(good)
    kubelet.wait(lambda k: k.lists)
    agent.wait_line("the config file is usable now")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{spec: relative/cdigen.yaml}", "spec: must be an absolute path: 'relative/cdigen.yaml'"),
        ("{nic_affinity: near}", "nic_affinity: 'near': use pix, pxb, phb, node or sys"),
        ("{rescan_seconds: soon}", "rescan_seconds: expected a number, got 'soon'"),
        ("{colour: blue}", "unknown key 'colour'; known: " + ", ".join(KEYS)),
        ("[1, 2]", "expected a mapping of settings"),
    ],
)
def test_refresh_with_a_bad_config_is_one_line_exit_3(tmp_path, text, message):
    config = tmp_path / "node-agent.yaml"
    config.write_text(text)

    proc = run_cdigen("refresh", "--config", config, check=3)

    assert proc.stderr == f"cdigen: error: {config}: {message}\n"


def test_device_plugin_stops_on_sigterm_before_kubelet(host, agents):
    agent = agents(write_config(host[1], root=host[0]))
    agent.wait_line("waiting for kubelet")
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.proc.wait(5) == 0
