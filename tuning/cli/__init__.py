"""The commands: `python -m tuning.run`, `tuning.report`, `tuning.lr_find`, the worker process, and `docs/cli.md`.

`run`, `report`, `lr_find`, `worker`: each command's parser and exit codes
(the front doors `tuning/run.py` and friends call them); `base`: what they
share (the parser that raises `UsageError`, quieting the libraries, errors
to one line and an exit code); `docs`: `docs/cli.md` from the parsers. Each
command checks argv before its one import of the engine, so bad input is
refused before TensorFlow loads.
"""
