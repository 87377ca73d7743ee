"""The shape of the package: the layers as import contracts that `lint-imports` checks, imports inside functions
only at the listed boundaries, Keras Tuner's private package only where listed, short functions."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "tuning"
LONGEST_FUNCTION = 60
LONGEST_CLASS = 150


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def dotted(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """Runs import-linter on the checkout at `root` with the contracts of its `pyproject.toml`."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", code, "--no-cache"], cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, timeout=300)  # fmt: skip


def test_the_layers_and_the_tensorflow_boundary_hold():
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in done.stdout  # both contracts ran


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """A copy of the package and its contracts, to plant violations in."""
    root = tmp_path_factory.mktemp("planted")
    for name in ("tuning", "search_spaces"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.mark.parametrize("module, line, broken", [
    # the search reaching up to the command line's config
    ("tuning/search/budget.py", "from tuning.config import run_config", "Each layer imports only the layers below it"),
    # a front door importing the engine at the top, past its boundary
    ("tuning/cli/report.py", "from tuning.final import evaluate", "The front doors load no TensorFlow"),
    # the retraining and the distribution must not know each other
    ("tuning/final/plots.py", "import tuning.distributed.pool", "Each layer imports only the layers below it"),
])  # fmt: skip
def test_a_planted_violation_breaks_its_contract(planted, module, line, broken):
    path = planted / module
    original = path.read_text()
    path.write_text(original + f"\n{line}  # planted\n")
    try:
        done = lint_imports(planted)
    finally:
        path.write_text(original)
    assert done.returncode != 0
    assert broken in done.stdout and "BROKEN" in done.stdout, done.stdout[-3000:]


def test_no_function_in_tuning_is_longer_than_60_lines_and_no_class_than_150():
    long = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            length = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and length > LONGEST_FUNCTION:
                long.append((f"{dotted(path)}.{node.name}", length))
            if isinstance(node, ast.ClassDef) and length > LONGEST_CLASS:
                long.append((f"{dotted(path)}.{node.name}", length))
    assert not long


# Keras Tuner's private package, where its public API has no equivalent, and why.
PRIVATE_KERAS_TUNER = {
    "tuning.search.kt_patches": "the patches themselves: atomic JSON saves, debug printing, a stray print, ended trials not resumed",
    "tuning.distributed.chief": "the chief's gRPC servicer and protos, and the oracle's lock",
    "tuning.distributed.addresses": "the client's timeout, --chief-timeout",
}

HEAVY = {"tensorflow", "keras", "keras_tuner", "optuna", "search_spaces", "tensorboard", "grpc", "sklearn", "scipy",
         "matplotlib", "absl", "PIL", "pandas"}  # fmt: skip
# Every import inside a function, of the project or of a heavy library, and why it is there. The
# contracts in pyproject.toml name the same boundaries; this list checks that they sit inside functions.
LAZY = {
    ("tuning.cli.run", "tuning.service"): "tuning.run's boundary: the engine loads after argv was checked and libraries quieted",
    ("tuning.cli.worker", "tuning.distributed.worker"): "a local worker process's boundary, after quiet_libraries",
    ("tuning.cli.lr_find", "tuning.search.lr_range"): "tuning.lr_find's boundary, after argv was checked",
    ("tuning.cli.base", "tensorflow"): "quiet_libraries loads it with stderr muted: its C++ start-up logs ignore every setting",
    ("tuning.cli.base", "optuna"): "quiet_libraries: Optuna resets its logger's level when first imported",
    ("tuning.cli.base", "absl.logging"): "quiet_libraries",
    ("tuning.data.builtin", "keras"): "Keras's download of MNIST or CIFAR-10, only when no local copy is given",
    ("tuning.data.builtin", "sklearn.datasets"): "the small digits set, only when it is loaded",
    ("tuning.final.plots", "matplotlib"): "selecting the Agg backend must not happen on import, in a user's notebook",
    ("tuning.final.plots", "matplotlib.pyplot"): "after the backend",
    ("tuning.search.lr_range", "matplotlib"): "as in plots",
    ("tuning.search.lr_range", "matplotlib.pyplot"): "as in plots",
}


def _is_module(name: str) -> bool:
    path = REPO / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports_inside_functions(path: Path) -> set[str]:
    """The project's modules and the heavy libraries a module imports inside a function."""
    inside = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if _is_module(f"{node.module}.{a.name}") else node.module for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if in_function and (name.startswith("tuning.") or name.split(".")[0] in HEAVY):
                inside.add(name)
        nested = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, nested)

    visit(ast.parse(path.read_text()), False)
    return inside


def test_imports_inside_functions_are_the_boundaries_and_listed_lazy_libraries_only():
    found = {(dotted(p), name) for p in modules() for name in _imports_inside_functions(p)}
    assert found - set(LAZY) == set(), sorted(found - set(LAZY))
    assert set(LAZY) - found == set(), sorted(set(LAZY) - found)  # no stale entry


def test_no_package_init_imports_anything_heavy_or_has_side_effects():
    # `tuning.config` imports `tuning.search.plan`, which runs `tuning/search/__init__.py` first: a package's
    # __init__ re-exports lazily (tuning._exports) and imports nothing that loads TensorFlow.
    for init in PACKAGE.rglob("__init__.py"):
        tree = ast.parse(init.read_text())
        imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)] + [
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert all(m in ("tuning._exports", "tuning.config.run_config", "__future__") for m in imported), (init, imported)


def test_keras_tuner_private_modules_only_where_listed():
    found = {dotted(path) for path in modules() if "keras_tuner.src" in path.read_text().replace("`keras_tuner.src`", "")}
    assert found <= set(PRIVATE_KERAS_TUNER), found - set(PRIVATE_KERAS_TUNER)


def test_no_test_or_benchmark_reads_scores_out_of_printed_lines():
    # Progress lines print `val_accuracy=0.9412`; code reads scores from `tuning.records.events` or metrics.json
    # instead, so no string in tests/ or bench/ (a pattern, a prefix to look for) spells the printed form.
    readers = []
    for path in [p for folder in ("tests", "bench") for p in (REPO / folder).rglob("*.py") if p.name != "test_imports.py"]:
        strings = [n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        readers += [path.name for text in strings if "val_accuracy=" in text]
    assert not readers
