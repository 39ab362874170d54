"""The `cdigen` CNI plugin (CNI spec 1.0): `type: cdigen` in a conflist, chained after the plugin
that moves the NIC into the pod (host-device, sriov) or binds it to VFIO.

cdigen/entry.py runs this when the `cdigen` executable is started with no arguments and
CNI_COMMAND set (the CNI bin dir holds `cdigen`, a link to the console script), or as
`cdigen cni`.

* ADD: record the interface's facts from `prevResult` (and the kernel's view of the interface
  in CNI_NETNS, and `runtimeConfig.CNIDeviceInfoFile`) in cdigen/cnirecord.py's record; with
  `dan_dir` in the config, also the Kata DAN file of the sandbox; print `prevResult` unchanged.
  Nothing is left half-written: a failure removes what this ADD wrote.
* DEL: remove what ADD wrote; nothing there (DEL after a failed ADD, a second DEL) is fine.
* CHECK: the record is there, agrees with `prevResult`, and the interface is still in the netns.
* VERSION: the supported versions.

Errors: the CNI error object on stdout (`cniVersion`, `code`, `msg`, `details`), exit 1.
Codes: CNI's well-known ones (1 incompatible version, 4 bad environment, 5 I/O, 6 undecodable
config, 7 invalid config) and cdigen's: 100 no record (CHECK), 101 record disagrees with
prevResult, 102 interface gone from the netns.
"""

import os
import sys

from cdigen.errors import CdigenError, InvalidInput

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")
CURRENT_VERSION = "1.0.0"
MAX_CONFIG_BYTES = 1 << 20

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


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def _env(name: str, required: bool = True) -> str | None:
    value = os.environ.get(name) or None
    if required and value is None:
        raise CniError(ERR_ENV, f"{name} is not set")
    return value


def _read_config(command: str) -> dict:
    data = sys.stdin.buffer.read(MAX_CONFIG_BYTES + 1) if sys.stdin is not None else b""
    if len(data) > MAX_CONFIG_BYTES:
        raise CniError(ERR_DECODE, f"network configuration on stdin is larger than {MAX_CONFIG_BYTES} bytes")
    if command == "VERSION" and not data.strip():
        return {}
    from cdigen import strictjson

    try:
        conf = strictjson.loads(data)
    except ValueError as e:
        raise CniError(ERR_DECODE, "network configuration on stdin: invalid JSON", str(e)) from None
    if not isinstance(conf, dict):
        raise CniError(ERR_DECODE, "network configuration on stdin: expected a JSON object")
    return conf


def _check_config(conf: dict, command: str) -> None:
    version = conf.get("cniVersion")
    if version not in SUPPORTED_VERSIONS:
        raise CniError(
            ERR_INCOMPATIBLE,
            f"incompatible CNI version {version!r}",
            f"supported: {', '.join(SUPPORTED_VERSIONS)}",
        )
    if command == "CHECK" and _version_tuple(version) < (0, 4, 0):
        raise CniError(ERR_INCOMPATIBLE, "config version does not allow CHECK", f"cniVersion {version}")
    for key in ("record_dir", "dan_dir"):
        value = conf.get(key)
        if value is not None and not (isinstance(value, str) and os.path.isabs(value)):
            raise CniError(ERR_CONFIG, f"{key}: expected an absolute path, got {value!r}")
    if command != "DEL" and not isinstance(conf.get("prevResult"), dict):
        raise CniError(
            ERR_CONFIG,
            "no prevResult: cdigen is a chained plugin; put it after the plugin that moves the device "
            "(host-device, sriov) in the conflist",
        )


def _record_dir(conf: dict) -> str:
    from cdigen.cnirecord import RECORD_DIR

    return conf.get("record_dir") or RECORD_DIR


def _record_path(conf: dict) -> str:
    from cdigen import cnirecord, netdev

    container_id, ifname = _env("CNI_CONTAINERID"), _env("CNI_IFNAME")
    try:
        return cnirecord.record_path(container_id, ifname, _record_dir(conf))
    except (InvalidInput, netdev.NetdevError) as e:
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


def _device_info(conf: dict) -> dict | None:
    path = (conf.get("runtimeConfig") or {}).get("CNIDeviceInfoFile") if isinstance(conf, dict) else None
    if not isinstance(path, str) or not path:
        return None
    from cdigen import strictjson
    from cdigen.files import UnreadableFile, read_regular

    try:
        doc = strictjson.loads(read_regular(path, MAX_CONFIG_BYTES))
    except (UnreadableFile, ValueError) as e:
        sys.stderr.write(f"cdigen: warning: CNIDeviceInfoFile {path}: {e}\n")  # another plugin's file
        return None
    return doc if isinstance(doc, dict) else None


def _facts(conf: dict) -> dict:
    from cdigen import cnirecord

    ifname, netns = _env("CNI_IFNAME"), _env("CNI_NETNS")
    try:
        cnirecord.facts(conf["prevResult"], ifname, netns)  # a bad prevResult before the netns is entered
    except InvalidInput as e:
        raise CniError(ERR_CONFIG, str(e)) from None
    link = _link(netns, ifname)
    record = {
        "kind": cnirecord.KIND,
        "containerId": _env("CNI_CONTAINERID"),
        "networkName": conf.get("name"),
        "cniVersion": conf["cniVersion"],
    }
    try:
        record.update(cnirecord.facts(conf["prevResult"], ifname, netns, link, _device_info(conf)))
    except InvalidInput as e:
        raise CniError(ERR_CONFIG, str(e)) from None
    record["result"] = conf["prevResult"]
    return {k: v for k, v in record.items() if v is not None}


# ---------------------------------------------------------------------------- Kata DAN

SYS_ROOT = "/"  # where sys/ is, for matching an interface to its host device (tests point it elsewhere)


def _dan_module():
    """The Kata DAN writer where this cdigen has one (cdigen/dan.py, or cdigen/vm/dan.py);
    None when it has none: ADD then records only."""
    import importlib
    import importlib.util

    for name in ("cdigen.dan", "cdigen.vm.dan"):
        try:
            if importlib.util.find_spec(name) is not None:
                return importlib.import_module(name)
        except ModuleNotFoundError:  # cdigen.vm itself absent
            continue
    return None


def cmd_add(conf: dict) -> dict:
    from cdigen import cnirecord

    path = _record_path(conf)
    record = _facts(conf)
    dan_dir, dan = conf.get("dan_dir"), None
    if dan_dir:
        dan = _dan_module()
        if dan is None:
            sys.stderr.write("cdigen: warning: dan_dir is set but this cdigen has no DAN writer; recorded only\n")
        else:  # the single call into the DAN writer on ADD
            record["dan"] = dan.add_interface(dan_dir, record, SYS_ROOT)
    try:
        cnirecord.write(path, record)
    except BaseException:
        if record.get("dan"):  # nothing half-written: no DAN entry without its record
            dan.remove_interface(dan_dir, record["containerId"], record["ifName"], path=record["dan"])
        raise
    return {**conf["prevResult"], "cniVersion": conf["cniVersion"]}


def cmd_del(conf: dict) -> None:
    from cdigen import cnirecord

    path = _record_path(conf)
    try:
        record = cnirecord.read(path) or {}
    except InvalidInput:
        record = {}  # not readable as ours; removed all the same
    if conf.get("dan_dir") or record.get("dan"):
        dan = _dan_module()
        if dan is not None:  # the single call into the DAN writer on DEL; absent is fine
            dan.remove_interface(
                conf.get("dan_dir") or "", _env("CNI_CONTAINERID"), _env("CNI_IFNAME"), path=record.get("dan")
            )
    cnirecord.remove(path)


def cmd_check(conf: dict) -> None:
    from cdigen import cnirecord

    path = _record_path(conf)
    try:
        record = cnirecord.read(path)
    except InvalidInput as e:
        raise CniError(ERR_RECORD_DIFFERS, str(e)) from None
    if record is None:
        raise CniError(ERR_NO_RECORD, f"no cdigen record {path} (ADD did not run or did not succeed)")
    now = _facts(conf)
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


def _write_json(doc: dict) -> None:
    import json

    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def run(command: str | None) -> int:
    conf: dict = {}
    try:
        if command is None:
            raise CniError(ERR_ENV, "CNI_COMMAND is not set")
        if command not in ("ADD", "DEL", "CHECK", "VERSION"):
            raise CniError(ERR_ENV, f"CNI_COMMAND {command!r}: expected ADD, DEL, CHECK or VERSION")
        conf = _read_config(command)
        if command == "VERSION":
            _write_json({"cniVersion": CURRENT_VERSION, "supportedVersions": list(SUPPORTED_VERSIONS)})
            return 0
        _check_config(conf, command)
        if command == "ADD":
            _write_json(cmd_add(conf))
        elif command == "DEL":
            cmd_del(conf)
        else:
            cmd_check(conf)
        return 0
    except CniError as e:
        error = e
    except InvalidInput as e:
        error = CniError(ERR_CONFIG, str(e))
    except CdigenError as e:
        error = CniError(ERR_IO, str(e))
    except OSError as e:
        error = CniError(ERR_IO, f"{e.filename or ''}: {e.strerror}".lstrip(": "))
    except Exception as e:
        if os.environ.get("CDIGEN_DEBUG"):
            raise
        error = CniError(ERR_IO, f"internal error: {type(e).__name__}: {e}")
    version = conf.get("cniVersion") if conf.get("cniVersion") in SUPPORTED_VERSIONS else CURRENT_VERSION
    out = {"cniVersion": version, "code": error.code, "msg": error.msg}
    if error.details:
        out["details"] = error.details
    _write_json(out)
    return 1


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0
    if argv:
        sys.stderr.write(f"cdigen: error: cni: unexpected argument {argv[0]!r} (see cdigen cni --help)\n")
        return 2
    return run(os.environ.get("CNI_COMMAND"))


USAGE = """\
usage: cdigen cni   (or `cdigen` with no arguments and CNI_COMMAND set, as a CNI plugin)

The cdigen CNI plugin, `"type": "cdigen"` in a conflist after the plugin that moves the NIC.
CNI_COMMAND ADD | DEL | CHECK | VERSION, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME in the
environment, the network configuration (with prevResult) on stdin. ADD records the
interface's facts in /run/cdigen/cni/CONTAINERID/IFNAME.json (plugin key record_dir) and, with
the key dan_dir, the sandbox's Kata DAN file; it prints prevResult. DEL removes them.
Errors: the CNI error object on stdout, exit 1.
"""
