"""The shape of the package: no import circle, the search's modules never reach the command line, short functions."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "tuning"
DRIVERS = ("search", "tuners", "distributed", "worker", "optuna_oracle", "proposals", "budget")
COMMAND_LINE = {"config", "run", "service"}
LONGEST_FUNCTION = 80


def runtime_imports(path: Path) -> set[str]:
    """The `tuning` modules a module imports when it runs (anywhere in it), leaving out `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
               for n in ast.walk(block)}  # fmt: skip
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "tuning":
                found |= {a.name for a in node.names}
            elif node.module.startswith("tuning."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("tuning.")}
    return {name for name in found if (PACKAGE / f"{name}.py").exists()} - {path.stem}


def graph() -> dict[str, set[str]]:
    return {path.stem: runtime_imports(path) for path in PACKAGE.glob("*.py")}


def reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for name in edges.get(todo.pop(), ()):
            if name not in seen:
                seen.add(name)
                todo.append(name)
    return seen


def test_no_import_circle_among_tuning_modules():
    edges = graph()
    circles = sorted(name for name in edges if name in reachable(edges, name))
    assert not circles, f"modules that import themselves through others: {circles}"


def test_the_search_never_imports_the_command_line():
    edges = graph()
    for name in DRIVERS:
        assert not reachable(edges, name) & COMMAND_LINE, (name, reachable(edges, name) & COMMAND_LINE)


def test_no_function_in_tuning_is_longer_than_80_lines():
    long = []
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > LONGEST_FUNCTION:
                    long.append((f"{path.stem}.{node.name}", length))
    assert not long


def test_the_graph_sees_real_imports():
    # The checks above can fail: service imports search, and search (lazily) tuners.
    edges = graph()
    assert "search" in edges["service"] and "tuners" in edges["search"] and "config" in edges["service"]
