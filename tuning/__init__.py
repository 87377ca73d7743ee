"""tuning: a hyperparameter-tuning service for dense Keras networks.

The package is built on Keras Tuner (trials, resume), TensorBoard (HParams
dashboard) and, as a second engine, Optuna. `python -m tuning.run` is the
entry point; `tuning.service.run` is the same thing without argparse.
"""

__version__ = "0.1.0"
