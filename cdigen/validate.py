"""`cdigen validate`: every problem of a set of spec files, as loaders and `cdigen apply` see them.

The reference loader's errors and conflicts come from `cdigen.cdi.load`; what `cdigen apply`
would refuse in a spec the loader accepts comes from `cdigen.cdi.edits.spec_problems`, the walk
that apply itself makes over every device it injects.
"""

from cdigen.cdi import load
from cdigen.cdi.consumers import first_releases
from cdigen.cdi.edits import spec_problems
from cdigen.cdi.spec import LIBRARY_VERSION, check_target_version, minimum_version


def registry_problems(registry: load.Registry) -> list[tuple[str, str]]:
    """(file or directory, message) for every problem, directories first, then files in the
    order they were loaded."""
    lint = {spec.path: spec_problems(spec.data) for spec in registry.specs}
    places = list(dict.fromkeys([*registry.errors, *registry.files]))
    places.sort(key=lambda p: registry.files.index(p) if p in registry.files else -1)
    return [(where, message) for where in places for message in registry.errors.get(where, []) + lint.get(where, [])]


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
    return f"cdiVersion {declared} (needs {minimum_version(spec.data)}): {engines}"
