"""Contrastive losses on paired embeddings (docs/definitions.md#losses): CLIP (InfoNCE both ways) and SigLIP (pairwise
sigmoid)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from torchspectral.nn.base import Loss
from torchspectral.validation import check_pair, check_positive, checking_values, compute_dtype


def normalised_pair(x: torch.Tensor, y: torch.Tensor, normalize: bool, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated rows in the compute dtype (float32 at least, float64 when either input is), L2-normalised.

    Half precision is upcast like every metric does: a float16 row whose norm exceeds 65504 would normalise to 0,
    and logits x̂ŷᵀ/τ need float32 range. Mixed dtypes meet in the wider one. Autograd returns the gradient in
    each input's own dtype.
    """
    x, y = check_pair(x, y, name, same_dim="it compares x_i and y_j in one space")
    cdt = compute_dtype(x, y)
    x, y = x.to(cdt), y.to(cdt)
    if not normalize:
        return x, y
    norm_x, norm_y = torch.linalg.vector_norm(x, dim=1), torch.linalg.vector_norm(y, dim=1)
    zero_x, zero_y = (int((norm_x == 0).sum()), int((norm_y == 0).sum())) if checking_values() else (0, 0)
    if zero_x or zero_y:
        raise ValueError(f"{name}: rows with zero norm cannot be L2-normalised ({zero_x} in x, {zero_y} in y)")
    return x / norm_x[:, None], y / norm_y[:, None]


class CLIPLoss(Loss):
    """Symmetric InfoNCE: the mean of the row- and column-wise cross-entropies of ``x̂ŷᵀ/τ``.

    ``L = ½ [CE(x̂ŷᵀ/τ, I) + CE(ŷx̂ᵀ/τ, I)]``, true pairs on the diagonal. τ = 0.1 fixed by default;
    ``learnable_temperature=True`` learns ``log τ`` (initialised at ``log temperature``).

    Shape: x (B, d), y (B, d) → ().

    Example:
        >>> import torch, torchspectral as ts
        >>> x = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
        >>> loss = ts.nn.CLIPLoss()(x, x)       # perfectly aligned pairs: low loss
        >>> bool(loss < ts.nn.CLIPLoss()(x, x.roll(1, 0)))
        True
    """

    def __init__(
        self,
        temperature: float = 0.1,
        learnable_temperature: bool = False,
        normalize: bool = True,
        *,
        validate_args: bool | str = "first",
    ) -> None:
        super().__init__(validate_args)
        temperature = check_positive(temperature, "temperature", "CLIPLoss")
        # A fixed τ stays a Python float: no rounding to the parameter dtype, no device to follow.
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature))) if learnable_temperature else None
        self.fixed_temperature = float(temperature)
        self.normalize = normalize

    @property
    def temperature(self) -> torch.Tensor | float:
        return self.log_temperature.exp() if self.log_temperature is not None else self.fixed_temperature

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = normalised_pair(x, y, self.normalize, "CLIPLoss")
        logits = x @ y.T / self.temperature
        target = torch.arange(x.shape[0], device=x.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


class SigLIPLoss(Loss):
    """Pairwise sigmoid loss (Zhai et al. 2023): ``−(1/B) Σ_ij log σ(z_ij (t·x̂_i·ŷ_j + b))``.

    z_ij = +1 on the diagonal (true pairs), −1 off it.

    Learnable log-scale ``log t`` (init log 10) and bias ``b`` (init −10), as in the paper.

    Shape: x (B, d), y (B, d) → ().
    """

    def __init__(
        self,
        scale: float = 10.0,
        bias: float = -10.0,
        learnable: bool = True,
        normalize: bool = True,
        *,
        validate_args: bool | str = "first",
    ) -> None:
        super().__init__(validate_args)
        log_scale, b = torch.tensor(math.log(check_positive(scale, "scale", "SigLIPLoss"))), torch.tensor(float(bias))
        if learnable:
            self.log_scale, self.bias = nn.Parameter(log_scale), nn.Parameter(b)
        else:
            self.register_buffer("log_scale", log_scale)
            self.register_buffer("bias", b)
        self.normalize = normalize

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = normalised_pair(x, y, self.normalize, "SigLIPLoss")
        logits = self.log_scale.exp() * (x @ y.T) + self.bias
        signs = 2 * torch.eye(x.shape[0], dtype=logits.dtype, device=x.device) - 1
        return -F.logsigmoid(signs * logits).sum() / x.shape[0]
