"""`cdigen device-plugin` and `cdigen refresh`: the node agent (cdigen/node/, whose docstring
has the config file, the sockets and the files). Parsed by hand (cdigen/argv.py) and dispatched
by cdigen/entry.py: typer's import would add a third to the plugin's first answer to kubelet."""

import sys

from cdigen.argv import Command, Option
from cdigen.cli.argv import help_text, parse
from cdigen.errors import CdigenError

CONFIG = Option(
    "--config",
    "FILE",
    "The node agent's settings (YAML; cdigen/node/__init__.py). Default: /etc/cdigen/node-agent.yaml.",
)
DEVICE_PLUGIN = Command("device-plugin", (CONFIG,))
REFRESH = Command(
    "refresh", (CONFIG, Option("--watch", None, "Keep running: rescan on kernel uevents and periodically."))
)
DEVICE_PLUGIN_SUMMARY = (
    "Kubelet's device plugin: one device per GPU of the spec, with its NICs and NUMA node; keeps the spec "
    "true from kernel uevents and a periodic rescan. Runs until SIGTERM."
)
REFRESH_SUMMARY = (
    "Scan the host and write the spec of the node agent's settings if it changed; with --watch, keep it "
    "true from kernel uevents and a periodic rescan until SIGTERM."
)


def device_plugin_main(argv: list[str]) -> int:
    args = parse(argv, DEVICE_PLUGIN)
    if args is None:
        sys.stdout.write(help_text(DEVICE_PLUGIN, DEVICE_PLUGIN_SUMMARY))
        return 0
    try:
        import grpc  # noqa: F401 (the optional dependency, said plainly when missing)
    except ImportError as e:
        raise CdigenError(f"device-plugin needs grpcio and protobuf (pip install 'cdigen[node]'): {e}") from None
    from cdigen.node.agent import run_agent

    return run_agent(args["config"], with_plugin=True)


def refresh_main(argv: list[str]) -> int:
    args = parse(argv, REFRESH)
    if args is None:
        sys.stdout.write(help_text(REFRESH, REFRESH_SUMMARY))
        return 0
    from cdigen.node.agent import refresh_once, run_agent

    return run_agent(args["config"], with_plugin=False) if args["watch"] else refresh_once(args["config"])
