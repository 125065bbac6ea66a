"""Permutation test of ΔSAS against *independent towers*: shuffling the pairing leaves Σ_x, Σ_y and so every
eigenbasis, active set and σ²_k unchanged; only the cross-moments ``v_kᵀΣ_xy v_k`` change, and those are means of
products of projections computed once. Each permutation therefore costs O(n·|A|), not a new decomposition.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from torchspectral.functional.sas import anchor_modes, sas_eps
from torchspectral.moments import Moments
from torchspectral.spectral import active_masks, sas_score
from torchspectral.validation import check_pair, check_q


@dataclass(frozen=True)
class PermutationResult:
    """Observed ΔSAS, its null distribution under shuffled pairs, and the two-sided p-value."""

    observed: float
    null: torch.Tensor
    p_value: float


def permutation_test(
    x: torch.Tensor,
    y: torch.Tensor,
    n_perm: int = 1000,
    seed: int = 0,
    q: float = 0.1,
    eps: float | None = None,
    *,
    nan_policy: str = "raise",
) -> PermutationResult:
    """ΔSAS = SAS_{X→Y} − SAS_{Y→X} against its distribution under shuffled pairings.

    What it tests: shuffling the pairing makes x and y independent, so the null is "the pairing carries no
    information" (no alignment at all), not "no imbalance": a small p says the towers are aligned, and nothing about
    which one is the bottleneck. For that question, with a null of no imbalance, use
    :func:`torchspectral.imbalance_verdict` (its interval excludes 0 exactly when its test of ΔS = 0 rejects).

    p-value (two-sided) = (1 + #{|ΔSAS_π| ≥ |ΔSAS|}) / (1 + n_perm). ``eps`` as in :func:`torchspectral.sas`
    (None: the scale-free default; shuffling the pairing leaves both variances, and so ε, unchanged).

    Example:
        >>> import torch, torchspectral as ts
        >>> x = torch.randn(400, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> r = ts.permutation_test(x, x @ torch.diag(torch.arange(1.0, 7.0, dtype=torch.float64)), n_perm=99)
        >>> r.null.shape, r.p_value
        (torch.Size([99]), 0.01)
    """
    x, y = check_pair(x, y, "permutation_test", same_dim="SAS needs one shared space", nan_policy=nan_policy)
    check_q(q, "permutation_test")
    if not isinstance(n_perm, int) or n_perm < 1:
        raise ValueError(f"permutation_test: n_perm must be a positive integer, got {n_perm!r}")
    with torch.no_grad():
        m = Moments.from_data(x, y, metric="permutation_test")
        eps = sas_eps(m, eps, "permutation_test")
        observed = float(m.spectral_alignment(q=q, eps=eps).imbalance)
        xc, yc = x.double() - m.mean_x, y.double() - m.mean_y
        directions = []
        for anchor in ("x", "y"):
            modes = anchor_modes(m, anchor, eps)
            active = active_masks(modes.eigenvalues, q)[0]
            vectors, lam = modes.eigenvectors[:, active], modes.eigenvalues[active]
            directions.append((xc @ vectors, yc @ vectors, lam, modes.other_variance[active]))
        generator = torch.Generator().manual_seed(seed)
        null = torch.empty(n_perm, dtype=torch.float64)
        for i in range(n_perm):
            perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
            scores = []
            for zx, zy, lam, other_variance in directions:
                # Permuting the pairing changes only the cross terms; λ and σ² are the unpermuted ones.
                scores.append(sas_score(lam, (zx * zy[perm]).mean(0), other_variance, eps)[0])
            null[i] = scores[0] - scores[1]
    exceed = int((null.abs() >= abs(observed)).sum())
    return PermutationResult(observed=observed, null=null, p_value=(1 + exceed) / (1 + n_perm))
