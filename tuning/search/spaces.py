"""`--space`: a built-in space by name, or the user's own by reference, as a factory of Keras Tuner hypermodels.

Owns: resolving a reference (a registered name; `path/to/file.py`; or
`package.module:attr`) to what builds a hypermodel for a dataset, the
adapter that makes a plain Keras Tuner `build_model(hp)` one (the user's
compile kept), the checks on what it builds (compiled, one output per class,
accuracy among its metrics), and a fingerprint of the user's file, which a
resumed run must match. A reference is a string, so it reaches workers and
`run.json` unchanged. Does not own: the spaces themselves (`search_spaces/`).

A file may hold `SPACE` (a `search_spaces.SearchSpace` subclass) or
`build_model`; `module:attr` names either, or a Keras Tuner `HyperModel`
subclass. Only a `SearchSpace` carries this project's schedules, so only it
gets the learning-rate range test and the fitting of schedules to Hyperband's
rungs and to the retraining's length.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import keras
import keras_tuner as kt

import search_spaces
from search_spaces.base import SearchSpace, SpaceContext
from tuning.errors import UsageError, first_line

SpaceFactory = Callable[[SpaceContext], kt.HyperModel]
# A user's model is fed at this batch size unless it declares `batch_size` or `--batch-size` is given.
DEFAULT_BATCH_SIZE = 128


@dataclass(frozen=True)
class ResolvedSpace:
    """What `--space` names, ready to build for a dataset.

    Args:
        reference: The reference as given.
        factory: `factory(context)` is the hypermodel for a dataset.
        ours: Whether it is a `SearchSpace`, with this project's optimizer and schedules.
        fingerprint: A hash of the user's source file; None for a built-in space.
        description: What it is, in words, for the first lines.
    """

    reference: str
    factory: SpaceFactory
    ours: bool
    fingerprint: Optional[str]
    description: str


class BuildModelSpace(kt.HyperModel):
    """A Keras Tuner `build_model(hp)` (or `HyperModel`) as this service's hypermodel: the user's model and compile.

    The batch size is the user's `batch_size` hyperparameter when
    `build_model` declares one, else fixed (`--batch-size`, or 128), since
    the tuner feeds every trial at the batch size its hyperparameters say.

    Args:
        build_model: `build_model(hp) -> keras.Model`, compiled.
        context: The dataset the models are for.
        name: The space's name, for messages.
    """

    def __init__(self, build_model: Callable[[kt.HyperParameters], keras.Model], context: SpaceContext, name: str) -> None:
        super().__init__(name=name)
        self.build_model, self.context = build_model, context

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        model = self.build_model(hp)
        if isinstance(model, keras.Model) and not model.built:  # a Sequential without an Input learns its shape here
            model.build((None, *self.context.input_shape))
        if "batch_size" not in hp.values:
            hp.Fixed("batch_size", self.context.batch_size or DEFAULT_BATCH_SIZE)
        return model


# `build_model` functions handed to `tuning.tune` that no module can import (defined in a notebook):
# kept by reference, for this process only.
_IN_PROCESS: dict[str, Callable] = {}
IN_PROCESS_PREFIX = "in-process:"


def in_process(reference: str) -> bool:
    """Whether `reference` names a function kept in this process (`reference_of`), which workers cannot import."""
    return reference.startswith(IN_PROCESS_PREFIX)


def reference_of(build_model: Callable) -> str:
    """A `--space` reference for a function: `module:qualname` when importable, else one kept in this process."""
    module, qualname = getattr(build_model, "__module__", None), getattr(build_model, "__qualname__", "build_model")
    if module and module != "__main__" and "<" not in qualname:
        try:
            found = importlib.import_module(module)
            for part in qualname.split("."):
                found = getattr(found, part)
            if found is build_model:
                return f"{module}:{qualname}"
        except Exception:
            pass
    reference = f"{IN_PROCESS_PREFIX}{module}.{qualname}"
    _IN_PROCESS[reference] = build_model
    return reference


def _source_fingerprint(build_model: Callable) -> Optional[str]:
    try:
        return hashlib.sha256(inspect.getsource(build_model).encode()).hexdigest()[:16]
    except (OSError, TypeError):
        return None


def _fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _import_file(path: Path) -> Any:
    name = f"tuning_user_space_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"--space {str(path)!r} is not a Python file that can be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        sys.modules.pop(name, None)
        raise UsageError(f"--space file {str(path)!r} fails to import: {first_line(error)}; fix the file") from None
    return module


def _import_attribute(reference: str) -> tuple[Any, Path]:
    module_name, _, attribute = reference.partition(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # `python -m` puts the working folder first; a worker process is started there too
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise UsageError(f"--space {reference!r}: module {module_name!r} fails to import: {first_line(error)}") from None
    if not hasattr(module, attribute):
        raise UsageError(f"--space {reference!r}: module {module_name!r} has no {attribute!r}")
    return getattr(module, attribute), Path(inspect.getfile(module))


def _from_object(found: Any, reference: str, fingerprint: Optional[str]) -> ResolvedSpace:
    name = getattr(found, "__name__", type(found).__name__)
    if inspect.isclass(found) and issubclass(found, SearchSpace):
        return ResolvedSpace(reference, found, True, fingerprint, f"the SearchSpace {name} from {reference}")
    if inspect.isclass(found) and issubclass(found, kt.HyperModel):
        return ResolvedSpace(reference, lambda context: BuildModelSpace(found().build, context, name), False,
                             fingerprint, f"the Keras Tuner HyperModel {name} from {reference}")  # fmt: skip
    if callable(found) and not inspect.isclass(found):
        return ResolvedSpace(reference, lambda context: BuildModelSpace(found, context, name), False, fingerprint,
                             f"{name}(hp) from {reference}")  # fmt: skip
    raise UsageError(f"--space {reference!r} names a {type(found).__name__}; it must name a SearchSpace subclass, a "
                     "Keras Tuner HyperModel subclass or a build_model(hp) function")  # fmt: skip


def resolve(reference: str) -> ResolvedSpace:
    """The space `--space` names; an unknown name or a reference that fails is one line naming it and the fix.

    Args:
        reference: A registered name, `path/to/file.py`, or `package.module:attr`.
    """
    if in_process(reference):
        if reference not in _IN_PROCESS:
            raise UsageError(f"--space {reference!r} was a function of another Python session; pass build_model= again")
        found = _IN_PROCESS[reference]
        return _from_object(found, reference, _source_fingerprint(found))
    if reference in search_spaces.SPACES.names():
        space = search_spaces.get(reference)
        return ResolvedSpace(reference, space, True, None, f"{reference}, a built-in space")
    if reference.endswith(".py"):
        path = Path(reference).expanduser()
        if not path.is_file():
            raise UsageError(f"--space file {reference!r} does not exist")
        module = _import_file(path)
        for attribute in ("SPACE", "build_model"):
            if hasattr(module, attribute):
                return _from_object(getattr(module, attribute), reference, _fingerprint(path))
        raise UsageError(f"--space file {reference!r} defines neither SPACE (a SearchSpace subclass) nor build_model(hp)")
    if ":" in reference:
        found, path = _import_attribute(reference)
        return _from_object(found, reference, _fingerprint(path))
    search_spaces.get(reference)  # an unknown name: the registry's own line, listing the choices
    raise AssertionError("unreachable")


def check_builds(space: ResolvedSpace, context: SpaceContext) -> None:
    """Builds the default configuration once and refuses, with one line, what the tuner could not use.

    A user's model must be compiled, with "accuracy" among its metrics (the
    search maximizes `val_accuracy`), and give one output per class.

    Args:
        space: The resolved space.
        context: The dataset it is for.
    """
    if space.ours:
        return
    hp = kt.HyperParameters()
    try:
        model = space.factory(context).build(hp)
    except UsageError:
        raise
    except Exception as error:
        raise UsageError(f"--space {space.reference!r} cannot build its default configuration: {first_line(error)}") from None
    if not isinstance(model, keras.Model):
        raise UsageError(f"--space {space.reference!r}: build_model must return a keras.Model, but returned a {type(model).__name__}")
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise UsageError(f"--space {space.reference!r}: build_model returns an uncompiled model; compile it with an "
                         "optimizer, loss='sparse_categorical_crossentropy' and metrics=['accuracy']")  # fmt: skip
    outputs = model.outputs[0].shape[-1] if getattr(model, "outputs", None) else None
    if outputs != context.n_classes:
        raise UsageError(f"--space {space.reference!r}: the model's output has {outputs} units, but the data has "
                         f"{context.n_classes} classes; end with Dense({context.n_classes}, activation='softmax')")  # fmt: skip
    if "accuracy" not in _metric_names(model):
        raise UsageError(f"--space {space.reference!r}: compile with metrics=['accuracy']: the search maximizes val_accuracy")
    keras.backend.clear_session(free_memory=False)


def _metric_names(model: keras.Model) -> set[str]:
    """The names of the metrics a model was compiled with; Keras logs each as `val_NAME`."""
    metrics = (model.get_compile_config() or {}).get("metrics") or []
    names = set()
    for metric in metrics if isinstance(metrics, (list, tuple)) else [metrics]:
        if isinstance(metric, str):
            names.add(metric)
        elif isinstance(metric, dict):
            names.add(str(metric.get("config", {}).get("name", "")))
        else:
            names.add(str(getattr(metric, "name", "")))
    return names
