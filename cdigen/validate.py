"""`cdigen validate`: every problem of a set of spec files, as loaders and `cdigen apply` see them.

The reference loader's errors and conflicts come from `cdigen.cdi.load`; what `cdigen apply`
would refuse in a spec the loader accepts comes from `cdigen.cdi.edits.spec_problems`, the walk
that apply itself makes over every device it injects. One problem is validate's own: a kind
that every released Go library crashes on, which cdigen's loader reads as HEAD does. Warnings (`spec_warnings`) are what
loads and applies but fails or strands a NIC when a container runs.
"""

import os
import stat

from cdigen import hookentry, netdev
from cdigen.cdi import load
from cdigen.cdi.consumers import first_releases
from cdigen.cdi.edits import spec_problems
from cdigen.cdi.spec import LIBRARY_VERSION, check_target_version, minimum_version, released_library_problem
from cdigen.errors import InvalidInput
from cdigen.values import one_line


def registry_problems(registry: load.Registry) -> list[tuple[str, str]]:
    """(file or directory, message) for every problem, directories first, then files in the
    order they were loaded."""
    lint = {spec.path: _kind_problems(spec) + spec_problems(spec.data) for spec in registry.specs}
    places = list(dict.fromkeys([*registry.errors, *registry.files]))
    places.sort(key=lambda p: registry.files.index(p) if p in registry.files else -1)
    return [(where, message) for where in places for message in registry.errors.get(where, []) + lint.get(where, [])]


def _kind_problems(spec: load.Spec) -> list[str]:
    problem = released_library_problem(spec.kind)
    return [problem] if problem else []


def validate_paths(
    paths: list[str] | None, spec_dirs: list[str], loader: str = LIBRARY_VERSION
) -> tuple[load.Registry, list[tuple[str, str]]]:
    """Load the named files/directories (else the spec directories) as a CDI library of
    version `loader` would, and find every problem."""
    check_target_version(loader)
    registry = load.load_paths(paths, loader) if paths else load.load_registry(spec_dirs, loader=loader)
    return registry, registry_problems(registry)


def readers(spec: load.Spec) -> str:
    """Which cdiVersion a loaded spec declares and needs, and the first release of each engine
    that loads it: "cdiVersion 0.3.0 (needs 0.3.0): containerd >= 1.7.0, ..."."""
    declared = spec.data["cdiVersion"].removeprefix("v")
    engines = ", ".join(
        f"{engine} >= {first}" if first else f"{engine}: no release yet"
        for engine, first in first_releases(declared).items()
    )
    if released_library_problem(spec.kind):
        engines = "no engine release (its kind crashes them)"
    return f"cdiVersion {declared} (needs {minimum_version(spec.data)}): {engines}"


def registry_warnings(registry: load.Registry) -> list[tuple[str, str]]:
    """(file, message) for every warning of the loaded specs, in load order."""
    return [(spec.path, message) for spec in registry.specs for message in spec_warnings(spec.data)]


def spec_warnings(spec: dict) -> list[str]:
    """Hook paths that cannot run on this host, and `cdigen hook` createRuntime entries whose
    NICs no poststop entry brings home. A device's entry may have its twin in the spec's own
    edits, which are injected with every device."""
    own = _hooks(spec.get("containerEdits"), "containerEdits")
    parts = [own] + [
        _hooks(device.get("containerEdits"), f"devices[{i}].containerEdits")
        for i, device in enumerate(spec.get("devices") or [])
    ]
    warnings = _hook_path_warnings([entry for part in parts for entry in part])
    for i, part in enumerate(parts):
        warnings += _stranding_warnings(part, part if i == 0 else part + own)
    return warnings


def _hooks(edits: dict | None, label: str) -> list[tuple[str, dict]]:
    return [(f"{label}.hooks[{j}]", hook) for j, hook in enumerate((edits or {}).get("hooks") or [])]


def _hook_path_warnings(entries: list[tuple[str, dict]]) -> list[str]:
    """One warning per hook path that this host cannot execute, at its first entry."""
    places: dict[str, list[str]] = {}
    for where, hook in entries:
        places.setdefault(hook["path"], []).append(where)
    out = []
    for path, wheres in places.items():
        why = _not_runnable(path)
        if why:
            more = f" (and {len(wheres) - 1} more)" if len(wheres) > 1 else ""
            out.append(
                f"{wheres[0]}{more}: hook path {one_line(path)} {why} on this host: a runtime here fails to "
                "start a container with it (ignore this if the spec is for another host)"
            )
    return out


def _not_runnable(path: str) -> str | None:
    if not os.path.isabs(path):
        return "is not absolute"
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "does not exist"
    if not stat.S_ISREG(mode) or not os.access(path, os.X_OK):
        return "is not an executable file"
    return None


def _stranding_warnings(part: list[tuple[str, dict]], candidates: list[tuple[str, dict]]) -> list[str]:
    """createRuntime `cdigen hook` entries of `part` with hosts that no poststop entry of the
    same path among `candidates` lists."""
    out = []
    for where, hook in part:
        hosts = _netdev_hosts(hook, poststop=False)
        if not hosts:
            continue
        brought_home = set()
        for _, other in candidates:
            if other["path"] == hook["path"]:
                brought_home.update(_netdev_hosts(other, poststop=True))
        stranded = [host for host in hosts if host not in brought_home]
        if stranded:
            out.append(
                f"{where}: cdigen hook createRuntime entry without its poststop twin (same path, --poststop, "
                f"the same --netdev) for {', '.join(stranded)}: the NIC would stay in the container's "
                "namespace when the container ends"
            )
    return out


def _netdev_hosts(hook: dict, poststop: bool) -> list[str]:
    """The --netdev hosts of a `cdigen hook` entry of that phase (createRuntime, or poststop
    with --poststop); [] for any other entry, or arguments `cdigen hook` refuses (those are
    problems, reported as such)."""
    name = hookentry.POSTSTOP_HOOK_NAME if poststop else hookentry.HOOK_NAME
    if hook.get("hookName") != name or not hookentry.is_cdigen_hook(hook):
        return []
    if (hookentry.POSTSTOP_FLAG in hook["args"]) != poststop:
        return []
    try:
        return [cfg.host for cfg in netdev.parse_args(hookentry.parse_hook_argv(hook["args"][2:]) or [])]
    except InvalidInput:
        return []
