"""Losses that close the modality gap (docs/definitions.md#losses; Grassucci, Cicchetti, Comminiello).

* AlignTruePairs: ``L_ATP = mean_i ‖x̂_i − ŷ_i‖^α`` (α = 2) pulls each true pair together.
* CentroidUniformity: ``c_i = normalize((x̂_i + ŷ_i)/2)``, ``L_CU = log mean_{i<j} exp(−t‖c_i − c_j‖²)``
  (t = 2) spreads the pair centroids over the sphere; computed with logsumexp, stable for large batches.
* GapClosing: ``L = L_CLIP + λ1·L_ATP + λ2·L_CU`` with constant weights or the published schedule.
"""

from __future__ import annotations

import math

import torch

from torchspectral.nn.base import Loss
from torchspectral.nn.contrastive import CLIPLoss, normalised_pair
from torchspectral.validation import check_positive, checking_values


class AlignTruePairsLoss(Loss):
    """``mean_i ‖x̂_i − ŷ_i‖^α`` (α = 2 by default). Shape: x (B, d), y (B, d) → ().

    Example:
        >>> import torch, torchspectral as ts
        >>> x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
        >>> float(ts.nn.AlignTruePairsLoss()(x, 2 * x))
        0.0
    """

    def __init__(self, alpha: float = 2.0, normalize: bool = True, *, validate_args: bool | str = "first") -> None:
        super().__init__(validate_args)
        self.alpha, self.normalize = check_positive(alpha, "alpha", "AlignTruePairsLoss"), normalize

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = normalised_pair(x, y, self.normalize, "AlignTruePairsLoss")
        squared = ((x - y) ** 2).sum(1)
        # ‖·‖^α as (‖·‖²)^(α/2): for α = 2 no square root, so the gradient stays finite at a perfect pair.
        return (squared if self.alpha == 2.0 else squared ** (self.alpha / 2)).mean()


class CentroidUniformityLoss(Loss):
    """``log mean_{i<j} exp(−t‖c_i − c_j‖²)`` over normalised pair centroids c_i (t = 2). Needs B ≥ 2.

    Uses ``‖c_i − c_j‖² = 2 − 2⟨c_i, c_j⟩`` (unit vectors) and a logsumexp over the strict upper triangle,
    so it stays finite for large batches (B = 8192 is tested). Shape: x (B, d), y (B, d) → ().
    """

    def __init__(self, t: float = 2.0, normalize: bool = True, *, validate_args: bool | str = "first") -> None:
        super().__init__(validate_args)
        self.t, self.normalize = check_positive(t, "t", "CentroidUniformityLoss"), normalize

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = normalised_pair(x, y, self.normalize, "CentroidUniformityLoss")
        b = x.shape[0]
        if b < 2:
            raise ValueError(f"CentroidUniformityLoss: needs at least 2 pairs (it averages over i < j), got {b}")
        mid = (x + y) / 2
        norm = torch.linalg.vector_norm(mid, dim=1)
        if checking_values() and bool((norm == 0).any()):
            raise ValueError("CentroidUniformityLoss: a pair with x̂_i = −ŷ_i has no centroid direction")
        c = mid / norm[:, None]
        exponent = -self.t * (2 - 2 * (c @ c.T))
        # Index pairs, not a boolean mask: masked indexing counts the selected entries on the host.
        i, j = torch.triu_indices(b, b, 1, device=x.device)
        return torch.logsumexp(exponent[i, j], dim=0) - math.log(b * (b - 1) / 2)


def paper_schedule(progress: float) -> tuple[float, float]:
    """The public code's weights (λ1, λ2) at training progress ∈ [0, 1] (docs/definitions.md#losses).

    λ1 = 1 until 50%, then linear to 2 at 100%; λ2 = 1 until 20%, then linear to 0 at 70%, then 0.

        >>> [tuple(round(w, 6) for w in paper_schedule(p)) for p in (0.0, 0.45, 0.75, 1.0)]
        [(1.0, 1.0), (1.0, 0.5), (1.5, 0.0), (2.0, 0.0)]
    """
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"paper_schedule: progress must lie in [0, 1], got {progress}")
    lambda_atp = 1.0 if progress <= 0.5 else 1.0 + (progress - 0.5) / 0.5
    lambda_cu = 1.0 if progress <= 0.2 else max(0.0, (0.7 - progress) / 0.5)
    return lambda_atp, lambda_cu


class GapClosingLoss(Loss):
    """``L_CLIP + λ1·L_ATP + λ2·L_CU``; weights constant (λ1 = λ2 = 1) or ``schedule="paper"``.

    With a schedule, pass ``progress`` (fraction of training done, in [0, 1]) to ``forward``.

    Example:
        >>> import torch, torchspectral as ts
        >>> g = torch.Generator().manual_seed(0)
        >>> loss = ts.nn.GapClosingLoss(schedule="paper")
        >>> x, y = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g)
        >>> loss(x, y, progress=0.75).shape
        torch.Size([])
    """

    def __init__(
        self,
        lambda_atp: float = 1.0,
        lambda_cu: float = 1.0,
        schedule: str | None = None,
        temperature: float = 0.1,
        learnable_temperature: bool = False,
        *,
        validate_args: bool | str = "first",
    ) -> None:
        super().__init__(validate_args)
        if schedule not in (None, "paper"):
            raise ValueError(f"GapClosingLoss: schedule must be None or 'paper', got {schedule!r}")
        self.lambda_atp, self.lambda_cu, self.schedule = float(lambda_atp), float(lambda_cu), schedule
        self.clip = CLIPLoss(temperature, learnable_temperature)
        self.atp = AlignTruePairsLoss()
        self.cu = CentroidUniformityLoss()

    def weights(self, progress: float | None) -> tuple[float, float]:
        if self.schedule is None:
            return self.lambda_atp, self.lambda_cu
        if progress is None:
            raise ValueError("GapClosingLoss: schedule='paper' needs forward(..., progress=fraction of training done)")
        return paper_schedule(progress)

    def forward(self, x: torch.Tensor, y: torch.Tensor, progress: float | None = None) -> torch.Tensor:
        lambda_atp, lambda_cu = self.weights(progress)
        loss = self.clip(x, y) + lambda_atp * self.atp(x, y)
        return loss + lambda_cu * self.cu(x, y) if lambda_cu else loss
