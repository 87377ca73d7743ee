"""Names a package re-exports from its modules, imported on first use (PEP 562).

A package's `__init__` may not load TensorFlow: `python -m tuning.run` imports
`tuning` and `tuning.config` imports `tuning.search.plan`, and both must
refuse bad input before TensorFlow loads. So a package lists what it
re-exports, and each name is imported from its module when first read.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package` that import each name in `exports` from its module on first use.

    Args:
        package: The package's `__name__`.
        exports: Each public name and the module, relative to `package`, that defines it.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
