"""The command line: typer commands (app.py, scan.py, specs.py) and the hand-parsed hot-path
commands (apply.py, hook.py, ldcache.py, dan.py, netdev.py restore; argv.py). Importing this
package imports no typer: cdigen/entry.py uses `error_line` on every path.

Library code raises domain errors and returns domain warnings; this is the one place that
names their command-line options (`BadArgument.argument`, `ScanWarning.argument` -> option) and
the exit code is the error's own.
"""

from cdigen.errors import BadArgument, CdigenError, UsageError

OPTION_NAMES = {
    "bundle": "bundle",
    "cdi_version": "--cdi-version",
    "for": "--for",
    "device": "--device",
    "example": "--example",
    "format": "--format",
    "hook_path": "--hook-path",
    "name_strategy": "--device-name-strategy",
    "netdev": "--netdev",
    "netdev_config": "--netdev-config",
    "netdev_name": "--netdev-name",
    "nic_affinity": "--nic-affinity",
    "split_ports": "--split-ports",
    "vendor": "--vendor",
    "class": "--class",
    "sandbox_id": "--sandbox-id",
    "dan_dir": "--dan-dir",
    "driver_root": "--driver-root",
    "nic_only": "--nic-only",
    "mode": "--mode",
    "nccl_topo": "--nccl-topo",
}


def error_line(error: CdigenError) -> str:
    """The one-line message for an error, naming the option a BadArgument is about."""
    if isinstance(error, BadArgument):
        return f"{OPTION_NAMES.get(error.argument, error.argument)} {error}"
    return str(error)


def target_version(cdi_version: str | None, for_engine: str | None) -> str | None:
    """--cdi-version V, or the newest cdiVersion the --for engine release loads; not both."""
    if cdi_version and for_engine:
        raise UsageError("--cdi-version and --for: give one of them")
    if for_engine:
        from cdigen.cdi.consumers import max_version_for

        return max_version_for(for_engine)
    return cdi_version
