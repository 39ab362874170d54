"""Damaged sysfs trees, built systematically from the examples: every symlink retargeted to
another device's directory, made to escape the root, or made a loop. `scan` and `topo` (their
plain functions) give warnings that name a path and scan the rest; the only error is the
documented one for a host without a usable GPU."""

import contextlib
import os
import shutil

import pytest

from cdigen.errors import NoGPU
from cdigen.examples import EXAMPLES, fakesys
from cdigen.scan.affinity import Affinity
from cdigen.scan.build import BuildOptions, build_spec
from cdigen.scan.gpudirect import discover_gpudirect, report_section
from cdigen.scan.report import topo_report
from cdigen.scan.sysfs import discover
from tests.helpers.proc import fast_tmpdir

DAMAGES = ("retarget", "escape", "loop")


@pytest.fixture(scope="module")
def example():
    roots = {}

    def build(name: str) -> str:
        if name not in roots:
            roots[name] = fakesys.build(EXAMPLES[name], fast_tmpdir())
        return roots[name]

    yield build
    for root in roots.values():
        shutil.rmtree(root)


def _links(root: str) -> list[str]:
    """Every symlink below `root`, relative to it, sorted."""
    out = []
    for where, dirs, files in os.walk(root):
        out += [os.path.relpath(os.path.join(where, n), root) for n in dirs + files]
    return sorted(p for p in out if os.path.islink(os.path.join(root, p)))


def _device_dirs(root: str) -> list[str]:
    return sorted({os.path.realpath(os.path.join(root, p)) for p in _links(root)} - {os.path.realpath(root)})


def _scan_and_topo(root: str) -> list:
    """What `cdigen scan` and `cdigen topo` do with `root`, without a process: the warnings."""
    topo = discover(root)
    warnings = list(topo.warnings)
    if topo.usable_gpus:
        topo.gpudirect, more = discover_gpudirect(root, topo)
        warnings += more
    with contextlib.suppress(NoGPU):
        warnings += build_spec(topo, BuildOptions(hook_path="/usr/bin/cdigen"))[1]
    report = topo_report(topo, Affinity.PXB)
    report_section(topo, report)
    return warnings


def _damage(root: str, rel: str, how: str, others: list[str]) -> None:
    path = os.path.join(root, rel)
    os.unlink(path)
    if how == "retarget":  # another device's directory, chosen by the link's name
        other = others[sum(map(ord, rel)) % len(others)]
        os.symlink(os.path.relpath(other, os.path.dirname(path)), path)
    elif how == "escape":
        os.symlink("../" * (rel.count("/") + 3), path)
    else:
        os.symlink(os.path.basename(path), path)


@pytest.mark.parametrize(
    ("name", "every_damage"),
    [("switch-pair", True), ("hgx-h100", False)],  # the HGX tree: one damage per link, in turn (2 s)
)
def test_damaged_links_are_warnings_naming_a_path(example, name, every_damage):
    root = example(name)
    others = _device_dirs(root)
    for i, rel in enumerate(_links(root)):
        path = os.path.join(root, rel)
        target = os.readlink(path)
        for how in DAMAGES if every_damage else DAMAGES[i % 3 : i % 3 + 1]:
            _damage(root, rel, how, others)
            try:
                warnings = _scan_and_topo(root)
            except Exception as e:
                raise AssertionError(f"{rel} ({how}): {type(e).__name__}: {e}") from e
            finally:
                os.unlink(path)
                os.symlink(target, path)
            for w in warnings:
                assert w.argument is not None or w.path.startswith("/"), (rel, how, w)


def test_a_bridge_with_a_damaged_link_is_still_read_where_its_functions_are(example):
    """A switch port's own link in /sys/bus/pci/devices escaping the root: one warning naming
    the link; the GPUs, the NICs and their classes are as in the whole tree."""
    root = example("switch-pair")
    whole = discover(root)
    classes = topo_report(whole, Affinity.PXB)["matrix"]
    bridges = [b for b, fn in whole.pci.items() if fn.bridge_kind]
    assert len(bridges) == 6  # a root port, the switch's upstream port and its 4 downstream ports
    for bridge in bridges:
        path = os.path.join(root, "sys/bus/pci/devices", bridge)
        target = os.readlink(path)
        os.unlink(path)
        os.symlink("../../../../../..", path)
        try:
            topo = discover(root)
        finally:
            os.unlink(path)
            os.symlink(target, path)
        assert [(w.path, w.reason.split(":")[0]) for w in topo.warnings] == [
            (f"/sys/bus/pci/devices/{bridge}", "does not resolve to a PCI device under /sys/devices")
        ]
        assert topo.pci == whole.pci
        assert topo_report(topo, Affinity.PXB)["matrix"] == classes
