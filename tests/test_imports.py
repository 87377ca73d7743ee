"""The shape of the package: no import circle (type-only and in-function imports count), the search's modules
never reach the command line, Keras Tuner's private package only where listed, short functions."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "tuning"
DRIVERS = ("search", "tuners", "distributed", "worker", "optuna_oracle", "proposals", "budget", "plan", "failures",
           "hyperband", "selection", "progress")
COMMAND_LINE = {"config", "run", "service"}
LONGEST_FUNCTION = 60
LONGEST_CLASS = 150


def imported_modules(path: Path) -> set[str]:
    """The `tuning` modules a module imports anywhere in it: at the top, inside functions, and type-only ones."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "tuning":
                found |= {a.name for a in node.names}
            elif node.module.startswith("tuning."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("tuning.")}
    return {name for name in found if (PACKAGE / f"{name}.py").exists()} - {path.stem}


def graph() -> dict[str, set[str]]:
    return {path.stem: imported_modules(path) for path in PACKAGE.glob("*.py")}


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


def test_no_function_in_tuning_is_longer_than_60_lines_and_no_class_than_150():
    long = []
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            length = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and length > LONGEST_FUNCTION:
                long.append((f"{path.stem}.{node.name}", length))
            if isinstance(node, ast.ClassDef) and length > LONGEST_CLASS:
                long.append((f"{path.stem}.{node.name}", length))
    assert not long


def test_the_graph_sees_real_imports():
    # The checks above can fail: service imports search, search (lazily) tuners, and tuners the plan.
    edges = graph()
    assert "search" in edges["service"] and "tuners" in edges["search"] and "config" in edges["service"]
    assert "plan" in edges["tuners"] and "tuners" in edges["distributed"]


# Keras Tuner's private package, where its public API has no equivalent, and why.
PRIVATE_KERAS_TUNER = {
    "kt_patches": "the patches themselves: atomic JSON saves, debug printing, a stray print",
    "distributed": "the chief's gRPC servicer, protos and client timeout, and the oracle's lock",
}


def test_keras_tuner_private_modules_only_where_listed():
    found = {path.stem for path in PACKAGE.glob("*.py") if "keras_tuner.src" in path.read_text()}
    assert found <= set(PRIVATE_KERAS_TUNER), found - set(PRIVATE_KERAS_TUNER)


def test_no_test_or_benchmark_reads_scores_out_of_printed_lines():
    # Progress lines print `val_accuracy=0.9412`; code reads scores from `tuning.events` or metrics.json instead,
    # so no string in tests/ or bench/ (a pattern, a prefix to look for) spells the printed form.
    readers = []
    for path in [p for folder in ("tests", "bench") for p in (REPO / folder).rglob("*.py") if p.name != "test_imports.py"]:
        strings = [n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        readers += [path.name for text in strings if "val_accuracy=" in text]
    assert not readers
