"""How an option of `tuning.run` is declared, once: its help, its default and its check, beside its field.

Owns: `option(...)`, which declares a `RunConfig` field as a command-line
option; the checks an option can carry (`Between`, `OneOf`, `Text`,
`Minutes`), each refusing a bad value with one line that names the flag and
echoes the value; and `add_arguments`, which builds the argparse options from
the fields, so that the parser, `RunConfig` and `docs/cli.md` (generated from
the parser) come from the same declaration. Does not own: which options exist
(`tuning.config`), the checks that relate two options (`RunConfig`), or what
the run does with them.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable, Optional

from tuning.errors import UsageError

NO_DEFAULT = dataclasses.MISSING
# Unicode's control, format and surrogate characters, and its line and paragraph separators.
CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def flag(name: str) -> str:
    """The command-line spelling of a field: `max_epochs` is `--max-epochs`."""
    return "--" + name.replace("_", "-")


class Check:
    """Refuses a bad value of one option with a `UsageError`; `describe()` says what is accepted, for `--help`.

    Called as `check(name, value, shown)`: `name` is the field's, echoed with
    the value (`trials=0`); `shown` is how the user wrote the option
    (`--trials`, or `DATASET` for a positional one), `flag(name)` when None.
    """

    def __call__(self, name: str, value: Any, shown: Optional[str] = None) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Between(Check):
    """A finite number from `low` to `high` (inclusive); None passes (the option's "not given").

    Args:
        low: The least value.
        high: The greatest value, or None for no bound. Defaults to None.
        why: What the upper bound stands for, for messages (e.g. "a week"). Defaults to "".
        wording: Replaces "at least LOW" / "from LOW to HIGH" in messages and help. Defaults to None.
        described: Replaces the range in `--help` only, for a bound that depends on the machine. Defaults to None.
    """

    low: float
    high: Optional[float] = None
    why: str = ""
    wording: Optional[str] = None
    described: Optional[str] = None

    def __call__(self, name: str, value: Any, shown: Optional[str] = None) -> None:
        shown = shown or flag(name)
        if value is None:
            return
        finite = not isinstance(value, float) or math.isfinite(value)
        if self.wording is not None and (not finite or not self._within(value)):
            raise UsageError(f"{shown} must be {self.wording}, but got {name}={value}")
        if not finite or value < self.low:
            raise UsageError(f"{shown} must be at least {self.low:g}, but got {name}={value}")
        if self.high is not None and value > self.high:
            why = f" ({self.why})" if self.why else ""
            raise UsageError(f"{shown} must be at most {self.high:g}{why}, but got {name}={value}")

    def _within(self, value: float) -> bool:
        return self.low <= value and (self.high is None or value <= self.high)

    def describe(self) -> str:
        if self.described is not None:
            return self.described
        if self.wording is not None:
            return self.wording
        return f"at least {self.low:g}" if self.high is None else f"{self.low:g} to {self.high:g}"


@dataclass(frozen=True)
class OneOf(Check):
    """One of a fixed set of words; None passes.

    Args:
        choices: The accepted words.
    """

    choices: tuple[str, ...]

    def __call__(self, name: str, value: Any, shown: Optional[str] = None) -> None:
        if value is not None and value not in self.choices:
            raise UsageError(f"{shown or flag(name)} must be one of {', '.join(self.choices)}, but got {name}={value!r}")

    def describe(self) -> str:
        return "one of " + ", ".join(self.choices)


@dataclass(frozen=True)
class Text(Check):
    """A non-empty string without control characters or line breaks (which no shell user can type into a name); None passes."""

    def __call__(self, name: str, value: Any, shown: Optional[str] = None) -> None:
        shown = shown or flag(name)
        if value is None:
            return
        if not value.strip():
            raise UsageError(f"{shown} must not be empty, but got {name}={value!r}")
        if any(unicodedata.category(c) in CONTROL_CATEGORIES for c in value):
            raise UsageError(f"{shown} must not contain control characters, but got {name}={value!r}")

    def describe(self) -> str:
        return ""


@dataclass(frozen=True)
class Minutes(Check):
    """Minutes above 0 and at most `most`, or None for no limit (`none`).

    Args:
        most: The longest budget accepted.
        why: What `most` stands for, for messages.
    """

    most: float
    why: str

    def __call__(self, name: str, value: Any, shown: Optional[str] = None) -> None:
        if value is not None and not (math.isfinite(value) and 0 < value <= self.most):
            raise UsageError(f"{shown or flag(name)} must be greater than 0 and at most {self.most:g} minutes ({self.why}), "
                             f"or 'none' for no limit, but got {name}={value}")  # fmt: skip

    def describe(self) -> str:
        return f"above 0 and at most {self.why}, or 'none' for no limit"


def minutes_or_none(text: str) -> Optional[float]:
    """Parses minutes, or `none`/`off` (no limit) to None."""
    if text.strip().lower() in ("none", "off"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be minutes or 'none', but got {text!r}") from None


@dataclass(frozen=True)
class Option:
    """What a `RunConfig` field needs to be a command-line option.

    Args:
        help: What the option does, for `--help` and `docs/cli.md`.
        checks: Refuse bad values, in order.
        default_text: How `--help` states the default, when not `str(default)`. Defaults to None.
        parse: Turns the argument's text into the value, when the field's type does not. Defaults to None.
        metavar: The value's name in `--help`. Defaults to None.
        positional: The option is a positional argument. Defaults to False.
    """

    help: str
    checks: tuple[Check, ...] = ()
    default_text: Optional[str] = None
    parse: Optional[Callable[[str], Any]] = None
    metavar: Optional[str] = None
    positional: bool = False

    def check(self, name: str, value: Any, text: bool = False) -> None:
        """Runs every check on the value (and `Text()` first when it is a string option)."""
        shown = self.metavar if self.positional and self.metavar else flag(name)
        for check in ((Text(),) if text else ()) + self.checks:
            check(name, value, shown)

    def help_text(self, default: Any) -> str:
        """The `--help` line: what it does, what it accepts, and its default."""
        accepted = "; ".join(d for d in (c.describe() for c in self.checks) if d)
        if self.default_text is not None:
            shown = f" (default: {self.default_text})"
        elif default is NO_DEFAULT or default is None or default is False:
            shown = ""
        else:
            shown = f" (default {default:g})" if isinstance(default, float) else f" (default {default})"
        text = self.help + (f"; {accepted}" if accepted else "") + shown
        return text.replace("%", "%%")  # argparse formats help with %


def option(default: Any, help: str, *checks: Check, **details: Any) -> Any:
    """Declares a dataclass field as a command-line option.

    Args:
        default: The field's default (`NO_DEFAULT` for a positional argument).
        help: What the option does.
        *checks: What it accepts; `Text()` is added to every string option.
        **details: `default_text`, `parse`, `metavar` or `positional` (see `Option`).
    """
    declared = Option(help, tuple(checks), **details)
    if default is NO_DEFAULT:
        return dataclasses.field(metadata={"option": declared})
    return dataclasses.field(default=default, metadata={"option": declared})


def options_of(cls: type) -> list[tuple[dataclasses.Field, Option]]:
    """The fields of a dataclass that are options, in declaration order, with their `Option`."""
    return [(f, f.metadata["option"]) for f in dataclasses.fields(cls) if "option" in f.metadata]


def value_type(cls: type, name: str) -> type:
    """The type of a field's value, `Optional[...]` unwrapped: `int`, `float`, `str` or `bool`."""
    hinted = typing.get_type_hints(cls)[name]
    inner = [a for a in typing.get_args(hinted) if a is not type(None)]
    return inner[0] if typing.get_origin(hinted) is typing.Union and inner else hinted


def check_all(instance: Any) -> None:
    """Runs every option's checks on a dataclass instance's values, in declaration order."""
    for field, declared in options_of(type(instance)):
        declared.check(field.name, getattr(instance, field.name), text=value_type(type(instance), field.name) is str)


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Adds one argument per option of `cls`, with its type, default and help."""
    for field, declared in options_of(cls):
        kind = value_type(cls, field.name)
        default = field.default
        help_text = declared.help_text(default)
        if declared.positional:
            parser.add_argument(field.name, metavar=declared.metavar or field.name.upper(), help=help_text)
        elif kind is bool:
            parser.add_argument(flag(field.name), action="store_true", help=help_text)
        else:
            parser.add_argument(flag(field.name), type=declared.parse or kind, default=default,
                                metavar=declared.metavar, help=help_text)  # fmt: skip


def from_arguments(cls: type, args: argparse.Namespace, **extra: Any) -> Any:
    """An instance of `cls` from parsed arguments: one value per option, plus `extra`."""
    return cls(**{field.name: getattr(args, field.name) for field, _ in options_of(cls)}, **extra)
