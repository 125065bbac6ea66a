"""The default (scale-free) ε of SAS, formed independently in float64 NumPy, for comparisons with tests/reference.py
(whose functions take an absolute ε)."""

from __future__ import annotations

import numpy as np
import reference as R


def default_eps(x: np.ndarray, y: np.ndarray) -> float:
    """``1e-8 · (tr Σ_x / d) · (tr Σ_y / d)`` (1/n covariances): torchspectral's default ε for the pair (x, y)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return 1e-8 * float(np.trace(R.covariance(x)) / x.shape[1]) * float(np.trace(R.covariance(y)) / y.shape[1])
