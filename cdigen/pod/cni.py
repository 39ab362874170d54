"""The `cdigen` CNI plugin's work (CNI spec 1.0), chained after the plugin that moves the NIC into
the pod (host-device, sriov) or binds it to VFIO. cdigen/cli/cni.py reads the environment and
stdin, calls one of these and renders the result or the CNI error object.

* ADD: record the interface's facts from `prevResult` (and the kernel's view of the interface
  in CNI_NETNS, and `runtimeConfig.CNIDeviceInfoFile`) in cnirecord.py's record; with
  `dan_dir` in the config, also the Kata DAN file of the sandbox (dan.py); return `prevResult`
  unchanged. Nothing is left half-written: a failure removes what this ADD wrote.
* DEL: remove what ADD wrote; nothing there (DEL after a failed ADD, a second DEL) is fine.
* CHECK: the record is there, agrees with `prevResult`, and the interface is still in the netns.
* VERSION: the supported versions.

Errors: CniError with CNI's well-known codes (1 incompatible version, 4 bad environment, 5 I/O,
6 undecodable config, 7 invalid config) and cdigen's: 100 no record (CHECK), 101 record
disagrees with prevResult, 102 interface gone from the netns.
"""

import os

from cdigen.errors import InvalidInput
from cdigen.values import version_tuple

# cnirecord (and netdev below it), strictjson and files are imported by the commands that use
# them: VERSION, libcni's probe of a plugin, answers without them.

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")
CURRENT_VERSION = "1.0.0"
MAX_CONFIG_BYTES = 1 << 20
ENV_NAMES = ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS")  # what the work reads of the environment
SYS_ROOT = "/"  # where sys/ is, for matching an interface to its host device (tests point it elsewhere)

ERR_INCOMPATIBLE = 1
ERR_ENV = 4
ERR_IO = 5
ERR_DECODE = 6
ERR_CONFIG = 7
ERR_NO_RECORD = 100
ERR_RECORD_DIFFERS = 101
ERR_INTERFACE_GONE = 102


class CniError(Exception):
    def __init__(self, code: int, msg: str, details: str = ""):
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details


def versions() -> dict:
    return {"cniVersion": CURRENT_VERSION, "supportedVersions": list(SUPPORTED_VERSIONS)}


def check_config(conf: dict, command: str) -> None:
    version = conf.get("cniVersion")
    if version not in SUPPORTED_VERSIONS:
        raise CniError(
            ERR_INCOMPATIBLE,
            f"incompatible CNI version {version!r}",
            f"supported: {', '.join(SUPPORTED_VERSIONS)}",
        )
    if command == "CHECK" and version_tuple(version) < (0, 4, 0):
        raise CniError(ERR_INCOMPATIBLE, "config version does not allow CHECK", f"cniVersion {version}")
    for key in ("record_dir", "dan_dir"):
        value = conf.get(key)
        if value is not None and not (isinstance(value, str) and os.path.isabs(value)):
            raise CniError(ERR_CONFIG, f"{key}: expected an absolute path, got {value!r}")
    if conf.get("hypervisor") is not None:  # the Kata sandbox's, for the DAN file
        from cdigen.pod.kataconfig import HYPERVISORS
        from cdigen.values import quoted

        if conf["hypervisor"] not in HYPERVISORS:
            raise CniError(
                ERR_CONFIG, f"hypervisor: expected one of {', '.join(HYPERVISORS)}, got {quoted(conf['hypervisor'])}"
            )
    if command != "DEL" and not isinstance(conf.get("prevResult"), dict):
        raise CniError(
            ERR_CONFIG,
            "no prevResult: cdigen is a chained plugin; put it after the plugin that moves the device "
            "(host-device, sriov) in the conflist",
        )


def _env(env: dict, name: str) -> str:
    value = env.get(name)
    if value is None:
        raise CniError(ERR_ENV, f"{name} is not set")
    return value


def _record_path(conf: dict, env: dict) -> str:
    from cdigen.pod import cnirecord

    container_id, ifname = _env(env, "CNI_CONTAINERID"), _env(env, "CNI_IFNAME")
    try:
        return cnirecord.record_path(container_id, ifname, conf.get("record_dir") or cnirecord.RECORD_DIR)
    except InvalidInput as e:  # netdev.NetdevError is one
        raise CniError(ERR_ENV, str(e)) from None


def _link(netns: str | None, ifname: str) -> dict | None:
    """The interface as the kernel sees it in the container's netns; None when it is not there
    (a VFIO device, or no netns)."""
    if not netns:
        return None
    from cdigen.hook.rtnetlink import RtnetlinkClient

    with RtnetlinkClient(netns) as client:
        link = client.get_link(ifname)
    if link is None:
        return None
    mac = ":".join(f"{b:02x}" for b in link.mac) if link.mac else None
    return {"mtu": link.mtu, "mac": mac, "alias": link.alias}


def _device_info(conf: dict, warnings: list[str]) -> dict | None:
    path = (conf.get("runtimeConfig") or {}).get("CNIDeviceInfoFile") if isinstance(conf, dict) else None
    if not isinstance(path, str) or not path:
        return None
    from cdigen import strictjson
    from cdigen.files import UnreadableFile, read_regular

    try:
        doc = strictjson.loads(read_regular(path, MAX_CONFIG_BYTES))
    except (UnreadableFile, ValueError) as e:
        warnings.append(f"CNIDeviceInfoFile {path}: {e}")  # another plugin's file
        return None
    return doc if isinstance(doc, dict) else None


def _record(conf: dict, env: dict, warnings: list[str]) -> dict:
    from cdigen.pod import cnirecord

    ifname, netns = _env(env, "CNI_IFNAME"), _env(env, "CNI_NETNS")
    try:
        cnirecord.facts(conf["prevResult"], ifname, netns)  # a bad prevResult before the netns is entered
    except InvalidInput as e:
        raise CniError(ERR_CONFIG, str(e)) from None
    link = _link(netns, ifname)
    record = {
        "kind": cnirecord.KIND,
        "containerId": _env(env, "CNI_CONTAINERID"),
        "networkName": conf.get("name"),
        "cniVersion": conf["cniVersion"],
    }
    try:
        record.update(cnirecord.facts(conf["prevResult"], ifname, netns, link, _device_info(conf, warnings)))
    except InvalidInput as e:
        raise CniError(ERR_CONFIG, str(e)) from None
    record["result"] = conf["prevResult"]
    return {k: v for k, v in record.items() if v is not None}


def add(conf: dict, env: dict, warnings: list[str]) -> dict:
    """ADD: the result to print. `env`: ENV_NAMES -> value (None when unset); `warnings` gets
    what is worth a line on stderr."""
    from cdigen.pod import cnirecord

    path = _record_path(conf, env)
    record = _record(conf, env, warnings)
    dan_dir = conf.get("dan_dir")
    if dan_dir:
        from cdigen.pod import dan

        record["dan"] = dan.add_interface(dan_dir, record, SYS_ROOT, conf.get("hypervisor"))
    try:
        cnirecord.write(path, record)
    except BaseException:
        if record.get("dan"):  # nothing half-written: no DAN entry without its record
            dan.remove_interface(dan_dir, record["containerId"], record["ifName"], path=record["dan"])
        raise
    return {**conf["prevResult"], "cniVersion": conf["cniVersion"]}


def delete(conf: dict, env: dict) -> None:
    from cdigen.pod import cnirecord

    path = _record_path(conf, env)
    try:
        record = cnirecord.read(path) or {}
    except InvalidInput:
        record = {}  # not readable as ours; removed all the same
    if conf.get("dan_dir") or record.get("dan"):
        from cdigen.pod import dan

        dan.remove_interface(
            conf.get("dan_dir") or "", _env(env, "CNI_CONTAINERID"), _env(env, "CNI_IFNAME"), path=record.get("dan")
        )
    cnirecord.remove(path)


def check(conf: dict, env: dict, warnings: list[str]) -> None:
    from cdigen.pod import cnirecord

    path = _record_path(conf, env)
    try:
        record = cnirecord.read(path)
    except InvalidInput as e:
        raise CniError(ERR_RECORD_DIFFERS, str(e)) from None
    if record is None:
        raise CniError(ERR_NO_RECORD, f"no cdigen record {path} (ADD did not run or did not succeed)")
    now = _record(conf, env, warnings)
    if record["interface"].get("inNetns") and not now["interface"].get("inNetns"):
        raise CniError(ERR_INTERFACE_GONE, f"interface {record['ifName']} is no longer in {now.get('netns')}")
    for key in ("ifName", "netns", "ips", "netDevice"):
        if now.get(key) != record.get(key):
            raise CniError(
                ERR_RECORD_DIFFERS,
                f"{key} of {path} differs from now",
                f"recorded {record.get(key)!r}, now {now.get(key)!r}",
            )
    if record.get("dan") and not os.path.exists(record["dan"]):
        raise CniError(ERR_INTERFACE_GONE, f"the DAN file {record['dan']} is gone")
