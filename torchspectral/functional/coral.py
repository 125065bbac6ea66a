"""CORAL (docs/definitions.md#coral): distance between the two covariances, C with 1/(n−1).

``scale="deep"`` (Sun & Saenko, the source paper's Eq. 4): ``‖C_x − C_y‖²_F / (4d²)``;
``scale="frobenius"`` (what the source paper's code reported): ``‖C_x − C_y‖_F``.
"""

from __future__ import annotations

import torch

from torchspectral.stats import MomentStatistics
from torchspectral.validation import with_validate_args

SAME_DIM_REASON = "CORAL subtracts the two covariance matrices"
SCALES = ("deep", "frobenius")

# The statistics groups it reads (torchspectral.stats.GROUPS): the covariance blocks only.
NEEDS = ("covariance",)


def coral_from_moments(m: MomentStatistics, scale: str = "deep") -> torch.Tensor:
    if scale not in SCALES:
        raise ValueError(f"coral: scale must be one of {SCALES}, got {scale!r}")
    if not m.same_dim:
        raise ValueError(f"coral: needs d_x = d_y ({SAME_DIM_REASON}), got d_x={m.d_x}, d_y={m.d_y}")
    m.require_pairs("coral", 2, "the 1/(n−1) covariance needs two pairs")
    diff = m.covariance("x", ddof=1) - m.covariance("y", ddof=1)
    squared = (diff**2).sum()
    if scale == "deep":
        return squared / (4 * m.d_x**2)
    return torch.sqrt(squared)


@with_validate_args
def coral(x: torch.Tensor, y: torch.Tensor, scale: str = "deep", *, nan_policy: str = "raise") -> torch.Tensor:
    """CORAL distance between the covariances of x and y (same d). Lower = more similar second-order structure.

    Shape: x (n, d), y (n, d) → ().

    Example:
        >>> import torch, torchspectral as ts
        >>> x = torch.randn(400, 6, generator=torch.Generator().manual_seed(0))
        >>> float(ts.coral(x, x + 5.0)) < 1e-12  # a translation changes no covariance
        True
    """
    m = MomentStatistics.from_data(x, y, nan_policy=nan_policy, metric="coral", same_dim=SAME_DIM_REASON, groups=NEEDS)
    return coral_from_moments(m, scale=scale)
