"""Stage 2, `cdigen apply`: inject CDI devices into an OCI bundle's config.json.

resolve (which devices: config.json's `cdi.k8s.io/*` annotations, then the caller's) ->
load (only spec files that can define those kinds) -> merge their edits and the caller's netdev
overrides (`cdigen.cdi.edits`) -> compute the RFC 6902 patch -> write config.json atomically.
Everything from reading config.json to replacing it happens under the bundle lock; when
nothing changes nothing is written, so a second identical apply leaves the file
byte-identical.

Runs at every container creation: a plain function, no typer; jsonpatch and the spec loader
are imported only when there is something to inject.
"""

from cdigen import hookentry
from cdigen.errors import BadArgument, CdigenError
from cdigen.files import DEFAULT_LOCK_TIMEOUT, atomic_write, locked_dir, remove_stale_temps
from cdigen.netdev import NetdevSettings
from cdigen.oci.config import config_path, read_config, serialise
from cdigen.values import quoted

# cdigen.pod.annotations.ANNOTATIONS, the keys that carry pod network facts. Spelled here so that an
# apply without them imports no cdigen.pod (tests/test_runtime_shim.py checks the two agree).
POD_NETWORK_ANNOTATIONS = (
    "k8s.v1.cni.cncf.io/network-status",
    "k8s.v1.cni.cncf.io/networks-status",
    "k8s.ovn.org/pod-networks",
)


class ApplyResult:
    __slots__ = ("path", "old", "new", "patch", "devices")

    def __init__(self, path: str, old: bytes, new: bytes, patch: list | None = None, devices: list[str] | None = None):
        self.path = path  # config.json
        self.old = old  # its bytes before
        self.new = new  # its bytes after (== old when nothing changes)
        self.patch = [] if patch is None else patch  # the RFC 6902 operations
        self.devices = [] if devices is None else devices  # what was requested, in order

    def __repr__(self) -> str:
        return "ApplyResult(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


def apply_devices(
    bundle: str,
    devices: list[str] = (),
    overrides: list[NetdevSettings] = (),
    spec_dirs: list[str] | None = None,
    hook: bool = True,
    hook_path: str | None = None,
    dry_run: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    allow_insecure_specs: bool = False,
    network: list[NetdevSettings] = (),
    pod_root: str | None = None,
) -> ApplyResult:
    """Inject CDI devices into BUNDLE/config.json.

    `devices`: qualified names, after those of the config's annotations; each once.
    `overrides`: the caller's netdev settings (one per host interface), the top layer.
    `network`: settings from the pod's network (cdigen.pod: CNI results, pod annotations)
    for host interfaces that the requested devices carry, the layer below `overrides`; those
    for other interfaces are ignored. The layers' order: `cdigen.netdev.layered`.
    `pod_root`: also take such settings from the network facts in config.json's annotations
    (cdigen.pod.network.overrides_for: sysfs, device-info files and CNI results under this root),
    before `network`; None: not.
    `hook`: add the `cdigen hook` createRuntime and poststop entries when the result has
    linux.netDevices.
    `lock_timeout`: the longest wait for the bundle lock. `allow_insecure_specs`: as root, load
    spec files and directories that other users can change too (cdigen.cdi.load.untrusted).
    Bad arguments raise BadArgument (2), bad files InvalidInput (3), a failed write
    CdigenError (1); config.json is then untouched."""
    from cdigen.cdi.spec import is_qualified_name

    for name in devices:
        if not is_qualified_name(name):
            raise BadArgument("device", f"{quoted(name)}: expected vendor/class=name")
    if hook_path is not None:
        hookentry.check_hook_path(hook_path)
    path = config_path(bundle)
    with locked_dir(bundle, lock_timeout):
        remove_stale_temps(path)  # of writers killed mid-write; safe under the lock
        from cdigen.cdi import edits

        raw, doc = read_config(path)
        requested = list(dict.fromkeys(edits.requested_devices(doc) + list(devices)))
        result = ApplyResult(path, raw, raw, devices=requested)
        if not requested:
            return result  # nothing asked for: nothing changes, not even the hook
        import jsonpatch

        from cdigen.cdi import load

        registry = load.load_registry(
            spec_dirs or list(load.DEFAULT_SPEC_DIRS),
            {load.kind_of(q) for q in requested},
            allow_insecure=allow_insecure_specs,
        )
        merged = edits.merge_device_edits(load.resolve(registry, requested))
        annotations = doc.get("annotations")
        if (
            pod_root is not None
            and merged.netdevs
            and isinstance(annotations, dict)
            and any(key in annotations for key in POD_NETWORK_ANNOTATIONS)
        ):
            from cdigen.pod.network import overrides_for

            names = {host: cfg.container_name for host, cfg in edits.numbered_nics(merged.netdevs).items()}
            network = [*overrides_for(annotations, names, pod_root), *network]
        edits.with_netdev_layers(merged, network, overrides)
        if hook and hook_path is None and (merged.netdevs or doc["linux"].get("netDevices")):
            hook_path = hookentry.default_hook_path()
        new_doc = edits.apply_edits(doc, merged, hook_path if hook else None)
        patch = jsonpatch.make_patch(doc, new_doc)
        result.patch = list(patch)
        if result.patch:
            patched = patch.apply(doc)
            if patched != new_doc:  # jsonpatch's list diffs are clever; never write a surprise
                raise CdigenError("internal error: the JSON patch does not reproduce the edits; nothing written")
            result.new = serialise(patched, like=raw)
            if not dry_run:
                atomic_write(path, result.new)  # keeps the mode; exit 1 on failure
    return result
