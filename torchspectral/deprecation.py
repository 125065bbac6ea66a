"""Renamed public names: the old name keeps working for one release, with a DeprecationWarning naming the new one."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

# old name → new name, for the names `torchspectral` and `torchspectral.functional` export (listed in docs/api.md).
RENAMED = {"SpectralAlignment": "SpectralAlignmentResult", "Retrieval": "RetrievalResult"}


def renamed_attribute(module: str, namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` that serves each old name of :data:`RENAMED` from ``namespace``."""

    def __getattr__(name: str) -> Any:
        if name in RENAMED:
            new = RENAMED[name]
            warnings.warn(f"{module}.{name} is renamed {module}.{new}", DeprecationWarning, stacklevel=2)
            return namespace[new]
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
