"""Running the real `cdigen` process, and scratch directories for fake sysfs trees."""

import os
import subprocess
import sys
import tempfile


def run_cdigen(*args, input=None, env=None, check=None):
    """Run `python -m cdigen ARGS` as a whole process; returns CompletedProcess (text)."""
    full_env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
    full_env.pop("CDIGEN_DEBUG", None)
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "cdigen", *map(str, args)],
        input=input,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def fast_tmpdir() -> str:
    """A fresh directory for a fake sysfs tree: ~1000 small files build in 20 ms in /dev/shm
    instead of 0.5 s on this machine's disk."""
    return tempfile.mkdtemp(prefix="cdigen-test-", dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
