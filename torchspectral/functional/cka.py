"""Centered Kernel Alignment (docs/definitions.md#cka): linear kernel from feature-space moments, RBF kernel from tiled
sums.

Biased: ``CKA = ‖XcᵀYc‖²_F / (‖XcᵀXc‖_F ‖YcᵀYc‖_F)``.

Unbiased (Song et al. 2012 HSIC U-statistic on K = XXᵀ, L = YYᵀ with zeroed diagonals):
``HSIC_u = [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n−1)(n−2)) − 2/(n−2)·1ᵀK̃L̃1] / (n(n−3))``. For linear
kernels each term is a feature-space sum (a_i = ‖x_i‖², b_i = ‖y_i‖², S_x = Σx_i):
``tr(K̃L̃) = ‖XᵀY‖²_F − Σ a_i b_i``, ``1ᵀK̃1 = ‖S_x‖² − Σ a_i``,
``1ᵀK̃L̃1 = S_xᵀ XᵀY S_y − S_xᵀ Σ b_i x_i − S_yᵀ Σ a_i y_i + Σ a_i b_i``.
The estimator is translation invariant, so it is evaluated about the mean, where it is best conditioned.

RBF kernel ``K_ij = exp(−‖x_i − x_j‖²/(2σ_x²))``, ``L_ij`` likewise on y. Both estimators are unchanged by a
constant added to the off-diagonal entries of K or L (the biased one by any constant added to K), so the
engine sums ``K' = K − a_x`` off the diagonal, 0 on it (``L'`` likewise), with ``a`` the typical kernel value
(:func:`torchspectral.pairwise.kernel_level`): small entries on both sides, float32 sums that do not cancel.
From ``Σ K'∘L'``, ``Σ K'∘K'``, ``Σ L'∘L'`` and the row sums ``r_K = K'1``, ``r_L = L'1``, streamed over tiles
(no n×n matrix):

* unbiased: K' is K̃ up to the constant, so ``tr(K̃L̃) → Σ K'∘L'``, ``1ᵀK̃1 → 1ᵀr_K``, ``1ᵀK̃L̃1 → r_Kᵀr_L``;
* biased: ``tr(KHLH) = tr(K°HL°H)`` with ``K° = K' + (1 − a_x)I`` (K minus the constant a_x): with
  ``δ = 1 − a``, ``Σ K°∘L° = Σ K'∘L' + nδ_xδ_y`` and ``K°1 = r_K + δ_x``, and
  ``tr(AHBH) = Σ A∘B − (2/n)(A1)ᵀ(B1) + (1ᵀA1)(1ᵀB1)/n²`` for symmetric A, B.

Default bandwidth (Kornblith et al.): ``σ² = threshold² · median`` of the squared distances over all n²
pairs of the modality (its n zero self-distances included), on the deterministic subsample of
:func:`torchspectral.pairwise.median_subsample` above 4096 rows; it is a constant for gradients.
"""

from __future__ import annotations

from typing import Any

import torch

from torchspectral import pairwise
from torchspectral.distributed import agreement, pairwise_engine
from torchspectral.stats import MomentStatistics
from torchspectral.validation import check_bandwidth, check_min_rows, check_pair, checking_values, with_validate_args


def _hsic_u(
    n: int, trace: torch.Tensor, ones_k: torch.Tensor, ones_l: torch.Tensor, ones_kl: torch.Tensor
) -> torch.Tensor:
    return (trace + ones_k * ones_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * ones_kl) / (n * (n - 3))


def linear_cka_needs(unbiased: bool) -> tuple[str, ...]:
    """The statistics groups linear CKA reads: the covariance blocks, and the HSIC sums for the unbiased form."""
    return ("covariance", "hsic") if unbiased else ("covariance",)


def _unbiased_hsic_terms(m: MomentStatistics) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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


def linear_cka_from_moments(m: MomentStatistics, unbiased: bool = False) -> torch.Tensor:
    metric = "cka(unbiased=True)" if unbiased else "cka"
    if unbiased:
        m.require_pairs(metric, 4, "the unbiased HSIC estimator divides by n(n−3)")
    else:
        m.require_pairs(metric, 2, "a covariance needs two pairs")
    # A constant modality has exactly zero centred sums (the statistics are accumulated around a shift taken from
    # the data), whichever estimator follows: the unbiased terms of such data are rounding noise of either sign.
    s = m.centred().sums
    norm_xx, norm_yy = torch.linalg.matrix_norm(s["sum_xx"]), torch.linalg.matrix_norm(s["sum_yy"])
    if checking_values() and (not bool(norm_xx > 0) or not bool(norm_yy > 0)):
        raise ValueError(f"{metric}: {'x' if not bool(norm_xx > 0) else 'y'} has zero variance; CKA is undefined")
    if unbiased:
        kl, kk, ll = _unbiased_hsic_terms(m)
        if checking_values() and (not bool(kk > 0) or not bool(ll > 0)):
            raise ValueError(
                f"{metric}: the unbiased self-HSIC of {'x' if not bool(kk > 0) else 'y'} is not positive "
                f"(HSIC_u(x,x)={float(kk):.3g}, HSIC_u(y,y)={float(ll):.3g}); too few pairs or a constant modality"
            )
        # May be negative for unrelated representations; not clamped (docs/definitions.md#cka). Two roots, not the root
        # of kk·ll: that product is an eighth power of the data and overflows float64 long before kk and ll do.
        return kl / (torch.sqrt(kk) * torch.sqrt(ll))
    return (s["sum_xy"] ** 2).sum() / (norm_xx * norm_yy)


def _kornblith_sigma(z: torch.Tensor, threshold: float, name: str, metric: str) -> float:
    median = float(pairwise.median_squared_distance_all_pairs(z))
    if not median > 0:
        raise ValueError(
            f"{metric}: the median squared pairwise distance of {name} is 0 (most rows coincide); pass a float sigma"
        )
    return threshold * median**0.5


def check_rbf_settings(sigma: float | None, threshold: float, metric: str) -> None:
    """The bandwidth settings of RBF CKA, checked without the data: the same checks and messages for one process
    and for ``group=`` (where each rank checks them before the ranks agree)."""
    if sigma is None:
        check_bandwidth(threshold, metric, "threshold")
    else:
        check_bandwidth(sigma, metric)


def check_rbf_pairs(n: int, unbiased: bool, metric: str) -> None:
    """The number of pairs RBF CKA needs (on every rank, of the concatenated shards)."""
    if unbiased:
        check_min_rows(n, 4, metric, "the unbiased HSIC estimator divides by n(n−3)")
    else:
        check_min_rows(n, 2, metric, "a centred kernel needs two pairs")


def rbf_cka(
    x: torch.Tensor,
    y: torch.Tensor,
    unbiased: bool = False,
    sigma: float | None = None,
    threshold: float = 1.0,
    *,
    nan_policy: str = "raise",
    backend: str = "auto",
    precision: str | None = None,
) -> torch.Tensor:
    """RBF-kernel CKA (biased or unbiased HSIC) from the tiled kernel sums; see the module docstring."""
    metric = "cka(kernel='rbf', unbiased=True)" if unbiased else "cka(kernel='rbf')"
    return _rbf_cka(x, y, (unbiased,), sigma, threshold, metric, nan_policy, backend, precision)[0]


def rbf_cka_both(
    x: torch.Tensor,
    y: torch.Tensor,
    sigma: float | None = None,
    threshold: float = 1.0,
    *,
    backend: str = "auto",
    precision: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(biased, unbiased) RBF CKA from one pass of tiled kernel sums (half the work of two calls)."""
    metric = "cka(kernel='rbf')"
    biased, unbiased = _rbf_cka(x, y, (False, True), sigma, threshold, metric, "raise", backend, precision)
    return biased, unbiased


def _rbf_cka(x, y, estimators, sigma, threshold, metric, nan_policy, backend, precision=None) -> list[torch.Tensor]:
    x, y = check_pair(x, y, metric, nan_policy=nan_policy)
    n = x.shape[0]
    check_rbf_pairs(n, any(estimators), metric)
    check_rbf_settings(sigma, threshold, metric)
    if sigma is None:
        threshold = check_bandwidth(threshold, metric, "threshold")
        sigma_x = _kornblith_sigma(x, threshold, "x", metric)
        sigma_y = _kornblith_sigma(y, threshold, "y", metric)
    else:
        sigma_x = sigma_y = check_bandwidth(sigma, metric)
    chosen = pairwise.resolve_backend(backend, metric, x, y)
    precision = pairwise.resolve_precision(precision, chosen, metric, x, y)
    sums, r_k, r_l, a_x, a_y = pairwise.rbf_cka_sums(x, y, sigma_x, sigma_y, backend=chosen, precision=precision)
    return rbf_cka_from_sums(n, sums, r_k, r_l, a_x, a_y, estimators, metric)


def rbf_cka_from_sums(n, sums, r_k, r_l, a_x, a_y, estimators, metric) -> list[torch.Tensor]:
    """The RBF CKA values (one per entry of ``estimators``: unbiased or not) from the tiled kernel sums."""
    s_kl, s_kk, s_ll = sums[0], sums[1], sums[2]
    values = []
    for unbiased in estimators:
        # Sums of K' = K − a off the diagonal, 0 on it (see the module docstring).
        if unbiased:
            ones_k, ones_l = r_k.sum(), r_l.sum()
            kl = _hsic_u(n, s_kl, ones_k, ones_l, r_k @ r_l)
            kk = _hsic_u(n, s_kk, ones_k, ones_k, r_k @ r_k)
            ll = _hsic_u(n, s_ll, ones_l, ones_l, r_l @ r_l)
        else:
            delta_x, delta_y = 1.0 - a_x, 1.0 - a_y
            rk, rl = r_k + delta_x, r_l + delta_y

            def centred_trace(s_ab: torch.Tensor, r_a: torch.Tensor, r_b: torch.Tensor) -> torch.Tensor:
                return s_ab - 2.0 / n * (r_a @ r_b) + r_a.sum() * r_b.sum() / n**2

            kl = centred_trace(s_kl + n * delta_x * delta_y, rk, rl)
            kk = centred_trace(s_kk + n * delta_x**2, rk, rk)
            ll = centred_trace(s_ll + n * delta_y**2, rl, rl)
        if checking_values() and (not bool(kk > 0) or not bool(ll > 0)):
            raise ValueError(
                f"{metric}: the self-HSIC of {'x' if not bool(kk > 0) else 'y'} is not positive "
                f"(HSIC(x,x)={float(kk):.3g}, HSIC(y,y)={float(ll):.3g}); too few pairs or a constant modality"
            )
        # The unbiased value may be negative for unrelated representations; not clamped (docs/definitions.md#cka).
        values.append(kl / torch.sqrt(kk * ll))
    return values


@with_validate_args
def cka(
    x: torch.Tensor,
    y: torch.Tensor,
    kernel: str = "linear",
    unbiased: bool = False,
    sigma: float | None = None,
    threshold: float = 1.0,
    *,
    nan_policy: str = "raise",
    backend: str = "auto",
    group: Any = None,
    precision: str | None = None,
) -> torch.Tensor:
    """Centered Kernel Alignment between x (n, d_x) and y (n, d_y); d_x may differ from d_y.

    Args:
        kernel: "linear" (feature-space moments, O(n·d + d²) memory) or "rbf" (all n² pairs streamed over
            tiles by the pairwise engine, O(n·d) memory; differentiable in x and y).
        unbiased: the debiased HSIC U-statistic (needs n ≥ 4; may be negative, never clamped).
        sigma: RBF bandwidth σ > 0 used for both modalities; None (default) = Kornblith's per-modality
            σ² = threshold² · median squared pairwise distance (all n² pairs; subsampled above 4096 rows).
        threshold: the Kornblith multiplier (> 0). sigma and threshold apply to kernel="rbf" only.
        backend: "auto" | "torch" | "triton" for kernel="rbf" (see :mod:`torchspectral.pairwise`).
        group: kernel="rbf" only: a ``torch.distributed`` process group; x and y are this rank's shard of the
            pairs (the data is their concatenation in rank order; a shard may be empty) and every rank gets the
            global value, equal to one process to float64 rounding, with the same bandwidths
            (:mod:`torchspectral.distributed.pairwise_engine`; a collective; not differentiable). For linear CKA across
            ranks, all-reduce a :class:`~torchspectral.Moments` instead. None (default): one process.
        precision: of the RBF distance GEMMs on float32 data, for kernel="rbf": None (default: "tf32x3" for the
            kernels on CUDA, "ieee" otherwise), "ieee", "tf32x3", "tf32" or "bf16"
            (:mod:`torchspectral.pairwise.precision` derives the accuracy of each).

    Shape: x (n, d_x), y (n, d_y) → ().

    Example:
        >>> import torch, torchspectral as ts
        >>> x = torch.randn(300, 12, generator=torch.Generator().manual_seed(0))
        >>> round(float(ts.cka(x, 3 * x + 1)), 6)
        1.0
        >>> round(float(ts.cka(x, x + 1, kernel="rbf")), 6)
        1.0
    """
    if kernel == "rbf":
        if group is not None:
            agreement.refuse_precision("cka", precision)
            return _rbf_cka_across(x, y, unbiased, sigma, threshold, nan_policy, backend, group)
        return rbf_cka(x, y, unbiased, sigma, threshold, nan_policy=nan_policy, backend=backend, precision=precision)
    if group is not None:
        raise ValueError(
            "cka: group= applies to kernel='rbf'; linear CKA is a function of additive moments: "
            "ts.Moments.from_data(x, y).all_reduce(group).cka(unbiased=...)"
        )
    if kernel != "linear":
        raise ValueError(f"cka: kernel must be 'linear' or 'rbf', got {kernel!r}")
    if precision is not None:
        raise ValueError("cka: precision sets the RBF kernel's distance GEMMs; it does not apply to kernel='linear'")
    if sigma is not None or threshold != 1.0:
        raise ValueError("cka: sigma and threshold set the RBF bandwidth; they do not apply to kernel='linear'")
    m = MomentStatistics.from_data(x, y, nan_policy=nan_policy, metric="cka", groups=linear_cka_needs(unbiased))
    return linear_cka_from_moments(m, unbiased=unbiased)


def _rbf_cka_across(x, y, unbiased, sigma, threshold, nan_policy, backend, group) -> torch.Tensor:
    """:func:`rbf_cka` on this rank's shard of the pairs (see ``group`` in :func:`cka`)."""
    metric = "cka(kernel='rbf', unbiased=True)" if unbiased else "cka(kernel='rbf')"

    def local() -> dict:
        agreement.check_group_options(metric, nan_policy, backend)
        facts = {"x": agreement.describe_shard(x, "x", metric), "y": agreement.describe_shard(y, "y", metric)}
        if facts["x"]["n"] != facts["y"]["n"]:
            raise ValueError(
                f"{metric}: x and y must hold the same number of paired rows, got {facts['x']['n']} and "
                f"{facts['y']['n']} on this rank"
            )
        agreement.reject_grad(metric, x, y)
        check_rbf_settings(sigma, threshold, metric)
        # A pair is bad when either side is: count the rows of the pair, not of each side.
        facts["bad"] = int((~(torch.isfinite(x).all(1) & torch.isfinite(y).all(1))).sum()) if x.shape[0] else 0
        return facts

    facts = agreement.agree(local, group)
    fx, fy = [f["x"] for f in facts], [f["y"] for f in facts]
    n = sum(f["n"] for f in fx)
    d_x, d_y = agreement.width(fx, "x", metric), agreement.width(fy, "y", metric)
    bad = sum(f["bad"] for f in facts)
    if bad:
        raise ValueError(f"{metric}: {bad} of {n} pairs contain NaN or Inf (across the ranks)")
    check_rbf_pairs(n, unbiased, metric)
    dtype = agreement.compute_dtype_across(metric, n, max(d_x, d_y), fx, fy)
    counts = [f["n"] for f in fx]
    if sigma is None:
        threshold = check_bandwidth(threshold, metric, "threshold")
        # Each modality's median in its own precision, on the rows one process takes it on.
        # (float64 when its shards are, or when the values were too large for float32 and everything moved).
        moved = dtype == torch.float64 and not any(f["float64"] for f in (*fx, *fy))
        own = {
            name: torch.float64 if moved or any(f["float64"] for f in parts) else torch.float32
            for name, parts in (("x", fx), ("y", fy))
        }
        size = pairwise.MEDIAN_SUBSAMPLE
        xs = pairwise_engine.sample_rows_at(agreement.as_rows(x, d_x, own["x"]), counts, size, own["x"], group)
        ys = pairwise_engine.sample_rows_at(agreement.as_rows(y, d_y, own["y"]), counts, size, own["y"], group)
        sigma_x = _kornblith_sigma(xs, threshold, "x", metric)
        sigma_y = _kornblith_sigma(ys, threshold, "y", metric)
    else:
        sigma_x = sigma_y = check_bandwidth(sigma, metric)
    x, y = agreement.as_rows(x, d_x, dtype), agreement.as_rows(y, d_y, dtype)
    x0 = x - agreement.global_mean((x,), n, group).to(dtype)
    y0 = y - agreement.global_mean((y,), n, group).to(dtype)
    cx, cy = 1.0 / (2.0 * float(sigma_x) ** 2), 1.0 / (2.0 * float(sigma_y) ** 2)
    level_rows = pairwise.LEVEL_SUBSAMPLE
    ax = pairwise.kernel_level(pairwise_engine.sample_rows_at(x0, counts, level_rows, dtype, group), (cx,))
    ay = pairwise.kernel_level(pairwise_engine.sample_rows_at(y0, counts, level_rows, dtype, group), (cy,))
    sums, r_k, r_l = pairwise_engine.cka_sums_across(x0, y0, cx, cy, ax, ay, counts, group)
    return rbf_cka_from_sums(n, sums, r_k, r_l, ax, ay, (unbiased,), metric)[0]
