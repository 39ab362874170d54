"""The netdev config file of `cdigen scan`: host interface -> settings inside the container.

    ibp20s0: {name: net0, address: 192.0.2.10/24, mtu: 4092}
    ibp22s0:
      address: 192.0.2.11
      mask: 255.255.255.0

Read with the same YAML reader as CDI specs (`cdigen.cdi.goyaml`); every entry is checked
with the netdev rules (`cdigen.netdev.make`). Errors do not name the file; the caller does.
"""

from cdigen import netdev
from cdigen.errors import InvalidInput

MAX_NETDEV_CONFIG_BYTES = 1 << 20
KEYS = ("name", "address", "mask", "mtu")


def load_netdev_config(path: str) -> dict[str, dict]:
    """{host: {key: value}} (values as written, `address` as a string). InvalidInput."""
    from cdigen.cdi import goyaml
    from cdigen.files import read_regular

    raw = read_regular(path, MAX_NETDEV_CONFIG_BYTES)
    try:
        data = goyaml.parse(raw.decode("utf-8"), max_nodes=MAX_NETDEV_CONFIG_BYTES // 4)
    except UnicodeDecodeError as e:
        raise InvalidInput(f"not YAML: not UTF-8 (byte {e.start})") from None
    except goyaml.YamlError as e:
        raise InvalidInput(f"not YAML: {str(e).removeprefix('invalid YAML: ')}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput("expected a mapping of host interface -> settings")
    out = {}
    for host, entry in data.items():
        entry = {} if entry is None else entry
        if not isinstance(host, str) or not isinstance(entry, dict):
            raise InvalidInput(f"{host!r}: expected a mapping of settings")
        unknown = set(entry) - set(KEYS)
        if unknown:
            raise InvalidInput(f"{host}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        entry = {k: str(v) if k == "address" and v is not None else v for k, v in entry.items()}
        netdev.layered(host, {"option": netdev.make(host, **entry)})  # an address needs its mask here
        out[host] = entry
    return out
