"""Small value rules that every layer needs once: version numbers, PCI addresses, IP addresses,
and how a value taken from the input is quoted in a one-line message.

Cheap to import (stdlib only, ipaddress on first use): the hook and the runtime shim use it.
"""

MESSAGE_LIMIT = 60  # characters of one echoed value; a message stays one short line
_HEX = frozenset("0123456789abcdef")


def quoted(value: object, limit: int = MESSAGE_LIMIT) -> str:
    """`repr(value)` cut at `limit` characters: an input echoed in an error, never whole."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: str, limit: int = 400) -> str:
    """`text` with unprintable characters escaped (names taken from the input), cut short."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit * 4])[:limit]


def version_tuple(text: object) -> tuple[int, ...] | None:
    """(1, 1, 0) of "1.1.0", "v1.1.0" or "1.0.2-dev"; None for anything that is not decimal
    numbers joined by dots (at most 32 characters)."""
    if not isinstance(text, str) or len(text) > 32:
        return None
    parts = text.removeprefix("v").partition("-")[0].split(".")
    if not all(p.isascii() and p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def is_pci_address(text: object) -> bool:
    """dddd:bb:dd.f in lower-case hex, function 0-7 (the kernel's names in /sys/bus/pci)."""
    if not isinstance(text, str) or len(text) != 12:
        return False
    parts = text.split(":")
    if len(parts) != 3 or len(parts[0]) != 4 or len(parts[1]) != 2 or len(parts[2]) != 4 or parts[2][2] != ".":
        return False
    return _HEX.issuperset(parts[0] + parts[1] + parts[2][:2]) and parts[2][3] in "01234567"


def ip_address(text: object) -> tuple[str, int] | None:
    """(canonical text, 4 or 6) of a bare IP address; None when `text` is not one."""
    import ipaddress

    if not isinstance(text, str):
        return None
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    return str(ip), ip.version
