"""`--space` by reference: a file or `module:attr` holding a `build_model(hp)` or a `SearchSpace`, and its checks."""

from __future__ import annotations

import keras_tuner as kt
import pytest

from search_spaces.base import SpaceContext
from search_spaces.dense import DenseSpace
from tests.data.userdata import space_file
from tuning.errors import UsageError
from tuning.search import spaces

CONTEXT = SpaceContext(input_shape=(64,), n_classes=10, kind="features")


def test_a_built_in_name_is_ours_and_has_no_fingerprint():
    space = spaces.resolve("dense")
    assert space.ours and space.fingerprint is None and space.factory is DenseSpace


def test_a_file_with_build_model_is_wrapped_its_compile_kept_and_its_batch_size_fixed(tmp_path):
    space = spaces.resolve(str(space_file(tmp_path)))
    assert not space.ours and space.fingerprint and "build_model(hp) from" in space.description
    spaces.check_builds(space, CONTEXT)
    hp = kt.HyperParameters()
    model = space.factory(CONTEXT).build(hp)
    assert model.built and model.optimizer.__class__.__name__ == "Adam"  # the user's compile
    assert hp.get("batch_size") == 128 and {"units", "learning_rate"} <= set(hp.values)


def test_a_file_with_space_names_a_search_space_subclass(tmp_path):
    path = space_file(tmp_path, body="from search_spaces.dense import DenseSpace\n\nclass SPACE(DenseSpace):\n    pass\n")
    space = spaces.resolve(str(path))
    assert space.ours and issubclass(space.factory, DenseSpace)


def test_module_attr_imports_from_the_working_folder(tmp_path, monkeypatch):
    space_file(tmp_path, name="team_spaces.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    space = spaces.resolve("team_spaces:build_model")
    assert not space.ours and space.fingerprint


def test_the_fingerprint_follows_the_file(tmp_path):
    path = space_file(tmp_path)
    first = spaces.resolve(str(path)).fingerprint
    path.write_text(path.read_text().replace("16, 64", "16, 128"))
    assert spaces.resolve(str(path)).fingerprint != first


@pytest.mark.parametrize("body, message", [
    ("import keras\nraise RuntimeError('no GPU here')\n", r"fails to import: RuntimeError: no GPU here; fix the file"),
    ("x = 1\n", r"defines neither SPACE \(a SearchSpace subclass\) nor build_model\(hp\)"),
])  # fmt: skip
def test_a_space_file_that_fails_is_one_line_with_its_first_error(tmp_path, body, message):
    with pytest.raises(UsageError, match=message):
        spaces.resolve(str(space_file(tmp_path, body=body)))


@pytest.mark.parametrize("body, message", [
    ("import keras\ndef build_model(hp):\n    return keras.Sequential([keras.layers.Dense(10, activation='softmax')])\n",
     "build_model returns an uncompiled model; compile it"),
    (None, r"the model's output has 3 units, but the data has 10 classes; end with Dense\(10, activation='softmax'\)"),
    ("import keras\ndef build_model(hp):\n    m = keras.Sequential([keras.layers.Dense(10, activation='softmax')])\n"
     "    m.compile('adam', 'sparse_categorical_crossentropy')\n    return m\n", r"compile with metrics=\['accuracy'\]"),
])  # fmt: skip
def test_a_model_the_search_cannot_use_is_refused_before_the_search(tmp_path, body, message):
    path = space_file(tmp_path, classes=3) if body is None else space_file(tmp_path, body=body)
    with pytest.raises(UsageError, match=message):
        spaces.check_builds(spaces.resolve(str(path)), CONTEXT)


def test_a_function_of_this_session_is_kept_in_process_and_an_importable_one_by_name():
    def build_model(hp):  # a closure: no module can import it
        raise AssertionError("not built here")

    reference = spaces.reference_of(build_model)
    assert spaces.in_process(reference) and spaces.resolve(reference).factory is not None
    assert spaces.reference_of(spaces.resolve) == "tuning.search.spaces:resolve"
