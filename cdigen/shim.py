"""The OCI runtime shim's work (`cdigen-runtime`, `cdigen runtime`; the nvidia-container-runtime
pattern). An engine runs it where it would run runc:

* `create` (and `run`): read BUNDLE/config.json; when its `cdi.k8s.io/*` annotations or the
  container's `CDIGEN_DEVICES` environment variable request CDI devices, inject them with
  `cdigen.apply.apply_devices` (locked atomic write, the `cdigen hook` entries added, netdev
  settings from the pod's network); then exec the real runtime with the original arguments.
  If injection fails the runtime is never started and config.json is unchanged.
* every other subcommand and option (`start`, `state`, `kill`, `delete`, `features`,
  `--version`...): exec the real runtime at once, config.json never read.

cdigen/cli/runtime.py reads the arguments, calls `refuse_loop`, `load_settings`, `prepare` and
`exec_runtime`, and renders a failure (stderr, the runtime's --log). Which runtime, where the
specs are, where to log: docs/shim.md. This runs at every container operation:
stdlib only (os, sys) until a device is requested; no re, json, contextlib or signal on a
pass-through (docs/architecture.md, "Hot path").
"""

import os
import sys

from cdigen.errors import CdigenError, InvalidInput, UsageError

CONFIG_PATH = "/etc/cdigen/runtime.json"
CONFIG_KEYS = {"runtime": str, "spec_dirs": list, "log": str, "hook_path": str}
ENV_RUNTIME = "CDIGEN_RUNTIME"
ENV_CONFIG = "CDIGEN_RUNTIME_CONFIG"
ENV_LOG = "CDIGEN_RUNTIME_LOG"
ENV_DEVICES = "CDIGEN_DEVICES"  # in the container's process.env (docker/podman `-e`)
ENV_ACTIVE = "CDIGEN_RUNTIME_SHIM"  # set for the runtime we exec: a second shim under it is a loop
DEFAULT_RUNTIME = "runc"
SHIM_NAMES = ("cdigen", "cdigen-runtime")
MAX_RUNTIME_CONFIG_BYTES = 64 << 10


# ---------------------------------------------------------------------------- the runtime's command line
# runc's and crun's grammar, not cdigen's (cli/ parses cdigen's own): what the shim needs from
# it is found as they find it, everything else is passed on untouched.

# Global options of runc 1.1 (urfave/cli: `-opt` or `--opt`, `--opt value` or `--opt=value`)
# and crun 1.8 (argp: `--opt=value` or `--opt value`). Bool options never take the next argument.
GLOBAL_VALUE_OPTIONS = frozenset({"root", "log", "log-format", "criu", "rootless", "cgroup-manager", "log-level"})
GLOBAL_FLAG_OPTIONS = frozenset({"debug", "systemd-cgroup", "help", "h", "?", "usage", "version", "v", "V"})
# Subcommands of runc and crun: an unknown global option is taken as a flag when one of these
# follows it, else as an option with a value.
COMMANDS = frozenset(
    {
        "checkpoint", "create", "delete", "events", "exec", "features", "help", "h", "init", "kill", "list", "mounts",
        "pause", "ps", "restore", "resume", "run", "spec", "start", "state", "update",
    }
)  # fmt: skip
INJECT_COMMANDS = ("create", "run")
# Options of `create` and `run` (runc and crun), in any position before `--`.
CREATE_VALUE_OPTIONS = frozenset({"bundle", "b", "console-socket", "pid-file", "preserve-fds", "config", "f"})
CREATE_FLAG_OPTIONS = frozenset(
    {"no-pivot", "no-new-keyring", "no-subreaper", "detach", "d", "keep", "help", "h", "?", "usage"}
)
HELP_OPTIONS = frozenset({"help", "h", "?", "usage"})


class RuntimeArgs:
    """What the shim needs from the runtime's command line; everything else is passed on."""

    def __init__(self) -> None:
        self.command: str | None = None  # the subcommand, None when there is none (`--version`)
        self.bundle = "."  # runc's and crun's default: the current directory
        self.container_id: str | None = None  # the one argument of create/run, None when not one
        self.config_file: str | None = None  # crun's -f/--config
        self.help = False  # create --help: nothing is created
        self.log: str | None = None  # the runtime's --log file
        self.log_format = "text"


def _option(arg: str) -> tuple[str, bool, str]:
    """`--name=value` / `-name value` / `--name` -> (name, has '=', value)."""
    name, eq, value = (arg[2:] if arg.startswith("--") else arg[1:]).partition("=")
    return name, bool(eq), value


def parse_runtime_args(args: list[str]) -> RuntimeArgs:
    """Find the subcommand and, for create/run, the bundle and the container ID, as runc and
    crun parse their command lines. Never raises: what cannot be understood is left for the
    runtime to refuse (the shim then injects nothing)."""
    out = RuntimeArgs()
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, value = _option(arg)
        if name in GLOBAL_VALUE_OPTIONS:
            if not eq:
                if i + 1 >= len(args):
                    return out  # the runtime says what is missing
                value = args[i + 1]
                i += 1
            if name == "log":
                out.log = value
            elif name == "log-format":
                out.log_format = value
        elif name not in GLOBAL_FLAG_OPTIONS and not eq and i + 1 < len(args) and args[i + 1] not in COMMANDS:
            i += 1  # an option unknown to us, followed by its value
        i += 1
    if i >= len(args):
        return out
    out.command = args[i]
    if out.command in INJECT_COMMANDS:
        _parse_create(args[i + 1 :], out)
    return out


def _parse_create(args: list[str], out: RuntimeArgs) -> None:
    positional = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            positional += args[i:]
            break
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        name, eq, value = _option(arg)
        if not arg.startswith("--") and name not in CREATE_VALUE_OPTIONS | CREATE_FLAG_OPTIONS and name[:1] in "bf":
            name, eq, value = name[:1], True, name[1:]  # argp's -bDIR
        if name in HELP_OPTIONS:
            out.help = True
        elif name in CREATE_VALUE_OPTIONS:
            if not eq:
                if i >= len(args):
                    return
                value = args[i]
                i += 1
            if name in ("bundle", "b"):
                out.bundle = value
            elif name in ("config", "f"):
                out.config_file = value
    if len(positional) == 1:
        out.container_id = positional[0]


# ---------------------------------------------------------------------------- settings


def refuse_loop(environ=os.environ) -> None:
    """UsageError (2) when this shim runs under the runtime a shim executed."""
    if environ.get(ENV_ACTIVE):
        raise UsageError(
            f"runtime loop: the runtime this shim executes runs cdigen runtime again ({ENV_ACTIVE} is set)"
        )


class Settings:
    def __init__(self) -> None:
        self.runtime = DEFAULT_RUNTIME
        self.spec_dirs: list[str] | None = None
        self.log: str | None = None
        self.hook_path: str | None = None


def load_settings(environ=os.environ) -> Settings:
    """CDIGEN_RUNTIME, CDIGEN_RUNTIME_LOG, then the config file (CDIGEN_RUNTIME_CONFIG, else
    /etc/cdigen/runtime.json when it exists): a JSON object with any of `runtime`, `spec_dirs`,
    `log`, `hook_path`. InvalidInput (3) for a config file that is not that."""
    settings = Settings()
    path = environ.get(ENV_CONFIG) or CONFIG_PATH
    named = bool(environ.get(ENV_CONFIG))
    if named or os.path.exists(CONFIG_PATH):
        _read_config(path, settings)
    if environ.get(ENV_RUNTIME):
        settings.runtime = environ[ENV_RUNTIME]
    if environ.get(ENV_LOG):
        settings.log = environ[ENV_LOG]
    return settings


def _read_config(path: str, settings: Settings) -> None:
    from cdigen import strictjson
    from cdigen.files import UnreadableFile, read_regular

    try:
        doc = strictjson.loads(read_regular(path, MAX_RUNTIME_CONFIG_BYTES))
    except UnreadableFile as e:
        raise InvalidInput(f"{path}: {e}") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, NaN
        raise InvalidInput(f"{path}: invalid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{path}: expected a JSON object")
    for key, value in doc.items():
        kind = CONFIG_KEYS.get(key)
        if kind is None:
            raise InvalidInput(f"{path}: unknown key {key!r} (known: {', '.join(CONFIG_KEYS)})")
        if not isinstance(value, kind) or (kind is list and not all(isinstance(v, str) and v for v in value)):
            raise InvalidInput(f"{path}: {key}: expected {'a list of paths' if kind is list else 'a string'}")
        if kind is str and not value:
            raise InvalidInput(f"{path}: {key}: empty")
    settings.runtime = doc.get("runtime", settings.runtime)
    settings.spec_dirs = doc.get("spec_dirs", settings.spec_dirs)
    settings.log = doc.get("log", settings.log)
    settings.hook_path = doc.get("hook_path", settings.hook_path)


def resolve_runtime(name: str, environ=os.environ) -> str:
    """The path to exec: `name` itself when it has a '/', else the first executable `name` on
    PATH. UsageError (2) when that is cdigen's own shim (it would exec itself forever),
    CdigenError (1) when there is none."""
    if "/" in name:
        path = name
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise CdigenError(f"runtime {name!r}: not an executable file")
    else:
        for directory in (environ.get("PATH") or os.defpath).split(os.pathsep):
            path = os.path.join(directory or ".", name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                break
        else:
            raise CdigenError(f"runtime {name!r}: not found on PATH (set {ENV_RUNTIME} or 'runtime' in {CONFIG_PATH})")
    real = os.path.realpath(path)
    if (
        os.path.basename(path) in SHIM_NAMES
        or os.path.basename(real) in SHIM_NAMES
        or real == os.path.realpath(sys.argv[0] or "")
    ):
        raise UsageError(f"runtime {name!r} is cdigen itself; name the real OCI runtime (runc, crun)")
    return path


# ---------------------------------------------------------------------------- injection


def requested_by_env(config: dict) -> list[str]:
    """The devices of CDIGEN_DEVICES in the container's process.env: comma-separated
    qualified names; the first entry of the variable counts, as for getenv()."""
    from cdigen.oci.config import process_env

    value = process_env(config).get(ENV_DEVICES)
    if value is None:
        return []
    names = [n.strip() for n in value.split(",") if n.strip()]
    from cdigen.cdi.spec import is_qualified_name

    for name in names:
        if not is_qualified_name(name):
            raise InvalidInput(f"config.json: process.env {ENV_DEVICES}: {name!r}: expected vendor/class=name")
    return names


def wants_devices(config: dict) -> bool:
    """Whether config.json asks for any CDI device (cheap: no CDI modules imported)."""
    annotations = config.get("annotations")
    if isinstance(annotations, dict) and any(str(k).startswith("cdi.k8s.io/") for k in annotations):
        return True
    from cdigen.oci.config import process_env

    return ENV_DEVICES in process_env(config)


def own_script() -> str | None:
    """The `cdigen` console script of this installation, for the hook entries (engines start
    runtimes with a PATH that may not lead to it): the script this shim runs as (`cdigen
    runtime`, or a `cdigen-runtime` link to it), else the one beside the `cdigen-runtime`
    script (bin/cdigen-runtime, installed in the same directory)."""
    path = os.path.realpath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if os.path.basename(path) != "cdigen":
        path = os.path.join(os.path.dirname(path), "cdigen") if path else ""
    return path if path and os.path.isfile(path) and os.access(path, os.X_OK) else None


def inject(args: RuntimeArgs, settings: Settings) -> list[str]:
    """Inject what config.json asks for; the devices injected ([] when none)."""
    from cdigen import strictjson
    from cdigen.files import UnreadableFile, read_regular
    from cdigen.oci.config import CONFIG_NAME, MAX_CONFIG_BYTES

    other = args.config_file not in (None, CONFIG_NAME, "./" + CONFIG_NAME)
    path = os.path.join(args.bundle, args.config_file if other else CONFIG_NAME)  # crun: relative to the bundle
    try:
        config = strictjson.loads(read_regular(path, MAX_CONFIG_BYTES))
    except (UnreadableFile, ValueError):
        return []  # missing or unreadable: the runtime reports it in its own words
    if not isinstance(config, dict) or not wants_devices(config):
        return []
    if other:
        raise UsageError(f"--config {args.config_file}: devices are injected into BUNDLE/config.json only")
    devices = requested_by_env(config)
    from cdigen.apply import apply_devices

    # pod_root: the pod's network (cdigen/pod/network.py: network-status, pod-networks, the
    # sandbox's CNI results under /) fills the address, mask and MTU of the devices' interfaces.
    result = apply_devices(
        args.bundle, devices, spec_dirs=settings.spec_dirs, hook_path=settings.hook_path or own_script(), pod_root="/"
    )
    return result.devices


def prepare(args: RuntimeArgs, argv: list[str], settings: Settings) -> str:
    """The path of the runtime to exec, after injecting what a create/run asks for."""
    path = resolve_runtime(settings.runtime)
    devices = []
    if args.command in INJECT_COMMANDS and not args.help and args.container_id:
        devices = inject(args, settings)
    debug_log(settings, {"argv": argv, "injected": devices, "exec": path})
    return path


# ---------------------------------------------------------------------------- logs, exec


def timestamp() -> str:
    import time

    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def append_line(path: str, line: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError:
        return  # a log must never be why a container does not start
    try:
        os.write(fd, (line + "\n").encode("utf-8", "replace"))
    except OSError:
        pass
    finally:
        os.close(fd)


def debug_log(settings: Settings | None, event: dict) -> None:
    if settings is None or not settings.log:
        return
    import json

    append_line(settings.log, json.dumps({"time": timestamp(), "pid": os.getpid(), **event}, ensure_ascii=False))


def exec_runtime(path: str, argv: list[str]) -> None:
    # `signal` wraps the constants of the builtin `_signal` in enums: importing it (and enum)
    # is a fifth of a pass-through here (docs/benchmarks.md, "Runtime shim").
    import _signal

    # Python ignores SIGPIPE and SIGXFSZ; an ignored signal stays ignored across exec, into the
    # runtime and the container. Back to the defaults, as subprocess does (restore_signals).
    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(_signal, name):
            _signal.signal(getattr(_signal, name), _signal.SIG_DFL)
    os.environ[ENV_ACTIVE] = str(os.getpid())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(path, [path, *argv])
