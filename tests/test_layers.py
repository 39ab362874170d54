"""The layout's import rule (docs/architecture.md): cli -> stages -> cdi/oci/netdev/... -> errors.

Every `import cdigen.X` / `from cdigen.X import` in the package, at module level or inside a
function, is checked against the layer of the importing module."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cdigen"
STAGES = ("scan", "apply", "validate", "hook", "dan")
BASE = ("netdev", "hookentry", "files", "strictjson", "cdi", "oci", "examples", "cnirecord", "podnet")


def top(module: str) -> str:
    """The first component below `cdigen` ("cdigen.cdi.load" -> "cdi"; "cdigen" -> "")."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer(name: str) -> int:
    if name in ("errors", "values", ""):
        return 0
    if name in BASE:
        return 1
    if name in STAGES:
        return 2
    if name in ("cli", "entry", "__main__"):
        return 3
    raise AssertionError(f"cdigen.{name}: not in any layer of docs/architecture.md")


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cdigen"):
            out += [f"{node.module}.{a.name}" if node.module == "cdigen" else node.module for a in node.names]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("cdigen")]
    return out


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_point_one_way(path):
    module = module_name(path)
    own = top(module)
    for imported in imports(path):
        other = top(imported)
        if other == own:
            continue
        # Within the base layer and the command-line layer modules may use each other; a stage
        # never imports another stage, nor anything above it.
        assert layer(other) < layer(own) or layer(other) == layer(own) in (1, 3), (
            f"{module} imports {imported}: against the layer rule"
        )
        assert not (own == "oci" and other == "cdi"), f"{module} imports {imported}: oci/ never imports cdi/"


def test_every_module_has_a_layer():
    names = {top(module_name(p)) for p in MODULES}
    for name in names:
        layer(name)
