"""The README keeps its promises: its five-minute path runs as written and shows what the README
says it shows; its set-up and test commands are the ones CI runs; its exit codes are
cdigen/errors.py's; its examples are the embedded ones; and every relative link of the README
and docs/ leads to a file.

The five-minute path runs as root would on a fresh host, but fenced off from this one: in
private mount and network namespaces (`unshare --mount --net`) where /etc and /var are
overlays whose writes go to the test's directory (/etc/cdi, /var/tmp/demo, podman's storage on
a tmpfs), /run is an empty tmpfs (podman's state, /run/netns, the hook's /run/cdigen), and the
veth and namespace it makes die with the test's network namespace. The commands are the
README's `sh` blocks, verbatim; the install block is not run (CI has just run it: .ci/run).
"""

import contextlib
import os
import re
import subprocess
from pathlib import Path

import pytest

from cdigen import errors
from cdigen.examples import EXAMPLES
from tests.helpers.podman import podman_skip_reason
from tests.helpers.runc import runc_skip_reason

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FIVE_MINUTES = "Five minutes, no GPU needed"
SET_UP = [
    "apt-get update && apt-get install -y runc busybox-static iproute2 && python3 -m venv .venv"
    " && .venv/bin/pip install -e '.[test]'",
    ".venv/bin/cdigen scan --example hgx-h100",
]

# $1: the test's directory; $2: the script. /var/lib/containers is made in the overlay, then
# covered by a tmpfs: podman's overlay storage driver cannot sit on an overlay.
_SANDBOX = r"""
mkdir -p "$1/etc.up" "$1/etc.work" "$1/var.up" "$1/var.work"
mount -t overlay cdigen-readme-etc -o "lowerdir=/etc,upperdir=$1/etc.up,workdir=$1/etc.work" /etc
mount -t overlay cdigen-readme-var -o "lowerdir=/var,upperdir=$1/var.up,workdir=$1/var.work" /var
mkdir -p /var/lib/containers
mount -t tmpfs cdigen-readme-containers /var/lib/containers
mount -t tmpfs cdigen-readme-run /run
ip link set lo up
exec bash -e "$2"
"""


def section(title: str) -> str:
    """The text of the README's `## TITLE...` section, up to the next `## `."""
    text = README.read_text()
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def blocks(text: str, lang: str = "sh") -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", text, flags=re.M | re.S)


def test_set_up_and_test_commands_are_what_ci_runs():
    assert blocks(section("Set up")) == ["\n".join(SET_UP) + "\n"]
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line.strip()]
    assert blocks(section("Test")) == [ci[-1] + "\n"]
    install = blocks(section(FIVE_MINUTES))[0].splitlines()
    assert install == [SET_UP[0], "apt-get install -y podman"]


def test_exit_codes_are_errors_py():
    codes = {value for name, value in vars(errors).items() if name.startswith("EXIT_")}
    rows = re.findall(r"^\| (\d+) \|", section("Exit codes"), flags=re.M)
    assert sorted(int(code) for code in rows) == sorted(codes)


def test_examples_are_the_embedded_ones():
    paragraph = section("Set up").split("Other examples:")[1].split("(`cdigen topo")[0]
    assert ["hgx-h100"] + re.findall(r"`([a-z0-9-]+)`", paragraph) == list(EXAMPLES)


def test_relative_links_lead_to_files():
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target and not target.startswith("mailto:"):
                assert (page.parent / target).exists(), f"{page.relative_to(ROOT)}: {target}"


# ---------------------------------------------------------------------------- the five minutes


def sandbox_skip_reason() -> str | None:
    reason = runc_skip_reason()
    if reason:
        return reason
    probe = subprocess.run(
        ["unshare", "--mount", "--net", "--propagation", "private", "sh", "-c", "mount -t tmpfs probe /run"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return f"needs private mount and network namespaces: {probe.stderr.strip()}"
    return None


def podman_cgroups() -> set[str]:
    """podman's default cgroup parent (cgroupfs manager) in every hierarchy."""
    base = "/sys/fs/cgroup"
    tops = [base] + [os.path.join(base, e) for e in os.listdir(base)] if os.path.isdir(base) else []
    return {os.path.join(top, "libpod_parent") for top in tops if os.path.isdir(os.path.join(top, "libpod_parent"))}


def run_five_minutes(tmp_path, keep) -> dict[str, str]:
    """Run the five-minute path's `sh` blocks for which `keep(block)` is true, in order, in the
    sandbox; returns each block's output (stdout and stderr) by its text."""
    chosen = [b for b in blocks(section(FIVE_MINUTES))[1:] if keep(b)]  # [0]: the install block
    script = "".join(f"echo '@@@ {i}'\n{block}" for i, block in enumerate(chosen))
    (tmp_path / "five-minutes.sh").write_text(script)
    before = podman_cgroups()
    try:
        proc = subprocess.run(
            ["unshare", "--mount", "--net", "--propagation", "private", "sh", "-euc", _SANDBOX, "sh"]
            + [str(tmp_path), str(tmp_path / "five-minutes.sh")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
            stdin=subprocess.DEVNULL,
        )
    finally:
        for path in podman_cgroups() - before:  # empty once its containers are gone
            for sub, _, _ in os.walk(path, topdown=False):
                with contextlib.suppress(OSError):
                    os.rmdir(sub)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    parts = re.split(r"^@@@ (\d+)\n", proc.stdout, flags=re.M)[1:]
    return {chosen[int(i)]: text for i, text in zip(parts[::2], parts[1::2], strict=True)}


def only(outputs: dict[str, str], needle: str) -> str:
    (found,) = [text for block, text in outputs.items() if needle in block]
    return found


def assert_net0_configured(text: str) -> None:
    """`ip addr show net0` inside: the README's address, the example's MTU, up."""
    head = re.search(r"^\d+: net0@\S+: <([^>]*)> mtu (\d+) ", text, flags=re.M)
    assert head, text
    assert "UP" in head[1].split(",") and head[2] == "4092", text
    assert "inet 192.0.2.10/24 scope global net0" in text, text


def assert_home(text: str) -> None:
    """`ip link show ibp68s0` on the host afterwards: back under its name, with its MTU."""
    assert re.search(r"^\d+: ibp68s0@ibp68s0-peer: <[^>]*> mtu 1500 ", text, flags=re.M), text
    assert "net0" not in text, text


def assert_before_the_run(outputs: dict[str, str]) -> None:
    assert "NIC1: mlx5_1 (0000:44:00.0, ibp68s0)" in only(outputs, "cdigen topo"), outputs
    assert "1 spec file, 3 devices: valid" in only(outputs, "cdigen validate"), outputs


@pytest.mark.root
@pytest.mark.runc
def test_five_minutes_with_runc_and_apply(tmp_path):
    reason = sandbox_skip_reason()
    if reason:
        pytest.skip(reason)
    outputs = run_five_minutes(tmp_path, keep=lambda b: "podman run" not in b and b != "ip link show ibp68s0\n")
    assert_before_the_run(outputs)
    text = only(outputs, "runc run")  # the container's `ip addr show net0`, then `ip link show ibp68s0`
    home = re.search(r"^\d+: ibp68s0@", text, flags=re.M)
    assert home, text
    assert_net0_configured(text[: home.start()])
    assert_home(text[home.start() :])


@pytest.mark.root
@pytest.mark.runc
def test_five_minutes_with_podman(tmp_path):
    reason = sandbox_skip_reason() or podman_skip_reason()
    if reason:
        pytest.skip(reason)
    outputs = run_five_minutes(tmp_path, keep=lambda b: "runc run" not in b)
    assert_before_the_run(outputs)
    assert_net0_configured(only(outputs, "podman run"))
    assert_home(outputs["ip link show ibp68s0\n"])
