"""The import graph, computed from the source: no cycle between modules, and each package
imports only packages of lower layers (or of its own), so the code reads from the bottom up."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# lower numbers are lower layers; a package may import its own layer's packages only if the
# module graph stays without cycles
LAYERS: dict[str, int] = {
    "config": 0, "supervision": 0,  # infrastructure
    "observability": 1,
    "security": 2, "venue": 2,  # pure core: keys and crypto; the venue's wire protocol
    "trading": 3,  # the trading rules (sized in the venue's units)
    "storage": 4,  # the database: queries per table
    "custody": 5,  # security rules applied to stored rows: keys under grants, the guard
    "actors": 6,
    "httpapi": 7, "operator_cli": 7,
    "demo": 8, "sandbox": 8,
    "runtime": 9,
}


def modules() -> Iterator[tuple[str, Path]]:
    """Every production module: its dotted name and file."""
    for package in LAYERS:
        if package == "runtime":
            yield "runtime", ROOT / "runtime.py"
            continue
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def _type_only(tree: ast.Module) -> set[int]:
    """Ids of the import nodes under `if TYPE_CHECKING:` (annotations only: never run)."""
    guarded = (node for node in ast.walk(tree) if isinstance(node, ast.If)
               and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
    return {id(inner) for block in guarded for inner in ast.walk(block)}


def imported(path: Path) -> Iterator[str]:
    """The absolute module names a file imports when it runs (at module level or lazily in a
    function; not those only type checkers read)."""
    tree = ast.parse(path.read_text())
    skipped = _type_only(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def graph() -> dict[str, set[str]]:
    """Module -> modules it imports, between this project's modules."""
    found = dict(modules())
    return {name: {t for t in imported(path) if t in found and t != name}
            for name, path in found.items()}


def test_no_module_imports_itself_back() -> None:
    try:
        TopologicalSorter(graph()).prepare()
    except CycleError as cycle:
        raise AssertionError(f"import cycle: {' -> '.join(cycle.args[1])}") from None


def test_each_package_imports_only_lower_layers() -> None:
    upward = sorted(
        f"{source} -> {target}" for source, targets in graph().items() for target in targets
        if LAYERS[source.split(".")[0]] < LAYERS[target.split(".")[0]])
    assert upward == []
