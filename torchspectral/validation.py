"""Input checks shared by every entry point: one place that turns bad input into a clear error.

Each check names the metric it guards, so a user calling `ts.alignment_report` on a bad tensor
learns which metric refused and why, instead of getting NaN out of a covariance.
"""

from __future__ import annotations

import math
import numbers

import torch

NAN_POLICIES = ("raise", "omit")


def check_matrix(t: torch.Tensor, name: str, metric: str) -> None:
    """Require a non-empty floating-point 2-D tensor (n, d)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{metric}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 2:
        raise ValueError(f"{metric}: {name} must be 2-D (n, d), got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(
            f"{metric}: {name} has dtype {t.dtype}; embeddings must be floating point (convert with {name}.float())"
        )
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{metric}: {name} is empty (shape {tuple(t.shape)})")


def check_pair(
    x: torch.Tensor,
    y: torch.Tensor,
    metric: str,
    *,
    same_dim: str | None = None,
    nan_policy: str = "raise",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate paired embeddings and apply the NaN policy; returns the pairs to use.

    `same_dim` is the reason the metric needs d_x = d_y (None when it does not).
    """
    check_matrix(x, "x", metric)
    check_matrix(y, "y", metric)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{metric}: x and y must hold the same number of paired rows, got {x.shape[0]} and {y.shape[0]}"
        )
    if same_dim is not None and x.shape[1] != y.shape[1]:
        raise ValueError(f"{metric}: needs d_x = d_y ({same_dim}), got d_x={x.shape[1]}, d_y={y.shape[1]}")
    if x.device != y.device:
        raise ValueError(f"{metric}: x is on {x.device} but y is on {y.device}")
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"{metric}: nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    # A row sum is non-finite whenever the row holds NaN or ±Inf, and costs one pass with no n×d mask;
    # rows it flags are confirmed element-wise (a finite row whose sum overflows is not bad).
    finite = torch.isfinite(x.sum(dim=1)) & torch.isfinite(y.sum(dim=1))
    if not bool(finite.all()):
        finite = torch.isfinite(x).all(dim=1) & torch.isfinite(y).all(dim=1)
    n_bad = int((~finite).sum()) if not bool(finite.all()) else 0
    if n_bad:
        if nan_policy == "raise":
            raise ValueError(
                f"{metric}: {n_bad} of {x.shape[0]} pairs contain NaN or Inf "
                "(pass nan_policy='omit' to drop those pairs)"
            )
        x, y = x[finite], y[finite]
        if x.shape[0] == 0:
            raise ValueError(f"{metric}: every pair contains NaN or Inf; nothing is left after nan_policy='omit'")
    return x, y


def check_min_rows(n: int, needed: int, metric: str, why: str) -> None:
    if n < needed:
        raise ValueError(f"{metric}: needs at least {needed} pairs ({why}), got {n}")


def check_q(q: float, metric: str) -> None:
    if not (0.0 < float(q) <= 1.0):
        raise ValueError(f"{metric}: q is the fraction of top eigenmodes kept and must lie in (0, 1], got {q}")


def check_sample(t: torch.Tensor, name: str, metric: str, nan_policy: str = "raise") -> torch.Tensor:
    """Validate one unpaired sample (n, d) and apply the NaN policy to its rows; returns the rows to use."""
    check_matrix(t, name, metric)
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"{metric}: nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    finite = finite_rows(t)
    n_bad = int((~finite).sum())
    if n_bad:
        if nan_policy == "raise":
            raise ValueError(
                f"{metric}: {n_bad} of {t.shape[0]} rows of {name} contain NaN or Inf "
                "(pass nan_policy='omit' to drop those rows)"
            )
        t = t[finite]
        if t.shape[0] == 0:
            raise ValueError(
                f"{metric}: every row of {name} contains NaN or Inf; nothing is left after nan_policy='omit'"
            )
    return t


def finite_rows(t: torch.Tensor) -> torch.Tensor:
    """Boolean (n,) mask of the rows without NaN or Inf (one row-sum pass; flagged rows confirmed element-wise)."""
    finite = torch.isfinite(t.sum(dim=1))
    if not bool(finite.all()):
        finite = torch.isfinite(t).all(dim=1)
    return finite


def check_bandwidth(sigma: object, metric: str, name: str = "sigma") -> float:
    """A bandwidth must be a positive, finite real number (bool is not a number here)."""
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
        if isinstance(sigma, torch.Tensor) and sigma.numel() == 1 and sigma.is_floating_point():
            sigma = float(sigma)
        else:
            raise TypeError(f"{metric}: {name} must be a positive number, got {type(sigma).__name__}")
    if not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"{metric}: {name} must be a positive, finite bandwidth, got {sigma}")
    return float(sigma)
