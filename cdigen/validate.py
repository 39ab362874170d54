"""`cdigen validate`: every problem of a set of spec files, as loaders and `cdigen apply` see them.

The reference loader's errors and conflicts come from `cdigen.cdi.load`; what `cdigen apply`
would refuse in a spec the loader accepts comes from `cdigen.cdi.edits.spec_problems`, the walk
that apply itself makes over every device it injects.
"""

from cdigen.cdi import load
from cdigen.cdi.edits import spec_problems


def registry_problems(registry: load.Registry) -> list[tuple[str, str]]:
    """(file or directory, message) for every problem, directories first, then files in the
    order they were loaded."""
    lint = {spec.path: spec_problems(spec.data) for spec in registry.specs}
    places = list(dict.fromkeys([*registry.errors, *registry.files]))
    places.sort(key=lambda p: registry.files.index(p) if p in registry.files else -1)
    return [(where, message) for where in places for message in registry.errors.get(where, []) + lint.get(where, [])]


def validate_paths(paths: list[str] | None, spec_dirs: list[str]) -> tuple[load.Registry, list[tuple[str, str]]]:
    """Load the named files/directories (else the spec directories) and find every problem."""
    registry = load.load_paths(paths) if paths else load.load_registry(spec_dirs)
    return registry, registry_problems(registry)
