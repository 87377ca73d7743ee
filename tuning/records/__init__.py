"""What a run writes down and reads back: its files, lock, events, HParams sessions, trial times and metrics.

`run_files`: the layout of `checkpoints/RUN/` and `logs/RUN/` and `run.json`;
`lock`: one process per run; `events`: the typed events and
`events.jsonl`; `hparams`: TensorBoard's HParams experiment and sessions;
`trial_times`: each trial's wall time; `metrics`: `metrics.json`'s schema;
`atomic`: writing a file so that it is whole or absent. The bottom layer
above `tuning.errors`: it imports no other part of the package.
"""
