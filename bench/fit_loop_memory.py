"""Resident memory of a bare Keras loop: fresh model, `clear_session()`, `gc.collect()`, one epoch.

    python -m bench.fit_loop_memory --data-dir DIR [--variant feeder] [--fits 10] [--release]

Separates TensorFlow's own per-fit growth from anything this project does:
`numpy` feeds arrays through Keras's adapter (no project code), `feeder` and
`feeder-once` use `tuning.training.pipeline` (built per fit, or once), `feeder-small`
fits a 2x64 model instead of 2x1024, and `nofit` builds models without
training them. `--release` calls `tuning.training.graph_memory.release_finished_graphs()`
before each fit, as the tuner does after each trial; without it, TensorFlow's
gradient registry keeps every fitted model's graph and weights. It also
reports how many models and kernels Python still holds after collection
(weak references), to tell a Python leak from memory held by the runtime.
Prints one line; writes nothing.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import weakref

VARIANTS = ("numpy", "feeder", "feeder-once", "feeder-small", "nofit")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.fit_loop_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--variant", choices=VARIANTS, default="feeder")
    parser.add_argument("--fits", type=int, default=10)
    parser.add_argument("--release", action="store_true", help="drop finished graphs before each fit, as the tuner does")
    args = parser.parse_args(argv)
    if args.fits < 4:
        print(f"bench.fit_loop_memory: error: --fits must be at least 4, but got fits={args.fits}", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from bench.memory import rss_mb
    from tuning.data.datasets import load_dataset
    from tuning.training import graph_memory
    from tuning.training.pipeline import DatasetFeeder

    data = load_dataset("mnist", args.data_dir)
    feeder = DatasetFeeder(data)
    units = 64 if args.variant == "feeder-small" else 1024
    once = (feeder.train.batches(128, shuffle=True, seed=0), feeder.val.batches(1024))
    samples, refs = [], []
    for i in range(args.fits):
        if args.release:
            graph_memory.release_finished_graphs()
        keras.backend.clear_session()
        gc.collect()
        model = keras.Sequential([keras.Input(data.input_shape), keras.layers.Flatten(),
                                  keras.layers.Dense(units, activation="relu"), keras.layers.Dense(units, activation="relu"),
                                  keras.layers.Dense(data.n_classes, activation="softmax")])  # fmt: skip
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
        if args.variant == "numpy":
            model.fit(data.train.x, data.train.y, batch_size=128, validation_data=(data.val.x, data.val.y), verbose=0)
        elif args.variant == "feeder-once":
            model.fit(once[0], validation_data=once[1], verbose=0)
        elif args.variant != "nofit":
            model.fit(feeder.train.batches(128, shuffle=True, seed=i), validation_data=feeder.val.batches(1024), verbose=0)
        refs.append((weakref.ref(model), weakref.ref(model.layers[1].kernel)))
        del model
        gc.collect()
        samples.append(rss_mb())
    growth = samples[-1] - samples[2]
    print(f"{args.variant}{' --release' if args.release else ''}: RSS after each fit {[round(s) for s in samples]} MB; from fit 3 to {args.fits}: "
          f"{growth:+.0f} MB ({growth / (args.fits - 3):+.1f} MB a fit); models still alive "
          f"{sum(m() is not None for m, _ in refs)}, kernels still alive {sum(k() is not None for _, k in refs)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
