"""`python -m tuning.lr_find DATASET [--space S] [--hp name=value ...]`: the learning-rate range test.

Owns: the command line of the range test. It trains one configuration of a
space (its defaults, with `--hp` overrides) for about an epoch while the
learning rate grows exponentially, writes `logs/lr_find/DATASET-SPACE/`
(`lr_range.csv`, `lr_range.png`) and prints the suggested rate and the bounds
it would search. The test itself is `tuning.search.lr_range`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from tuning.cli.base import Parser, quiet_libraries, run_command
from tuning.errors import UsageError
from tuning.text import format_values

PROG = "tuning.lr_find"


@dataclass(frozen=True)
class FindConfig:
    """One range test.

    Args:
        dataset: Registered dataset name.
        space: Registered search-space name. Defaults to `"dense"`.
        overrides: Hyperparameter values to fix. Defaults to none.
        data_dir: Offline data directory. Defaults to None.
        batch_size: Fixed batch size. Defaults to None (the space's default).
        min_lr: First learning rate. Defaults to 1e-6.
        max_lr: Last learning rate. Defaults to 10.
        steps: Batches to grow over. Defaults to None (one epoch).
        seed: Seed. Defaults to 0.
        log_root: Where the plot and CSV go. Defaults to `logs`.
    """

    dataset: str
    space: str = "dense"
    overrides: dict = field(default_factory=dict)
    data_dir: Optional[str] = None
    batch_size: Optional[int] = None
    min_lr: float = 1e-6
    max_lr: float = 10.0
    steps: Optional[int] = None
    seed: int = 0
    log_root: str = "logs"

    def __post_init__(self) -> None:
        if not 0 < self.min_lr < self.max_lr:
            raise UsageError(
                f"--min-lr and --max-lr need 0 < min < max, but got min_lr={self.min_lr}, max_lr={self.max_lr}"
            )
        if self.steps is not None and self.steps < 10:
            raise UsageError(f"--steps must be at least 10, but got steps={self.steps}")
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, but got batch_size={self.batch_size}")

    @property
    def output_dir(self) -> Path:
        return Path(self.log_root) / "lr_find" / f"{self.dataset}-{self.space}"


def parse_hp(text: str) -> tuple[str, object]:
    """`name=value` with the value read as bool, int, float or string, in that order."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise UsageError(f"--hp takes name=value, but got {text!r}")
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return name, lowered == "true"
    for kind in (int, float):
        try:
            return name, kind(raw)
        except ValueError:
            continue
    return name, raw


def build_parser() -> Parser:
    """The command line of `python -m tuning.lr_find`."""
    parser = Parser(prog=PROG, description="Learning-rate range test: grow the rate exponentially, plot the loss.")
    parser.add_argument("dataset", metavar="DATASET")
    parser.add_argument("--space", default="dense", help="a module in search_spaces/ (default dense)")
    parser.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE",
                        help="fix a hyperparameter, e.g. --hp optimizer=sgd --hp num_layers=3")  # fmt: skip
    parser.add_argument("--data-dir", help="offline data folder (default: $TUNING_DATA_DIR, then download)")
    parser.add_argument("--batch-size", type=int, help="batch size (default: the space's default)")
    parser.add_argument("--min-lr", type=float, default=1e-6, help="the rate the test starts at (default 1e-06)")
    parser.add_argument("--max-lr", type=float, default=10.0, help="the rate the test ends at (default 10)")
    parser.add_argument("--steps", type=int, help="batches to grow the rate over (default: one epoch)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the shuffle (default 0)")
    parser.add_argument("--log-root", default="logs", help="where lr_find/DATASET-SPACE/ is written (default logs)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and library logs")
    return parser


def parse_config(argv: Sequence[str]) -> FindConfig:
    """Parses argv into a validated `FindConfig`."""
    args = build_parser().parse_args(list(argv))
    return FindConfig(
        dataset=args.dataset, space=args.space, overrides=dict(parse_hp(t) for t in args.hp),
        data_dir=args.data_dir, batch_size=args.batch_size, min_lr=args.min_lr, max_lr=args.max_lr,
        steps=args.steps, seed=args.seed, log_root=args.log_root,
    )  # fmt: skip


def find(config: FindConfig, say=print):
    """Runs the range test described by `config`; returns the result and the output paths."""
    from tuning.search import lr_range  # the boundary: TensorFlow loads here, after the command line was checked

    try:
        result, hp = lr_range.dataset_range_test(
            config.dataset, config.space, config.overrides, data_dir=config.data_dir, batch_size=config.batch_size,
            seed=config.seed, steps=config.steps, min_lr=config.min_lr, max_lr=config.max_lr,
        )  # fmt: skip
    except ValueError as error:
        raise UsageError(str(error)) from None
    paths = lr_range.write_outputs(result, config.output_dir, f"{config.dataset}, {config.space} space")
    return result, hp, paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)

    def body() -> int:
        config = parse_config(argv)
        if "--debug" not in argv:
            quiet_libraries()
        result, hp, (csv_path, png_path) = find(config)
        stop = f"diverged at {result.diverged_at:.2e}" if result.diverged_at else "did not diverge"
        print(f"configuration: {format_values({k: v for k, v in hp.values.items() if k != 'learning_rate'})}")
        print(f"{len(result.losses)} batches, learning rate {result.learning_rates[0]:.1e} to "
              f"{result.learning_rates[-1]:.1e}; loss {stop}")  # fmt: skip
        print(f"lowest smoothed loss at learning rate {result.best:.2e}")
        print(f"suggested learning rate: {result.suggested:.2e}")
        print(f"bounds to search: {result.bounds[0]:.2e} to {result.bounds[1]:.2e}")
        print(f"plot: {png_path}\ncsv: {csv_path}")
        return 0

    return run_command(PROG, body, debug="--debug" in argv)


if __name__ == "__main__":
    sys.exit(main())
