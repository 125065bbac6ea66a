"""Maximum Mean Discrepancy with the RBF kernel (docs/definitions.md#mmd), streamed over tiles of pairs (never n×m).

With ``k(u, v) = Σ_σ exp(−‖u − v‖²/(2σ²))`` (one σ, or the sum of the kernels of several), samples
x (n rows) and y (m rows):

* biased (V-statistic, all n² / m² / nm terms):
  ``MMD² = mean_ij k(x_i,x_j) + mean_ij k(y_i,y_j) − 2 mean_ij k(x_i,y_j)`` (≥ 0);
* unbiased (U-statistic): the within-sample means exclude i = j (divide by n(n−1), m(m−1)); the cross mean
  divides by n·m. May be negative; never clamped.

Both are unchanged by a constant added to k, so the pair sums are taken of ``k − a`` with ``a`` the typical
kernel value (:func:`torchspectral.pairwise.kernel_level`): the shifted entries are small on both sides and
their float32 sums do not cancel, however wide or narrow σ is. With ``S_xx = Σ_{i≠j} (k(x_i,x_j) − a)``,
``S_yy`` likewise, ``S_xy = Σ_ij (k(x_i,y_j) − a)`` and ``k₀ = k(u,u)`` = the number of σ:
unbiased ``MMD² = S_xx/(n(n−1)) + S_yy/(m(m−1)) − 2S_xy/(nm)``, biased
``MMD² = (S_xx + n(k₀−a))/n² + (S_yy + m(k₀−a))/m² − 2S_xy/(nm)``.

The value returned is the squared MMD times ``scale``.

Bandwidth ``"median"``: Gretton's heuristic, the median Euclidean distance over the distinct pairs i < j of
the pooled sample [x; y] (numpy's median: the mean of the two middle values for an even count). Above
4096 pooled rows it is taken on the deterministic, evenly spaced subsample of rows ``floor(k·N/4096)``,
k = 0…4095 (:func:`torchspectral.pairwise.median_subsample`). The bandwidth is a statistic of the data
used as a constant: gradients do not flow through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from torchspectral import pairwise
from torchspectral.distributed import agreement, pairwise_engine
from torchspectral.validation import check_bandwidth, check_sample, is_finite_number, with_validate_args

ESTIMATORS = ("biased", "unbiased")


def check_settings(sigma: float | Sequence[float] | str, estimator: str, scale: float, metric: str) -> None:
    """The settings of :func:`mmd`, checked without the data: the same checks and messages for one process and
    for ``group=`` (where each rank checks them before the ranks agree)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"{metric}: estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if not is_finite_number(scale):
        raise ValueError(f"{metric}: scale must be a finite number, got {scale!r}")
    if isinstance(sigma, str):
        if sigma != "median":
            raise ValueError(f"{metric}: sigma must be a positive number, a list of them, or 'median', got {sigma!r}")
    elif isinstance(sigma, Sequence):
        if len(sigma) == 0:
            raise ValueError(f"{metric}: sigma is an empty list; give at least one bandwidth")
        for s in sigma:
            check_bandwidth(s, metric)
    else:
        check_bandwidth(sigma, metric)


def check_sizes(n: int, m: int, d_x: int, d_y: int, estimator: str, metric: str) -> None:
    """The checks of :func:`mmd` on the sizes of the samples (on every rank, of the concatenated shards)."""
    if d_x != d_y:
        raise ValueError(
            f"{metric}: needs d_x = d_y (the kernel compares rows of x with rows of y), got d_x={d_x}, d_y={d_y}"
        )
    if estimator == "unbiased" and min(n, m) < 2:
        raise ValueError(
            f"{metric}: the unbiased estimator needs at least 2 rows in each sample (it divides by n(n−1)), "
            f"got n={n}, m={m}"
        )


def resolve_sigmas(sigma: float | Sequence[float] | str, x: torch.Tensor, y: torch.Tensor, metric: str) -> list[float]:
    """The list of bandwidths: one float, several floats (sum of kernels) or the pooled-sample median (of the
    rows of x and y). The form of ``sigma`` is checked by :func:`check_settings`."""
    if isinstance(sigma, str):
        median = float(pairwise.median_pairwise_distance(pairwise.pooled_subsample(x.detach(), y.detach())))
        if not median > 0:
            raise ValueError(
                f"{metric}: the median pairwise distance of the pooled sample is 0 (most rows coincide); "
                "pass a float sigma"
            )
        return [median]
    if isinstance(sigma, Sequence):
        return [check_bandwidth(s, metric) for s in sigma]
    return [check_bandwidth(sigma, metric)]


@with_validate_args
def mmd(
    x: torch.Tensor,
    y: torch.Tensor,
    sigma: float | Sequence[float] | str = "median",
    estimator: str = "unbiased",
    scale: float = 1.0,
    *,
    nan_policy: str = "raise",
    backend: str = "auto",
    group: Any = None,
    precision: str | None = None,
) -> torch.Tensor:
    """Squared RBF-kernel MMD between the samples x (n, d) and y (m, d); n and m may differ.

    Args:
        sigma: a bandwidth σ > 0, a list of them (the kernel is the sum of their RBF kernels), or
            ``"median"`` (pooled-sample median distance; deterministic subsample above 4096 rows).
        estimator: ``"unbiased"`` (U-statistic, may be negative; needs n, m ≥ 2) or ``"biased"`` (V-statistic).
        scale: multiplies the result (the source paper reported ``100·MMD²`` with σ = 10, biased).
        nan_policy: ``"raise"`` (default) or ``"omit"`` (drop the rows of x and of y holding NaN/Inf).
        backend: ``"auto"`` | ``"torch"`` | ``"triton"`` (see :mod:`torchspectral.pairwise`).
        group: a ``torch.distributed`` process group: x and y are this rank's shards of the two samples (the
            samples are their concatenations in rank order; a shard may be empty) and every rank gets the
            global value, equal to one process on the concatenated samples to float64 rounding, with the
            same median bandwidth (:mod:`torchspectral.distributed.pairwise_engine`; a collective).
            Differentiable: each rank gets the gradient of its own rows, the backward needs no communication
            (the convention of :mod:`torchspectral.distributed.reduction`). None (default): one process.
        precision: of the distance GEMMs on float32 data: None (default: ``"tf32x3"`` for the kernels on CUDA,
            ``"ieee"`` otherwise), ``"ieee"``, ``"tf32x3"``, ``"tf32"`` or ``"bf16"``; the accuracy of each is
            derived in :mod:`torchspectral.pairwise.precision` (worst case, tf32/bf16 cannot resolve an MMD²
            below ≈ 2.4e-3/σ and 1.9e-2/σ, σ in units of the row norm).

    Memory beyond the inputs is O((n + m)·d) plus one tile; differentiable in x and y.

    Shape: x (n, d), y (m, d) → () float64.

    Example:
        >>> import torch, torchspectral as ts
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(500, 8, generator=g)
        >>> same = ts.mmd(x, torch.randn(400, 8, generator=g), sigma=3.0)
        >>> shifted = ts.mmd(x, torch.randn(400, 8, generator=g) + 1.0, sigma=3.0)
        >>> bool(abs(same) < 0.01 < shifted)
        True
    """
    metric = "mmd"
    if group is not None:
        agreement.refuse_precision(metric, precision)
        return _mmd_across(x, y, sigma, estimator, scale, nan_policy, backend, group)
    x = check_sample(x, "x", metric, nan_policy)
    y = check_sample(y, "y", metric, nan_policy)
    if x.device != y.device:
        raise ValueError(f"{metric}: x is on {x.device} but y is on {y.device}")
    n, m = x.shape[0], y.shape[0]
    check_sizes(n, m, x.shape[1], y.shape[1], estimator, metric)
    check_settings(sigma, estimator, scale, metric)
    sigmas = resolve_sigmas(sigma, x, y, metric)
    chosen = pairwise.resolve_backend(backend, metric, x, y)
    precision = pairwise.resolve_precision(precision, chosen, metric, x, y)
    (s_xx, s_yy, s_xy), level = pairwise.rbf_mmd_sums(x, y, sigmas, backend=chosen, precision=precision)
    # Off-diagonal sums of k − level (see the module docstring); the diagonal k(u,u) − level is exact here.
    return scale * mmd_from_sums(s_xx, s_yy, s_xy, n, m, level, len(sigmas), estimator)


def mmd_from_sums(
    s_xx: torch.Tensor,
    s_yy: torch.Tensor,
    s_xy: torch.Tensor,
    n: int,
    m: int,
    level: float,
    kernels: int,
    estimator: str,
) -> torch.Tensor:
    """MMD² from the off-diagonal sums of ``k − level`` (see the module docstring); ``kernels`` = k(u, u)."""
    if estimator == "biased":
        diagonal = kernels - level
        return (s_xx + n * diagonal) / n**2 + (s_yy + m * diagonal) / m**2 - 2.0 * s_xy / (n * m)
    return s_xx / (n * (n - 1)) + s_yy / (m * (m - 1)) - 2.0 * s_xy / (n * m)


def _mmd_across(x, y, sigma, estimator, scale, nan_policy, backend, group) -> torch.Tensor:
    """:func:`mmd` on this rank's shards of the two samples (see ``group``)."""
    metric = "mmd"

    def local() -> dict:
        agreement.check_group_options(metric, nan_policy, backend)
        check_settings(sigma, estimator, scale, metric)
        return {"x": agreement.describe_shard(x, "x", metric), "y": agreement.describe_shard(y, "y", metric)}

    facts = agreement.agree(local, group)
    fx, fy = [f["x"] for f in facts], [f["y"] for f in facts]
    n, m = sum(f["n"] for f in fx), sum(f["n"] for f in fy)
    d_x, d_y = agreement.width(fx, "x", metric), agreement.width(fy, "y", metric)
    for name, parts, total in (("x", fx, n), ("y", fy, m)):
        bad = sum(f["bad"] for f in parts)
        if bad:
            raise ValueError(f"{metric}: {bad} of {total} rows of {name} contain NaN or Inf (across the ranks)")
    check_sizes(n, m, d_x, d_y, estimator, metric)
    # As check_sample does per sample: a sample out of float32's range is computed in float64.
    dtype = max(
        (
            agreement.compute_dtype_across(metric, n, d_x, fx, names=("x",)),
            agreement.compute_dtype_across(metric, m, d_x, fy, names=("y",)),
        ),
        key=lambda t: t.itemsize,
    )
    inputs = (x, y)
    x, y = agreement.as_rows(x, d_x, dtype), agreement.as_rows(y, d_x, dtype)
    x_counts, y_counts = [f["n"] for f in fx], [f["n"] for f in fy]
    if isinstance(sigma, str):
        pooled = pairwise_engine.pooled_rows_at(x, y, x_counts, y_counts, pairwise.MEDIAN_SUBSAMPLE, dtype, group)
        sigmas = resolve_sigmas(sigma, pooled, pooled[:0], metric)  # the rows one process takes its median on
    else:
        sigmas = resolve_sigmas(sigma, x, y, metric)
    coefs = tuple(1.0 / (2.0 * float(s) ** 2) for s in sigmas)
    level = pairwise.kernel_level(
        pairwise_engine.pooled_rows_at(x, y, x_counts, y_counts, pairwise.LEVEL_SUBSAMPLE, dtype, group), coefs
    )
    mean = agreement.global_mean((x, y), n + m, group)
    x0, y0 = x - mean.to(dtype), y - mean.to(dtype)
    s_xx, s_yy, s_xy = pairwise_engine.mmd_sums_across(x0, y0, coefs, level, x_counts, y_counts, group)
    value = scale * mmd_from_sums(s_xx, s_yy, s_xy, n, m, level, len(sigmas), estimator)
    # Every rank must agree on whether the gradient pass runs (it is a collective).
    wants_grad = any(agreement.agree(lambda: torch.is_grad_enabled() and any(t.requires_grad for t in inputs), group))
    if not wants_grad:
        return value
    g_xx, g_xy_x, g_yy, g_xy_y = pairwise_engine.mmd_sum_grads_across(x0, y0, coefs, x_counts, y_counts, group)
    # MMD² is linear in the sums: its gradient with respect to this rank's rows, formed now.
    a_x, a_y = (1.0 / (n * (n - 1)), 1.0 / (m * (m - 1))) if estimator == "unbiased" else (1.0 / n**2, 1.0 / m**2)
    grad_x = scale * (a_x * g_xx - 2.0 / (n * m) * g_xy_x)
    grad_y = scale * (a_y * g_yy - 2.0 / (n * m) * g_xy_y)
    return _ShardedValue.apply(value, grad_x, grad_y, *inputs)


class _ShardedValue(torch.autograd.Function):
    """A value computed across ranks whose gradients with respect to this rank's inputs are known already.

    Backward: the upstream gradient times them, without communication: each rank gets exactly ∂L/∂(its rows)
    for a loss L every rank computes from the global value (:mod:`torchspectral.distributed.reduction`'s convention;
    under DistributedDataParallel multiply the loss by the world size).
    """

    @staticmethod
    def forward(ctx, value, grad_x, grad_y, x, y):  # type: ignore[override]
        # An empty shard's input may be (0, 0): its (0, d) gradient takes the input's shape.
        ctx.grads = (grad_x.to(x.dtype).reshape(x.shape), grad_y.to(y.dtype).reshape(y.shape))
        return value.clone()

    @staticmethod
    def backward(ctx, upstream):  # type: ignore[override]
        grad_x, grad_y = ctx.grads
        return None, None, None, upstream.to(grad_x.dtype) * grad_x, upstream.to(grad_y.dtype) * grad_y
