"""CDI containerEdits -> the edited config.json document, as the reference library injects.

docs/cdi-conformance.md ("Injection"). Pure functions on plain dicts, except `fill_device_node`, which looks at
the host's device node (os.lstat) where the spec leaves type/major/minor/fileMode out.

Where cdigen differs from the reference library, on purpose:
* Applying the same devices again changes nothing: an entry equal to one already present
  (device, cgroup rule, mount, hook, gid) is not added a second time.
* env: a key already in config.json is replaced in place (CDI HEAD, what users expect and
  what makes a second apply a no-op); v1.1.0 appended a second `KEY=` entry that getenv()
  would never see.
* NCCL's and UCX's variables for the container's NICs, in the order of its devices, are
  added to process.env where it does not set them already (docs/nccl.md): CDI `env` could
  not carry them (one device's value would replace another's, and the user's). The `cdigen
  hook` entries then write into the container's files only what the environment lacks: the
  RoCE GID index, which only they can read.
* `linux.netDevices` entries carry cdigen's address/mask/mtu (docs/netdev.md), two host
  interfaces may not get one container name, and relative or `..` paths are rejected.
* A config.json with a user namespace gets bind mounts unchanged (v1.1.0; HEAD adds idmap).
"""

import copy
import os
import stat

from cdigen import hookentry, netdev
from cdigen.errors import BadArgument, InvalidInput
from cdigen.oci.config import net_devices, process_env
from cdigen.values import quoted

ANNOTATION_PREFIX = "cdi.k8s.io/"
LIST_EDITS = ("env", "deviceNodes", "netDevices", "mounts", "hooks", "additionalGids")


class MergedEdits:
    """The edits of the requested devices, merged in the reference order, and the netdev
    settings they carry."""

    __slots__ = ("edits", "netdevs", "spec_netdevs")

    def __init__(self, edits: dict | None = None, netdevs: dict | None = None, spec_netdevs: dict | None = None):
        self.edits = ({k: [] for k in LIST_EDITS} | {"intelRdt": None}) if edits is None else edits
        self.netdevs = {} if netdevs is None else netdevs  # host -> NetdevSettings, overrides included
        self.spec_netdevs = {} if spec_netdevs is None else spec_netdevs  # host -> NetdevSettings, from the specs only

    def __repr__(self) -> str:
        return "MergedEdits(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


# ---------------------------------------------------------------------------- request


def requested_devices(config: dict) -> list[str]:
    """Qualified names from `cdi.k8s.io/*` annotations (keys in document order; values split
    on ',' without trimming, as ParseAnnotations does). InvalidInput for a bad name."""
    from cdigen.cdi.spec import is_qualified_name

    annotations = config.get("annotations")
    if annotations is None:
        return []
    if not isinstance(annotations, dict):
        raise InvalidInput("config.json: annotations: expected an object")
    out = []
    for key, value in annotations.items():
        if not key.startswith(ANNOTATION_PREFIX):
            continue
        if not isinstance(value, str):
            raise InvalidInput(f"config.json: annotation {key}: expected a string")
        for name in value.split(","):
            if not is_qualified_name(name):
                raise InvalidInput(f"config.json: annotation {key}: invalid CDI device name {quoted(name)}")
            out.append(name)
    return out


# ---------------------------------------------------------------------------- the checks apply makes
# One walk over one containerEdits, used by `merge_device_edits` (apply: the requested devices,
# first problem fails) and by `spec_problems` (validate: every part of a spec, every problem).
# So validate cannot accept what apply refuses, or the other way round.


def path_problems(edits: dict) -> list[str]:
    """Relative or `..` paths in deviceNodes and mounts (the reference does not check; OCI
    requires absolute container paths and a `..` can climb out of the rootfs). The source of
    a mount with a non-bind type (tmpfs, proc, ...) is free-form and not checked."""
    problems = []
    for i, node in enumerate(edits.get("deviceNodes") or []):
        for key in ("path", "hostPath"):
            if key in node:
                problems += _path_problem(node[key], f"deviceNodes[{i}].{key}")
    for i, mount in enumerate(edits.get("mounts") or []):
        problems += _path_problem(mount.get("containerPath", ""), f"mounts[{i}].containerPath")
        options = mount.get("options") or []
        if mount.get("type", "") in ("", "bind", "rbind") or "bind" in options or "rbind" in options:
            problems += _path_problem(mount.get("hostPath", ""), f"mounts[{i}].hostPath")
    return problems


def _path_problem(path: str, where: str) -> list[str]:
    if not path.startswith("/"):
        return [f"{where}: relative path {quoted(path)}"]
    if ".." in path.split("/"):
        return [f"{where}: path {quoted(path)} contains '..'"]
    return []


def net_device_names(edits: dict) -> dict[str, str]:
    """host interface -> container name of the `netDevices` entries of one containerEdits
    (a loaded spec: both fields are there and non-empty)."""
    return {entry["hostInterfaceName"]: entry["name"] for entry in edits.get("netDevices") or []}


def hook_netdev_settings(edits: dict) -> dict[str, netdev.NetdevSettings]:
    """host -> settings carried by the `--netdev` arguments of the `cdigen hook` entries of
    one containerEdits (what a spec for a loader without netDevices carries); the last entry
    naming a host gives them. NetdevError or HookArgsError for arguments `cdigen hook` would
    refuse."""
    out: dict[str, netdev.NetdevSettings] = {}
    for i, hook in enumerate(edits.get("hooks") or []):
        if not hookentry.is_cdigen_hook(hook):
            continue
        try:
            out.update((cfg.host, cfg) for cfg in netdev.parse_args(hookentry.parse_hook_argv(hook["args"][2:]) or []))
        except InvalidInput as e:
            raise InvalidInput(f"hooks[{i}]: cdigen hook arguments: {e}") from None
    return out


def netdev_settings(edits: dict, annotations: dict) -> dict[str, netdev.NetdevSettings]:
    """host -> settings of every host interface one containerEdits carries (in its `cdigen
    hook` arguments or its `netDevices`), its layers merged by `netdev.layered`. Every
    `netdev.cdigen.io/<host>` annotation is parsed, whether or not an entry uses it: a
    malformed one is invalid data. NetdevError."""
    annotated = netdev.from_annotations(annotations)
    hooks = hook_netdev_settings(edits)
    named = {host: netdev.make(host, name) for host, name in net_device_names(edits).items()}
    return {
        host: netdev.layered(
            host, {"hook arguments": hooks.get(host), "netDevices": named.get(host), "annotation": annotated.get(host)}
        )
        for host in {**hooks, **named}
    }


def check_part(edits: dict, annotations: dict) -> tuple[dict[str, netdev.NetdevSettings], list[str]]:
    """(netdev settings, problems) of one containerEdits with the annotations that apply to
    it: what `cdigen apply` refuses in a spec the reference loader accepts. Host devices are
    not looked at here."""
    problems = path_problems(edits)
    try:
        return netdev_settings(edits, annotations), problems
    except InvalidInput as e:
        return {}, [*problems, str(e)]


def _parts(spec, devices: list) -> list[tuple[str, dict, dict]]:
    """(where, containerEdits, annotations) of the spec's own edits and of each device's."""
    spec_annotations = spec.get("annotations") or {}
    parts = [("containerEdits", spec.get("containerEdits") or {}, spec_annotations)]
    for label, device in devices:
        parts.append((label, device.get("containerEdits") or {}, spec_annotations | (device.get("annotations") or {})))
    return parts


def spec_problems(spec: dict) -> list[str]:
    """Every problem `check_part` finds in a loaded spec, each prefixed with where it is."""
    devices = [(f"devices[{i}].containerEdits", d) for i, d in enumerate(spec.get("devices") or [])]
    out = []
    for where, edits, annotations in _parts(spec, devices):
        _, problems = check_part(edits, annotations)
        out += [f"{where}.{p}" if p.startswith(("deviceNodes[", "mounts[")) else f"{where}: {p}" for p in problems]
    return out


# ---------------------------------------------------------------------------- merging


def merge_device_edits(devices: list, lstat=os.lstat) -> MergedEdits:
    """Merge the edits of `devices` (cdigen.cdi.load.Device, request order): each spec's own
    edits once, before its first device, then the device's (docs/cdi-conformance.md,
    "Injection"). Device nodes are completed from the host; `netdevs` are the specs' settings
    until `with_netdev_layers` adds the upper layers. InvalidInput (3) for bad spec content."""
    result = MergedEdits()
    merged = result.edits
    seen_specs: set[int] = set()
    for device in devices:
        spec = device.spec
        label = f"{spec.path}: device {device.qualified_name!r}"
        parts = _parts(spec.data, [(label, device.data)])
        if id(spec) in seen_specs:
            parts = parts[1:]
        else:
            seen_specs.add(id(spec))
            parts[0] = (f"{spec.path}: containerEdits", *parts[0][1:])
        for where, edits, annotations in parts:
            settings, problems = check_part(edits, annotations)
            if problems:
                raise InvalidInput(f"{where}: {problems[0]}")
            try:
                merged["deviceNodes"] += [fill_device_node(n, lstat) for n in edits.get("deviceNodes") or []]
            except InvalidInput as e:
                raise InvalidInput(f"{where}: {e}") from None
            result.spec_netdevs.update(settings)  # a later device wins, as in Go
            for key in ("env", "netDevices", "mounts", "hooks", "additionalGids"):
                merged[key] += edits.get(key) or []
            if edits.get("intelRdt") is not None:
                merged["intelRdt"] = edits["intelRdt"]  # the last one replaces the others whole
    result.netdevs = dict(result.spec_netdevs)
    return result


def with_netdev_layers(merged: MergedEdits, network: list = (), overrides: list = ()) -> None:
    """Set `merged.netdevs` to the specs' settings with the pod's `network` on top, then the
    caller's `overrides` (NetdevSettings; `netdev.layered` is the order). Network settings of
    interfaces no requested device carries are ignored; such an override is a BadArgument
    ("netdev"), and so is an override that does not add up (InvalidInput (3) when the pod's
    network does not)."""
    by_network = {cfg.host: cfg for cfg in network}  # a later source wins whole
    by_option = {cfg.host: cfg for cfg in overrides}
    for host in by_option:
        if host not in merged.spec_netdevs:
            raise BadArgument("netdev", f"{host}: no requested device carries host interface {host}")
    for host, cfg in merged.spec_netdevs.items():
        layers = {"pod network": by_network.get(host), "option": by_option.get(host)}
        try:
            merged.netdevs[host] = netdev.layered(host, layers, below=cfg)
        except netdev.LayerError as e:
            if e.layer == "option":
                raise BadArgument("netdev", str(e)) from None
            raise InvalidInput(f"the pod's network: {e}") from None
    merged.spec_netdevs = numbered_nics(merged.spec_netdevs)
    try:
        merged.netdevs = numbered_nics(merged.netdevs)
    except netdev.NetdevError as e:
        raise BadArgument("netdev", str(e)) from None


def numbered_nics(settings: dict) -> dict:
    """host -> settings, `{n}` in container names resolved in request order (`netdev.numbered`)."""
    return {cfg.host: cfg for cfg in netdev.numbered(settings.values())}


def fill_device_node(node: dict, lstat=os.lstat) -> dict:
    """The node completed from the host (docs/cdi-conformance.md, "Injection"; v1.1.0): `hostPath` defaults to
    `path`; lstat (symlinks are not followed) fills fileMode, then type/major/minor unless
    the node is minimally specified (type set and major != 0, or type p)."""
    node = dict(node)
    host_path = node.get("hostPath") or node["path"]
    kind = node.get("type", "")
    minimal = kind != "" and (node.get("major", 0) != 0 or kind == "p")
    try:
        st = lstat(host_path)
    except OSError as e:
        if minimal:
            return node
        raise InvalidInput(f"failed to stat CDI host device {quoted(host_path)}: {e.strerror}") from None
    if "fileMode" not in node:
        node["fileMode"] = stat.S_IMODE(st.st_mode)
    if minimal:
        return node
    host_kind = {stat.S_IFBLK: "b", stat.S_IFCHR: "c", stat.S_IFIFO: "p"}.get(stat.S_IFMT(st.st_mode))
    if host_kind is None:
        raise InvalidInput(f"CDI host device {quoted(host_path)} is not a device node")
    if kind == "":
        node["type"] = kind = host_kind
    elif kind != host_kind:
        raise InvalidInput(
            f"CDI device ({quoted(node['path'])}, {quoted(host_path)}): host type mismatch ({kind}, {host_kind})"
        )
    if node.get("major", 0) == 0 and kind != "p":
        node["major"], node["minor"] = os.major(st.st_rdev), os.minor(st.st_rdev)
    return node


# ---------------------------------------------------------------------------- applying


def apply_edits(config: dict, merged: MergedEdits, hook_path: str | None = None) -> dict:
    """A new config document with `merged` injected (`config` is not modified).

    `hook_path`: when set and the result has linux.netDevices, make sure a `cdigen hook`
    createRuntime hook is there (it configures address, mask and MTU), and a `cdigen hook
    --poststop` poststop hook (it brings the netdevs home)."""
    doc = copy.deepcopy(config)
    linux = _child(doc, "linux", dict, "linux")
    edits = merged.edits
    _apply_env(doc, edits["env"])
    _apply_device_nodes(doc, linux, edits["deviceNodes"])
    _apply_netdevs(doc, merged)
    _apply_mounts(doc, edits["mounts"])
    _apply_hooks(doc, edits["hooks"])
    if edits["intelRdt"] is not None:
        rdt = edits["intelRdt"]
        linux["intelRdt"] = {
            k: rdt[k] for k in ("closID", "l3CacheSchema", "memBwSchema", "schemata", "enableMonitoring") if rdt.get(k)
        }
    _apply_gids(doc, edits["additionalGids"])
    if hook_path and linux.get("netDevices"):
        hooks = _child(doc, "hooks", dict, "hooks")
        for name, poststop in ((hookentry.HOOK_NAME, False), (hookentry.POSTSTOP_HOOK_NAME, True)):
            entries = _child(hooks, name, list, f"hooks.{name}")
            if not any(hookentry.is_cdigen_hook(h) for h in entries):
                entries.append(hookentry.oci_hook(hook_path, poststop=poststop))
    _refresh_cdigen_hooks(doc, merged.netdevs)
    _apply_library_env(doc)
    return doc


def _apply_library_env(doc: dict) -> None:
    """hookentry.library_variables of the container, each unless process.env has it (the
    user's value wins)."""
    nics, ports = hookentry.container_nics(doc)
    wanted = hookentry.library_variables(nics, ports)
    if wanted:
        present = process_env(doc)
        values = _child(_child(doc, "process", dict, "process"), "env", list, "process.env")
        values += [f"{key}={value}" for key, value in wanted.items() if key not in present]


def _refresh_cdigen_hooks(doc: dict, netdevs: dict) -> None:
    """Every `cdigen hook` entry of config.json carries the final settings of the interfaces
    it names, so that no stale setting (a spec's, before an override) is left behind; a copy
    that the refresh makes equal to an earlier one is dropped."""
    if not netdevs or not isinstance(doc.get("hooks"), dict):
        return
    args = {host: cfg.to_arg() for host, cfg in netdevs.items()}
    for name, entries in doc["hooks"].items():
        if not isinstance(entries, list):
            continue
        refreshed: list = []
        for entry in entries:
            if hookentry.is_cdigen_hook(entry):
                entry = hookentry.with_netdev_args(entry, args)
                if entry in refreshed:
                    continue
            refreshed.append(entry)
        doc["hooks"][name] = refreshed


def _child(parent: dict, key: str, kind: type, where: str, create: bool = True):
    """parent[key], checked to be a `kind`; created empty when absent or null."""
    value = parent.get(key)
    if value is None:
        if not create:
            return None
        value = parent[key] = kind()
    elif not isinstance(value, kind):
        raise InvalidInput(f"config.json: {where}: expected {'an object' if kind is dict else 'a list'}")
    return value


def _apply_env(doc: dict, env: list[str]) -> None:
    if not env:
        return
    values = _child(_child(doc, "process", dict, "process"), "env", list, "process.env")
    index = {}
    for i, var in enumerate(values):
        if not isinstance(var, str):
            raise InvalidInput(f"config.json: process.env[{i}]: expected a string")
        index[var.partition("=")[0]] = i  # the last occurrence, as CDI HEAD
    for var in env:
        key = var.partition("=")[0]
        if key in index:
            values[index[key]] = var  # also makes the last injected value win
        else:
            index[key] = len(values)
            values.append(var)


def _user_id(doc: dict, key: str) -> int | None:
    process = doc.get("process")
    user = process.get("user") if isinstance(process, dict) else None
    value = user.get(key) if isinstance(user, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _apply_device_nodes(doc: dict, linux: dict, nodes: list[dict]) -> None:
    if not nodes:
        return
    devices = _child(linux, "devices", list, "linux.devices")
    resources = _child(linux, "resources", dict, "linux.resources")
    rules = _child(resources, "devices", list, "linux.resources.devices")
    for i, existing in enumerate(devices):
        if not isinstance(existing, dict):
            raise InvalidInput(f"config.json: linux.devices[{i}]: expected an object")
    for node in nodes:
        device = {
            "path": node["path"],
            "type": node.get("type", ""),
            "major": node.get("major", 0),
            "minor": node.get("minor", 0),
        }
        for key, default in (("fileMode", None), ("uid", _user_id(doc, "uid")), ("gid", _user_id(doc, "gid"))):
            value = node.get(key, default)
            if value is not None:
                device[key] = value
        if device not in devices:
            same_path = [i for i, d in enumerate(devices) if d.get("path") == device["path"]]
            if same_path:  # RemoveDevice deletes the first, AddDevice replaces a second one
                del devices[same_path[0]]
            if len(same_path) > 1:
                devices[same_path[1] - 1] = device
            else:
                devices.append(device)
        if device["type"] in ("b", "c"):
            rule = {
                "allow": True,
                "type": device["type"],
                "major": device["major"],
                "minor": device["minor"],
                "access": node.get("permissions") or "rwm",
            }
            if rule not in rules:
                rules.append(rule)


def _apply_netdevs(doc: dict, merged: MergedEdits) -> None:
    if not merged.netdevs:
        return
    net = doc["linux"]["netDevices"] = net_devices(doc)
    for host, cfg in merged.netdevs.items():
        net[host] = cfg.to_oci()

    def settings(netdevs: dict) -> list:
        # an entry that was there before: only its name matters here
        return [netdevs.get(host) or netdev.names_from_oci(host, entry) for host, entry in net.items()]

    netdev.check_unique_names(settings(merged.spec_netdevs))  # from files: exit 3
    try:
        netdev.check_unique_names(settings(merged.netdevs))
    except InvalidInput as e:  # only the overrides made them clash
        raise BadArgument("netdev", str(e)) from None


def go_clean(path: str) -> str:
    """Go's path.Clean (Python's normpath keeps a leading '//', Go does not)."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    return ("/" + cleaned) if rooted else (cleaned or ".")


def _apply_mounts(doc: dict, cdi_mounts: list[dict]) -> None:
    if not cdi_mounts:
        return
    mounts = _child(doc, "mounts", list, "mounts")
    for i, existing in enumerate(mounts):
        if not isinstance(existing, dict) or not isinstance(existing.get("destination", ""), str):
            raise InvalidInput(f"config.json: mounts[{i}]: expected an object with a string destination")
    for cdi in cdi_mounts:
        mount = {"destination": cdi["containerPath"]}
        if cdi.get("type"):
            mount["type"] = cdi["type"]
        mount["source"] = cdi["hostPath"]
        if cdi.get("options"):
            mount["options"] = cdi["options"]
        if mount in mounts:
            continue
        for i, existing in enumerate(mounts):
            if existing.get("destination") == mount["destination"]:
                del mounts[i]
                break
        mounts.append(mount)
    # sort.Stable by path depth; list.sort is stable too.
    mounts.sort(key=lambda m: go_clean(m.get("destination", "")).count("/"))


def _apply_hooks(doc: dict, cdi_hooks: list[dict]) -> None:
    if not cdi_hooks:
        return
    hooks = _child(doc, "hooks", dict, "hooks")
    for cdi in cdi_hooks:
        name = cdi["hookName"]
        hook = {"path": cdi["path"]}
        for key in ("args", "env"):
            if cdi.get(key):
                hook[key] = cdi[key]
        if "timeout" in cdi:
            hook["timeout"] = cdi["timeout"]
        entries = _child(hooks, name, list, f"hooks.{name}")
        if hook not in entries:
            entries.append(hook)


def _apply_gids(doc: dict, gids: list[int]) -> None:
    gids = [g for g in gids if g != 0]
    if not gids:
        return
    user = _child(_child(doc, "process", dict, "process"), "user", dict, "process.user")
    existing = _child(user, "additionalGids", list, "process.user.additionalGids")
    for gid in gids:
        if gid not in existing:
            existing.append(gid)
