"""Alignment metrics as losses (SPEC §10): 1 − SAS (+ γ|ΔSAS|), 1 − CKA, MMD², deep CORAL.

Each is the functional metric with a sign, so gradients are exactly the metric's: the spectral ones go
through the degeneracy-safe eigendecomposition backward and stay finite on repeated eigenvalues.
"""

from __future__ import annotations

import torch
from torch import nn

import torchspectral.functional as F


class SASLoss(nn.Module):
    """``1 − SAS_sym`` (+ ``γ·|ΔSAS|`` to penalise a one-sided alignment). Shape: (B, d), (B, d) → ().

    Example:
        >>> import torch, torchspectral as ts
        >>> x = torch.randn(256, 8, generator=torch.Generator().manual_seed(0))
        >>> float(ts.nn.SASLoss()(x, x)) < 1e-6
        True
    """

    def __init__(self, q: float = 0.1, gamma: float = 0.0, eps: float = 1e-8) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"SASLoss: gamma must be ≥ 0, got {gamma}")
        self.q, self.gamma, self.eps = q, float(gamma), eps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        result = F.spectral_alignment(x, y, q=self.q, eps=self.eps)
        loss = 1 - result.symmetric
        return loss + self.gamma * result.imbalance.abs() if self.gamma else loss


class CKALoss(nn.Module):
    """``1 − CKA`` (linear or RBF, biased or unbiased). Shape: (B, d_x), (B, d_y) → ()."""

    def __init__(self, kernel: str = "linear", unbiased: bool = False, sigma: float | None = None) -> None:
        super().__init__()
        self.kernel, self.unbiased, self.sigma = kernel, unbiased, sigma

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 1 - F.cka(x, y, kernel=self.kernel, unbiased=self.unbiased, sigma=self.sigma)


class MMDLoss(nn.Module):
    """Squared RBF MMD between the two batches (they may differ in size). Shape: (B, d), (M, d) → ()."""

    def __init__(self, sigma: float | str | list[float] = "median", estimator: str = "unbiased") -> None:
        super().__init__()
        self.sigma, self.estimator = sigma, estimator

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mmd(x, y, sigma=self.sigma, estimator=self.estimator)


class CORALLoss(nn.Module):
    """Deep CORAL, ``‖C_x − C_y‖²_F / (4d²)``. Shape: (B, d), (B, d) → ()."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.coral(x, y, scale="deep")
