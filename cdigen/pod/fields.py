"""Checked readers of the values in the pod's network sources: JSON documents and their fields,
IP and CIDR addresses, MACs, MTUs, PCI addresses, interface names. Each failure is one
PodNetError naming `where` (the annotation or file, and the network)."""

import ipaddress

from cdigen import netdev, strictjson, values
from cdigen.errors import InvalidInput
from cdigen.files import UnreadableFile, read_regular
from cdigen.pod.model import fail

MAX_FILE_BYTES = 1 << 20
_HEX = frozenset("0123456789abcdef")


def read_file(path: str, where: str) -> bytes:
    """A source file below the root: bounded, regular files only (a FIFO never blocks)."""
    try:
        return read_regular(path, MAX_FILE_BYTES)
    except UnreadableFile as e:
        fail(where, str(e))


def parse_json(text, where: str):
    if not isinstance(text, (str, bytes)):
        fail(where, f"expected a string, got {type(text).__name__}")
    try:
        return strictjson.loads(text)
    except UnicodeDecodeError as e:
        fail(where, f"not UTF-8 (byte {e.start})")
    except ValueError as e:
        fail(where, f"invalid JSON: {e}")


def json_object(value, where: str) -> dict:
    if not isinstance(value, dict):
        fail(where, f"expected a JSON object, got {type(value).__name__}")
    return value


def string_field(doc: dict, key: str, where: str, required: bool = False) -> str | None:
    value = doc.get(key)
    if value is None or value == "":
        if required:
            fail(where, f"missing {key!r}")
        return None
    if not isinstance(value, str):
        fail(where, f"{key!r} must be a string, got {values.quoted(value)}")
    return value


def list_field(doc: dict, key: str, where: str) -> list:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        fail(where, f"{key!r} must be a list, got {values.quoted(value)}")
    return value


def parse_ip(text, where: str) -> tuple[str, int]:
    """(canonical text, version) of a bare IP address."""
    if not isinstance(text, str):
        fail(where, f"expected an IP address, got {values.quoted(text)}")
    found = values.ip_address(text)
    if found is None:
        fail(where, f"invalid IP address {values.quoted(text)}")
    return found


def parse_cidr(text, where: str) -> tuple[str, int, int]:
    """(canonical address, prefix length, version) of ``ADDR/LEN``."""
    if not isinstance(text, str) or "/" not in text:
        fail(where, f"expected an address with a prefix length (CIDR), got {values.quoted(text)}")
    addr, _, plen = text.strip().partition("/")
    ip, version = parse_ip(addr, where)
    if not plen.isdigit() or int(plen) > (32 if version == 4 else 128):
        fail(where, f"invalid prefix length in {values.quoted(text)}")
    return ip, int(plen), version


def parse_dest(text, where: str) -> str:
    """A route destination as its network in CIDR ("10.1.2.3/8" -> "10.0.0.0/8")."""
    parse_cidr(text, where)
    return str(ipaddress.ip_network(text.strip(), strict=False))


def parse_mac(text, where: str) -> str:
    """A hardware address, lower case and colon separated: 6 bytes (Ethernet), 8 (EUI-64) or 20
    (IPoIB), groups of two hex digits separated by ':' or '-'."""
    if not isinstance(text, str):
        fail(where, f"expected a MAC address, got {values.quoted(text)}")
    groups = text.strip().lower().replace("-", ":").split(":")
    if len(groups) not in (6, 8, 20) or not all(len(g) == 2 and _HEX.issuperset(g) for g in groups):
        fail(where, f"invalid MAC address {values.quoted(text)}")
    return ":".join(groups)


def parse_mtu(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        fail(where, f"MTU must be an integer, got {values.quoted(value)}")
    try:
        return netdev.check_mtu(value)
    except InvalidInput as e:
        fail(where, str(e))


def optional_mtu(value, where: str) -> int | None:
    """An optional MTU: absent, null or 0 (Go's omitempty zero) is none."""
    if value is None or (value == 0 and type(value) is int):
        return None
    return parse_mtu(value, where)


def parse_pci_address(value, where: str) -> str:
    text = value.strip().lower() if isinstance(value, str) else value
    if not values.is_pci_address(text):
        fail(where, f"invalid PCI address {values.quoted(value)} (expected dddd:bb:dd.f)")
    return text


def parse_ifname(name: str, where: str) -> str:
    try:
        return netdev.check_ifname(name, "interface name")
    except InvalidInput as e:
        fail(where, str(e))
