"""Shared test helpers: snapshot location and running the real `cdigen` process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def snapshot(snapshot, request):
    """pytest-snapshot, storing under the top-level snapshots/<test module>/<test name>/."""
    module = request.node.module.__name__.rsplit(".", 1)[-1]
    snapshot.snapshot_dir = ROOT / "snapshots" / module / request.node.name.replace("/", "_")
    return snapshot


def run_cdigen(*args, input=None, env=None, check=None):
    """Run `python -m cdigen ARGS` as a whole process; returns CompletedProcess (text)."""
    full_env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
    full_env.pop("CDIGEN_DEBUG", None)
    if env:
        full_env.update(env)
    proc = subprocess.run([sys.executable, "-m", "cdigen", *map(str, args)], input=input,
                          capture_output=True, text=True, env=full_env, timeout=120)
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
    return proc


@pytest.fixture
def cdigen():
    return run_cdigen
