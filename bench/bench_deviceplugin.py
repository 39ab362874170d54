"""The node agent's speed and footprint (issue 19): `cdigen device-plugin` on the hgx-h100
example tree, driven by the kubelet stand-in of the tests (tests/helpers/kubelet.py).

- first ListAndWatch answer: from the process start to the stand-in holding the device list
  (cdigen installed as a wheel would be, bench/common.py), against `python -I -S -c pass`;
- Allocate and GetPreferredAllocation: round trips from the stand-in over the unix socket, and
  the plugin's own handler in this process (no socket);
- idle CPU over IDLE_S seconds once registered, and resident memory (VmRSS, VmHWM);
- a spec refresh after a kernel uevent: a GPU's driver unbound in the tree, then a synthetic
  `change` uevent of a real PCI device (root only), until kubelet hears the device Unhealthy
  and the spec on disk has lost it.

Usage: python bench/bench_deviceplugin.py [--rounds N] [--idle S]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from common import BASELINE, REPO, environment, installed

from cdigen.examples import EXAMPLES, fakesys

sys.path.insert(0, REPO)  # the kubelet stand-in of the tests
from tests.helpers.kubelet import Kubelet

ALL = [f"gpu{i}" for i in range(8)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def start_agent(cdigen: str, config: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [cdigen, "device-plugin", "--config", config], env=env, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def first_list(cdigen: str, config: str, kubelet_dir: str, env: dict, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        kubelet = Kubelet(kubelet_dir)
        kubelet.start()
        started = time.perf_counter()
        agent = start_agent(cdigen, config, env)
        kubelet.wait(lambda k: k.lists, timeout=30)
        times.append(time.perf_counter() - started)
        agent.terminate()
        agent.wait(10)
        kubelet.stop()
    return times


def baseline(rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run(BASELINE, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def calls(fn, count: int) -> tuple[float, float]:
    """(median, 99th percentile) of `count` calls."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def in_process(config: str) -> dict[str, tuple[float, float]]:
    """The plugin's handlers called directly: what Allocate costs in the plugin itself."""
    import io

    from cdigen.node import agent
    from cdigen.node import deviceplugin_pb2 as api
    from cdigen.node.log import Log
    from cdigen.node.plugin import Service
    from cdigen.node.watch import Stop

    keeper = agent.keeper(agent.settings_of(config), Log(io.StringIO()))
    keeper.refresh()
    service = Service(keeper.table, Stop())
    allocate = api.AllocateRequest(container_requests=[api.ContainerAllocateRequest(devices_ids=["gpu0", "gpu1"])])
    preferred = api.PreferredAllocationRequest(
        container_requests=[api.ContainerPreferredAllocationRequest(available_deviceIDs=ALL, allocation_size=4)]
    )
    return {
        "Allocate (2 devices), handler": calls(lambda: service.allocate(allocate, None), 2000),
        "GetPreferredAllocation (4 of 8), handler": calls(lambda: service.preferred(preferred, None), 500),
        "rescan of the tree (scan, render, compare)": calls(keeper.refresh, 50),
    }


def cpu_and_memory(pid: int, idle_s: float) -> tuple[float, int, int]:
    """(CPU seconds used over idle_s, VmRSS kB, VmHWM kB)."""
    tick = os.sysconf("SC_CLK_TCK")

    def cpu() -> float:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    before = cpu()
    time.sleep(idle_s)
    used = cpu() - before
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f)
    return used, int(status["VmRSS"].split()[0]), int(status["VmHWM"].split()[0])


def uevent_refresh(kubelet: Kubelet, root: str, spec: str, rounds: int) -> list[float] | str:
    base = "/sys/bus/pci/devices"
    trigger = (
        next((f"{base}/{d}/uevent" for d in sorted(os.listdir(base)) if os.access(f"{base}/{d}/uevent", os.W_OK)), None)
        if os.geteuid() == 0 and os.path.isdir(base)
        else None
    )
    if trigger is None:
        return "not measured: needs root and a writable PCI uevent file"
    gpu = next(b for b in sorted(os.listdir(f"{root}/proc/driver/nvidia/gpus")))
    link = f"{root}/sys/bus/pci/devices/{gpu}/driver"
    times = []
    for n in range(rounds):
        away = n % 2 == 0
        os.rename(link, link + ".away") if away else os.rename(link + ".away", link)
        want = "Unhealthy" if away else "Healthy"
        started = time.perf_counter()
        with open(trigger, "w") as f:
            f.write("change")
        kubelet.wait(lambda k, want=want: k.latest().get("gpu0", ("",))[0] == want, timeout=10)
        with open(spec) as f:
            assert ("name: gpu0" in f.read()) != away
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--idle", type=float, default=10.0)
    args = parser.parse_args()
    env = environment()
    work = tempfile.mkdtemp(prefix="bench-dp-", dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
    try:
        root = fakesys.build(EXAMPLES["hgx-h100"], os.path.join(work, "tree"))
        kubelet_dir, spec = os.path.join(work, "kubelet"), os.path.join(work, "cdi", "cdigen.yaml")
        config = os.path.join(work, "node-agent.yaml")
        with open(config, "w") as f:
            json.dump({"root": root, "spec": spec, "kubelet_dir": kubelet_dir, "hook_path": "/usr/bin/cdigen"}, f)
        cdigen = installed(work)

        print(f"python -I -S -c pass: {ms(baseline(args.rounds))} (median of {args.rounds})")
        times = first_list(cdigen, config, kubelet_dir, env, args.rounds)
        print(
            f"first ListAndWatch answer after start: median {ms(statistics.median(times))}, "
            f"min {ms(min(times))}, max {ms(max(times))} ({args.rounds} starts)"
        )
        for name, (median, p99) in in_process(config).items():
            print(f"{name}: median {ms(median)}, p99 {ms(p99)}")

        kubelet = Kubelet(kubelet_dir)
        kubelet.start()
        agent = start_agent(cdigen, config, env)
        try:
            kubelet.wait(lambda k: k.lists, timeout=30)
            median, p99 = calls(lambda: kubelet.allocate(["gpu0", "gpu1"]), 500)
            print(f"Allocate (2 devices), kubelet's round trip: median {ms(median)}, p99 {ms(p99)}")
            median, p99 = calls(lambda: kubelet.preferred(ALL, [], 4), 200)
            print(f"GetPreferredAllocation (4 of 8), round trip: median {ms(median)}, p99 {ms(p99)}")
            used, rss, hwm = cpu_and_memory(agent.pid, args.idle)
            print(
                f"idle: {used:.2f} CPU s over {args.idle:.0f} s ({100 * used / args.idle:.2f} %); "
                f"VmRSS {rss / 1024:.1f} MiB, VmHWM {hwm / 1024:.1f} MiB"
            )
            result = uevent_refresh(kubelet, root, spec, 10)
            if isinstance(result, str):
                print(f"refresh after a uevent: {result}")
            else:
                print(
                    f"refresh after a uevent, until kubelet hears it: median {ms(statistics.median(result))}, "
                    f"max {ms(max(result))} ({len(result)} uevents)"
                )
        finally:
            agent.terminate()
            agent.wait(10)
            kubelet.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
