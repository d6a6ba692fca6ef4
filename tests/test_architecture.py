"""The library's layers run one way (docs/ARCHITECTURE.md): an AST walk over ``src/``.

Every ``import`` of the package is counted, those inside functions and under
``TYPE_CHECKING`` included: a module may import its own layer and the layers below it,
never one above, and no two modules may import each other, directly or in a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "ml.state_space"

# bottom to top; a module belongs to the layer of its longest matching prefix
LAYERS: tuple[tuple[str, ...], ...] = (
    ("_version", "atomic", "allocator", "significance"),
    ("data", "registry"),
    ("features",),
    ("execution",),
    ("engine",),
    ("models",),
    ("evaluation",),
    ("training",),
    ("orchestration", "forecast"),
    ("",),  # the package's own __init__: the public API, above everything
)


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The package modules ``path`` imports (``from a import b`` counts ``a.b`` if that is
    a module, else ``a``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
    return {name for name in found if name == PACKAGE or name.startswith(PACKAGE + ".")}


MODULES = {module_name(p): p for p in (SOURCE / "ml" / "state_space").rglob("*.py")}
GRAPH = {name: imports_of(path) - {name} for name, path in MODULES.items()}


def layer_of(module: str) -> int:
    relative = module.removeprefix(PACKAGE).removeprefix(".")
    best, best_length = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = relative == prefix or relative.startswith(prefix + ".") or prefix == ""
            if matches and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS and the docs"
    return best


def test_every_module_belongs_to_a_layer():
    assert len(MODULES) > 50
    for module in MODULES:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_layer_above_its_own(module):
    above = sorted(t for t in GRAPH[module] if layer_of(t) > layer_of(module))
    assert not above, f"{module} (layer {layer_of(module)}) imports the layers above: {above}"


def test_no_modules_import_each_other_in_a_circle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(GRAPH.get(module, ())):
            if state.get(target) == 1:
                circle = [*path[path.index(target) :], target]
                pytest.fail("import circle: " + " -> ".join(circle))
            if target in GRAPH and target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def test_the_walk_sees_imports_inside_functions_and_type_checking_blocks():
    worker = GRAPH["ml.state_space.orchestration.worker"]
    assert "ml.state_space.training.trainer" in worker  # imported inside run_job
    assert "ml.state_space.models.config" in worker  # under TYPE_CHECKING
