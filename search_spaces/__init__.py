"""Search spaces, one module each, looked up by name.

A module `search_spaces/NAME.py` defines a space by exposing `SPACE`, a
subclass of `search_spaces.base.SearchSpace`; `--space NAME` selects it.
Modules whose names start with `_`, and `base`, are helpers, not spaces.
Spaces know Keras layers and Keras Tuner's `hp`, and nothing of files, the
CLI or tuners.
"""

from __future__ import annotations

import importlib
import pkgutil

from search_spaces.base import SearchSpace, SpaceContext
from tuning.registry import Registry

__all__ = ["SearchSpace", "SpaceContext", "SPACES", "get"]

SPACES: Registry[type[SearchSpace]] = Registry("search space")

for _info in pkgutil.iter_modules(__path__):
    if _info.name.startswith("_") or _info.name == "base":
        continue
    SPACES.register(_info.name, importlib.import_module(f"{__name__}.{_info.name}").SPACE)


def get(name: str) -> type[SearchSpace]:
    """Returns the space class registered as `name`; unknown names list the choices."""
    return SPACES.get(name)
