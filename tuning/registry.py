"""A name-to-object registry that lists the valid choices on a miss.

Datasets, tuners and search spaces are all looked up by name through one of
these, so every "unknown name" error reads the same way.
"""

from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from tuning.errors import UsageError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects of one kind.

    Args:
        kind: What the names denote, used in error messages, e.g. `"dataset"`.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Adds `entry` under `name` and returns it.

        Args:
            name: The name users type.
            entry: The object to return from `get(name)`.
        """
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        """Returns the entry for `name`, or raises `UsageError` listing the choices."""
        try:
            return self._entries[name]
        except KeyError:
            raise UsageError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Returns the registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
