"""The command line of `cdigen hook ldcache` (the table hookentry.LDCACHE_COMMAND), parsed by
hand like `cdigen hook`: the createContainer hook that a spec with driver files carries."""

import sys

from cdigen import hookentry
from cdigen.cli.argv import help_text, usage_error
from cdigen.errors import UsageError

SUMMARY = (
    "OCI createContainer hook of a cdigen spec that mounts the NVIDIA driver's libraries: their "
    "links and the container's ld cache."
)
DESCRIPTION = """\
Reads the container state (JSON) on stdin and, inside the container's root (config.json
root.path), makes each link LINK -> TARGET where TARGET is there (libcuda.so.1 ->
libcuda.so.<version>, libcuda.so -> libcuda.so.1, ...), then runs ldconfig over the folders:
the container's own /sbin/ldconfig, else the host's static one, chrooted, with no
capabilities. Paths never leave the container's root, files of the image are never replaced,
and running it again changes nothing. Exit 1, one line, if ldconfig fails.

With --host-driver-version, an image that carries CUDA forward-compatibility libraries
(/usr/local/cuda/compat/libcuda.so.<version>) of a newer driver branch than the host's
gets them ahead of the host's libcuda in its ld cache.
"""


def main(argv: list[str]) -> int:
    try:
        parsed = hookentry.parse_ldcache_argv(argv)
    except hookentry.HookArgsError as e:
        raise usage_error(hookentry.LDCACHE_COMMAND, str(e)) from None
    if parsed is None:
        sys.stdout.write(help_text(hookentry.LDCACHE_COMMAND, SUMMARY, DESCRIPTION))
        return 0
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError(
            "hook ldcache: reads the OCI container state on stdin; "
            "a container runtime runs it as a createContainer hook"
        )
    from cdigen.hook.ldcache import run

    for note in run(sys.stdin.buffer.read(), *parsed):
        sys.stderr.write(f"cdigen: {note}\n")
    return 0
