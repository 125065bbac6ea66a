"""Orthogonal Procrustes alignment (docs/definitions.md#procrustes), from the moment statistics.

Centre both representations and scale each to unit Frobenius norm, ``X̃ = Xc/‖Xc‖_F``, ``Ỹ = Yc/‖Yc‖_F``. The best
rotation of one onto the other leaves ``min_Q ‖X̃ − ỸQ‖²_F = 2 − 2‖X̃ᵀỸ‖_*`` (Q orthogonal; for d_x ≠ d_y the
narrower side is padded with zeros), so everything follows from the nuclear norm of the centred cross-covariance:

- ``"similarity"``: ``ρ = ‖Σ_xy‖_* / sqrt(tr Σ_x · tr Σ_y)`` ∈ [0, 1] (1: equal up to rotation, shift and scale);
- ``"distance"``: ``2 − 2ρ`` ∈ [0, 2], the squared Procrustes distance of Ding et al. (2021);
- ``"angular"``: ``arccos ρ`` ∈ [0, π/2], the angular shape metric of Williams et al. (2021), a proper metric.

Only the (d_x + d_y)² moments are read, so it streams, merges across ranks and is differentiable like every moment
metric (the nuclear norm's gradient is ``U Vᵀ`` of the cross-covariance's SVD).
"""

from __future__ import annotations

import torch

from torchspectral.stats import MomentStatistics
from torchspectral.validation import with_validate_args

KINDS = ("similarity", "distance", "angular")

# The statistics groups it reads (torchspectral.stats.GROUPS): the covariance blocks only.
NEEDS = ("covariance",)


def procrustes_from_moments(m: MomentStatistics, kind: str = "similarity") -> torch.Tensor:
    if kind not in KINDS:
        raise ValueError(f"procrustes: kind must be one of {KINDS}, got {kind!r}")
    m.require_pairs("procrustes", 2, "a covariance needs two pairs")
    trace_x = torch.diagonal(m.covariance("x")).sum()
    trace_y = torch.diagonal(m.covariance("y")).sum()
    for name, trace in (("x", trace_x), ("y", trace_y)):
        if not bool(trace > 0):
            raise ValueError(f"procrustes: {name} has no variance (every row is the same), so it cannot be normalised")
    nuclear = torch.linalg.svdvals(m.covariance("xy")).sum()
    similarity = nuclear / torch.sqrt(trace_x * trace_y)
    if kind == "similarity":
        return similarity
    if kind == "distance":
        return 2 - 2 * similarity
    # ρ ≤ 1 is a theorem (Cauchy–Schwarz for the nuclear norm); rounding can pass it by an ulp, which arccos would
    # turn into NaN: enforced for the angle, as the gap family enforces its ranges (docs/definitions.md#numerics).
    return torch.arccos(similarity.clamp(max=1.0))


@with_validate_args
def procrustes(
    x: torch.Tensor, y: torch.Tensor, kind: str = "similarity", *, nan_policy: str = "raise"
) -> torch.Tensor:
    """Orthogonal Procrustes similarity, distance or angle between x (n, d_x) and y (n, d_y) (module docstring).

    Shape: x (n, d_x), y (n, d_y), row i of x paired with row i of y → () float64.

    Example:
        >>> import torch, torchspectral as ts
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(500, 6, generator=g, dtype=torch.float64)
        >>> rotation, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
        >>> round(float(ts.procrustes(x, 3 * x @ rotation + 1.0)), 12)  # a rotation, scale and shift
        1.0
        >>> round(float(ts.procrustes(x, 3 * x @ rotation, kind="angular")), 6)
        0.0
    """
    m = MomentStatistics.from_data(x, y, nan_policy=nan_policy, metric="procrustes", groups=NEEDS)
    return procrustes_from_moments(m, kind=kind)
