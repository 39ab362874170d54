"""How each Kata runtime reads a DAN file, restated from its source (docs/vm.md; kata-containers
7c6ba40c): enough to check cdigen's output field by field and to show what each one rejects.

* `go_load`: src/runtime/virtcontainers/types/dan.go (encoding/json: keys matched without
  regard to case, unknown keys ignored, a JSON type that does not fit the Go field is an error)
  and network_linux.go convertDanDeviceToNetworkInfo / addDanEndpoints.
* `rs_load`: src/runtime-rs/crates/resource/src/network/dan.rs (serde: keys matched exactly,
  unknown keys ignored, required fields without #[serde(default)]), network_info_from_dan.rs,
  TapEndpoint's parse_mac. `with_vfio`: runtime-rs with kata PR #13802 (a `vfio` variant with
  `pci_device_id`).

Each returns the devices as the runtime understands them, or raises KataReject with the
runtime's own message."""

import ipaddress
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
    """net.ParseMAC: 6, 8 or 20 bytes, ':' '-' or '.'-separated; error otherwise."""
    if not (_MAC_COLON.fullmatch(text) and len(set(re.findall(r"[:-]", text))) == 1) and not _MAC_DOT.fullmatch(text):
        raise KataReject(f"address {text}: invalid MAC address")
    return text.lower()


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
        try:
            mac = go_parse_mac(mac_text)
        except KataReject as e:
            raise KataReject(f"bad mac address in DAN config: {e}") from None
        info = _go_field(device, "network_info") or {}
        iface = _go_field(info, "interface") or {}
        mtu = _go_uint(_go_field(iface, "mtu"), "Interface.mtu")
        addrs = []
        for addr in _go_field(iface, "ip_addresses") or []:
            addr = _go_string(addr, "Interface.ip_addresses")
            try:  # netlink.ParseAddr -> ParseIPNet: CIDR only
                ipaddress.ip_interface(addr)
                if "/" not in addr:
                    raise ValueError
            except ValueError:
                raise KataReject(f"bad IP address in DAN config: invalid CIDR address: {addr}") from None
            addrs.append(addr)
        routes = []
        for route in _go_field(info, "routes") or []:
            dest = _go_string(_go_field(route, "dest"), "Route.dest")
            if dest:
                try:
                    ipaddress.ip_network(dest, strict=False)
                    if "/" not in dest:
                        raise ValueError
                except ValueError:
                    raise KataReject(f"bad route dest in DAN config: invalid CIDR address: {dest}") from None
            gw = go_parse_ip(_go_string(_go_field(route, "gateway"), "Route.gateway"))
            family = 4 if gw is not None and gw.version == 4 else 6  # len(Gw.To4()) == 4 else AF_INET6
            routes.append({"dest": dest, "gateway": str(gw) if gw else None, "family": family})
        neighbors = []
        for neigh in _go_field(info, "neighbors") or []:
            hw = _go_string(_go_field(neigh, "hardware_addr"), "ARPNeighbor.hardware_addr")
            try:
                go_parse_mac(hw)
            except KataReject as e:
                raise KataReject(f"bad neighbor hardware address in DAN config: {e}") from None
            ip = go_parse_ip(_go_string(_go_field(neigh, "ip_address"), "ARPNeighbor.ip_address"))
            neighbors.append({"ip": str(ip) if ip else None, "hardware_addr": hw})
        dev = _go_field(device, "device") or {}
        kind = _go_string(_go_field(dev, "type"), "Device.type")
        if kind != "vfio":
            raise KataReject(f"unknown DAN device type: '{kind}'")
        out.append(
            {
                "name": name,
                "mac": mac,
                "pci": _go_string(_go_field(dev, "pci_device_id"), "Device.pci_device_id"),
                "mtu": mtu,
                "addresses": addrs,
                "routes": routes,
                "neighbors": neighbors,
            }
        )
    return out


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
    """parse_ip_cidr: "addr/prefix" only."""
    if "/" not in text:
        return None
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        return None


def rs_parse_mac(text: str) -> str:
    """utils::parse_mac: six ':'-separated hex bytes."""
    parts = text.split(":")
    if len(parts) != 6 or not all(re.fullmatch(r"[0-9a-fA-F]{2}", p) for p in parts):
        raise KataReject(f"Parse mac address: {text}")
    return text.lower()


def rs_load(doc: dict, with_vfio: bool = False) -> list[dict]:
    devices = _rs(doc, "devices", list, True)
    _rs(doc, "netns", str, False)
    out = []
    for device in devices:
        name = _rs(device, "name", str, True)
        mac = _rs(device, "guest_mac", str, False, "generated")
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
        mtu = _rs(iface, "mtu", int, False, 1500)
        _rs(iface, "ntype", str, False, "")
        _rs(iface, "flags", int, False, 0)
        kept = []
        for addr in addresses:
            if not isinstance(addr, str):
                raise KataReject("Invalid DAN config: invalid type in `ip_addresses`, expected a string")
            parsed = rs_parse_cidr(addr)
            if parsed is not None and not parsed.ip.is_loopback:  # non-CIDR or loopback: dropped
                kept.append(addr)
        routes = []
        for route in _rs(info, "routes", list, False, []):
            fields = {k: _rs(route, k, str, False, "") for k in ("dest", "gateway", "source")}
            for k in ("scope", "flags", "mtu"):
                _rs(route, k, int, False, 0)
            family = None
            if fields["dest"]:
                parsed = rs_parse_cidr(fields["dest"])
                family = parsed.version if parsed else None
            elif fields["gateway"] or fields["source"]:
                parsed = go_parse_ip(fields["gateway"] or fields["source"])
                family = parsed.version if parsed else None
            if family is None:
                continue  # dropped
            routes.append({"dest": fields["dest"], "gateway": fields["gateway"] or None, "family": family})
        neighbors = []
        for neigh in _rs(info, "neighbors", list, False, []):
            ip = _rs(neigh, "ip_address", str, False)
            hw = _rs(neigh, "hardware_addr", str, False, "")
            if ip is not None and rs_parse_cidr(ip) is not None:  # must be CIDR to be kept
                neighbors.append({"ip": ip, "hardware_addr": hw})
        if kind == "host-tap":
            mac = rs_parse_mac(mac)  # TapEndpoint::get_network_config
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
