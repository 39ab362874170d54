#!/usr/bin/env python3
"""Whole-process wall time of the `cdigen` CNI plugin chained after Debian's `host-device`,
invoked as libcni invokes plugins (CNI_* environment, network configuration on stdin).

Each round: a fresh veth pair (MTU 9000) and named netns (not timed); `host-device` ADD moves
one end into the netns as net1, with `static` IPAM 192.0.2.10/24 (timed: what cdigen is
compared with); `cdigen` ADD with that result as prevResult: reads the interface in the netns
over rtnetlink, writes its record, prints the result (timed); `cdigen` CHECK and DEL (timed);
`host-device` DEL, netns and veth removed (not timed). Also `cdigen` VERSION (start-up only)
and `python -I -S -c pass`, in the same rounds.

`cdigen` is the installed layout's console script (bench/common.py), linked as `cdigen` into a
CNI bin dir, which is how the plugin is found. Run as root.

usage: sudo bench/bench_cni.py [--runs N]
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
import uuid

from common import BASELINE, HEADER, environment, installed, row, sh, timed

PLUGINS = ("/usr/lib/cni", "/opt/cni/bin")
TARGET_MS = 40
ADD = {"CNI_COMMAND": "ADD"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    source = next((d for d in PLUGINS if os.access(os.path.join(d, "host-device"), os.X_OK)), None)
    if os.geteuid() != 0 or source is None:
        sys.exit("needs root and containernetworking-plugins (host-device, static)")
    env = environment()
    samples: dict[str, list[float]] = {
        k: [] for k in ("pass", "host-device ADD", "cdigen ADD", "cdigen CHECK", "cdigen DEL", "cdigen VERSION")
    }
    with tempfile.TemporaryDirectory(prefix="cdigen-bench-cni-") as tmp:
        bindir = os.path.join(tmp, "bin")
        os.makedirs(bindir)
        for name in ("host-device", "static"):
            os.symlink(os.path.join(source, name), os.path.join(bindir, name))
        os.symlink(installed(tmp), os.path.join(bindir, "cdigen"))
        # The records go to /run/cdigen/cni, a tmpfs on a real host; here /run may be on disk.
        records = tempfile.mkdtemp(prefix="cdigen-bench-records-", dir="/dev/shm")
        for i in range(args.runs + 1):
            tag = uuid.uuid4().hex[:6]
            end, peer, ns = f"cdgbv{tag}", f"cdgbp{tag}", f"cdgbns{tag}"
            sh("ip", "link", "add", end, "mtu", "9000", "type", "veth", "peer", "name", peer)
            sh("ip", "netns", "add", ns)
            cni = dict(env, CNI_CONTAINERID=f"bench{tag}", CNI_NETNS=f"/var/run/netns/{ns}", CNI_IFNAME="net1")
            cni["CNI_PATH"] = bindir
            base = {"cniVersion": "1.0.0", "name": "rdma-a"}
            ipam = {"type": "static", "addresses": [{"address": "192.0.2.10/24", "gateway": "192.0.2.1"}]}
            moving = json.dumps({**base, "type": "host-device", "device": end, "ipam": ipam}).encode()
            try:
                times = {"pass": timed(BASELINE, env)}
                with tempfile.TemporaryFile() as out:
                    start = time.perf_counter()
                    subprocess.run([os.path.join(bindir, "host-device")], input=moving, stdout=out, env=cni | ADD)
                    times["host-device ADD"] = (time.perf_counter() - start) * 1000
                    out.seek(0)
                    result = json.loads(out.read())
                chained = json.dumps({**base, "type": "cdigen", "record_dir": records, "prevResult": result}).encode()
                plugin = [os.path.join(bindir, "cdigen")]
                times["cdigen ADD"] = timed(plugin, cni | ADD, stdin=chained)
                times["cdigen CHECK"] = timed(plugin, cni | {"CNI_COMMAND": "CHECK"}, stdin=chained)
                times["cdigen DEL"] = timed(plugin, cni | {"CNI_COMMAND": "DEL"}, stdin=chained)
                times["cdigen VERSION"] = timed(plugin, cni | {"CNI_COMMAND": "VERSION"}, stdin=b"")
                hd_del = cni | {"CNI_COMMAND": "DEL"}
                subprocess.run([os.path.join(bindir, "host-device")], input=moving, capture_output=True, env=hd_del)
            finally:
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
                subprocess.run(["ip", "link", "del", end], capture_output=True)
            if i:
                for name, ms in times.items():
                    samples[name].append(ms)
        shutil.rmtree(records, ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians.pop("pass")
    hd = medians["host-device ADD"]
    print(f"median of {args.runs} rounds")
    print(HEADER)
    for name, ms in medians.items():
        extra = ""
        if name == "cdigen ADD":
            extra = f"{ms / hd:.2f}x host-device ADD (target <= {TARGET_MS} ms)"
        print(row(name, ms, base, extra))


if __name__ == "__main__":
    sys.exit(main())
