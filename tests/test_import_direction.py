"""Layers import downwards only: hmsa_core never imports analysis or app, analysis never imports
app, and no modules of hmsa_core, analysis and app import each other in a cycle. Lazy imports
inside functions count: every import statement of every module is read with ``ast``; only
imports under ``if TYPE_CHECKING:`` (annotations, never run) are left out of the cycle check."""

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


PACKAGES = ("hmsa_core", "analysis", "app")


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(
    source: str, module: str, modules: set[str], is_package: bool = False
) -> set[str]:
    """Returns the modules of ``modules`` that ``source`` (the text of ``module``) imports when
    it runs: imports under ``if TYPE_CHECKING:`` are left out, and ``from pkg import sub`` of
    a submodule ``pkg.sub`` counts as importing ``pkg.sub`` only (not the package's body)."""
    tree = ast.parse(source)
    skipped = {id(n) for node in ast.walk(tree) if _is_type_checking(node) for n in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        names = imported_modules(ast.unparse(node), module, is_package)
        if isinstance(node, ast.ImportFrom):
            subs = {n for n in names if n in modules and n.rpartition(".")[0] in names}
            from_body = len(subs) < len(node.names)  # some names come from the package body
            names = subs | ({min(names, key=len)} if from_body else set())
        found |= {n for n in names if n in modules and n != module}
    return found


def import_graph(packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Returns module -> the modules of ``packages`` it imports at run time."""
    paths = {_module_name(p): p for pkg in packages for p in (ROOT / pkg).rglob("*.py")}
    modules = set(paths)
    return {
        name: runtime_imports(
            path.read_text(encoding="utf-8"), name, modules, path.name == "__init__.py"
        )
        for name, path in paths.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Returns one import cycle of ``graph`` as ``[a, b, ..., a]``, or ``None`` without one."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for child in sorted(graph.get(node, ())):
            cycle = visit(child)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def test_no_modules_import_each_other_in_a_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_finds_a_lazy_cycle_and_skips_type_only_imports() -> None:
    modules = {"pkg", "pkg.a", "pkg.b", "pkg.c"}
    lazy = runtime_imports("def f():\n    from pkg import b\n", "pkg.a", modules)
    back = runtime_imports("from pkg.a import thing\n", "pkg.b", modules)
    typed = runtime_imports(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import X\n",
        "pkg.c",
        modules,
    )
    assert lazy == {"pkg.b"} and back == {"pkg.a"} and typed == set()
    assert find_cycle({"pkg.a": lazy, "pkg.b": back, "pkg.c": typed}) == ["pkg.a", "pkg.b", "pkg.a"]
    assert find_cycle({"pkg.a": lazy, "pkg.b": set(), "pkg.c": typed}) is None
