"""Centered Kernel Alignment (SPEC §2), linear kernel, from feature-space moments (never n×n).

Biased: ``CKA = ‖XcᵀYc‖²_F / (‖XcᵀXc‖_F ‖YcᵀYc‖_F)``.

Unbiased (Song et al. 2012 HSIC U-statistic on K = XXᵀ, L = YYᵀ with zeroed diagonals):
``HSIC_u = [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n−1)(n−2)) − 2/(n−2)·1ᵀK̃L̃1] / (n(n−3))``. For linear
kernels each term is a feature-space sum (a_i = ‖x_i‖², b_i = ‖y_i‖², S_x = Σx_i):
``tr(K̃L̃) = ‖XᵀY‖²_F − Σ a_i b_i``, ``1ᵀK̃1 = ‖S_x‖² − Σ a_i``,
``1ᵀK̃L̃1 = S_xᵀ XᵀY S_y − S_xᵀ Σ b_i x_i − S_yᵀ Σ a_i y_i + Σ a_i b_i``.
The estimator is translation invariant, so it is evaluated about the mean, where it is best conditioned.
"""

from __future__ import annotations

import torch

from torchspectral.moments import Moments


def _hsic_u(
    n: int, trace: torch.Tensor, ones_k: torch.Tensor, ones_l: torch.Tensor, ones_kl: torch.Tensor
) -> torch.Tensor:
    return (trace + ones_k * ones_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * ones_kl) / (n * (n - 3))


def _unbiased_hsic_terms(m: Moments) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """HSIC_u(K, L), HSIC_u(K, K), HSIC_u(L, L) from the centred moments."""
    s, n = m.centred().sums, m.n
    sx, sy = s["sum_x"], s["sum_y"]
    ones_k, ones_l = sx @ sx - s["sum_a"], sy @ sy - s["sum_b"]
    kl = _hsic_u(
        n,
        (s["sum_xy"] ** 2).sum() - s["sum_ab"],
        ones_k,
        ones_l,
        sx @ s["sum_xy"] @ sy - sx @ s["sum_b_x"] - sy @ s["sum_a_y"] + s["sum_ab"],
    )
    kk = _hsic_u(
        n,
        (s["sum_xx"] ** 2).sum() - s["sum_aa"],
        ones_k,
        ones_k,
        sx @ s["sum_xx"] @ sx - 2 * sx @ s["sum_a_x"] + s["sum_aa"],
    )
    ll = _hsic_u(
        n,
        (s["sum_yy"] ** 2).sum() - s["sum_bb"],
        ones_l,
        ones_l,
        sy @ s["sum_yy"] @ sy - 2 * sy @ s["sum_b_y"] + s["sum_bb"],
    )
    return kl, kk, ll


def linear_cka_from_moments(m: Moments, unbiased: bool = False) -> torch.Tensor:
    metric = "cka(unbiased=True)" if unbiased else "cka"
    if unbiased:
        m.require_pairs(metric, 4, "the unbiased HSIC estimator divides by n(n−3)")
        kl, kk, ll = _unbiased_hsic_terms(m)
        if not bool(kk > 0) or not bool(ll > 0):
            raise ValueError(
                f"{metric}: the unbiased self-HSIC of {'x' if not bool(kk > 0) else 'y'} is not positive "
                f"(HSIC_u(x,x)={float(kk):.3g}, HSIC_u(y,y)={float(ll):.3g}); too few pairs or a constant modality"
            )
        # May be negative for unrelated representations; not clamped (SPEC §2).
        return kl / torch.sqrt(kk * ll)
    m.require_pairs(metric, 2, "a covariance needs two pairs")
    s = m.centred().sums
    norm_xx, norm_yy = torch.linalg.matrix_norm(s["sum_xx"]), torch.linalg.matrix_norm(s["sum_yy"])
    if not bool(norm_xx > 0) or not bool(norm_yy > 0):
        raise ValueError(f"{metric}: {'x' if not bool(norm_xx > 0) else 'y'} has zero variance; CKA is undefined")
    return (s["sum_xy"] ** 2).sum() / (norm_xx * norm_yy)


def cka(
    x: torch.Tensor,
    y: torch.Tensor,
    kernel: str = "linear",
    unbiased: bool = False,
    sigma: float | None = None,
    threshold: float = 1.0,
    *,
    nan_policy: str = "raise",
) -> torch.Tensor:
    """Centered Kernel Alignment between x (n, d_x) and y (n, d_y); d_x may differ from d_y.

    Args:
        kernel: "linear" (feature-space moments, O(n·d + d²) memory). The RBF kernel needs all
            n² pairs and is served by the pairwise engine, which this release does not include yet.
        unbiased: the debiased HSIC U-statistic (needs n ≥ 4; may be negative, never clamped).
        sigma, threshold: RBF bandwidth options (reserved for kernel="rbf").

    Shape: x (n, d_x), y (n, d_y) → ().

    Example:
        >>> import torch, torchspectral as ts
        >>> x = torch.randn(300, 12, generator=torch.Generator().manual_seed(0))
        >>> round(float(ts.cka(x, 3 * x + 1)), 6)
        1.0
    """
    if kernel != "linear":
        if kernel == "rbf":
            raise NotImplementedError(
                "cka: kernel='rbf' needs the pairwise (tile-streaming) engine, not in this release"
            )
        raise ValueError(f"cka: kernel must be 'linear' or 'rbf', got {kernel!r}")
    m = Moments.from_data(x, y, nan_policy=nan_policy, metric="cka")
    return linear_cka_from_moments(m, unbiased=unbiased)
