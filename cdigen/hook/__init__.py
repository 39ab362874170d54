"""Stage 3, `cdigen hook`: the OCI createRuntime hook that puts netdevs into the container's
network namespace (docs/netdev.md).

A runtime runs it at every container creation, so it imports only the netdev rules, the OCI
readers and, when there is work, the rtnetlink client: no typer, no YAML, no CDI.

    state on stdin + config.json -> plan.netdevs_to_configure (pure) -> configure.configure
"""

from cdigen.errors import InvalidInput
from cdigen.netdev import NetdevSettings


def run(state: bytes, args: list[NetdevSettings]) -> None:
    """Configure the container that the OCI `state` describes; `args`: the hook entry's
    --netdev settings. Raises CdigenError after rolling back."""
    import os

    from cdigen.hook.configure import configure, return_runtime_moved
    from cdigen.hook.plan import listed_names, netdevs_to_configure, target_netns
    from cdigen.oci.config import CONFIG_NAME, read_config
    from cdigen.oci.state import parse_state

    parsed = parse_state(state)
    config = read_config(os.path.join(parsed.bundle, CONFIG_NAME))[1]
    try:
        wanted = netdevs_to_configure(config, args)
    except InvalidInput as e:
        raise return_runtime_moved(config, args, parsed.pid, e) from None
    if not wanted:
        return  # no netdevs: nothing to do, not even a netns to open
    mine = {cfg.host for cfg in wanted}
    others = [cfg for cfg in listed_names(config, []) if cfg.host not in mine]
    configure(wanted, target_netns(config, parsed.pid), others)
