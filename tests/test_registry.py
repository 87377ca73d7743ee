from __future__ import annotations

import pytest

from tuning.errors import UsageError
from tuning.registry import Registry


def test_get_returns_registered_entry():
    registry: Registry[int] = Registry("widget")
    registry.register("b", 2)
    registry.register("a", 1)
    assert registry.get("a") == 1
    assert registry.names() == ["a", "b"]
    assert "b" in registry and "c" not in registry


def test_unknown_name_lists_the_choices():
    registry: Registry[int] = Registry("widget")
    registry.register("alpha", 1)
    registry.register("beta", 2)
    with pytest.raises(UsageError, match=r"unknown widget 'gamma'; choose one of: alpha, beta"):
        registry.get("gamma")


def test_double_registration_is_a_programming_error():
    registry: Registry[int] = Registry("widget")
    registry.register("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a", 2)
