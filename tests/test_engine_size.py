"""The engine stays light: no module of ``hmsa_core`` reaches 450 lines and no function in it
is longer than 80 (issue 20). ``data/synthscapes*`` is being split separately."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "hmsa_core"
MAX_MODULE_LINES = 449
MAX_FUNCTION_LINES = 80
MODULES = sorted(
    p
    for p in ROOT.rglob("*.py")
    if not p.relative_to(ROOT).as_posix().startswith("data/synthscapes")
)


def _id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", MODULES, ids=_id)
def test_module_and_functions_stay_small(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    lines = len(text.splitlines())
    assert lines <= MAX_MODULE_LINES, f"{_id(path)} has {lines} lines; split it by job"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{_id(path)}: functions over {MAX_FUNCTION_LINES} lines: {long}"
