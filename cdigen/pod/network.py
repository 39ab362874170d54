"""The pod's networks, each merged from its sources and matched to its host device, and the
netdev settings they give the host interfaces (what `cdigen apply` and the shim take). Files
are read only below `root`: sys/, the device-info files and the CNI result cache."""

from cdigen import netdev
from cdigen.errors import InvalidInput
from cdigen.pod.annotations import (
    NETWORK_STATUS,
    NETWORK_STATUS_OLD,
    POD_NETWORKS,
    has_network_annotations,
    parse_network_status,
    parse_pod_networks,
    sandbox_id,
)
from cdigen.pod.cniresult import cni_results, parse_cni_result
from cdigen.pod.devinfo import devinfo_files, parse_device_info
from cdigen.pod.host import Host, match
from cdigen.pod.merge import Network, join, merge
from cdigen.pod.model import NetworkFacts, Observation, fail


def network_facts(
    annotations: dict[str, str],
    root: str = "/",
    container_id: str | None = None,
    *,
    netdevs: dict[str, str] | None = None,
) -> list[NetworkFacts]:
    """Every network of the pod, merged and matched to a host device (docs/vm.md).

    `annotations`: the pod's (config.json's) annotations. `root`: where sys/, var/run and
    var/lib are. `container_id`: the pod sandbox's id; with it the CNI result cache and the
    device-info files are read too. `netdevs`: host interface -> its name inside the pod, known
    from elsewhere (config.json linux.netDevices), for matching by interface name.
    PodNetError (InvalidInput, exit 3), one line naming the network."""
    if annotations is None:
        annotations = {}
    if not isinstance(annotations, dict):
        fail("annotations", "expected an object")
    observations: list[Observation] = []
    status_key = NETWORK_STATUS if NETWORK_STATUS in annotations else NETWORK_STATUS_OLD
    if status_key in annotations:
        observations += parse_network_status(annotations[status_key], status_key)
    if POD_NETWORKS in annotations:
        observations += parse_pod_networks(annotations[POD_NETWORKS])
    if container_id:
        observations += cni_results(root, container_id)
    nets = join(observations)
    if container_id:
        files = devinfo_files(root, container_id, [n.interface for n in nets])
        for net in nets:
            net.extra_devinfo = files.get(net.interface, [])
    host = Host(root)
    out = [NetworkFacts(**match(merge(net), host, netdevs)) for net in nets]
    owners: dict[tuple, str] = {}
    for facts in out:
        for key in (("if", facts.host_interface), ("pci", facts.pci_address), ("dev", facts.device)):
            if key[1] is None:
                continue
            if key in owners and owners[key] != facts.name:
                fail(f"network {facts.name}", f"{facts.device} is network {owners[key]}'s too")
            owners[key] = facts.name
    return out


def netdev_settings(facts: NetworkFacts) -> netdev.NetdevSettings:
    """The pod-network layer of the network's host interface (`netdev.layered`): one address
    (a netdev setting has one: the first IPv4 address, else the first IPv6 one) with its mask,
    and the MTU. The other addresses, the MAC and the routes have no place in a netdev
    setting. PodNetError when the network has no host interface."""
    if facts.host_interface is None:
        fail(f"network {facts.name}", "it has no host interface")
    address = next((a for a in facts.addresses if ":" not in a), facts.addresses[0] if facts.addresses else None)
    try:
        return netdev.make(facts.host_interface, None, address, None, facts.mtu)
    except InvalidInput as e:
        fail(f"network {facts.name}", str(e))


def overrides_for(annotations: dict, netdevs: dict[str, str], root: str = "/") -> list[netdev.NetdevSettings]:
    """What `cdigen apply` takes from the pod: the settings of the host interfaces in `netdevs`
    (host -> container name, the requested devices'), when the annotations carry network facts
    (else [] and nothing is read). The CNI result cache is read under the sandbox id of the
    CRI annotations. Networks on other devices, and the default network, are left out."""
    if not has_network_annotations(annotations):
        return []
    facts = network_facts(annotations, root, sandbox_id(annotations), netdevs=netdevs)
    return [netdev_settings(f) for f in facts if f.host_interface in netdevs]


def facts_from_result(
    result: dict,
    ifname: str,
    network: str | None = None,
    root: str = "/",
    device_info: dict | None = None,
    host_interface: str | None = None,
) -> NetworkFacts:
    """The facts of one interface of a CNI result (a plugin's prevResult), matched to the host
    like the annotations' (device-info, then `host_interface`, then the MAC). For the CNI
    plugin and the DAN writer; PodNetError as `network_facts`."""
    where = f"CNI result for {ifname}"
    obs = parse_cni_result({"result": result, "ifName": ifname, "networkName": network}, where, ifname)
    net = Network(network or ifname, ifname, False, [obs])
    if device_info is not None:
        net.extra_devinfo = [("CNIDeviceInfoFile", parse_device_info(device_info, f"{where}: device-info"))]
    netdevs = {host_interface: ifname} if host_interface else None
    return NetworkFacts(**match(merge(net), Host(root), netdevs))
