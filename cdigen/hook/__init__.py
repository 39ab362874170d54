"""Stage 3, `cdigen hook`: the OCI createRuntime hook that puts netdevs into the container's
network namespace and tells NCCL and UCX in it which NICs it got, and the poststop hook that
brings them home (docs/netdev.md, docs/nccl.md).

A runtime runs them at every container creation and deletion, so they import only the netdev
rules, the OCI readers and, when there is work, the rtnetlink client: no typer, no YAML, no CDI.

    state on stdin + config.json -> plan.netdevs_to_configure (pure) -> configure.configure
                                 -> nccl.tell_libraries (best effort)
    state on stdin + config.json -> plan.listed_names -> restore.poststop
"""

from __future__ import annotations

from cdigen.errors import CdigenError, InvalidInput

TYPE_CHECKING = False  # not typing's: `cdigen hook ldcache` imports this package, and neither typing
if TYPE_CHECKING:  # nor the netdev rules are worth their import time there
    from cdigen.netdev import NetdevSettings


def run(state: bytes, args: list[NetdevSettings], argv: list[str], moves: bool) -> list[str]:
    """Configure the container that the OCI `state` describes, then tell NCCL and UCX its NICs
    (hook/nccl.py); `args`: the hook entry's --netdev settings, `argv`: all its arguments (those
    after `hook`), `moves`: False for an entry that only names RDMA ports. Returns notes for
    stderr (devices an earlier container left behind, restored first; warnings about the
    libraries' files). Raises CdigenError after rolling back."""
    import os

    from cdigen.hook.nccl import tell_libraries
    from cdigen.oci.config import CONFIG_NAME, read_config
    from cdigen.oci.state import parse_state

    try:
        parsed = parse_state(state)
        config = read_config(os.path.join(parsed.bundle, CONFIG_NAME))[1]
    except CdigenError as e:
        if moves:
            raise
        return [f"warning: hook: {e}; NCCL and UCX not told"]  # no NIC of this entry to fail for
    notes = _configure(state, parsed.pid, config, args) if moves else []
    return notes + [f"warning: hook: {note}" for note in tell_libraries(parsed.bundle, config, argv)]


def _configure(state: bytes, pid: int | None, config: dict, args: list[NetdevSettings]) -> list[str]:
    from cdigen.hook.configure import configure, return_runtime_moved
    from cdigen.hook.plan import listed_names, netdevs_to_configure, target_netns

    moved = runtime_moved(state, config)
    try:
        wanted = netdevs_to_configure(config, args)
    except InvalidInput as e:
        raise return_runtime_moved(config, args, pid, e, moved) from None
    if not wanted:
        return []  # no netdevs: nothing to do, not even a netns to open
    mine = {cfg.host for cfg in wanted}
    others = [cfg for cfg in listed_names(config, []) if cfg.host not in mine]
    return configure(wanted, target_netns(config, pid), others, moved)


RUNTIME_MOVES_FROM = (1, 3)  # runtime-spec v1.3.0: a runtime MUST move linux.netDevices


def runtime_moved(state: bytes, config: dict) -> frozenset:
    """Host interfaces that the runtime is known to have moved before any hook: config.json's
    linux.netDevices keys when the state's ociVersion (the runtime's own spec version: runc
    writes the one it implements) is 1.3 or later, else none. runc 1.1.5 writes 1.0.2-dev,
    crun 1.8 1.0.0: they ignore netDevices, so an interface found in the container under a
    listed name is not proven to be the host's by this (configure.proven)."""
    from cdigen import strictjson
    from cdigen.oci.config import net_devices
    from cdigen.values import version_tuple

    try:
        version = version_tuple(strictjson.loads(state).get("ociVersion"))
    except (ValueError, AttributeError):
        return frozenset()
    return frozenset(net_devices(config)) if (version or ())[:2] >= RUNTIME_MOVES_FROM else frozenset()


def run_poststop(state: bytes, args: list[NetdevSettings]) -> list[str]:
    """Bring home the interfaces of the container that the OCI `state` describes (the
    --netdev hosts, else every linux.netDevices key): out of its network namespace when that
    outlives the container, else waiting (hook/restore.py RETURN_WAIT_S at most) for the
    kernel to return those that come back; then their host name, MTU, up state and alias.
    The state's pid is never used: the container's processes are gone, the number may be
    another process's. Returns what was restored; CdigenError naming what could not be."""
    import os

    from cdigen.hook.plan import listed_hosts, network_path
    from cdigen.hook.restore import poststop
    from cdigen.oci.config import CONFIG_NAME, read_config
    from cdigen.oci.state import parse_state

    parsed = parse_state(state)
    config = read_config(os.path.join(parsed.bundle, CONFIG_NAME))[1]
    from cdigen.hook.record import Locks

    hosts = listed_hosts(config, args)
    with Locks([cfg.host for cfg in hosts]):  # not while a hook for one of them is half-way
        return poststop(hosts, network_path(config))
