"""Schedules and optimizers shared by the spaces: 1cycle's and warm-up cosine's shapes, momentum inversion."""

from __future__ import annotations

import keras
import keras_tuner as kt
import numpy as np
import pytest

from search_spaces import _optimizers
from tuning.training.schedules import OneCycleSGD, Resizable, one_cycle, warmup_cosine

PEAK, STEPS = 0.1, 1000


def values(schedule, steps):
    return np.array([float(schedule(step)) for step in steps])


def test_one_cycle_shape():
    schedule = one_cycle(PEAK, STEPS)
    lrs = values(schedule, range(STEPS + 1))
    assert lrs[0] == pytest.approx(PEAK / 25)
    assert int(np.argmax(lrs)) == 300 and lrs.max() == pytest.approx(PEAK)
    assert np.all(np.diff(lrs[:301]) > 0) and np.all(np.diff(lrs[300:]) <= 1e-12)
    assert np.allclose(np.diff(lrs[:301]), np.diff(lrs[:301])[0], rtol=1e-3)  # warm-up is linear
    assert lrs[-1] == pytest.approx(PEAK * 1e-3, rel=1e-3)
    assert float(schedule(5 * STEPS)) == pytest.approx(lrs[-1], rel=1e-3)  # stays at the end value


def test_warmup_cosine_shape():
    lrs = values(warmup_cosine(PEAK, STEPS), range(STEPS + 1))
    assert lrs[0] == pytest.approx(0.0)
    assert int(np.argmax(lrs)) == 50 and lrs.max() == pytest.approx(PEAK)  # 5% warm-up
    assert np.all(np.diff(lrs[:51]) > 0) and np.all(np.diff(lrs[50:]) <= 1e-12)
    assert lrs[525] == pytest.approx(PEAK / 2, rel=1e-3)  # cosine: half-way down at the middle of the decay
    assert lrs[-1] == pytest.approx(0.0, abs=1e-9)


def test_one_cycle_momentum_moves_opposite_to_the_learning_rate():
    schedule = one_cycle(PEAK, STEPS)
    optimizer = OneCycleSGD(schedule, peak_learning_rate=PEAK, momentum=0.95)
    lrs = values(schedule, [0, 150, 300, 650, 1000])
    momenta = np.array([float(optimizer.momentum_at(lr)) for lr in lrs])
    assert momenta[2] == pytest.approx(0.85)  # lowest at the peak
    assert momenta[0] == pytest.approx(0.95 - 0.1 / 25) and momenta[-1] == pytest.approx(0.95, abs=1e-3)
    assert np.all(np.sign(np.diff(momenta)) == -np.sign(np.diff(lrs)))


def test_one_cycle_sgd_trains_and_exports_as_stock_sgd():
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(OneCycleSGD(one_cycle(0.5, 20), peak_learning_rate=0.5, momentum=0.9), "sparse_categorical_crossentropy")
    first = model.fit(x, y, epochs=5, batch_size=16, verbose=0).history["loss"]
    assert first[-1] < first[0]
    stock = model.optimizer.as_stock()
    assert type(stock) is keras.optimizers.SGD and stock.momentum == 0.9
    assert isinstance(stock._learning_rate, keras.optimizers.schedules.CosineDecay)


@pytest.mark.parametrize("schedule_name, kind", [
    ("constant", float), ("exponential", keras.optimizers.schedules.ExponentialDecay),
    ("cosine", keras.optimizers.schedules.CosineDecay), ("1cycle", keras.optimizers.schedules.CosineDecay),
])  # fmt: skip
def test_schedule_hyperparameter(schedule_name, kind):
    hp = kt.HyperParameters()
    hp.Fixed("lr_schedule", schedule_name)
    lr = _optimizers.schedule(hp, 0.01, steps_per_epoch=10, epochs=3)
    assert isinstance(lr, kind)
    assert ("lr_decay_per_epoch" in hp) == (schedule_name == "exponential")


def test_sgd_with_1cycle_cycles_momentum():
    hp = kt.HyperParameters()
    hp.Fixed("optimizer", "sgd")
    hp.Fixed("lr_schedule", "1cycle")
    hp.Fixed("momentum", 0.95)
    assert isinstance(_optimizers.optimizer(hp, steps_per_epoch=10, epochs=2), OneCycleSGD)


LOAD_SAFE = """
import sys, keras, numpy as np
model = keras.models.load_model(sys.argv[1], safe_mode=True)
np.save(sys.argv[2], model.predict(np.load(sys.argv[3]), verbose=0))
print("tuning" in sys.modules, type(getattr(model, "optimizer", None)).__name__, model.compiled)
"""


def test_a_1cycle_sgd_model_exports_loadable_by_keras_alone(tmp_path):
    import subprocess
    import sys

    from tuning.final.export import inference_model

    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(OneCycleSGD(one_cycle(0.1, 20), peak_learning_rate=0.1), "sparse_categorical_crossentropy")
    model.fit(x, (x[:, 0] > 0).astype("int32"), epochs=1, batch_size=16, verbose=0)
    inference_model(model).save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x)
    done = subprocess.run([sys.executable, "-c", LOAD_SAFE, str(tmp_path / "m.keras"), str(tmp_path / "p.npy"),
                           str(tmp_path / "x.npy")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "NoneType", "False"]  # exported for inference: no optimizer state
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), model.predict(x, verbose=0), atol=1e-6)


def test_a_resized_schedule_continues_where_it_stands_and_ends_at_the_new_step():
    inner = warmup_cosine(PEAK, 100)
    schedule = Resizable(inner, end_step=100)
    np.testing.assert_allclose(values(schedule, range(0, 101, 10)), values(inner, range(0, 101, 10)), rtol=1e-6)
    at_40 = float(schedule(40))
    schedule.resize(40, 200)  # the rest, 60 steps of the schedule, now runs over 160
    assert float(schedule(40)) == pytest.approx(at_40, rel=1e-5)
    assert float(schedule(120)) == pytest.approx(float(inner(70)), rel=1e-4)  # half-way through the rest
    assert float(schedule(200)) == pytest.approx(0.0, abs=1e-7) and float(schedule(199)) > 0
    assert np.all(np.diff(values(schedule, range(40, 201))) <= 1e-9)
    schedule.resize(120, 130)  # and shrunk again: inner(70)..inner(100) over 10 steps
    assert float(schedule(125)) == pytest.approx(float(inner(85)), rel=1e-4)
    assert float(schedule(130)) == pytest.approx(0.0, abs=1e-7)


def test_a_resized_schedule_serializes_as_it_stands():
    schedule = Resizable(one_cycle(PEAK, 100), end_step=100)
    schedule.resize(30, 60)
    copy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(copy, Resizable) and copy.end_step == 60
    np.testing.assert_allclose(values(copy, range(30, 61, 5)), values(schedule, range(30, 61, 5)), rtol=1e-6)
