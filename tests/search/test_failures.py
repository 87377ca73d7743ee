"""Failed trials in a row, counted from the oracle's record rather than from Keras Tuner's error text."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tuning.errors import RunError
from tuning.search import failures


def oracle_with(*statuses: str) -> SimpleNamespace:
    """A stand-in oracle whose trials ended in `statuses` order; a failed trial's message ends in its index."""
    trials = {f"{i:02d}": SimpleNamespace(status=status, message=f"Traceback ...\nValueError: broken {i}" if status == "FAILED" else None)
              for i, status in enumerate(statuses)}  # fmt: skip
    return SimpleNamespace(end_order=list(trials), trials=trials)


def test_the_longest_run_is_counted_and_a_success_resets_it():
    assert failures.longest_run(oracle_with()) == (0, "")
    assert failures.longest_run(oracle_with("COMPLETED", "FAILED", "FAILED", "COMPLETED", "FAILED"))[0] == 2
    length, message = failures.longest_run(oracle_with("FAILED", "COMPLETED", "FAILED", "FAILED", "FAILED"))
    assert length == 3 and message.endswith("broken 4")


def test_a_run_that_reached_the_limit_counts_even_after_a_later_success():
    # Keras Tuner's rule: once a run of failures reached the limit, the search stops.
    oracle = oracle_with("FAILED", "FAILED", "COMPLETED")
    assert failures.reached(oracle, 2) and not failures.reached(oracle, 3)


def test_the_error_names_the_limit_the_last_failure_and_the_fix():
    oracle = oracle_with("COMPLETED", "FAILED", "FAILED")
    with pytest.raises(RunError, match=r"stopped after 2 failed trials in a row \(last: ValueError: broken 2\); "
                                       r"raise --max-failures"):  # fmt: skip
        failures.check(oracle, 2)
    failures.check(oracle, 3)  # below the limit: no error
