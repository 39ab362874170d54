"""The command line of `cdigen hook nccl` (the table hookentry.NCCL_COMMAND), parsed by hand
like `cdigen hook`: the createContainer hook of a cdigen spec with RDMA NICs. It never fails
the container: whatever goes wrong is one warning line, and exit 0."""

import sys

from cdigen import hookentry
from cdigen.cli.argv import help_text
from cdigen.errors import UsageError

SUMMARY = (
    "OCI createContainer hook of a cdigen spec with RDMA NICs: tells NCCL and UCX in the container which NICs it got."
)
DESCRIPTION = """\
Reads the container state (JSON) on stdin and, from config.json's `cdigen hook`
createRuntime entries (one per device, in the order of the devices), adds to the
container's /etc/nccl.conf the keys it does not set: NCCL_IB_HCA (=mlx5_0:1,...),
NCCL_SOCKET_IFNAME (=net0,...: the NICs cdigen addresses), NCCL_TOPO_FILE (with
--topo-file) and, for RoCE NICs, NCCL_IB_GID_INDEX (the RoCE v2 GID of the container's
address); and UCX_NET_DEVICES to the image's ucx.conf. The container's environment wins
over both files. `cdigen apply` and the runtime shim also put these variables into
config.json's process.env. Paths never leave the container's root, and running it again
changes nothing. Never fails: a problem is one warning line on stderr, exit 0.
"""


def main(argv: list[str]) -> int:
    try:
        parsed, problem = hookentry.parse_nccl_argv(argv), None
    except hookentry.HookArgsError as e:
        parsed, problem = {}, str(e)
    if parsed is None:
        sys.stdout.write(help_text(hookentry.NCCL_COMMAND, SUMMARY, DESCRIPTION))
        return 0
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError(
            "hook nccl: reads the OCI container state on stdin; a container runtime runs it as a createContainer hook"
        )
    state = sys.stdin.buffer.read()
    if problem:
        notes = [f"{problem}; nothing written"]
    else:
        from cdigen.hook.nccl import run

        try:
            notes = run(state, parsed["topo_file"])
        except Exception as e:  # a container must not fail for its libraries' settings
            notes = [f"{e}; nothing written"]
    for note in notes:
        sys.stderr.write(f"cdigen: warning: hook nccl: {note}\n")
    return 0
