"""Which tower is the bottleneck? The subspace imbalance, its interval, and the verdict (docs: "The verdict").

SAS reads one correlation per eigenmode of the anchor. When two eigenvalues are closer than their sampling error,
the sample eigenvectors rotate between the two modes from sample to sample and the per-mode correlations move with
them: per-mode ΔSAS is then not identified, and no interval built on it holds. The verdict therefore reads a
statistic that depends on the anchor's top-q eigen*subspace* only, never on a basis inside it:

    S_{X→Y} = tr(C_xx |K|) / tr(C_xx),    K = sym(C_xx^-½ C_xy C_yy^-½),

where C_xx, C_yy and C_xy are the covariances of x and y projected onto X's top-q eigensubspace (the same active
set as SAS: eigenvalues at or above the (1 − q) quantile), sym(M) = (M + Mᵀ)/2 and |K| is the matrix absolute value
(the same eigenvectors, absolute eigenvalues). Rotating the basis inside the subspace rotates every C and K alike,
so S does not depend on it. When the population covariances share eigenvectors, every C is diagonal in them,
K = diag(ρ_k) and S_{X→Y} = Σ_A λ_k |ρ_k| / Σ_A λ_k: exactly SAS_{X→Y}. The subspace imbalance is
ΔS = S_{X→Y} − S_{Y→X}; its sign reads like ΔSAS's: > 0 when X's dominant subspace is recovered from Y better than
Y's from X, i.e. Y's dominant structure is the one the pair fails to share, and Y is called the bottleneck.

**Estimator.** The plug-in ``tr(Ĉ_xx |K̂|)`` is biased upward wherever K has eigenvalues near zero (a mode one
tower has and the other lacks): |noise| has a positive mean, and at d = 768, n = 2,000 that floor is larger than
the imbalances worth detecting. |K| = sign(K)·K, so the estimator takes the sign from one part of the sample and K
from another: ``t(S, K) = tr(C_xx S K)/tr(C_xx)`` is linear in K for a fixed sign matrix S, and a mode without
correlation contributes noise of mean zero. The sign estimated from part of the data is itself noisy, which costs
a bias proportional to 1/(rows used for the sign); with halves A, B and quarters Q1…Q4 (a seeded split),

    T_half = ½[t(sign K_A, K_B) + t(sign K_B, K_A)],
    T_quarter = ¼[t(sign K_Q1, K_B) + t(sign K_Q2, K_B) + t(sign K_Q3, K_A) + t(sign K_Q4, K_A)],
    T = 2·T_half − T_quarter

removes the leading term of that bias (Richardson extrapolation in the sign's sample size). C_xx, C_yy and the
subspace come from the whole sample.

**Interval.** T is a smooth function of weighted moments once the signs and the subspace are fixed, so its
standard error is the infinitesimal jackknife: the gradient of ΔT with respect to per-row weights (one backward
pass), ``se² = Σ_i (∂ΔT/∂w_i)²``. The interval is ΔT ± z·se. How well it covers the population ΔS, how often a
direction is claimed when there is none and how often the right one is claimed, is measured against planted
models (``benchmarks/coverage_verdict.py``, results in ``docs/verdict.md``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from scipy import stats

from torchspectral.spectral import active_masks, eigh_descending, sas_epsilon, sas_score
from torchspectral.validation import check_pair, check_q

STATISTIC = "subspace_sas_imbalance"
# The verdict needs the quarters' cross-covariances of the k-dimensional projections to be estimable: each quarter
# must hold at least this many rows per active dimension (measured: see docs/verdict.md).
MIN_ROWS_PER_DIMENSION = 6
# C_yy (the other tower's covariance inside the anchor's subspace) must be invertible: its smallest eigenvalue above
# this share of its largest.
MIN_CONDITION = 1e-10
# The estimate averages this many random splits: one split's own randomness (which rows set the signs) is as large
# as the data's sampling sd in some models (measured: docs/verdict.md), and averaging divides its variance.
SPLITS = 8
# Rows are dealt to this many groups once (their moment sums computed once); a split deals groups to quarters.
GROUPS = 64


@dataclass(frozen=True)
class Verdict:
    """Which tower loses the other's dominant structure, and how sure we are.

    Attributes:
        bottleneck: ``names[0]`` or ``names[1]`` (the interval excludes 0 on that side), ``"none"`` (the interval
            contains 0: no imbalance detected at this n) or ``"inconclusive"`` (no interval; ``reason`` says why).
        statistic: what estimate/low/high are: the subspace imbalance ΔS = S_{x→y} − S_{y→x}.
        estimate, low, high: ΔS and its interval (None when inconclusive before estimation).
        reason: the verdict in words, with the reason when inconclusive.
        x_to_y, y_to_x: the two directional subspace scores.
        se: standard error of ``estimate`` (infinitesimal jackknife).
        delta_sas: the per-mode ΔSAS of the same sample (descriptive; not identified where eigenvalues are close).
        agrees: whether ΔSAS has the sign of ``estimate`` (None without both).
        confidence: the interval's nominal coverage.
        n: rows used.
    """

    bottleneck: str
    statistic: str
    estimate: float | None
    low: float | None
    high: float | None
    reason: str
    x_to_y: float | None = None
    y_to_x: float | None = None
    se: float | None = None
    delta_sas: float | None = None
    agrees: bool | None = None
    confidence: float = 0.95
    n: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


class _SymmetricRoot(torch.autograd.Function):
    """C^p (p = ±½) of a symmetric positive-definite C, differentiable with the exact divided differences
    (Daleckii–Krein): ``1/(√λ_i + √λ_j)`` for p = ½ and ``−1/(√λ_i √λ_j (√λ_i + √λ_j))`` for p = −½. They have no
    cancellation, so the backward stays finite for equal eigenvalues (``torch.linalg.eigh``'s backward does not)."""

    @staticmethod
    def forward(ctx, matrix: torch.Tensor, power: float) -> torch.Tensor:  # type: ignore[override]
        values, vectors = torch.linalg.eigh((matrix + matrix.mT) / 2)
        roots = values.sqrt()
        ctx.save_for_backward(roots, vectors)
        ctx.power = power
        return (vectors * (roots if power > 0 else 1 / roots)) @ vectors.mT

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        roots, vectors = ctx.saved_tensors
        ri, rj = roots[:, None], roots[None, :]
        divided = 1 / (ri + rj) if ctx.power > 0 else -1 / (ri * rj * (ri + rj))
        inner = vectors.mT @ ((grad + grad.mT) / 2) @ vectors
        return vectors @ (divided * inner) @ vectors.mT, None


def _matrix_sign(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * torch.sign(values)) @ vectors.mT


def subspace_scores(
    cov_x: torch.Tensor, cov_y: torch.Tensor, cov_xy: torch.Tensor, q: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """The population definition: (S_{x→y}, S_{y→x}) from covariances (module docstring), differentiable.

    Applied to sample covariances this is the plug-in estimate, biased upward by noise where K has eigenvalues
    near zero; :func:`imbalance_verdict` estimates ΔS without that floor. Used for population values and tests.
    """
    check_q(q, "subspace_scores")

    def one(anchor, other, cross):
        values, vectors = eigh_descending(anchor)
        basis = vectors[:, active_masks(values, q)[0]]
        cxx, cyy, cxy = basis.mT @ anchor @ basis, basis.mT @ other @ basis, basis.mT @ cross @ basis
        k = _SymmetricRoot.apply(cxx, -0.5) @ cxy @ _SymmetricRoot.apply(cyy, -0.5)
        values_k, vectors_k = torch.linalg.eigh((k + k.mT) / 2)
        absolute = (vectors_k * values_k.abs()) @ vectors_k.mT
        return torch.trace(cxx @ absolute) / torch.trace(cxx)

    cov_x, cov_y, cov_xy = (c.to(torch.float64) for c in (cov_x, cov_y, cov_xy))
    return one(cov_x, cov_y, cov_xy), one(cov_y, cov_x, cov_xy.mT)


def _group_sums(z: torch.Tensor, weights: torch.Tensor, group: torch.Tensor, groups: int) -> tuple:
    """Per group: Σw (G,), Σw·z (G, p), Σw·zzᵀ (G, p, p); differentiable in the per-row weights."""
    w = torch.zeros(groups, dtype=z.dtype, device=z.device).index_add(0, group, weights)
    first = torch.zeros(groups, z.shape[1], dtype=z.dtype, device=z.device).index_add(0, group, z * weights[:, None])
    second = torch.stack([(z[group == g] * weights[group == g, None]).mT @ z[group == g] for g in range(groups)])
    return w, first, second


def _covariance(sums: tuple, members: torch.Tensor) -> torch.Tensor:
    """The covariance of the rows of the groups ``members`` (bool (G,)) from their sums."""
    w, first, second = (t[members].sum(0) for t in sums)
    mean = first / w
    return second / w - torch.outer(mean, mean)


def _anchor_score(sums: tuple, k: int, quarter: torch.Tensor) -> torch.Tensor:
    """The sign-cross-fitted, extrapolated S of one anchor (module docstring) from the group sums of its
    projections z = [x̃ U, ỹ U] (n × 2k, U the anchor's top-q eigenvectors); ``quarter`` (G,) deals the groups."""
    everyone = torch.ones_like(quarter, dtype=torch.bool)
    full = _covariance(sums, everyone)
    cxx, cyy = full[:k, :k], full[k:, k:]
    white_x, white_y = _SymmetricRoot.apply(cxx, -0.5), _SymmetricRoot.apply(cyy, -0.5)

    def k_of(members):
        m = white_x @ _covariance(sums, members)[:k, k:] @ white_y
        return (m + m.mT) / 2

    half_a, half_b = k_of(quarter < 2), k_of(quarter >= 2)
    quarters = [k_of(quarter == j) for j in range(4)]
    with torch.no_grad():  # the signs are fixed: the score is linear in K given them
        sign_a, sign_b = _matrix_sign(half_a), _matrix_sign(half_b)
        sign_q = [_matrix_sign(m) for m in quarters]
    norm = torch.trace(cxx)

    def t(sign, kk):
        return torch.trace(cxx @ sign @ kk) / norm

    half = (t(sign_a, half_b) + t(sign_b, half_a)) / 2
    quarter_score = (t(sign_q[0], half_b) + t(sign_q[1], half_b) + t(sign_q[2], half_a) + t(sign_q[3], half_a)) / 4
    return 2 * half - quarter_score


def imbalance_verdict(
    x: torch.Tensor,
    y: torch.Tensor,
    q: float = 0.1,
    confidence: float = 0.95,
    seed: int = 0,
    names: tuple[str, str] = ("x", "y"),
    clusters: torch.Tensor | None = None,
    splits: int = SPLITS,
) -> Verdict:
    """Which of two paired embeddings is the bottleneck, from the subspace imbalance ΔS and its interval.

    ΔS > 0 means x's dominant eigensubspace is recovered from y better than y's from x: y (``names[1]``) is the
    bottleneck, as for ΔSAS > 0; ΔS < 0 names x. The interval excludes 0 → that tower; contains 0 → ``"none"``;
    too few rows for the subspaces, or a tower without variance in the other's subspace → ``"inconclusive"`` with
    the reason.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> def draw(*shape):
        ...     return torch.randn(*shape, generator=g, dtype=torch.float64)
        >>> z = draw(4000, 8)                               # 8 shared factors
        >>> image = torch.cat([3 * z, draw(4000, 56)], 1)
        >>> text = torch.cat([3 * z, 4 * draw(4000, 8), draw(4000, 48)], 1)  # + 8 strong text-only directions
        >>> imbalance_verdict(image, text, names=("image", "text")).bottleneck
        'text'

    Args:
        x, y: (n, d) paired rows, the same d (the anchor's subspace is read in the other's space).
        q: the active share of eigenvalues, as SAS's.
        confidence: nominal coverage of the interval.
        seed: the splits into halves and quarters (results are exactly reproducible for a seed).
        names: what to call x and y in ``bottleneck`` and ``reason``.
        clusters: optional (n,) integer ids of rows that are not independent of each other, e.g. the index of the
            image of each caption when an image has several captions: a cluster stays in one quarter, and the
            standard error sums the influence of its rows (a cluster-robust infinitesimal jackknife).
        splits: how many random splits the estimate averages (≥ 1).

    Raises:
        ValueError: not a valid pair (NaN/Inf, different n or d, fewer than 2 rows), q or confidence out of range.
    """
    metric = "imbalance_verdict"
    x, y = check_pair(x, y, metric, same_dim="the anchor's eigensubspace is read in the other tower's space")
    check_q(q, metric)
    if not 0 < confidence < 1:
        raise ValueError(f"{metric}: confidence must lie in (0, 1), got {confidence}")
    if not isinstance(splits, int) or isinstance(splits, bool) or splits < 1:
        raise ValueError(f"{metric}: splits must be a positive integer, got {splits!r}")
    n = x.shape[0]
    if clusters is not None:
        if not isinstance(clusters, torch.Tensor) or clusters.shape != (n,) or clusters.is_floating_point():
            raise ValueError(f"{metric}: clusters must be an integer tensor of shape ({n},), one id per row")
        clusters = clusters.to(x.device)
    x, y = x.detach().to(torch.float64), y.detach().to(torch.float64)
    xc, yc = x - x.mean(0), y - y.mean(0)
    cov_x, cov_y = xc.mT @ xc / n, yc.mT @ yc / n
    cov_xy = xc.mT @ yc / n

    def inconclusive(reason: str, **extra) -> Verdict:
        return Verdict("inconclusive", STATISTIC, None, None, None, reason, confidence=confidence, n=n, **extra)

    bases, counts = [], []
    for cov in (cov_x, cov_y):
        values, vectors = torch.linalg.eigh(cov)
        values, vectors = values.flip(-1), vectors.flip(-1)
        mask = active_masks(values, q)[0]
        bases.append((values, vectors, mask))
        counts.append(int(mask.sum()))
    # The descriptive per-mode ΔSAS from the same eigendecompositions (the package's default ε).
    eps = sas_epsilon(torch.diagonal(cov_x).mean(), torch.diagonal(cov_y).mean(), None)
    per_mode = []
    for (values, vectors, mask), other, cross in ((bases[0], cov_y, cov_xy), (bases[1], cov_x, cov_xy.mT)):
        other_variance = (vectors * (other @ vectors)).sum(0)
        cross_k = (vectors * (cross @ vectors)).sum(0)
        per_mode.append(sas_score(values, cross_k, other_variance, eps, mask)[0])
    delta_sas = float(per_mode[0] - per_mode[1])

    k_max = max(counts)
    if n < 4 * MIN_ROWS_PER_DIMENSION * k_max:
        return inconclusive(
            f"n = {n} rows is too few for {k_max}-dimensional top-q subspaces: the verdict needs at least "
            f"{4 * MIN_ROWS_PER_DIMENSION * k_max} ({MIN_ROWS_PER_DIMENSION} rows per dimension in each quarter)",
            delta_sas=delta_sas,
        )
    projections = []
    for (values, vectors, mask), anchor, other, anchor_name, other_name in (
        (bases[0], xc, yc, names[0], names[1]),
        (bases[1], yc, xc, names[1], names[0]),
    ):
        basis = vectors[:, mask]
        z = torch.cat([anchor @ basis, other @ basis], 1)
        k = basis.shape[1]
        other_cov = torch.linalg.eigvalsh(z[:, k:].mT @ z[:, k:] / n)
        anchor_cov = values[mask]
        if not (other_cov[0] > MIN_CONDITION * other_cov[-1] and anchor_cov[-1] > MIN_CONDITION * anchor_cov[0]):
            return inconclusive(
                f"the {other_name} has (almost) no variance in some direction of the {anchor_name}'s top-q subspace "
                "(its covariance there is singular), so the correlations there are undefined",
                delta_sas=delta_sas,
            )
        projections.append((z, k))

    # GROUPS groups of rows (whole clusters), their sums computed once; each of SPLITS random splits deals the groups
    # to four quarters.
    ids = torch.arange(n) if clusters is None else torch.unique(clusters.cpu(), return_inverse=True)[1]
    count = int(ids.max()) + 1
    if count < GROUPS:
        return inconclusive(
            f"{count} clusters of rows are too few: the verdict deals whole clusters to {GROUPS} groups",
            delta_sas=delta_sas,
        )
    generator = torch.Generator().manual_seed(seed)
    group_of = torch.empty(count, dtype=torch.long)
    group_of[torch.randperm(count, generator=generator)] = torch.arange(count) % GROUPS
    group = group_of[ids].to(x.device)
    weights = torch.ones(n, dtype=torch.float64, device=x.device, requires_grad=True)
    per_split = []
    with torch.enable_grad():
        sums = [_group_sums(z, weights, group, GROUPS) for z, _ in projections]
        for _ in range(splits):
            quarter = torch.empty(GROUPS, dtype=torch.long)
            quarter[torch.randperm(GROUPS, generator=generator)] = torch.arange(GROUPS) % 4
            quarter = quarter.to(x.device)
            scores = [_anchor_score(s, k, quarter) for s, (_, k) in zip(sums, projections, strict=True)]
            per_split.append(torch.stack(scores))
        x_to_y, y_to_x = torch.stack(per_split).mean(0)
        delta = x_to_y - y_to_x
        (influence,) = torch.autograd.grad(delta, weights)
    if clusters is not None:
        influence = torch.zeros(count, dtype=influence.dtype, device=influence.device).index_add_(
            0, ids.to(influence.device), influence
        )
    # se² = the data's share (infinitesimal jackknife at fixed splits and signs) + the splits' own spread over
    # their number (the estimate averages SPLITS of them).
    deltas = torch.stack([p[0] - p[1] for p in per_split]).detach()
    split_variance = float(deltas.var()) / splits if splits > 1 else 0.0
    se = math.sqrt(float(influence.square().sum()) + split_variance)
    estimate = float(delta.detach())
    z_value = float(stats.norm.ppf(0.5 + confidence / 2))
    low, high = estimate - z_value * se, estimate + z_value * se
    if not all(math.isfinite(v) for v in (estimate, se)):
        return inconclusive("the estimate or its standard error is not finite", delta_sas=delta_sas)
    interval = f"ΔS = {estimate:+.3f}, {100 * confidence:g}% interval [{low:+.3f}, {high:+.3f}]"
    if low > 0:
        bottleneck = names[1]
        reason = (
            f"{interval}: the {names[0]}'s dominant subspace is recovered from the {names[1]} better than the reverse, "
            f"so the {names[1]} is the bottleneck"
        )
    elif high < 0:
        bottleneck = names[0]
        reason = (
            f"{interval}: the {names[1]}'s dominant subspace is recovered from the {names[0]} better than the reverse, "
            f"so the {names[0]} is the bottleneck"
        )
    else:
        bottleneck = "none"
        reason = f"{interval} contains 0: no imbalance detected at this n"
    agrees = (delta_sas > 0) == (estimate > 0) if delta_sas != 0 and estimate != 0 else None
    if agrees is False:
        reason += (
            f"; the per-mode ΔSAS ({delta_sas:+.3f}) has the other sign (it reads single eigenmodes, which are not "
            "identified where eigenvalues are close)"
        )
    scores = float(x_to_y.detach()), float(y_to_x.detach())
    return Verdict(bottleneck, STATISTIC, estimate, low, high, reason, *scores, se, delta_sas, agrees, confidence, n)
