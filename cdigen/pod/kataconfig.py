"""The sandbox's hypervisor, from a Kata configuration file read the way both runtimes read it:
the file, then every file of the `config.d` directory beside it in name order, merged table by
table (kata-types config/drop_in.rs `load`, Go katautils config.go `decodeDropIns`).

runtime-rs runs the `[hypervisor.NAME]` table that `[runtime] hypervisor_name` names, or the
one the pod annotation io.katacontainers.config.runtime.hypervisor_name names when the file
has that table (kata-types annotations/mod.rs `update_config_by_annotation`). The Go runtime
has no such key: it runs the file's one `[hypervisor.NAME]` table (katautils config.go
`updateRuntimeConfigHypervisor`). tomllib is imported only when a file is read.
"""

import os

from cdigen.errors import InvalidInput
from cdigen.files import UnreadableFile, read_regular
from cdigen.values import quoted

# The [hypervisor.NAME] tables of both runtimes: Go katautils config.go's table types and
# runtime-rs virt_container lib.rs's registered plugins.
HYPERVISORS = ("clh", "dragonball", "firecracker", "openvmm", "qemu", "remote", "stratovirt")
MAX_CONFIG_BYTES = 1 << 20  # Kata's own files are about 40 KB
HYPERVISOR_ANNOTATION = "io.katacontainers.config.runtime.hypervisor_name"


def _load(path: str, where: str) -> dict:
    import tomllib

    try:
        return tomllib.loads(read_regular(path, MAX_CONFIG_BYTES).decode("utf-8"))
    except UnreadableFile as e:
        raise InvalidInput(f"{where}: {e}") from None
    except UnicodeDecodeError as e:
        raise InvalidInput(f"{where}: not UTF-8 (byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise InvalidInput(f"{where}: not TOML: {e}") from None


def _merge(base: dict, dropin: dict) -> None:
    """drop_in.rs `merge`: a table merges into a table; anything else replaces."""
    for key, value in dropin.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def read_config(path: str) -> dict:
    """The merged configuration; InvalidInput naming the file that cannot be read or parsed."""
    where = f"Kata configuration {path}"
    config = _load(path, where)
    dropins = os.path.join(os.path.dirname(os.path.realpath(path)), "config.d")
    try:
        names = sorted(os.listdir(dropins))
    except FileNotFoundError:
        return config
    except OSError as e:
        raise InvalidInput(f"{where}: cannot read {dropins}: {e.strerror}") from None
    for name in names:
        _merge(config, _load(os.path.join(dropins, name), f"{where}: drop-in {name}"))
    return config


def configured_hypervisor(path: str, annotations: dict) -> str:
    """The hypervisor the sandbox runs under per the configuration file `path` (and, for
    runtime-rs, the pod's annotation); InvalidInput when the file names none or an unknown one."""
    where = f"Kata configuration {path}"
    config = read_config(path)
    tables = config.get("hypervisor")
    names = sorted(tables) if isinstance(tables, dict) else []
    runtime = config.get("runtime")
    name = runtime.get("hypervisor_name") if isinstance(runtime, dict) else None
    if name is not None:  # runtime-rs
        chosen = annotations.get(HYPERVISOR_ANNOTATION)
        if chosen in names:
            name = chosen
        if name not in names:
            raise InvalidInput(f"{where}: [runtime] hypervisor_name {quoted(name)} has no [hypervisor.{name}] table")
    elif len(names) == 1:  # the Go runtime
        name = names[0]
    elif not names:
        raise InvalidInput(f"{where}: no [hypervisor.NAME] table")
    else:
        raise InvalidInput(
            f"{where}: several hypervisor tables ({', '.join(names)}) and no [runtime] hypervisor_name; "
            "the Go runtime would take any one"
        )
    if name not in HYPERVISORS:
        raise InvalidInput(f"{where}: hypervisor {quoted(name)} is none Kata runs ({', '.join(HYPERVISORS)})")
    return name
