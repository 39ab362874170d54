"""The layout's import rule (docs/architecture.md, "Import direction"): cli -> entry points ->
stages -> base modules -> errors and values.

Every `import cdigen.X` / `from cdigen.X import` in the package, at module level or inside a
function, is checked against the layer of the importing module. A unit is a top-level module
or package (`apply`, `hook`), or a module of a package that spans layers (`pod.dan`)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cdigen"
LAYERS = {
    0: ("", "errors", "values"),
    1: ("netdev", "hookentry", "files", "strictjson", "argv", "cdi", "oci", "examples", "pod"),  # base
    2: ("scan", "apply", "validate", "hook", "pod.dan"),  # stages
    3: ("shim", "pod.cni", "node"),  # entry points composed of stages: the runtime shim, the CNI plugin, the node agent
    4: ("cli", "entry", "__main__"),
}
SHARED = (1, 4)  # layers whose units may import each other; a stage or an entry point never does


def unit(module: str) -> str:
    """The unit a module belongs to: "cdigen.cdi.load" -> "cdi", "cdigen.pod.dan" -> "pod.dan",
    "cdigen.pod.merge" -> "pod" (the package's own layer), "cdigen" -> ""."""
    parts = module.split(".")[1:]
    if len(parts) > 1 and ".".join(parts[:2]) in (u for units in LAYERS.values() for u in units):
        return ".".join(parts[:2])
    return parts[0] if parts else ""


def layer(name: str) -> int:
    for number, units in LAYERS.items():
        if name in units:
            return number
    raise AssertionError(f"cdigen.{name}: not in any layer of docs/architecture.md")


def imports(path: Path) -> list[str]:
    """The cdigen modules `path` imports; `from cdigen.pod import dan` is cdigen.pod.dan."""
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cdigen"):
            for alias in node.names:
                sub = PACKAGE.parent.joinpath(*f"{node.module}.{alias.name}".split("."))
                is_module = sub.with_suffix(".py").exists() or (sub / "__init__.py").exists()
                out.append(f"{node.module}.{alias.name}" if is_module else node.module)
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("cdigen")]
    return out


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_point_one_way(path):
    module = module_name(path)
    own = unit(module)
    for imported in imports(path):
        other = unit(imported)
        if other == own:
            continue
        assert layer(other) < layer(own) or layer(other) == layer(own) in SHARED, (
            f"{module} imports {imported}: against the layer rule"
        )
        assert not (own == "oci" and other == "cdi"), f"{module} imports {imported}: oci/ never imports cdi/"


def test_every_module_has_a_layer():
    for path in MODULES:
        layer(unit(module_name(path)))


def test_the_rule_catches_a_stage_importing_a_stage():
    assert unit("cdigen.pod.dan") == "pod.dan" and unit("cdigen.pod.network") == "pod"
    assert layer(unit("cdigen.pod.dan")) == layer(unit("cdigen.apply")) == 2  # stages: neither may import the other
    assert layer(unit("cdigen.pod.cni")) == layer(unit("cdigen.shim")) == 3 not in SHARED


def test_tests_share_code_through_helpers_only():
    """A test module imports what it shares from tests/helpers/, never from another test module
    (whose tests pytest would then import twice, and whose fixtures would leak)."""
    tests = Path(__file__).resolve().parent
    offenders = []
    for path in sorted(tests.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests.test_"):
                offenders.append(f"{path.name} imports {node.module}")
    assert offenders == []
