"""The node agent's settings: the config file (cdigen/node/__init__.py shows it) over the
defaults, every value checked with the rule that `cdigen scan` applies to it."""

import os
import re
from typing import NamedTuple

from cdigen.errors import BadArgument, InvalidInput
from cdigen.scan import DEFAULT_CDI_VERSION, DEFAULT_CLASS, DEFAULT_VENDOR, NAME_STRATEGIES
from cdigen.values import quoted

DEFAULT_CONFIG = "/etc/cdigen/node-agent.yaml"
DEFAULT_SPEC = "/var/run/cdi/cdigen.yaml"
DEFAULT_KUBELET_DIR = "/var/lib/kubelet/device-plugins"
DEFAULT_RESOURCE = "cdigen.io/gpu"
MAX_CONFIG_BYTES = 64 << 10
# An extended resource name as kubelet takes it: a DNS subdomain outside kubernetes.io, a slash,
# and a name of at most 63 characters.
_RESOURCE = re.compile(
    r"(?!(.*\.)?kubernetes\.io/)[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)


class Settings(NamedTuple):
    resource: str = DEFAULT_RESOURCE
    spec: str = DEFAULT_SPEC
    root: str = "/"
    driver_root: str | None = None
    kubelet_dir: str = DEFAULT_KUBELET_DIR
    rescan_seconds: float = 300.0
    hook_path: str | None = None  # None: this cdigen (hookentry.default_hook_path)
    vendor: str = DEFAULT_VENDOR
    cls: str = DEFAULT_CLASS
    device_name_strategy: str = NAME_STRATEGIES[0]
    nic_affinity: str = "pxb"
    split_ports: bool = False
    netdev_config: str | None = None
    netdev_name: str | None = None
    cdi_version: str = DEFAULT_CDI_VERSION
    driver_files: bool = True
    nic_only: bool = False

    @property
    def kind(self) -> str:
        return f"{self.vendor}/{self.cls}"

    @property
    def socket_name(self) -> str:
        """The plugin's socket in kubelet's directory: cdigen.io/gpu -> cdigen.io-gpu.sock."""
        return self.resource.replace("/", "-") + ".sock"


# The config file's keys: the settings, `class` for cls (as scan's --class).
KEYS = {("class" if f == "cls" else f): f for f in Settings._fields}
_TYPES = {"rescan_seconds": (int, float), "split_ports": bool, "driver_files": bool, "nic_only": bool}
_PATHS = ("spec", "root", "driver_root", "kubelet_dir", "hook_path", "netdev_config")


def load(path: str, missing_ok: bool = False) -> Settings:
    """The settings of the config file at `path` (absent and `missing_ok`: the defaults).
    InvalidInput naming the file and the key."""
    from cdigen.cdi import goyaml
    from cdigen.files import UnreadableFile, read_regular

    try:
        raw = read_regular(path, MAX_CONFIG_BYTES)
    except UnreadableFile as e:
        if e.missing and missing_ok:
            return check(Settings())
        raise InvalidInput(str(e)) from None
    try:
        data = goyaml.parse(raw.decode("utf-8"), max_nodes=1000)
    except (UnicodeDecodeError, goyaml.YamlError) as e:
        raise InvalidInput(f"{path}: not YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected a mapping of settings")
    values = {}
    for key, value in data.items():
        if key not in KEYS:
            raise InvalidInput(f"{path}: unknown key {key!r}; known: {', '.join(KEYS)}")
        if value is None:
            continue
        wanted = _TYPES.get(KEYS[key], str)
        if not isinstance(value, wanted) or isinstance(value, bool) != (wanted is bool):
            what = {bool: "true or false", str: "a string"}.get(wanted, "a number")
            raise InvalidInput(f"{path}: {key}: expected {what}, got {quoted(value)}")
        values[KEYS[key]] = value
    try:
        return check(Settings(**values))
    except BadArgument as e:
        raise InvalidInput(f"{path}: {'class' if e.argument == 'cls' else e.argument}: {e}") from None


def check(s: Settings) -> Settings:
    """Every value by the rule its user applies (BadArgument/InvalidInput naming the key)."""
    from cdigen import hookentry
    from cdigen.cdi.spec import SpecError, check_class, check_target_version, check_vendor
    from cdigen.scan.affinity import Affinity
    from cdigen.scan.build import check_name_template

    if not _RESOURCE.fullmatch(s.resource):
        raise BadArgument("resource", f"{quoted(s.resource)}: expected DOMAIN/NAME, an extended resource name")
    for key in _PATHS:
        value = getattr(s, key)
        if value is not None and not os.path.isabs(value):
            raise BadArgument(key, f"must be an absolute path: {value!r}")
    if not s.rescan_seconds > 0:
        raise BadArgument("rescan_seconds", f"must be above 0: {s.rescan_seconds!r}")
    for key, rule in (("vendor", check_vendor), ("class", check_class)):
        try:
            rule(getattr(s, KEYS[key]))
        except SpecError as e:
            raise BadArgument(key, str(e)) from None
    if s.device_name_strategy not in NAME_STRATEGIES:
        raise BadArgument("device_name_strategy", f"{s.device_name_strategy!r}: use {', '.join(NAME_STRATEGIES)}")
    if s.nic_affinity.upper() not in Affinity.__members__ or s.nic_affinity.upper() == "X":
        raise BadArgument("nic_affinity", f"{s.nic_affinity!r}: use pix, pxb, phb, node or sys")
    check_target_version(s.cdi_version)
    if s.netdev_name is not None:
        check_name_template(s.netdev_name)
    if s.hook_path is not None:
        hookentry.check_hook_path(s.hook_path)
    return s
