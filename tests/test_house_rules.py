"""House rules of docs/ARCHITECTURE.md that a linter does not check: module and function sizes."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "emsfl_sim"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80

# Exceptions, each with the reason splitting would be worse (keep this empty if you can).
MODULE_EXCEPTIONS: dict[str, str] = {}
FUNCTION_EXCEPTIONS: dict[str, str] = {}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_over_the_line_limit() -> None:
    too_long = {}
    for path in _modules():
        name = path.relative_to(PACKAGE.parent).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES and name not in MODULE_EXCEPTIONS:
            too_long[name] = lines
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"


def test_no_function_over_the_line_limit() -> None:
    too_long = {}
    for path in _modules():
        module = path.relative_to(PACKAGE.parent).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                name = f"{module}:{node.name}"
                if length > MAX_FUNCTION_LINES and name not in FUNCTION_EXCEPTIONS:
                    too_long[name] = length
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"


def test_the_checker_sees_a_long_function(tmp_path: Path) -> None:
    source = "def f():\n" + "    x = 1\n" * (MAX_FUNCTION_LINES + 1)
    node = ast.parse(source).body[0]
    assert node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
