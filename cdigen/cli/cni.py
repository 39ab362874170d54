"""`cdigen cni`, and `cdigen` run as a CNI plugin (the executable named `cdigen`, no arguments,
CNI_COMMAND set: cdigen/entry.py): reads CNI_COMMAND and the CNI_* environment, the network
configuration on stdin, calls the plugin's work (cdigen/pod/cni.py) and renders its result,
or the CNI error object (`cniVersion`, `code`, `msg`, `details`) on stdout with exit 1."""

import os
import sys

from cdigen.errors import CdigenError, InvalidInput
from cdigen.pod import cni

COMMANDS = ("ADD", "DEL", "CHECK", "VERSION")


def _read_config(command: str) -> dict:
    limit = cni.MAX_CONFIG_BYTES
    data = sys.stdin.buffer.read(limit + 1) if sys.stdin is not None else b""
    if len(data) > limit:
        raise cni.CniError(cni.ERR_DECODE, f"network configuration on stdin is larger than {limit} bytes")
    if command == "VERSION" and not data.strip():
        return {}
    from cdigen import strictjson

    try:
        conf = strictjson.loads(data)
    except ValueError as e:
        raise cni.CniError(cni.ERR_DECODE, "network configuration on stdin: invalid JSON", str(e)) from None
    if not isinstance(conf, dict):
        raise cni.CniError(cni.ERR_DECODE, "network configuration on stdin: expected a JSON object")
    return conf


def _write_json(doc: dict) -> None:
    import json

    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def run(command: str | None) -> int:
    conf: dict = {}
    warnings: list[str] = []
    try:
        if command is None:
            raise cni.CniError(cni.ERR_ENV, "CNI_COMMAND is not set")
        if command not in COMMANDS:
            raise cni.CniError(cni.ERR_ENV, f"CNI_COMMAND {command!r}: expected ADD, DEL, CHECK or VERSION")
        conf = _read_config(command)
        if command == "VERSION":
            _write_json(cni.versions())
            return 0
        cni.check_config(conf, command)
        env = {name: os.environ.get(name) or None for name in cni.ENV_NAMES}
        if command == "ADD":
            _write_json(cni.add(conf, env, warnings))
        elif command == "DEL":
            cni.delete(conf, env)
        else:
            cni.check(conf, env, warnings)
        return 0
    except cni.CniError as e:
        error = e
    except InvalidInput as e:
        error = cni.CniError(cni.ERR_CONFIG, str(e))
    except CdigenError as e:
        error = cni.CniError(cni.ERR_IO, str(e))
    except OSError as e:
        error = cni.CniError(cni.ERR_IO, f"{e.filename or ''}: {e.strerror}".lstrip(": "))
    except Exception as e:
        if os.environ.get("CDIGEN_DEBUG"):
            raise
        error = cni.CniError(cni.ERR_IO, f"internal error: {type(e).__name__}: {e}")
    finally:
        for warning in warnings:
            sys.stderr.write(f"cdigen: warning: {warning}\n")
    version = conf.get("cniVersion") if conf.get("cniVersion") in cni.SUPPORTED_VERSIONS else cni.CURRENT_VERSION
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
the key dan_dir, the sandbox's Kata DAN file (refused for what the key hypervisor cannot
attach); it prints prevResult. DEL removes them.
Errors: the CNI error object on stdout, exit 1.
"""
