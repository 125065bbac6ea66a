"""What runs where: the one backend resolver (pairwise metrics and the spectral prior), the routine table,
and the pairwise entry points that prepare their inputs once and run the chosen routine.

``ROUTINES[op] = (torch routine, fused routine)``, as geomloss's ``routines[loss][backend]``: both live in
:mod:`~torchspectral.pairwise.chunked`, :mod:`~torchspectral.pairwise.retrieval_counts` or
:mod:`~torchspectral.pairwise.instance`, side by side; the fused one imports its launcher from
``torchspectral.kernels.<op>`` only when it runs (Triton stays optional). ``backend="auto"`` picks Triton for
CUDA tensors when it is installed, the device can run it (:func:`torchspectral.kernels.cuda_unsupported`:
a driver Triton can load, compute capability ≥ 8.0; otherwise the torch path, with one warning per reason)
and the input is not float64, the chunked torch path otherwise; nothing is probed at import. Every
differentiable routine is an autograd Function whose backward is the torch one.

``precision`` (None, "ieee", "tf32x3", "tf32", "bf16"; :mod:`torchspectral.pairwise.precision`) is resolved
here too: None is "tf32x3" for the kernels on CUDA and "ieee" for the torch path and the interpreter; the
torch path honours an explicit choice by rounding its operands, forward and backward.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch

from torchspectral import kernels
from torchspectral.pairwise.bandwidth import LEVEL_SUBSAMPLE, kernel_level, pooled_subsample
from torchspectral.pairwise.chunked import FusedRBFCKASums, FusedRBFMMDSums, RBFCKASums, RBFMMDSums
from torchspectral.pairwise.instance import FusedInstanceScore, InstanceScore
from torchspectral.pairwise.precision import resolve_precision
from torchspectral.pairwise.retrieval_counts import (
    retrieval_ranks_both_torch,
    retrieval_ranks_fused,
    retrieval_ranks_torch,
)
from torchspectral.validation import compute_dtype

BACKENDS = ("auto", "torch", "triton")
_WARNED: set[str] = set()

ROUTINES: dict[str, tuple[Callable, Callable]] = {
    "rbf_mmd_sums": (RBFMMDSums.apply, FusedRBFMMDSums.apply),
    "rbf_cka_sums": (RBFCKASums.apply, FusedRBFCKASums.apply),
    "retrieval_ranks": (retrieval_ranks_torch, retrieval_ranks_fused),
    "instance_score": (InstanceScore.apply, FusedInstanceScore.apply),
}


class Float64Unsupported(ValueError, TypeError):
    """backend='triton' on float64 values: a bad value of ``backend`` for this dtype (both readings hold)."""


def resolve_backend(backend: str, metric: str, *tensors: torch.Tensor) -> str:
    """Turn ``"auto" | "torch" | "triton"`` into the backend that will run, or explain why it cannot."""
    if backend not in BACKENDS:
        raise ValueError(f"{metric}: backend must be one of {BACKENDS}, got {backend!r}")
    on_cuda = bool(tensors) and all(t.is_cuda for t in tensors)
    float64 = compute_dtype(*tensors) == torch.float64
    probe = on_cuda and backend != "torch" and kernels.available()  # backend="torch" never imports triton
    unsupported = kernels.cuda_unsupported(tensors[0].device.index or 0) if probe else None
    if backend == "auto":
        if on_cuda and unsupported is not None and not float64:
            if unsupported not in _WARNED:  # once per reason, not on every call of a training loop
                _WARNED.add(unsupported)
                warnings.warn(f"{metric}: running the chunked torch path: {unsupported}", RuntimeWarning, stacklevel=3)
            return "torch"
        return "triton" if on_cuda and not float64 and kernels.available() else "torch"
    if backend == "triton":
        if not kernels.available():
            raise RuntimeError(f"{metric}: backend='triton' needs the triton package (pip install triton)")
        if unsupported is not None:
            raise RuntimeError(f"{metric}: backend='triton' cannot run here: {unsupported}")
        if not on_cuda and not kernels.interpreting():
            raise ValueError(
                f"{metric}: backend='triton' needs CUDA tensors (or TRITON_INTERPRET=1 to interpret on CPU)"
            )
        if float64:
            raise Float64Unsupported(
                f"{metric}: the Triton kernels compute in float32; use backend='torch' for float64 inputs "
                "(float32 inputs with values too large for float32 arithmetic are computed in float64 too, as are "
                "values too small for it)"
            )
    return backend


def routine(op: str, backend: str) -> Callable:
    """The routine of ``op`` for a resolved backend (``"torch"`` or ``"triton"``)."""
    torch_routine, fused = ROUTINES[op]
    return torch_routine if backend == "torch" else fused


def _shift(t: torch.Tensor, mean: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.to(dtype) - mean.to(dtype)


def rbf_mmd_sums(
    x: torch.Tensor, y: torch.Tensor, sigmas: Sequence[float], backend: str = "torch", precision: str | None = None
) -> tuple[torch.Tensor, float]:
    """``([S_xx, S_yy, S_xy], a)``: sums of ``k − a`` over the pairs i ≠ j of x, of y, and all pairs (x_i, y_j).

    ``k = Σ_σ exp(−‖u − v‖²/(2σ²))`` and ``a`` = :func:`kernel_level` of the pooled sample (a constant the
    MMD estimators do not depend on, chosen so that the sums do not cancel). float64, differentiable.
    ``backend`` is a resolved one ("torch" or "triton"); ``precision`` of the distance GEMMs (see the module).

    Shape: x (n, d), y (m, d) → (3,), float.

    Example:
        >>> x, y = torch.zeros(3, 2), torch.ones(1, 2)  # ‖x_i − y_j‖² = 2, k = e⁻¹ between the samples
        >>> sums, level = rbf_mmd_sums(x, y, [1.0])
        >>> [round(v + level * count, 6) for v, count in zip(sums.tolist(), (6, 0, 3))]  # Σ k back
        [6.0, 0.0, 1.103638]
    """
    dtype = compute_dtype(x, y)
    precision = resolve_precision(precision, backend, "rbf_mmd_sums", x, y)
    # One shift for both samples: S_xy needs them in the same coordinates. Summed in float64 without a
    # float64 copy of the data (the memory beyond the inputs stays one shifted copy plus the tiles).
    mean = (x.detach().sum(0, dtype=torch.float64) + y.detach().sum(0, dtype=torch.float64)) / (x.shape[0] + y.shape[0])
    coefs = tuple(1.0 / (2.0 * float(s) ** 2) for s in sigmas)
    level = kernel_level(pooled_subsample(x.detach(), y.detach(), LEVEL_SUBSAMPLE), coefs)
    sums = routine("rbf_mmd_sums", backend)(_shift(x, mean, dtype), _shift(y, mean, dtype), coefs, level, precision)
    return sums, level


def rbf_cka_sums(
    x: torch.Tensor,
    y: torch.Tensor,
    sigma_x: float,
    sigma_y: float,
    backend: str = "torch",
    precision: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, float]:
    """``([Σ K'∘L', Σ K'∘K', Σ L'∘L'], K'1, L'1, a_x, a_y)`` (float64, differentiable).

    ``K' = RBF_σx(X, X) − a_x`` off the diagonal and 0 on it, ``L'`` likewise with ``a_y``; the shifts are
    :func:`kernel_level` of each modality (HSIC estimators do not depend on them; they keep the sums
    from cancelling). ``precision`` of the distance GEMMs (see the module).

    Shape: x (n, d_x), y (n, d_y) → (3,), (n,), (n,), float, float.

    Example:
        >>> x = torch.tensor([[0.0], [0.0], [2.0]])  # K = e⁻² between the third row and the others
        >>> sums, row_k, row_l, a_x, a_y = rbf_cka_sums(x, x, 1.0, 1.0)
        >>> [round(v + a_x * 2, 6) for v in row_k.tolist()]  # K1 − 1 (two off-diagonal entries per row)
        [1.135335, 1.135335, 0.270671]
    """
    dtype = compute_dtype(x, y)
    precision = resolve_precision(precision, backend, "rbf_cka_sums", x, y)
    x0 = _shift(x, x.detach().sum(0, dtype=torch.float64) / x.shape[0], dtype)
    y0 = _shift(y, y.detach().sum(0, dtype=torch.float64) / y.shape[0], dtype)
    cx, cy = 1.0 / (2.0 * float(sigma_x) ** 2), 1.0 / (2.0 * float(sigma_y) ** 2)
    ax, ay = kernel_level(x0.detach(), (cx,)), kernel_level(y0.detach(), (cy,))
    sums, row_k, row_l = routine("rbf_cka_sums", backend)(x0, y0, cx, cy, ax, ay, precision)
    return sums, row_k, row_l, ax, ay


def retrieval_ranks(
    x_hat: torch.Tensor,
    y_hat: torch.Tensor,
    caption_to_image: torch.Tensor,
    pessimistic: bool,
    backend: str = "torch",
    precision: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """0-based ranks of the ground truths, image→text (N,) and text→image (M,), on L2-normalised rows.

    Image i: the number of captions of other images whose score beats its best caption's score.
    Caption j: the number of other images whose score beats its image's. "Beats" is ``>`` (optimistic) or
    ``≥`` (pessimistic). Tile by tile: no sort, no top-k, no N×M matrix. ``precision`` of the scores.

    Shape: x_hat (N, d), y_hat (M, d), caption_to_image (M,) int64 → (N,), (M,) int64.

    Example:
        >>> x = torch.eye(2)
        >>> y = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8]])
        >>> [r.tolist() for r in retrieval_ranks(x, y, torch.tensor([0, 1, 1]), pessimistic=False)]
        [[0, 0], [0, 1, 0]]
    """
    precision = resolve_precision(precision, backend, "retrieval_ranks", x_hat, y_hat)
    with torch.no_grad():
        return routine("retrieval_ranks", backend)(x_hat, y_hat, caption_to_image, pessimistic, precision)


def retrieval_ranks_both(
    x_hat: torch.Tensor,
    y_hat: torch.Tensor,
    caption_to_image: torch.Tensor,
    backend: str = "torch",
    precision: str | None = None,
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """:func:`retrieval_ranks` under both tie rules: ((i2t, t2i) optimistic, (i2t, t2i) pessimistic).

    The torch path counts both from one pass over the score tiles (the score GEMM, which dominates, once);
    the fused kernel takes the rule as a compile-time constant, so there it is two launches.

    Example:
        >>> x = torch.eye(2)
        >>> y = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8]])
        >>> [[r.tolist() for r in rule] for rule in retrieval_ranks_both(x, y, torch.tensor([0, 1, 1]))]
        [[[0, 0], [0, 1, 0]], [[1, 0], [0, 1, 0]]]
    """
    precision = resolve_precision(precision, backend, "retrieval_ranks", x_hat, y_hat)
    with torch.no_grad():
        if backend == "torch":
            return retrieval_ranks_both_torch(x_hat, y_hat, caption_to_image, precision)
        fused = routine("retrieval_ranks", backend)
        return tuple(fused(x_hat, y_hat, caption_to_image, rule, precision) for rule in (False, True))
