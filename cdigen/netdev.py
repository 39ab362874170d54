"""Network-device settings: the one place that parses, validates and formats them.

A netdev setting is "host interface -> container name, address, mask, MTU". It travels in
three shapes, all produced and read here (docs/netdev.md, "Where the settings travel"):

* CDI device annotation  ``netdev.cdigen.io/<hostif>: "name=net0,address=192.0.2.10,mask=255.255.255.0,mtu=9000"``
* CDI hook argument       ``--netdev <hostif>=name=net0,address=192.0.2.10,mask=255.255.255.0,mtu=9000``
* config.json entry       ``linux.netDevices[<hostif>] = {"name": "net0", "address": "192.0.2.10",
                            "mask": "255.255.255.0", "mtu": 9000}``

The command line (``--netdev``) and the text form also accept ``address=192.0.2.10/24`` (CIDR)
in place of a separate mask. IPv6 masks are written as a prefix length ("64").

Pure functions only: no I/O, cheap imports (this module is on the hook's start-up path).
"""

from collections import namedtuple

from cdigen.errors import InvalidInput
from cdigen.values import quoted

ANNOTATION_PREFIX = "netdev.cdigen.io/"
IFNAMSIZ = 16  # kernel: at most 15 bytes plus NUL
MTU_MIN_IPV4 = 68
MTU_MIN_IPV6 = 1280
MTU_MAX = 65535
_KEYS = ("name", "address", "mask", "mtu")


class NetdevError(InvalidInput):
    """A netdev setting that the kernel or the OCI/CDI specs would reject."""


class DuplicateHost(NetdevError):
    """One host interface given two settings where only one may be."""


# Not dataclasses: importing them (inspect, ast, dis...) costs ~29 ms per process on the
# container-start path (docs/benchmarks.md); hot-path records are named tuples or slotted
# classes (docs/architecture.md, "Hot path").
class NetdevSettings(namedtuple("NetdevSettings", "host name address prefixlen mtu", defaults=(None,) * 4)):
    """host: host interface name (key of linux.netDevices); name: the name inside the
    container, None = keep the host name; address: IPv4 or IPv6 address, without prefix;
    prefixlen: its mask; mtu. Any field may be None in one layer (see `layered`); a merged
    result has a prefix length exactly when it has an address."""

    __slots__ = ()

    @property
    def container_name(self) -> str:
        return self.name or self.host

    @property
    def family(self) -> int | None:
        if self.address is None:
            return None
        return 6 if ":" in self.address else 4

    @property
    def mask(self) -> str | None:
        """The mask as written: dotted quad for IPv4, prefix length for IPv6 (and without an address)."""
        if self.prefixlen is None:
            return None
        if self.family == 4:
            bits = (0xFFFFFFFF << (32 - self.prefixlen)) & 0xFFFFFFFF
            return ".".join(str((bits >> s) & 0xFF) for s in (24, 16, 8, 0))
        return str(self.prefixlen)

    def to_text(self) -> str:
        """``name=...,address=...,mask=...,mtu=...`` with unset fields left out."""
        parts = []
        if self.name is not None:
            parts.append(f"name={self.name}")
        if self.address is not None:
            parts.append(f"address={self.address}")
        if self.prefixlen is not None:
            parts.append(f"mask={self.mask}")
        if self.mtu is not None:
            parts.append(f"mtu={self.mtu}")
        return ",".join(parts)

    def to_arg(self) -> str:
        """The value of one hook ``--netdev`` argument."""
        return f"{self.host}={self.to_text()}"

    def to_oci(self) -> dict:
        """The linux.netDevices entry; ``name`` is always present (CDI requires it)."""
        entry: dict = {"name": self.container_name}
        if self.address is not None:
            entry["address"] = self.address
        if self.prefixlen is not None:
            entry["mask"] = self.mask
        if self.mtu is not None:
            entry["mtu"] = self.mtu
        return entry


# ---------------------------------------------------------------------------- validation

# In a container name: the NIC's position among the container's NICs named with it, in the
# order of the container's devices (`numbered`); resolved by apply, the shim and the hook.
NIC_NUMBER = "{n}"


def check_ifname(name: object, what: str = "interface name", allow_template: bool = False) -> str:
    """Kernel rules (net/core/dev.c dev_valid_name): 1-15 bytes, not '.'/'..', no '/', ':'
    or whitespace (the kernel's isspace includes 0xA0). One '%d' only where allowed."""
    if not isinstance(name, str):
        raise NetdevError(f"{what} must be a string, got {type(name).__name__}")
    raw = name.encode("utf-8", "surrogateescape")
    if not raw:
        raise NetdevError(f"{what} is empty")
    if len(raw) >= IFNAMSIZ:
        raise NetdevError(f"{what} {quoted(name)} is longer than 15 bytes")
    if name in (".", ".."):
        raise NetdevError(f"{what} {name!r} is not allowed")
    for ch in name:
        # ',' and '=' are legal for the kernel but delimit cdigen's text form; no real NIC uses them.
        if ch in "/:,=" or ch.isspace() or ch in "\xa0\x00":
            raise NetdevError(f"{what} {name!r} contains {ch!r}")
    if "%" in name and (not allow_template or name.count("%") != 1 or name.count("%d") != 1):
        raise NetdevError(
            f"{what} {name!r}: only one '%d' template is allowed" if allow_template else f"{what} {name!r} contains '%'"
        )
    if allow_template and NIC_NUMBER in name:
        if name.count(NIC_NUMBER) != 1 or "%" in name:
            raise NetdevError(f"{what} {name!r}: only one {NIC_NUMBER} (or one '%d') is allowed")
        check_ifname(name.replace(NIC_NUMBER, "0"), what)
    return name


def _parse_ip(text: str) -> tuple[str, int]:
    """Canonical text and family of an IP address, via the stdlib (exact and cheap)."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise NetdevError(f"invalid IP address {quoted(text)}") from None
    return str(ip), ip.version


def _mask_to_prefixlen(mask: str, family: int) -> int:
    bits_total = 32 if family == 4 else 128
    text = str(mask).strip()
    if _is_decimal(text):
        n = int(text)
        if n > bits_total:
            raise NetdevError(f"mask /{n} is too long for IPv{family}")
        return n
    import ipaddress

    try:
        value = int(ipaddress.ip_address(text))
        fam = ipaddress.ip_address(text).version
    except ValueError:
        raise NetdevError(f"invalid mask {quoted(text)}") from None
    if fam != family:
        raise NetdevError(f"mask {text!r} is not an IPv{family} mask")
    n = bin(value).count("1")
    if value != ((1 << bits_total) - 1) ^ ((1 << (bits_total - n)) - 1):
        raise NetdevError(f"mask {text!r} is not contiguous")
    return n


def _is_decimal(text: str) -> bool:
    """ASCII digits only, and few enough for any value cdigen takes: `"²".isdigit()` is true
    and `int("²")` fails; `int()` of more than 4,300 digits fails too."""
    return text.isascii() and text.isdigit() and len(text) <= 20


def check_mtu(mtu: object, family: int | None = None) -> int:
    if isinstance(mtu, bool) or not isinstance(mtu, (int, str)):
        raise NetdevError(f"MTU must be an integer, got {quoted(mtu)}")
    if isinstance(mtu, str):
        if not _is_decimal(mtu.strip()):
            raise NetdevError(f"MTU must be an integer, got {quoted(mtu)}")
        mtu = int(mtu)
    low = MTU_MIN_IPV6 if family == 6 else MTU_MIN_IPV4
    if not low <= mtu <= MTU_MAX:
        extra = " for IPv6" if family == 6 else ""
        raise NetdevError(f"MTU {mtu} is outside {low}..{MTU_MAX}{extra}")
    return mtu


def validate(cfg: NetdevSettings) -> NetdevSettings:
    check_ifname(cfg.host, "host interface name")
    if cfg.name is not None:
        check_ifname(cfg.name, f"container name for {cfg.host}", allow_template=True)
    if cfg.mtu is not None:
        check_mtu(cfg.mtu, cfg.family)
    return cfg


def make(host: str, name=None, address=None, mask=None, mtu=None) -> NetdevSettings:
    """Build and validate one layer's setting from loose values (strings or ints). Fields not
    given stay None: an address without a mask takes the mask of a lower layer (`layered`).

    `address` may be CIDR ("192.0.2.10/24"); then `mask` must be absent or agree."""
    prefixlen = None
    if address is not None:
        if not isinstance(address, str):
            raise NetdevError(f"{host}: address must be a string, got {quoted(address)}")
        addr_text, _, plen_text = address.partition("/")
        address, family = _parse_ip(addr_text.strip())
        if plen_text:
            prefixlen = _mask_to_prefixlen(plen_text, family)
        if mask is not None:
            from_mask = _mask_to_prefixlen(str(mask), family)
            if prefixlen is not None and prefixlen != from_mask:
                raise NetdevError(
                    f"{host}: address {quoted(addr_text + '/' + plen_text)} and mask {quoted(str(mask))} disagree"
                )
            prefixlen = from_mask
    elif mask is not None:
        raise NetdevError(f"{host}: a mask needs an address")
    return validate(
        NetdevSettings(
            host=host, name=name, address=address, prefixlen=prefixlen, mtu=check_mtu(mtu) if mtu is not None else None
        )
    )


# ---------------------------------------------------------------------------- layers
# The one order in which the sources of a host interface's settings are merged, lowest first
# (docs/netdev.md, "Which setting wins"): a CDI spec's `cdigen hook --netdev` arguments, its
# `netDevices` entry (or config.json's linux.netDevices entry, for the hook), the device's
# `netdev.cdigen.io/` annotation, the pod's network, the caller's `--netdev`.
LAYERS = ("hook arguments", "netDevices", "annotation", "pod network", "option")


class LayerError(NetdevError):
    """Layers that do not add up to a setting; `layer` is the source to blame."""

    def __init__(self, message: str, layer: str):
        super().__init__(message)
        self.layer = layer


def layered(host: str, layers: dict, below: NetdevSettings | None = None) -> NetdevSettings:
    """The settings of `host` from `layers` ({name in LAYERS: NetdevSettings or None}), each
    later layer replacing only the fields it gives, on top of `below` (an earlier merge).
    An address alone keeps the mask below it when both are of one family; an address with no
    mask in any layer is a LayerError naming the interface, never a guessed /32."""
    out = below or NetdevSettings(host)
    set_by: dict[str, str] = {}  # field -> the layer that set it last: the one to blame
    for name in LAYERS:
        cfg = layers.get(name)
        if cfg is None:
            continue
        fields = {k: getattr(cfg, k) for k in NetdevSettings._fields[1:] if getattr(cfg, k) is not None}
        same_family = out.address is not None and (":" in out.address) == (":" in (cfg.address or ""))
        if cfg.address is not None and cfg.prefixlen is None and not same_family:
            fields["prefixlen"] = None  # a mask carries over within one family only
        out = out._replace(**fields)
        set_by.update(dict.fromkeys(fields, name))
    if not set_by:
        return out
    if out.address is not None and out.prefixlen is None:
        raise LayerError(f"{host}: address {out.address} has no mask; give ADDRESS/LEN or mask=", set_by["address"])
    try:
        return validate(out)
    except NetdevError as e:
        raise LayerError(str(e), LAYERS[max(LAYERS.index(n) for n in set_by.values())]) from None


# ---------------------------------------------------------------------------- text forms


def parse_text(host: str, text: str) -> NetdevSettings:
    """Parse ``name=net0,address=192.0.2.10/24,mtu=9000`` (any subset, any order)."""
    fields: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in _KEYS:
            raise NetdevError(f"{host}: expected name=, address=, mask= or mtu=, got {quoted(part)}")
        if key in fields:
            raise NetdevError(f"{host}: {key}= given twice")
        fields[key] = value.strip()
    return make(host, **fields)


def parse_arg(arg: str) -> NetdevSettings:
    """Parse ``HOSTIF=name=net0,address=192.0.2.10/24,mtu=9000`` (``HOSTIF`` alone is allowed)."""
    host, _, rest = arg.partition("=")
    check_ifname(host.strip(), "host interface name")
    return parse_text(host.strip(), rest)


def parse_args(values: list[str]) -> list[NetdevSettings]:
    """`--netdev` values (command line or hook arguments) as settings, each host interface
    once. NetdevError naming the value (cut short) that is wrong."""
    out = []
    for value in values:
        try:
            out.append(parse_arg(value))
        except NetdevError as e:
            raise NetdevError(f"{quoted(value)}: {e}") from None
    by_host(out)
    return out


def from_oci(host: str, entry: object) -> NetdevSettings:
    """Read a linux.netDevices entry (extra keys address/mask/mtu are cdigen's)."""
    if entry is None:
        entry = {}
    if not isinstance(entry, dict):
        raise NetdevError(f"linux.netDevices[{host!r}] must be an object")
    return make(host, entry.get("name"), entry.get("address"), entry.get("mask"), entry.get("mtu"))


def names_from_oci(host: str, entry: object) -> NetdevSettings:
    """Only the host and container name of a linux.netDevices entry, every other key ignored
    (for entries cdigen does not configure now but must not collide with or strand)."""
    name = entry.get("name") if isinstance(entry, dict) else None
    return NetdevSettings(host=host, name=name if isinstance(name, str) and name else None)


def annotation_key(host: str) -> str:
    return ANNOTATION_PREFIX + host


def from_annotations(annotations: dict | None) -> dict[str, NetdevSettings]:
    """All netdev settings found in CDI device annotations, by host interface."""
    out: dict[str, NetdevSettings] = {}
    for key, value in (annotations or {}).items():
        if isinstance(key, str) and key.startswith(ANNOTATION_PREFIX):
            host = key[len(ANNOTATION_PREFIX) :]
            out[host] = parse_text(host, str(value))
    return out


def by_host(settings) -> dict[str, NetdevSettings]:
    """{host: settings}; DuplicateHost when one host interface is given twice."""
    out: dict[str, NetdevSettings] = {}
    for cfg in settings:
        if cfg.host in out:
            raise DuplicateHost(f"{cfg.host} given twice")
        out[cfg.host] = cfg
    return out


def numbered(settings) -> list[NetdevSettings]:
    """`settings` (one container's NICs, in the order of its devices) with `{n}` in a
    container name replaced by the NIC's position among those named with `{n}`: each
    container's NICs are net0, net1... whichever devices it got (docs/netdev.md, "Names")."""
    out, n = [], 0
    for cfg in settings:
        if cfg.name is not None and NIC_NUMBER in cfg.name:
            name = check_ifname(cfg.name.replace(NIC_NUMBER, str(n)), f"container name for {cfg.host}")
            cfg, n = cfg._replace(name=name), n + 1
        out.append(cfg)
    return out


def check_unique_names(configs) -> None:
    """Two host interfaces must never map to the same container name."""
    seen: dict[str, str] = {}
    for cfg in configs:
        name = cfg.container_name
        if "%" in name or NIC_NUMBER in name:
            continue  # the kernel picks a free name; the container's NICs are numbered later
        if name in seen and seen[name] != cfg.host:
            raise NetdevError(f"host interfaces {seen[name]} and {cfg.host} both map to container name {name}")
        seen[name] = cfg.host
