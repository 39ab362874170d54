"""What the hook configures, decided from config.json and its own arguments (pure).

Interfaces: those of `--netdev` (the hook entry's arguments), else every linux.netDevices key.
Settings: the linux.netDevices entry layered over the arguments (`netdev.layered`), `{n}` in a
name numbered among all the container's NICs. Target: the network namespace path of config.json,
else /proc/PID/ns/net of the state's pid.
"""

from cdigen import netdev
from cdigen.errors import InvalidInput
from cdigen.netdev import NetdevError, NetdevSettings
from cdigen.oci.config import net_devices


def netdevs_to_configure(config: dict, args: list[NetdevSettings]) -> list[NetdevSettings]:
    """What to configure: the --netdev interfaces, else every linux.netDevices key; each with
    its linux.netDevices entry layered over the --netdev value (`netdev.layered`: apply's
    result lands in config.json; other CDI injectors write only `name` there)."""
    devices = net_devices(config)
    by_arg = {cfg.host: cfg for cfg in args}
    out = []
    for host in list(by_arg) if by_arg else list(devices):
        try:
            entry = netdev.from_oci(host, devices[host]) if host in devices else None
            out.append(netdev.layered(host, {"hook arguments": by_arg.get(host), "netDevices": entry}))
        except NetdevError as e:
            raise InvalidInput(f"config.json: linux.netDevices[{host!r}]: {e}") from None
    try:
        if any(cfg.name and netdev.NIC_NUMBER in cfg.name for cfg in out):
            names = _numbered_names(config, out)
            out = [cfg._replace(name=names[cfg.host]) for cfg in out]
        netdev.check_unique_names(out)
    except NetdevError as e:
        raise InvalidInput(f"hook: {e}") from None
    return out


def _numbered_names(config: dict, wanted: list[NetdevSettings]) -> dict[str, str]:
    """host -> container name with `{n}` resolved among all the container's NICs
    (hookentry.container_nics: every `cdigen hook` createRuntime entry of config.json, then
    `wanted`'s own). Each hook of the container numbers them alike."""
    from cdigen import hookentry

    return {cfg.host: cfg.container_name for cfg in hookentry.container_nics(config, wanted)[0]}


def network_path(config: dict) -> str | None:
    """The `path` of config.json's network namespace entry (a namespace that may outlive the
    container), or None."""
    namespaces = config["linux"].get("namespaces")
    for ns in namespaces if isinstance(namespaces, list) else []:
        if isinstance(ns, dict) and ns.get("type") == "network":
            path = ns.get("path")
            return path if isinstance(path, str) and path.startswith("/") else None
    return None


def target_netns(config: dict, pid: int | None) -> str:
    """The container's netns file: linux.namespaces' network `path`, else /proc/PID/ns/net."""
    namespaces = config["linux"].get("namespaces") or []
    if not isinstance(namespaces, list):
        raise InvalidInput("config.json: linux.namespaces must be a list")
    network = [ns for ns in namespaces if isinstance(ns, dict) and ns.get("type") == "network"]
    if not network:
        raise InvalidInput(
            "config.json: the container has no network namespace of its own "
            "(no 'network' entry in linux.namespaces), so no netdev can be moved into it"
        )
    path = network[0].get("path")
    if path:
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidInput(f"config.json: network namespace path must be absolute, got {path!r}")
        return path
    if pid is None:
        raise InvalidInput("OCI state on stdin has no pid, and config.json names no network namespace path")
    return f"/proc/{pid}/ns/net"


def listed_names(config: dict, args: list[NetdevSettings]) -> list[NetdevSettings]:
    """Host and container names of the listed interfaces, ignoring every other setting."""
    devices = net_devices(config)
    return [netdev.names_from_oci(host, devices.get(host)) for host in [cfg.host for cfg in args] or list(devices)]


def listed_hosts(config: dict, args: list[NetdevSettings]) -> list[NetdevSettings]:
    """`listed_names`, with every host name checked (it names a record file too)."""
    out = listed_names(config, args)
    for cfg in out:
        try:
            netdev.check_ifname(cfg.host, "host interface name")
        except NetdevError as e:
            raise InvalidInput(f"config.json: linux.netDevices: {e}") from None
    return out
