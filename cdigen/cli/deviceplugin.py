"""`cdigen device-plugin` and `cdigen refresh`: the node agent (cdigen/node/, whose docstring
has the config file, the sockets and the files). Thin: one call each."""

from typing import Annotated

import typer

from cdigen.cli.app import app
from cdigen.errors import CdigenError

CONFIG_HELP = "The node agent's YAML settings (cdigen/node/__init__.py). Default: /etc/cdigen/node-agent.yaml if there."
ConfigOption = Annotated[str | None, typer.Option("--config", metavar="FILE", help=CONFIG_HELP)]


@app.command(
    name="device-plugin",
    help="Kubelet's device plugin: one device per GPU of the spec, with its NICs and NUMA node; keeps the spec "
    "true from kernel uevents and a periodic rescan. Runs until SIGTERM.",
)
def device_plugin(config: ConfigOption = None) -> None:
    try:
        import grpc  # noqa: F401 (the optional dependency, said plainly when missing)
    except ImportError as e:
        raise CdigenError(f"device-plugin needs grpcio and protobuf (pip install 'cdigen[node]'): {e}") from None
    from cdigen.node.agent import run_agent

    raise typer.Exit(run_agent(config, with_plugin=True))


@app.command(
    help="Scan the host and write the spec of the node agent's settings if it changed; with --watch, keep it "
    "true from kernel uevents and a periodic rescan until SIGTERM."
)
def refresh(
    config: ConfigOption = None,
    watch: Annotated[bool, typer.Option("--watch", help="Keep running: rescan on uevents and periodically.")] = False,
) -> None:
    from cdigen.node.agent import refresh_once, run_agent

    raise typer.Exit(run_agent(config, with_plugin=False) if watch else refresh_once(config))
