"""Where new configurations come from: the space's defaults, local moves of the incumbent, or the tuner.

Owns: `LocalSearch`, the one rule every tuner follows for a *new*
configuration. The first is the space's defaults (a strong guess per data
profile). After that, a share of new configurations that grows with the
number of finished trials is a local move of the best configuration so far:
one or two hyperparameters moved to a neighbouring value. The rest come
from the tuner's own proposals (Hyperband's and random search's draws,
Bayesian optimization's and Optuna's samplers). Priors plus local moves are
what piBO and PriorBand report large speed-ups from on strong-default spaces.

`install(oracle, local_search)` attaches it to an oracle at one of three
points, the only places this module touches a tuner:
- Keras Tuner's Hyperband: `Oracle._random_values`, so a proposal enters a
  bracket at its lowest rung and Hyperband's promotions stay its own;
- other Keras Tuner oracles: `Oracle.populate_space`;
- `tuning.search.optuna_oracle.OptunaOracle` asks `propose` itself and enqueues the
  answer in its study (`study.enqueue_trial`), so the sampler learns from it.

Does not own: the search space (`search_spaces/`), the tuners' own
sampling, or what "best" means (the oracle's `get_best_trials`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Optional

import keras_tuner as kt
from keras_tuner.engine import hyperparameters as hp_module

from search_spaces.base import default_values
from tuning.errors import UsageError
from tuning.search.selection import pruned_trials

# Finished trials over which the share grows linearly from 0 to its full value.
RAMP_TRIALS = 4
# Local moves tried before deferring to the tuner when each one lands on a configuration already tried.
MAX_ATTEMPTS = 20
# A log-sampled number moves by this factor up or down.
LOG_STEP = 2.0
# A continuous, linearly sampled number moves by this share of its range.
LINEAR_STEP = 0.1


@dataclass(frozen=True)
class LocalSearch:
    """The proposal rule: defaults first, then a growing share of local moves of the incumbent.

    Args:
        share: The share of new configurations that are local moves once
            `ramp` trials have finished, 0 to 1; 0 leaves every configuration
            after the defaults to the tuner. The run's default is
            `RunConfig.local_share`, measured on digits (docs/benchmarks.md).
        seed: Seed of the moves; the draw for the N-th trial depends only on
            `seed` and N, so a resumed run proposes what the first would have.
            Defaults to 0.
        ramp: Finished trials over which the share grows to `share`.
            Defaults to `RAMP_TRIALS`.
    """

    share: float
    seed: int = 0
    ramp: int = RAMP_TRIALS

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise UsageError(f"--local-share must be between 0 and 1, but got local_share={self.share}")

    def share_after(self, finished: int) -> float:
        """The probability that the next new configuration is a local move, after `finished` trials."""
        return self.share * min(1.0, finished / max(1, self.ramp))

    def propose(
        self,
        space: kt.HyperParameters,
        incumbent: Optional[dict],
        finished: int,
        draw: int,
        is_duplicate: Callable[[dict], bool],
    ) -> Optional[dict]:
        """The next new configuration, or None to let the tuner propose it.

        Args:
            space: The search space (an oracle's `hyperparameters`).
            incumbent: The best configuration so far (its values), or None.
            finished: Trials that have finished with a score.
            draw: The number of this proposal (trials created so far), which seeds it.
            is_duplicate: Whether a configuration has been tried already.
        """
        defaults = default_values(space)
        if not is_duplicate(defaults):
            return defaults
        if incumbent is None:
            return None
        rng = random.Random(f"{self.seed}:{draw}")
        if rng.random() >= self.share_after(finished):
            return None
        for _ in range(MAX_ATTEMPTS):
            moved = neighbour(space, incumbent, rng, moves=rng.choice((1, 2)))
            if moved is not None and not is_duplicate(moved):
                return moved
        return None


def neighbour(space: kt.HyperParameters, values: dict, rng: random.Random, moves: int = 1) -> Optional[dict]:
    """`values` with `moves` active hyperparameters moved to a neighbouring value.

    Conditions are re-resolved in declaration order: a hyperparameter that a
    move made active (a third layer's units) takes its default, and one it
    made inactive is dropped. Keras Tuner's bookkeeping values (`tuner/...`)
    are dropped too.

    Args:
        space: The search space.
        values: The configuration to move from.
        rng: The source of randomness.
        moves: How many hyperparameters to move. Defaults to 1.

    Returns:
        The moved configuration, or None when nothing in it can move.
    """
    current = {k: v for k, v in values.items() if not k.startswith("tuner/")}
    movable = [hp for hp in _active(space, current) if _can_move(hp)]
    if not movable:
        return None
    changed = {hp.name: _step(hp, current[hp.name], rng) for hp in rng.sample(movable, min(moves, len(movable)))}
    resolved = kt.HyperParameters()
    for hp in space.space:  # a condition's parent comes first
        resolved.merge([hp])
        if resolved.is_active(hp):
            value = changed.get(hp.name, current.get(hp.name, hp.default))
            resolved.values[hp.name] = value if _valid(hp, value) else hp.default
    return dict(resolved.values)


def _active(space: kt.HyperParameters, values: dict) -> list:
    found = kt.HyperParameters()
    active = []
    for hp in space.space:
        found.merge([hp])
        if hp.name in values:
            found.values[hp.name] = values[hp.name]
        if found.is_active(hp) and hp.name in values:
            active.append(hp)
    return active


def _can_move(hp) -> bool:
    if isinstance(hp, hp_module.Fixed) or hp.name.startswith("tuner/"):
        return False
    if isinstance(hp, hp_module.Choice):
        return len(hp.values) > 1
    if isinstance(hp, (hp_module.Int, hp_module.Float)):
        return hp.max_value > hp.min_value
    return isinstance(hp, hp_module.Boolean)


def _valid(hp, value: Any) -> bool:
    if isinstance(hp, hp_module.Choice):
        return value in hp.values
    if isinstance(hp, (hp_module.Int, hp_module.Float)):
        return value is not None and hp.min_value <= value <= hp.max_value
    return True


def _step(hp, value: Any, rng: random.Random) -> Any:
    """One neighbouring value: the next or previous choice of an ordered Choice, a step of a number, a flip."""
    if isinstance(hp, hp_module.Boolean):
        return not value
    if isinstance(hp, hp_module.Choice):
        options = list(hp.values)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in options):
            ordered = sorted(options)
            i = ordered.index(value) if value in ordered else 0
            neighbours = [ordered[j] for j in (i - 1, i + 1) if 0 <= j < len(ordered)]
            return rng.choice(neighbours)
        return rng.choice([v for v in options if v != value])
    up = rng.random() < 0.5
    moved = _number_step(hp, value, up)
    if moved == value:  # at a bound: go the other way
        moved = _number_step(hp, value, not up)
    return moved


def _number_step(hp, value, up: bool):
    is_int = isinstance(hp, hp_module.Int)
    low, high = hp.min_value, hp.max_value
    log = hp.sampling == "log"
    if is_int:
        delta = max(1, round(value * (LOG_STEP - 1) / 2)) if log else (hp.step or 1)
        return int(min(high, max(low, value + (delta if up else -delta))))
    if hp.step and not log:
        # On Keras Tuner's grid: min + k * step, computed as Keras Tuner does, so values match its domain.
        k = round((value - low) / hp.step) + (1 if up else -1)
        k = min(max(k, 0), int(math.floor((high - low) / hp.step + 1e-9)))
        return low + k * hp.step
    if log:
        return float(min(high, max(low, value * (LOG_STEP if up else 1 / LOG_STEP))))
    width = LINEAR_STEP * (high - low)
    return float(min(high, max(low, value + (width if up else -width))))


def incumbent_values(oracle: kt.Oracle) -> Optional[dict]:
    """The values of the oracle's best finished trial, or None before one has finished."""
    best = [t for t in oracle.get_best_trials(1) if t.status == "COMPLETED" and t.score is not None]
    return dict(best[0].hyperparameters.values) if best else None


def finished_trials(oracle: kt.Oracle) -> int:
    """Trials that finished with a score, pruned ones excepted."""
    pruned = pruned_trials(oracle)
    return sum(1 for t in oracle.trials.values() if t.status == "COMPLETED" and t.trial_id not in pruned)


def propose_for(oracle: kt.Oracle, local_search: LocalSearch) -> Optional[dict]:
    """`local_search.propose` with what the oracle knows."""
    return local_search.propose(
        oracle.hyperparameters, incumbent_values(oracle), finished_trials(oracle), len(oracle.trials), oracle._duplicate
    )


def install(oracle: kt.Oracle, local_search: LocalSearch) -> None:
    """Makes a Keras Tuner oracle take its new configurations from `local_search` first.

    A worker's `OracleClient` is left alone: the chief's oracle proposes. An
    oracle that asks `local_search` itself (`OptunaOracle`) is given it.
    """
    if not isinstance(oracle, kt.Oracle):
        return
    if hasattr(oracle, "local_search"):
        oracle.local_search = local_search
        return
    if isinstance(oracle, kt.oracles.HyperbandOracle):
        draw = oracle._random_values

        def local_first_draw():
            return propose_for(oracle, local_search) or draw()

        oracle._random_values = local_first_draw
        return
    populate = oracle.populate_space

    def local_first_populate(trial_id):
        proposal = propose_for(oracle, local_search)
        if proposal is not None:
            return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": proposal}
        return populate(trial_id)

    oracle.populate_space = local_first_populate
