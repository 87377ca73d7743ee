"""Each option is declared once: the parser, `RunConfig` and `docs/cli.md` come from it, and every option checks its value."""

from __future__ import annotations

import math
import os
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuning.cli import run
from tuning.config.options import CONTROL_CATEGORIES, Between, Minutes, OneOf, Text, flag, options_of, value_type
from tuning.config.run_config import RunConfig
from tuning.errors import UsageError

OPTIONS = options_of(RunConfig)
VALUED = [f.name for f, declared in OPTIONS if value_type(RunConfig, f.name) is not bool]


def test_the_parser_has_one_argument_per_option_and_nothing_else_but_debug():
    parser = run.build_parser()
    dests = {a.dest for a in parser._actions} - {"help", "debug"}
    assert dests == {f.name for f, _ in OPTIONS}
    assert {f.name for f, _ in OPTIONS} == {f for f in RunConfig.__dataclass_fields__} - {"command"}


def test_help_says_what_each_option_accepts_and_its_default():
    text = run.build_parser().format_help()
    for phrase in ("upper bound on trials, for every tuner; 1 to 10000 (default: 50; under a time budget, as many as the search's share of it holds)",
                   "between 0 and 1 (default 0.75)", "above 0 and at most a week, or 'none' for no limit (default 55)",
                   "one of all, best, none (default best)"):  # fmt: skip
        assert phrase in " ".join(text.split()), phrase


@pytest.mark.parametrize("check, value, message", [
    (Between(1, 10), 0, r"--trials must be at least 1, but got trials=0"),
    (Between(1, 10, why="ten"), 11, r"--trials must be at most 10 \(ten\), but got trials=11"),
    (Between(0, 1, wording="between 0 and 1"), float("nan"), r"--trials must be between 0 and 1, but got trials=nan"),
    (Between(1), float("inf"), r"--trials must be at least 1, but got trials=inf"),
    (OneOf(("a", "b")), "c", r"--trials must be one of a, b, but got trials='c'"),
    (Text(), " ", r"--trials must not be empty"),
    (Text(), "a\u2028b", r"--trials must not contain control characters"),
    (Minutes(60, "an hour"), 0.0, r"--trials must be greater than 0 and at most 60 minutes \(an hour\)"),
])  # fmt: skip
def test_each_check_refuses_with_the_flag_and_the_value(check, value, message):
    with pytest.raises(UsageError, match=message):
        check("trials", value)
    check("trials", None)  # "not given" always passes


def test_an_in_memory_study_is_refused_when_other_processes_need_it():
    with pytest.raises(UsageError, match=r"--storage 'sqlite://' lives in this process's memory"):
        RunConfig(dataset="digits", tuner="tpe", storage="sqlite://", workers=1)
    RunConfig(dataset="digits", tuner="tpe", storage="sqlite://")  # one process: its own memory is fine


HOSTILE = st.one_of(
    st.sampled_from(["nan", "NaN", "inf", "-inf", "1e309", "-1", "0", "-0", "-99999999999", "99999999999999999999",
                     "1e100", "", " ", "\x00", "a\nb", "\x1b[31m", "a\tb", "x\u200by", "\u2028", "none", "off"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
)  # fmt: skip


def sane(config: RunConfig) -> None:
    """What every accepted value must be: finite numbers of a size a run can honour, printable non-empty names."""
    for field, _ in OPTIONS:
        value = getattr(config, field.name)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)):
            assert math.isfinite(value) and 0 <= value < 2**32, (field.name, value)
        else:
            assert value.strip() and not any(unicodedata.category(c) in CONTROL_CATEGORIES for c in value), (field.name, value)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(name=st.sampled_from(VALUED), text=HOSTILE)
def test_any_value_of_any_option_is_refused_in_one_line_or_is_sane(name, text):
    argv = [text] if name == "dataset" else ["digits", flag(name), text]
    try:
        config, _ = run.parse_config(argv)
    except UsageError:
        refused_in_one_line_with_nothing_changed(argv)
        return
    sane(config)


def refused_in_one_line_with_nothing_changed(argv: list[str]) -> None:
    import contextlib
    import io

    err = io.StringIO()
    with tempfile.TemporaryDirectory() as folder:
        before = os.getcwd()
        os.chdir(folder)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = run.main(argv)
        finally:
            os.chdir(before)
        assert code == 2
        assert not any(Path(folder).iterdir()), list(Path(folder).iterdir())  # no checkpoints/, no logs/
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tuning.run: error: "), err.getvalue()
