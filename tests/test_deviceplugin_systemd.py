"""deploy/systemd: the unit pair for hosts without Kubernetes (`cdigen refresh --watch`, started
again by a .path unit when kernel modules are installed, as nvidia-ctk's nvidia-cdi-refresh)."""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.proc import run_cdigen

UNITS = Path(__file__).resolve().parent.parent / "deploy/systemd"
SERVICE, PATH_UNIT = UNITS / "cdigen-refresh.service", UNITS / "cdigen-refresh.path"


def directive(unit: Path, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.read_text().splitlines() if line.startswith(key + "=")]


def test_units_verify_with_systemd(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("needs systemd-analyze")
    cdigen = os.path.join(os.path.dirname(sys.executable), "cdigen")
    (tmp_path / SERVICE.name).write_text(SERVICE.read_text().replace("/usr/local/bin/cdigen", cdigen))
    shutil.copy(PATH_UNIT, tmp_path)

    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / SERVICE.name), str(tmp_path / PATH_UNIT.name)],
        capture_output=True,
        text=True,
    )

    assert (proc.returncode, proc.stderr) == (0, "")


def test_service_runs_the_watching_refresh_and_the_path_starts_it():
    (start,) = directive(SERVICE, "ExecStart")
    assert shlex.split(start)[1:] == ["refresh", "--watch"]
    assert "--watch" in run_cdigen("refresh", "--help", check=0).stdout
    assert directive(PATH_UNIT, "Unit") == [SERVICE.name]
    assert directive(PATH_UNIT, "PathChanged") == ["/lib/modules/%v/modules.dep", "/lib/modules/%v/modules.dep.bin"]


@pytest.mark.parametrize(
    ("line", "runs"),
    [
        ("kernel/drivers/video/nvidia.ko: kernel/drivers/video/nvidia-modeset.ko", True),
        ("updates/dkms/nvidia.ko.zst:", True),
        ("nvidia-current.ko.xz:", True),
        ("kernel/drivers/net/ethernet/mellanox/mlx5/core/mlx5_core.ko:", False),
        ("kernel/drivers/gpu/drm/nouveau/nouveau.ko:", False),
    ],
)
def test_service_starts_only_with_an_nvidia_module(tmp_path, line, runs):
    """ExecCondition's command, unescaped as systemd does, on a modules.dep of one line."""
    (condition,) = directive(SERVICE, "ExecCondition")
    modules = tmp_path / "modules.dep"
    modules.write_text(line + "\n")
    argv = [
        a.replace("/lib/modules/%v/modules.dep", str(modules)) for a in shlex.split(condition.replace("\\\\", "\\"))
    ]
    assert (subprocess.run(argv).returncode == 0) == runs
