"""The shape of the package: no import circle (type-only and in-function imports count), the search's modules
never reach the command line, TensorFlow behind one boundary, Keras Tuner's private package only where listed,
short functions."""

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
    # The checks above can fail: service imports search, search tuners, and tuners the plan.
    edges = graph()
    assert "search" in edges["service"] and "tuners" in edges["search"] and "config" in edges["service"]
    assert "plan" in edges["tuners"] and "tuners" in edges["distributed"]


# Keras Tuner's private package, where its public API has no equivalent, and why.
PRIVATE_KERAS_TUNER = {
    "kt_patches": "the patches themselves: atomic JSON saves, debug printing, a stray print, ended trials not resumed",
    "distributed": "the chief's gRPC servicer, protos and client timeout, and the oracle's lock",
}


# The front doors refuse bad input before TensorFlow loads (docs/architecture.md).
FRONT_DOORS = ("run", "worker", "lr_find", "report", "cli_docs")
HEAVY = {"tensorflow", "keras", "keras_tuner", "optuna", "search_spaces", "tensorboard", "grpc", "sklearn", "scipy",
         "matplotlib", "absl"}  # fmt: skip
# Every import inside a function, of the project or of a heavy library, and why it is there.
LAZY = {
    ("run", "tuning.service"): "tuning.run's boundary: the engine loads after argv was checked and libraries quieted",
    ("worker", "tuning.search"): "a local worker process's boundary, after quiet_libraries",
    ("lr_find", "tuning.lr_range"): "tuning.lr_find's boundary, after argv was checked",
    ("cli", "tensorflow"): "quiet_libraries loads it with stderr muted: its C++ start-up logs ignore every setting",
    ("cli", "optuna"): "quiet_libraries: Optuna resets its logger's level when first imported",
    ("cli", "absl.logging"): "quiet_libraries",
    ("datasets", "keras"): "Keras's download of MNIST or CIFAR-10, only when no local copy is given",
    ("datasets", "sklearn.datasets"): "the small digits set, only when it is loaded",
    ("plots", "matplotlib"): "selecting the Agg backend must not happen on import, in a user's notebook",
    ("plots", "matplotlib.pyplot"): "after the backend",
    ("lr_range", "matplotlib"): "as in plots",
    ("lr_range", "matplotlib.pyplot"): "as in plots",
}


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """The project's modules (`tuning.x`) and the heavy libraries a module imports: (at the top, inside functions)."""
    top, inside = set(), set()

    def visit(node: ast.AST, in_function: bool) -> None:
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"tuning.{a.name}" for a in node.names] if node.module == "tuning" else [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name.startswith("tuning.") or name.split(".")[0] in HEAVY:
                (inside if in_function else top).add(name if name.startswith("tuning.") else name)
        nested = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, nested)

    visit(ast.parse(path.read_text()), False)
    return top, inside


def _front_side() -> set[str]:
    """The front doors and every project module they import at the top, directly or through others."""
    top_edges = {p.stem: {n.split(".")[1] for n in _imports(p)[0] if n.startswith("tuning.")} for p in PACKAGE.glob("*.py")}
    found = set(FRONT_DOORS)
    for door in FRONT_DOORS:
        found |= reachable(top_edges, door)
    return found


def test_the_front_doors_load_nothing_heavy_before_their_boundary():
    front = _front_side()
    assert {"run", "config", "options", "cli", "plan", "text", "datasets"} <= front  # the check sees real imports
    assert not front & {"service", "search", "tuners", "distributed", "evaluate"}, front
    heavy = {name: sorted(n for n in _imports(PACKAGE / f"{name}.py")[0] if not n.startswith("tuning.")) for name in front}
    assert not {name: found for name, found in heavy.items() if found}


def test_imports_inside_functions_are_the_boundaries_and_listed_lazy_libraries_only():
    found = {(p.stem, name) for p in PACKAGE.glob("*.py") for name in _imports(p)[1]}
    assert found - set(LAZY) == set(), sorted(found - set(LAZY))
    assert set(LAZY) - found == set(), sorted(set(LAZY) - found)  # no stale entry


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
