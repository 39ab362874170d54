"""How each Kata runtime reads a DAN file and attaches its devices, restated from its source
(docs/vm.md; kata-containers 7c6ba40c): enough to check cdigen's output field by field and to
show what each one rejects. Each rule cites the file and function it restates; `rs/` is
src/runtime-rs/crates/, `go/` is src/runtime/.

* `go_load` (go/virtcontainers/network_linux.go addDanEndpoints, convertDanDeviceToNetworkInfo;
  types/dan.go decoded by encoding/json: keys matched without regard to case, unknown keys
  ignored, a JSON type that does not fit the Go field is an error), then `go_attach`
  (go/virtcontainers/sandbox.go hotplugVfioNetworkDevice, run by kata_agent.go setupNetworks
  once the VM is up).
* `rs_load` (rs/resource/src/network/dan.rs DanInner::new: serde, keys matched exactly, unknown
  keys ignored; then each endpoint's `new` and NetworkInfoFromDan::new), then `rs_attach`
  (dan.rs Dan::setup -> each endpoint's `attach` -> the hypervisor's add_device, before the VM
  starts). `with_vfio`: runtime-rs with kata PR #13802 (a `vfio` variant with `pci_device_id`).

Each returns the devices as the runtime understands them (attach: those that reach the VM), or
raises KataReject with the runtime's own message."""

import ipaddress
import os
import random
import re


class KataReject(ValueError):
    pass


# ---------------------------------------------------------------------------- Go


def _go_field(obj: dict, name: str):
    """encoding/json: an exact match wins, else the first key equal under case folding."""
    if name in obj:
        return obj[name]
    for key, value in obj.items():
        if key.lower() == name.lower():
            return value
    return None


def _go_string(value, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise KataReject(f"fail to unmarshal DAN config: json: cannot unmarshal into Go field {what} of type string")
    return value


def _go_uint(value, what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise KataReject(f"fail to unmarshal DAN config: json: cannot unmarshal into Go field {what} of type uint")
    return value


_HEX2, _HEX4 = "[0-9a-fA-F]{2}", "[0-9a-fA-F]{4}"
_MAC_COLON = re.compile("|".join(f"{_HEX2}([:-]{_HEX2}){{{n - 1}}}" for n in (6, 8, 20)))
_MAC_DOT = re.compile("|".join(f"{_HEX4}(\\.{_HEX4}){{{n // 2 - 1}}}" for n in (6, 8, 20)))


def go_parse_mac(text: str) -> str:
    """net.ParseMAC: 6, 8 or 20 bytes, ':' '-' or '.'-separated; error otherwise. The result is
    what HardwareAddr.String() prints, which is what the agent gets: lower case, ':'."""
    if not (_MAC_COLON.fullmatch(text) and len(set(re.findall(r"[:-]", text))) == 1) and not _MAC_DOT.fullmatch(text):
        raise KataReject(f"address {text}: invalid MAC address")
    digits = re.sub(r"[:.-]", "", text).lower()
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def go_parse_ip(text: str):
    """net.ParseIP: None for anything but a bare address."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def go_load(doc: dict) -> list[dict]:
    devices = _go_field(doc, "devices") or []
    out = []
    for device in devices:
        name = _go_string(_go_field(device, "name"), "DanDevice.name")
        mac_text = _go_string(_go_field(device, "guest_mac"), "DanDevice.guest_mac")
        try:  # convertDanDeviceToNetworkInfo: net.ParseMAC(device.GuestMac)
            mac = go_parse_mac(mac_text)
        except KataReject as e:
            raise KataReject(f"bad mac address in DAN config: {e}") from None
        info = _go_field(device, "network_info") or {}
        iface = _go_field(info, "interface") or {}
        mtu = _go_uint(_go_field(iface, "mtu"), "Interface.mtu")
        addrs = []
        for addr in _go_field(iface, "ip_addresses") or []:
            addr = _go_string(addr, "Interface.ip_addresses")
            try:  # convertDanDeviceToNetworkInfo: netlink.ParseAddr -> ParseIPNet, CIDR only
                ipaddress.ip_interface(addr)
                if "/" not in addr:
                    raise ValueError
            except ValueError:
                raise KataReject(f"bad IP address in DAN config: invalid CIDR address: {addr}") from None
            addrs.append(addr)
        routes = []
        for route in _go_field(info, "routes") or []:
            dest = _go_string(_go_field(route, "dest"), "Route.dest")
            if dest:  # convertDanDeviceToNetworkInfo: net.ParseCIDR when not empty
                try:
                    ipaddress.ip_network(dest, strict=False)
                    if "/" not in dest:
                        raise ValueError
                except ValueError:
                    raise KataReject(f"bad route dest in DAN config: invalid CIDR address: {dest}") from None
            gw = go_parse_ip(_go_string(_go_field(route, "gateway"), "Route.gateway"))
            # convertDanDeviceToNetworkInfo: len(r.Gw.To4()) == IPv4len, else AF_INET6
            family = 4 if gw is not None and gw.version == 4 else 6
            routes.append({"dest": dest, "gateway": str(gw) if gw else None, "family": family})
        neighbors = []
        for neigh in _go_field(info, "neighbors") or []:
            hw = _go_string(_go_field(neigh, "hardware_addr"), "ARPNeighbor.hardware_addr")
            try:  # convertDanDeviceToNetworkInfo: net.ParseMAC(neigh.HardwareAddr)
                hw = go_parse_mac(hw)
            except KataReject as e:
                raise KataReject(f"bad neighbor hardware address in DAN config: {e}") from None
            ip = go_parse_ip(_go_string(_go_field(neigh, "ip_address"), "ARPNeighbor.ip_address"))
            neighbors.append({"ip": str(ip) if ip else None, "hardware_addr": hw})
        dev = _go_field(device, "device") or {}
        kind = _go_string(_go_field(dev, "type"), "Device.type")
        if kind != "vfio":  # addDanEndpoints: only VfioDanDeviceType
            raise KataReject(f"unknown DAN device type: '{kind}'")
        out.append(
            {
                "name": name,
                "mac": mac,
                "type": kind,
                "pci": _go_string(_go_field(dev, "pci_device_id"), "Device.pci_device_id"),
                "mtu": mtu,
                "addresses": addrs,
                "routes": routes,
                "neighbors": neighbors,
            }
        )
    return out


# The Go runtime's hypervisors (go/virtcontainers/hypervisor_linux.go NewHypervisor; the table
# names of go/pkg/katautils/config.go updateRuntimeConfigHypervisor) and what each one's
# HotplugAddDevice does with a VfioDev: None, it is plugged; else its error.
GO_VFIO_HOTPLUG = {
    "qemu": None,  # qemu.go HotplugAddDevice: hotplugVFIODevice
    "clh": None,  # clh.go HotplugAddDevice: hotPlugVFIODevice
    "firecracker": "Could not hot add device: unsupported device",  # fc.go HotplugAddDevice
    "stratovirt": "Hotplug add device: unsupported device type",  # stratovirt.go HotplugAddDevice
    "remote": "HotplugAddDevice: not implemented",  # remote.go HotplugAddDevice
    "dragonball": "a mock hypervisor: the Go runtime has no Dragonball driver",  # NewHypervisor
}


def go_attach(devices: list[dict], hypervisor: str, hot_plug_vfio: str = "root-port") -> list[dict]:
    """sandbox.go hotplugVfioNetworkDevice for each vfio endpoint: refused when the hypervisor
    table's hot_plug_vfio is "no-port" (katautils hotPlugVFIO's default, and the value of every
    shipped configuration-*.toml), else the hypervisor's HotplugAddDevice(VfioDev)."""
    for device in devices:
        if hot_plug_vfio == "no-port":
            raise KataReject(
                f"cannot attach VFIO network interface {device['name']!r} (BDF {device['pci']}): "
                "hot_plug_vfio port is not configured"
            )
        error = GO_VFIO_HOTPLUG[hypervisor]
        if error:
            raise KataReject(f"failed to hotplug VFIO device for network interface {device['name']!r}: {error}")
    return devices


# ---------------------------------------------------------------------------- runtime-rs


def _rs(obj, key: str, kind, required: bool, default=None):
    if not isinstance(obj, dict):
        raise KataReject("Invalid DAN config: invalid type: expected a map")
    if key not in obj:
        if required:
            raise KataReject(f"Invalid DAN config: missing field `{key}`")
        return default
    value = obj[key]
    if kind is str and not isinstance(value, str):
        raise KataReject(f"Invalid DAN config: invalid type for `{key}`, expected a string")
    if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise KataReject(f"Invalid DAN config: invalid type for `{key}`, expected an unsigned integer")
    if kind is list and not isinstance(value, list):
        raise KataReject(f"Invalid DAN config: invalid type for `{key}`, expected a sequence")
    return value


def rs_parse_cidr(text: str):
    """rs/resource/src/network/utils/address.rs parse_ip_cidr: "addr/prefix" only."""
    if "/" not in text:
        return None
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        return None


def rs_parse_mac(text: str) -> str | None:
    """rs/resource/src/network/utils/mod.rs parse_mac: six ':'-separated parts, each
    u8::from_str_radix(part, 16) (one or more hex digits, an optional '+', at most 0xff); None
    otherwise."""
    parts = text.split(":")
    if len(parts) != 6 or not all(re.fullmatch(r"\+?[0-9a-fA-F]+", p) and int(p, 16) <= 0xFF for p in parts):
        return None
    return ":".join(f"{int(p, 16):02x}" for p in parts)


def rs_generate_private_mac_addr() -> str:
    """utils/mod.rs generate_private_mac_addr: random, locally administered, unicast."""
    octets = [random.randrange(256) for _ in range(6)]
    octets[0] = (octets[0] | 2) & 0xFE
    return ":".join(f"{b:02x}" for b in octets)


def _host_path(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def rs_load(doc: dict, root: str, with_vfio: bool = False) -> list[dict]:
    """DanInner::new, with the host's files below `root`: a vhost-user socket that exists and a
    tap that does not are refused here, when the file is loaded."""
    devices = _rs(doc, "devices", list, True)
    _rs(doc, "netns", str, False)
    out = []
    for device in devices:
        name = _rs(device, "name", str, True)
        # dan.rs DanDevice: #[serde(default = "generate_private_mac_addr")]
        mac = _rs(device, "guest_mac", str, False)
        mac = rs_generate_private_mac_addr() if mac is None else mac
        dev = _rs(device, "device", dict, True)
        kind = _rs(dev, "type", str, True)
        if kind == "vhost-user":
            target = _rs(dev, "path", str, True)
        elif kind == "host-tap":
            target = _rs(dev, "tap_name", str, True)
        elif kind == "vfio" and with_vfio:
            target = _rs(dev, "pci_device_id", str, True)
        else:
            raise KataReject(f"Invalid DAN config: unknown variant `{kind}`")
        for key in ("queue_num", "queue_size"):
            _rs(dev, key, int, False, 0)
        info = _rs(device, "network_info", dict, True)
        iface = _rs(info, "interface", dict, True)
        addresses = _rs(iface, "ip_addresses", list, True)
        mtu = _rs(iface, "mtu", int, False, 1500)  # dan.rs default_mtu
        _rs(iface, "ntype", str, False, "")
        _rs(iface, "flags", int, False, 0)
        routes_in = _rs(info, "routes", list, False, [])
        neighbors_in = _rs(info, "neighbors", list, False, [])
        # The endpoint, right after the file is parsed (DanInner::new).
        if kind == "vhost-user" and os.path.exists(_host_path(root, target)):
            # endpoint/vhost_user_endpoint.rs VhostUserEndpoint::new: the VMM creates and
            # listens on the socket, so one that exists is refused.
            raise KataReject(
                f"create a vhost user endpoint, path: {target}: vhost-user-net socket path {target} exists"
            )
        if kind == "host-tap" and not os.path.isdir(_host_path(root, f"sys/class/net/{target}")):
            # endpoint/tap_endpoint.rs TapEndpoint::new: get_link_by_name(tap_name)
            raise KataReject(f"create a {target} tap endpoint: get link by name")
        kept = []
        for addr in addresses:
            if not isinstance(addr, str):
                raise KataReject("Invalid DAN config: invalid type in `ip_addresses`, expected a string")
            parsed = rs_parse_cidr(addr)
            # network_info_from_dan.rs NetworkInfoFromDan::new: non-CIDR or loopback dropped
            if parsed is not None and not parsed.ip.is_loopback:
                kept.append(addr)
        routes = []
        for route in routes_in:
            fields = {k: _rs(route, k, str, False, "") for k in ("dest", "gateway", "source")}
            for k in ("scope", "flags", "mtu"):
                _rs(route, k, int, False, 0)
            # dan.rs Route::ip_family: dest, else gateway, else source; NetworkInfoFromDan::new
            # drops the route when that fails.
            family = None
            if fields["dest"]:
                parsed = rs_parse_cidr(fields["dest"])
                family = parsed.version if parsed else None
            elif fields["gateway"] or fields["source"]:
                parsed = go_parse_ip(fields["gateway"] or fields["source"])
                family = parsed.version if parsed else None
            if family is None:
                continue
            routes.append({"dest": fields["dest"], "gateway": fields["gateway"] or None, "family": family})
        neighbors = []
        for neigh in neighbors_in:
            ip = _rs(neigh, "ip_address", str, False)
            hw = _rs(neigh, "hardware_addr", str, False, "")
            # NetworkInfoFromDan::new keeps every neighbour; an ip_address that parse_ip_cidr
            # refuses (a bare IP) becomes no address.
            parsed = rs_parse_cidr(ip) if ip is not None else None
            neighbors.append({"ip": str(parsed.ip) if parsed else None, "hardware_addr": hw})
        out.append(
            {
                "name": name,
                "mac": mac,
                "type": kind,
                "target": target,
                "mtu": mtu,
                "addresses": kept,
                "routes": routes,
                "neighbors": neighbors,
            }
        )
    return out


# What each runtime-rs hypervisor's add_device does, before the VM starts, with the device a
# DAN endpoint attaches: None, it reaches the VM; "dropped", it is left out without an error;
# else the error. Hypervisors: rs/runtimes/virt_container/src/lib.rs new_hypervisor.
RS_ADD_DEVICE = {
    "dragonball": {"host-tap": None, "vhost-user": None},  # dragonball/inner_device.rs add_device
    # qemu/inner.rs add_device queues it; QemuInner::start_vm's command line takes Network and
    # logs "qemu cmdline: unsupported device" for the rest.
    "qemu": {"host-tap": None, "vhost-user": "dropped"},
    # ch/inner_device.rs add_device: before boot it queues only ShareFs, Network, Vfio and
    # Protection ("ignoring early add device request" for the rest).
    "clh": {"host-tap": None, "vhost-user": "dropped"},
    # firecracker/inner_device.rs add_device (the VMM is up since prepare_vm): Network, else
    # "unhandled device".
    "firecracker": {"host-tap": None, "vhost-user": "unhandled device"},
    # openvmm/inner_hypervisor.rs: pending devices other than the handled ones get
    # "openvmm: unsupported pending device type".
    "openvmm": {"host-tap": None, "vhost-user": "dropped"},
    # remote/inner.rs RemoteInner::add_device: "NOT YET IMPLEMENTED", returns Ok.
    "remote": {"host-tap": "dropped", "vhost-user": "dropped"},
}


def rs_attach(devices: list[dict], hypervisor: str) -> list[dict]:
    """dan.rs Dan::setup: each endpoint's attach, then the hypervisor's add_device."""
    attached = []
    for device in devices:
        if device["type"] == "host-tap" and rs_parse_mac(device["mac"]) is None:
            # tap_endpoint.rs TapEndpoint::attach -> get_network_config: parse_mac(guest_mac)
            raise KataReject("Attach: Get network config: Parse mac address")
        if device["type"] == "vfio":  # kata PR #13802: "QEMU only"
            outcome = None if hypervisor == "qemu" else "vfio DAN devices with QEMU only (kata PR #13802)"
        else:
            outcome = RS_ADD_DEVICE[hypervisor][device["type"]]
        if outcome == "dropped":
            continue
        if outcome:
            raise KataReject(f"Attach: handle device: {outcome}")
        attached.append(device)
    return attached
