"""Layers import downwards only: hmsa_core never imports analysis or app, analysis never imports
app, and the training modules import each other without a cycle. Lazy imports inside functions
count: every import statement of every module is read with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Returns every module an ``import`` or ``from ... import`` anywhere in ``source`` (the text
    of ``module``) names, relative imports resolved against the module's package."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def _imports_of(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    return imported_modules(text, _module_name(path), path.name == "__init__.py")


def _violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for module in _imports_of(path):
            if module.split(".")[0] in forbidden:
                bad.append(f"{path.relative_to(ROOT)} imports {module}")
    return bad


@pytest.mark.parametrize(
    ("package", "forbidden"), [("hmsa_core", ("analysis", "app")), ("analysis", ("app",))]
)
def test_a_layer_never_imports_a_layer_above(package: str, forbidden: tuple[str, ...]) -> None:
    assert _violations(package, forbidden) == []


def test_the_checker_sees_lazy_and_relative_imports() -> None:
    source = "def f():\n    from analysis.sweep import sweep\n    from . import loop\n"
    found = imported_modules(source, "hmsa_core.train.evaluate")
    assert "analysis.sweep" in found and "hmsa_core.train.loop" in found


def _graph(package: str) -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in (ROOT / package).rglob("*.py")}
    return {
        name: {m for m in _imports_of(path) if m in modules and m != name}
        for name, path in modules.items()
    }


def test_training_modules_have_no_import_cycle() -> None:
    graph = {k: v for k, v in _graph("hmsa_core").items() if k.startswith("hmsa_core.train.")}
    graph = {k: {m for m in v if m in graph} for k, v in graph.items()}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        if node in visiting:
            cycle = [*visiting[visiting.index(node) :], node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        visiting.append(node)
        for child in sorted(graph[node]):
            visit(child)
        visiting.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)
