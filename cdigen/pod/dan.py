"""`cdigen dan`: Kata Containers' "directly attachable network" (DAN) file of a pod sandbox,
from the pod's network facts (cdigen/pod/network.py).

Kata reads ``{dan_conf}/{sandbox id}.json`` (default dan_conf ``/run/kata-containers/dans``)
when it creates the sandbox, and then uses it *instead of* scanning the pod's network
namespace. Two runtimes read it, with different device types (docs/vm.md):

* the Go runtime takes only ``{"type": "vfio", "pci_device_id": BDF}``;
* runtime-rs takes ``host-tap`` (``tap_name``) and ``vhost-user`` (``path``), and ``vfio``
  only with kata PR #13802.

So each network becomes the one type that fits its device: a PCI function bound to vfio-pci
-> ``vfio``; a vhost-user socket (device-info, server mode, not created yet: runtime-rs's VMM
creates it) -> ``vhost-user``; a host tap device -> ``host-tap``. When the sandbox's
hypervisor is known, a type it cannot attach is refused (CANNOT_ATTACH). A file that mixes
vfio with the others is loaded by neither runtime and is refused. Everything else is written
the way both runtimes parse alike: lower-case keys, CIDR
``ip_addresses``, a valid unicast ``guest_mac`` always, an explicit ``mtu``, routes with an
explicit ``dest``, no neighbours (no source has any, and the runtimes disagree on their
format). A network that no DAN type can carry is an error, because Kata uses the file
exclusively and the sandbox would silently lose that network.

Errors are one line and leave no file: InvalidInput (3) for the facts, BadArgument (2) for a
bad sandbox id or directory, CdigenError (1) when the write fails.
"""

import json
import os

from cdigen.errors import BadArgument, CdigenError, InvalidInput
from cdigen.files import atomic_write, locked_dir, remove_stale_temps
from cdigen.oci.config import config_path, net_devices, read_config
from cdigen.pod.annotations import SANDBOX_ID_KEYS, is_sandbox
from cdigen.pod.annotations import sandbox_id as annotated_sandbox_id
from cdigen.pod.fields import MAX_FILE_BYTES
from cdigen.pod.host import Host
from cdigen.pod.model import NetworkFacts
from cdigen.pod.network import facts_from_result, network_facts
from cdigen.values import one_line, quoted

DEFAULT_DAN_DIR = "/run/kata-containers/dans"
FILE_MODE = 0o600
IFF_TUN, IFF_TAP = 0x0001, 0x0002
DEFAULT_MTU = 1500  # runtime-rs's own default when `mtu` is absent; the Go runtime has none
GO, RS = "Go runtime (and runtime-rs with kata#13802)", "runtime-rs"


# Why a DAN device type cannot work with a hypervisor (pod/kataconfig.py HYPERVISORS; docs/vm.md,
# "Hypervisors"): vfio is hot-plugged by the Go runtime (QEMU, Cloud Hypervisor) or by
# runtime-rs with kata#13802 (QEMU); host-tap and vhost-user are attached by runtime-rs before
# the VM starts, and only Dragonball takes a vhost-user network.
NOT_A_RUNTIME_RS_HYPERVISOR = "runtime-rs has no such hypervisor, and the Go runtime reads no such DAN device"
CANNOT_ATTACH = {
    "vfio": {
        "dragonball": "the Go runtime has no Dragonball driver, and kata#13802 hot-plugs vfio with QEMU only",
        "firecracker": "Firecracker cannot hot-plug a VFIO device",
        "openvmm": "runtime-rs reads no vfio device (kata#13802 hot-plugs vfio with QEMU only)",
        "remote": "the remote hypervisor hot-plugs no device",
        "stratovirt": "StratoVirt cannot hot-plug a VFIO device",
    },
    "vhost-user": {
        "clh": "runtime-rs's Cloud Hypervisor driver ignores a vhost-user network added before boot",
        "firecracker": "runtime-rs's Firecracker driver fails on a vhost-user network (unhandled device)",
        "openvmm": "runtime-rs's OpenVMM driver leaves a vhost-user network out (unsupported device)",
        "qemu": "runtime-rs's QEMU driver leaves a vhost-user network off its command line (unsupported device)",
        "remote": "the remote hypervisor attaches no device",
        "stratovirt": NOT_A_RUNTIME_RS_HYPERVISOR,
    },
    "host-tap": {
        "remote": "the remote hypervisor attaches no device",
        "stratovirt": NOT_A_RUNTIME_RS_HYPERVISOR,
    },
}


class DanError(InvalidInput):
    """Pod network facts that cannot become a DAN file both runtimes read alike."""


def _fail(message: str):
    raise DanError(one_line(message))


class DanResult:
    """What `write_dan`, `delete_dan` did. `action`: written, unchanged, deleted, absent, or
    skipped (not the sandbox container); `devices`: (guest name, type, device, runtime)."""

    def __init__(self, path: str, sandbox_id: str, action: str, data: bytes | None = None, devices=None):
        self.path, self.sandbox_id, self.action, self.data = path, sandbox_id, action, data
        self.devices: list[tuple[str, str, str, str]] = devices or []


# ---------------------------------------------------------------------------- the document (pure but for sysfs)


def guest_mac(facts: NetworkFacts, sandbox_id: str, vfio: bool) -> str:
    """The network's MAC when it has one (6 bytes, unicast, not zero: what both runtimes and the
    kernel accept), else a locally administered one derived from the sandbox id and the network
    (the same on every run). A VFIO NIC needs its real MAC: Kata's agent finds the NIC in the
    guest by it, and only the pod's network facts know it (the VF has no netdev on the host)."""
    where = f"network {facts.name}"
    if facts.mac is None:
        if vfio:
            _fail(
                f"{where}: no MAC in any source; the guest agent finds a VFIO NIC by its MAC, so it cannot be guessed"
            )
        import hashlib

        digest = bytearray(hashlib.sha256(f"{sandbox_id}/{facts.name}/{facts.interface}".encode()).digest()[:6])
        digest[0] = (digest[0] & 0xFC) | 0x02  # unicast, locally administered
        return ":".join(f"{b:02x}" for b in digest)
    octets = facts.mac.split(":")
    if len(octets) != 6:
        _fail(f"{where}: MAC {facts.mac} is not a 6-byte Ethernet address (both runtimes need one)")
    if int(octets[0], 16) & 1:
        _fail(f"{where}: MAC {facts.mac} is a multicast address")
    if facts.mac == "00:00:00:00:00:00":
        _fail(f"{where}: MAC {facts.mac} is all zeros")
    return facts.mac


def is_tap(host: Host, ifname: str) -> bool:
    """A tun/tap netdev in TAP mode (sysfs ``tun_flags`` has IFF_TAP)."""
    flags = host.read(f"sys/class/net/{ifname}/tun_flags")
    try:
        return flags is not None and bool(int(flags, 16) & IFF_TAP)
    except ValueError:
        return False


def dan_device_type(facts: NetworkFacts, host: Host) -> tuple[dict, str]:
    """(the ``device`` object, the runtime that reads it); DanError when no type fits."""
    where = f"network {facts.name}"
    info = facts.device_info
    if facts.vfio:
        return {"type": "vfio", "pci_device_id": facts.pci_address}, GO
    if info is not None and info.type == "vhost-user":
        # runtime-rs's VMM creates the socket and listens on it; VhostUserEndpoint::new refuses
        # a path that exists, so the host must be the side that connects (device-info "server").
        if info.mode == "client":
            _fail(
                f"{where}: vhost-user socket {info.path} is in client mode (the host creates it); "
                "runtime-rs creates and listens on the socket itself, so it needs server mode"
            )
        if os.path.lexists(host.path(info.path.lstrip("/"))):
            _fail(
                f"{where}: vhost-user socket {info.path} already exists; runtime-rs refuses an existing "
                "socket (it creates and listens on it)"
            )
        return {"type": "vhost-user", "path": info.path}, RS
    if facts.host_interface is not None and is_tap(host, facts.host_interface):
        return {"type": "host-tap", "tap_name": facts.host_interface}, RS
    if facts.device is None:
        _fail(
            f"{where}: the pod's default network ({facts.interface}) is on no host device (a veth in the pod's "
            "netns); Kata uses the DAN file instead of the netns, so the sandbox would lose it"
        )
    if facts.pci_address is not None and facts.host_interface is None:
        bound = f"bound to {facts.pci_driver}" if facts.pci_driver else "bound to no driver"
        _fail(f"{where}: PCI function {facts.pci_address} is {bound}, not vfio-pci")
    if facts.host_interface is not None:
        _fail(
            f"{where}: host interface {facts.host_interface} is neither a tap device nor a VFIO function; "
            "no DAN device type takes it (bind the function to vfio-pci)"
        )
    _fail(f"{where}: no DAN device type takes a {info.type} device")


def dan_device(facts: NetworkFacts, host: Host, sandbox_id: str) -> tuple[dict, str]:
    """One entry of ``devices`` and the runtime it targets."""
    where = f"network {facts.name}"
    device, runtime = dan_device_type(facts, host)
    vfio = device["type"] == "vfio"
    for address in facts.addresses:
        ip = address.partition("/")[0]
        if ip.startswith("127.") or ip == "::1":
            _fail(f"{where}: loopback address {address} (both runtimes drop it)")
    routes = []
    for route in facts.routes:
        if vfio and route.gateway is None and ":" not in route.dest:
            # dan.go: the family comes from the gateway only; no gateway reads as IPv6, and the
            # agent then fails to parse the IPv4 destination.
            _fail(f"{where}: on-link IPv4 route to {route.dest}: the Go runtime reads a route without gateway as IPv6")
        routes.append({"dest": route.dest, "gateway": route.gateway or ""})
    mtu = facts.mtu
    if mtu is None and device["type"] == "host-tap":
        text = host.read(f"sys/class/net/{facts.host_interface}/mtu")
        mtu = int(text) if text and text.isdigit() else None
    entry = {
        "name": facts.interface,
        "guest_mac": guest_mac(facts, sandbox_id, vfio),
        "device": device,
        "network_info": {
            "interface": {"ip_addresses": list(facts.addresses), "mtu": mtu or DEFAULT_MTU},
            "routes": routes,
            "neighbors": [],
        },
    }
    return entry, runtime


def attachable_device(facts: NetworkFacts, host: Host, sandbox_id: str, hypervisor: str | None) -> tuple[dict, str]:
    """`dan_device`, refused (DanError) when its type cannot work with `hypervisor` (the
    sandbox's, when known)."""
    entry, runtime = dan_device(facts, host, sandbox_id)
    kind = entry["device"]["type"]
    reason = CANNOT_ATTACH[kind].get(hypervisor)
    if reason:
        _fail(f"network {facts.name}: a {kind} DAN device cannot work with the {hypervisor} hypervisor: {reason}")
    return entry, runtime


def dan_document(
    facts: list[NetworkFacts], sandbox_id: str, root: str = "/", hypervisor: str | None = None
) -> tuple[dict, list]:
    """(the DAN document, [(guest name, type, device, runtime)]). DanError for a network no type
    fits, or whose type cannot work with `hypervisor` (the sandbox's, when known), for a file
    that would mix the runtimes' types, and for no network at all."""
    if not facts:
        _fail(
            f"sandbox {sandbox_id}: no pod network in the annotations or the CNI result cache; "
            "an empty DAN file would leave the sandbox without network"
        )
    host = Host(root)
    devices, summary = [], []
    for f in facts:
        entry, runtime = attachable_device(f, host, sandbox_id, hypervisor)
        devices.append(entry)
        device = entry["device"]
        kind = device["type"]
        target = device.get("pci_device_id") or device.get("path") or device.get("tap_name")
        summary.append((f.interface, kind, target, runtime))
    runtimes = {runtime for *_, runtime in summary}
    if len(runtimes) > 1:
        vfio = next(name for name, kind, *_ in summary if kind == "vfio")
        other = next(name for name, kind, *_ in summary if kind != "vfio")
        _fail(
            f"sandbox {sandbox_id}: {vfio} is vfio (Go runtime only) and {other} is not (runtime-rs only): "
            "neither runtime loads a file with both"
        )
    return {"devices": devices}, summary


def render(doc: dict) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# ---------------------------------------------------------------------------- bundle, sandbox id, files


SANDBOX_ID_RULE = "letters, digits, '_', '+', '-', '.', not '.' first, at most 250"


def valid_sandbox_id(value) -> bool:
    """Fit to be a file name: what runc allows in ids, not starting with '.', at most 250."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= 250
        and not value.startswith(".")
        and all(c.isascii() and (c.isalnum() or c in "_+-.") for c in value)
    )


def check_sandbox_id(value, where: str) -> str:
    """`value`, or InvalidInput naming `where` (a file's or an annotation's sandbox id)."""
    if not valid_sandbox_id(value):
        raise InvalidInput(f"{where}: invalid sandbox id {quoted(value)} ({SANDBOX_ID_RULE})")
    return value


def read_bundle(bundle: str) -> tuple[dict, dict[str, str]]:
    """(annotations, host interface -> container name of linux.netDevices) of BUNDLE/config.json."""
    path = config_path(bundle)
    _, doc = read_config(path)
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise InvalidInput(f"{path}: annotations: expected an object")
    names = {}
    for host, entry in net_devices(doc).items():
        name = entry.get("name") if isinstance(entry, dict) else None
        names[host] = name if isinstance(name, str) and name else host
    return annotations, names


def resolve_sandbox_id(annotations: dict, explicit: str | None) -> str:
    """The sandbox id from the CRI annotations, or `explicit`; BadArgument when they disagree or
    there is none."""
    found = annotated_sandbox_id(annotations)
    if explicit is not None:
        if not valid_sandbox_id(explicit):
            raise BadArgument("sandbox_id", f"{quoted(explicit)}: not a valid sandbox id ({SANDBOX_ID_RULE})")
        if found is not None and found != explicit:
            raise BadArgument("sandbox_id", f"{explicit} disagrees with the bundle's sandbox id {found}")
        return explicit
    if found is None:
        raise BadArgument("sandbox_id", f"is needed: the bundle has no {' or '.join(SANDBOX_ID_KEYS)} annotation")
    return check_sandbox_id(found, f"annotation {SANDBOX_ID_KEYS[0]}")


def dan_path(dan_dir: str, sandbox_id: str) -> str:
    if not dan_dir or not os.path.isabs(dan_dir):
        raise BadArgument("dan_dir", f"{dan_dir!r} is not an absolute path")
    return os.path.join(dan_dir, f"{sandbox_id}.json")


def read_dan(path: str) -> dict | None:
    """An existing DAN file (None when there is none); InvalidInput unless it is a JSON object
    with a ``devices`` list of objects that have a ``name``."""
    from cdigen.files import read_json

    doc = read_json(path, MAX_FILE_BYTES)
    if doc is None:
        return None
    devices = doc.get("devices") if isinstance(doc, dict) else None
    if not isinstance(devices, list) or not all(
        isinstance(d, dict) and isinstance(d.get("name"), str) for d in devices
    ):
        raise InvalidInput(f"{path}: not a DAN file (expected an object with a devices list)")
    return doc


def _write(dan_dir: str, path: str, data: bytes) -> str:
    """Replace `path` with `data` (mode 0600) unless it holds exactly that; 'written' or
    'unchanged'. Call it holding the lock of `dan_dir`."""
    from cdigen.files import UnreadableFile, read_regular

    try:  # a regular file only, never blocking on a FIFO put there
        if read_regular(path, len(data)) == data and os.stat(path).st_mode & 0o777 == FILE_MODE:
            return "unchanged"
    except (UnreadableFile, OSError):
        pass
    remove_stale_temps(path)
    atomic_write(path, data, mode=FILE_MODE)
    return "written"


def _make_dir(dan_dir: str) -> None:
    try:
        os.makedirs(dan_dir, mode=0o700, exist_ok=True)
    except OSError as e:
        raise CdigenError(f"cannot create {dan_dir}: {e.strerror}") from None


def write_dan(
    bundle: str,
    root: str = "/",
    dan_dir: str = DEFAULT_DAN_DIR,
    sandbox_id: str | None = None,
    hypervisor: str | None = None,
    kata_config: str | None = None,
) -> DanResult:
    """Write the DAN file of the bundle's sandbox (atomic, mode 0600, under a lock on the
    directory, which is made if missing). A bundle whose annotations say it is a workload
    container, not the sandbox, is skipped. The sandbox's hypervisor, when known (`hypervisor`,
    or the Kata configuration file `kata_config`), refuses the device types it cannot attach.
    Nothing is written on any error."""
    annotations, names = read_bundle(bundle)
    sid = resolve_sandbox_id(annotations, sandbox_id)
    path = dan_path(dan_dir, sid)
    if not is_sandbox(annotations):
        return DanResult(path, sid, "skipped")
    if kata_config is not None:
        from cdigen.pod.kataconfig import configured_hypervisor

        hypervisor = configured_hypervisor(kata_config, annotations)
    facts = network_facts(annotations, root, sid, netdevs=names)
    doc, summary = dan_document(facts, sid, root, hypervisor)
    data = render(doc)
    _make_dir(dan_dir)
    with locked_dir(dan_dir):
        action = _write(dan_dir, path, data)
    return DanResult(path, sid, action, data, summary)


def delete_dan(bundle: str, dan_dir: str = DEFAULT_DAN_DIR, sandbox_id: str | None = None) -> DanResult:
    """Remove the DAN file of the bundle's sandbox (when the sandbox ends); absent is fine."""
    annotations, _ = read_bundle(bundle)
    sid = resolve_sandbox_id(annotations, sandbox_id)
    path = dan_path(dan_dir, sid)
    if not is_sandbox(annotations):
        return DanResult(path, sid, "skipped")
    return DanResult(path, sid, _remove(path))


def _remove(path: str) -> str:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return "absent"
    except OSError as e:
        raise CdigenError(f"cannot remove {path}: {e.strerror}") from None
    return "deleted"


# ---------------------------------------------------------------------------- one interface at a time (CNI plugin)


def add_interface(dan_dir: str, record: dict, root: str = "/", hypervisor: str | None = None) -> str:
    """Put one interface into its sandbox's DAN file, replacing an entry of the same guest
    name; the file's path. `record`: a cdigen CNI record (cdigen/pod/cnirecord.py: containerId,
    ifName, networkName, interface{mac, mtu, hostInterface, pciAddress}, ips, routes,
    deviceInfo). The whole file is checked as `write_dan` checks it (one runtime's types, and
    what `hypervisor` can attach)."""
    sid = check_sandbox_id(record.get("containerId"), "CNI record containerId")
    ifname = record.get("ifName")
    interface = record.get("interface") or {}
    if not isinstance(interface, dict):
        raise InvalidInput("CNI record: interface: expected an object")
    result = {
        "interfaces": [
            {
                "name": ifname,
                "sandbox": record.get("netns") or "-",
                **{
                    k: interface[v]
                    for k, v in (("mac", "mac"), ("mtu", "mtu"), ("pciID", "pciAddress"))
                    if interface.get(v)
                },
            }
        ],
        "ips": record.get("ips") or [],
        "routes": record.get("routes") or [],
    }
    facts = facts_from_result(
        result, ifname, record.get("networkName"), root, record.get("deviceInfo"), interface.get("hostInterface")
    )
    entry, _ = attachable_device(facts, Host(root), sid, hypervisor)
    path = dan_path(dan_dir, sid)
    _make_dir(dan_dir)
    with locked_dir(dan_dir):
        doc = read_dan(path) or {"devices": []}
        devices = [d for d in doc["devices"] if d["name"] != entry["name"]] + [entry]
        kinds = {d.get("device", {}).get("type") == "vfio" for d in devices if isinstance(d.get("device"), dict)}
        if len(kinds) > 1:
            _fail(f"{path}: {entry['name']} would mix vfio with host-tap/vhost-user; neither runtime loads that")
        _write(dan_dir, path, render(doc | {"devices": devices}))
    return path


def remove_interface(dan_dir: str, container_id: str, ifname: str, path: str | None = None) -> str:
    """Take one interface out of its sandbox's DAN file, removing the file when it was the
    last; 'written', 'deleted' or 'absent'."""
    path = path or dan_path(dan_dir, check_sandbox_id(container_id, "CNI container id"))
    if not os.path.lexists(path):
        return "absent"
    with locked_dir(os.path.dirname(path)):
        doc = read_dan(path)
        if doc is None:
            return "absent"
        devices = [d for d in doc["devices"] if d["name"] != ifname]
        if len(devices) == len(doc["devices"]):
            return "absent"
        if not devices:
            return _remove(path)
        _write(os.path.dirname(path), path, render(doc | {"devices": devices}))
    return "written"
