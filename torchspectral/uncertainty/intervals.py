"""Confidence intervals from bootstrap replicates and from a delete-a-group jackknife (used by ``bootstrap``).

Methods (central interval of mass c, tails α = (1 − c)/2; θ̂ the estimate, θ*_b the B bootstrap replicates,
θ_(g) the estimate without group g of G random groups of rows):

- ``"percentile"``: the α and 1 − α quantiles of θ* (linear interpolation, as ``torch.quantile``).
- ``"basic"``: ``2θ̂ −`` those quantiles (reversed): the percentile interval reflected about θ̂.
- ``"normal"``: ``θ̂ ± z_{1−α}·sd(θ*)``, the bootstrap standard error with a normal quantile; no bias correction.
- ``"bca"``: Efron's bias-corrected and accelerated percentile interval. Bias correction
  ``z0 = Φ⁻¹(#{θ* < θ̂}/B + ½#{θ* = θ̂}/B)``; acceleration ``a = Σu³ / (6 (Σu²)^{3/2})`` with ``u_g = θ̄_(·) − θ_(g)``
  from the delete-a-group jackknife (the usual n-point jackknife would cost n metric evaluations, which for SAS at
  d = 768 is n eigendecompositions; G groups cost G); the endpoints are the θ* quantiles at
  ``Φ(z0 + (z0 + z)/(1 − a(z0 + z)))`` for ``z = z_α, z_{1−α}``. With z0 = a = 0 it is the percentile interval.
- ``"iterated_normal"``: ``θ̂ ± z_{1−α}·v*/sqrt(v**)``, the normal interval with the bootstrap variance
  ``v* = var(θ*)`` corrected by an iterated (double) bootstrap. The first M of the B resamples are each resampled
  C more times (n rows drawn from the resample's own rows), and ``v**`` is the mean over the M of the variance of
  their C second-level values: the bootstrap's variance of a resample's statistic. Where the bootstrap inflates
  the variance by a factor r (v* ≈ r·v), resampling a resample inflates it again (v** ≈ r·v*), so v*²/v** ≈ v.
  That is the multiplicative form of the iterated-bootstrap variance correction; the additive one, 2v* − v**,
  is unbiased too but noisier and sometimes negative (docs/uncertainty.md#calibration).
  It is for ΔSAS, whose plain bootstrap sd is up to 1.5× too large: eigenvector leakage into modes the other side
  does not see is a second-order error, and the bootstrap, centred on a sample that is not co-diagonal, doubles it.
  Costs M·C replicates beyond the B.
- ``"jackknife"``: the delete-a-group jackknife t-interval ``θ̂ ± t_{G−1, 1−α}·se`` with
  ``se² = (G−1)/G · Σ_g (θ_(g) − θ̄_(·))²``; it needs no bootstrap replicate at all (G metric evaluations). It is
  centred on θ̂, not on the jackknife bias-corrected estimate: on planted models that correction made SAS's bias
  worse.

Groups differ in size by at most one row when G does not divide n; the formulas above treat them as equal (the
weighted delete-a-group forms differ by O(1/n) relative).

Normal quantiles come from :class:`statistics.NormalDist` (no dependency); the t quantile from ``scipy.stats``,
imported only when ``"jackknife"`` is asked for (scipy is in the ``audit`` and ``test`` extras).
"""

from __future__ import annotations

import math
import warnings
from statistics import NormalDist

import torch

INTERVAL_METHODS = ("percentile", "basic", "normal", "bca", "jackknife", "iterated_normal")
# The methods that read bootstrap replicates, those that also read second-level (iterated) replicates, and those
# that read the group-deleted (jackknife) values.
RESAMPLING_METHODS = ("percentile", "basic", "normal", "bca", "iterated_normal")
ITERATED_METHODS = ("iterated_normal",)
JACKKNIFE_METHODS = ("bca", "jackknife")
DEFAULT_GROUPS = 20
# (M, C) of "iterated_normal": M first-level resamples, each resampled C times. The prototype measured M = C = 20
# (400 extra replicates) against M = 10 or C = 10: halving either widened the spread of the corrected sd.
DEFAULT_ITERATED = (20, 20)

_NORMAL = NormalDist()


class IntervalWarning(UserWarning):
    """An interval was computed at the edge of what its method supports (e.g. BCa with θ̂ outside every replicate)."""


def check_method(method: str, where: str) -> None:
    if method not in INTERVAL_METHODS:
        raise ValueError(f"{where}: method must be one of {INTERVAL_METHODS}, got {method!r}")


def check_groups(groups: int, n: int, where: str) -> None:
    """G must be an integer in [2, n]: each group non-empty, and at least two values for a spread."""
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 2:
        raise ValueError(f"{where}: groups must be an integer ≥ 2 (delete-a-group jackknife), got {groups!r}")
    if groups > n // 2:
        # With n < 4 no valid G exists: say so rather than suggest an impossible groups ≤ 1.
        fix = f"use groups ≤ {n // 2}" if n >= 4 else "a grouped jackknife needs at least 4 pairs"
        raise ValueError(
            f"{where}: groups={groups} needs at least 2 rows per group, but there are only n={n} pairs; {fix}"
        )


def jackknife_groups(n: int, groups: int, seed: int) -> list[torch.Tensor]:
    """The row indices of each of ``groups`` random groups (sizes differ by at most one), deterministic in seed.

    The generator is seeded apart from the bootstrap's resamples (seed + a fixed offset) so that asking for
    BCa does not change which resamples a seed draws.
    """
    generator = torch.Generator().manual_seed(seed + 0x5EED)
    order = torch.randperm(n, generator=generator)
    return list(torch.tensor_split(order, groups))


def check_iterated(iterated: tuple[int, int], n_boot: int, where: str) -> tuple[int, int]:
    """(M, C) of the iterated bootstrap: 1 ≤ M ≤ B first-level resamples resampled again, C ≥ 2 times each."""
    try:
        first, inner = iterated
    except (TypeError, ValueError):
        raise ValueError(f"{where}: iterated must be a pair (M, C) of integers, got {iterated!r}") from None
    for label, value, low in (("M", first, 1), ("C", inner, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{where}: iterated=(M, C) needs an integer {label} ≥ {low}, got {value!r}")
    if first > n_boot:
        raise ValueError(
            f"{where}: iterated M={first} resamples to resample again, but n_boot={n_boot}; use M ≤ n_boot"
        )
    return first, inner


def iterated_variance(replicates: torch.Tensor, second_level: torch.Tensor) -> float:
    """v*²/v** (``"iterated_normal"``; module docstring): v* the replicates' variance, v** the mean over the M rows
    of ``second_level`` (M, C) of their variance."""
    first = float(replicates.double().var())
    second = float(second_level.double().var(dim=1).mean())
    if second == 0.0:
        if first == 0.0:
            return 0.0
        raise ValueError(
            "interval: iterated_normal: the second-level replicates do not vary while the first-level ones do "
            f"(v* = {first:.3g}), so the variance correction v*²/v** is undefined; use method='normal'"
        )
    return first * first / second


def _quantiles(replicates: torch.Tensor, probabilities: list[float]) -> tuple[float, float]:
    p = torch.tensor(probabilities, dtype=torch.float64, device=replicates.device)
    low, high = torch.quantile(replicates.double(), p).tolist()
    return low, high


def _require(values: torch.Tensor | None, method: str, what: str, minimum: int) -> torch.Tensor:
    if values is None:
        raise ValueError(f"interval: method={method!r} needs {what}")
    values = values.detach().double().reshape(-1)
    if values.numel() < minimum:
        raise ValueError(f"interval: method={method!r} needs at least {minimum} {what}, got {values.numel()}")
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"interval: method={method!r}: {what} hold non-finite values")
    return values


def acceleration(jackknife: torch.Tensor) -> float:
    """BCa's acceleration from the group-deleted values: ``Σu³ / (6 (Σu²)^{3/2})``, u = mean − values (0 if flat)."""
    u = jackknife.double().mean() - jackknife.double()
    spread = float((u * u).sum())
    if spread == 0.0:
        return 0.0
    return float((u**3).sum()) / (6.0 * spread**1.5)


def jackknife_se(jackknife: torch.Tensor) -> float:
    """The delete-a-group jackknife standard error ``sqrt((G−1)/G · Σ (θ_(g) − θ̄)²)``."""
    g = jackknife.numel()
    centred = jackknife.double() - jackknife.double().mean()
    return math.sqrt((g - 1) / g * float((centred * centred).sum()))


def bootstrap_bias(estimate: float, replicates: torch.Tensor) -> float:
    """The bootstrap bias estimate, mean(θ*) − θ̂."""
    return float(replicates.double().mean()) - estimate


def jackknife_bias(estimate: float, jackknife: torch.Tensor) -> float:
    """The delete-a-group jackknife bias estimate, (G − 1)(θ̄_(·) − θ̂)."""
    return (jackknife.numel() - 1) * (float(jackknife.double().mean()) - estimate)


def interval(
    method: str,
    estimate: float,
    confidence: float,
    replicates: torch.Tensor | None = None,
    jackknife: torch.Tensor | None = None,
    name: str = "metric",
    second_level: torch.Tensor | None = None,
) -> tuple[float, float]:
    """The (low, high) interval of one metric by ``method`` (see the module docstring).

    ``replicates``: the B bootstrap values (percentile, basic, normal, bca, iterated_normal); ``jackknife``: the G
    group-deleted values (bca, jackknife); ``second_level``: (M, C), the C second-level values of each of M
    first-level resamples (iterated_normal). ``name`` only labels warnings.
    """
    check_method(method, "interval")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"interval: confidence must lie in (0, 1), got {confidence}")
    if not math.isfinite(estimate):
        raise ValueError(f"interval: the estimate of {name} is not finite ({estimate})")
    alpha = (1.0 - confidence) / 2.0
    if method == "jackknife":
        values = _require(jackknife, method, "group-deleted (jackknife) values", 2)
        from scipy import stats  # only here: the other methods need no scipy

        half = float(stats.t.ppf(1.0 - alpha, values.numel() - 1)) * jackknife_se(values)
        return estimate - half, estimate + half
    boot = _require(replicates, method, "bootstrap replicates", 2)
    if method == "percentile":
        return _quantiles(boot, [alpha, 1.0 - alpha])
    if method == "basic":
        low, high = _quantiles(boot, [alpha, 1.0 - alpha])
        return 2.0 * estimate - high, 2.0 * estimate - low
    if method == "normal":
        half = _NORMAL.inv_cdf(1.0 - alpha) * float(boot.std())
        return estimate - half, estimate + half
    if method == "iterated_normal":
        if second_level is None or second_level.dim() != 2 or second_level.shape[1] < 2:
            shape = None if second_level is None else tuple(second_level.shape)
            raise ValueError(
                f"interval: method={method!r} needs second-level replicates of shape (M, C) with C ≥ 2, got {shape}"
            )
        inner = _require(second_level, method, "second-level replicates", 2).view(second_level.shape)
        half = _NORMAL.inv_cdf(1.0 - alpha) * math.sqrt(iterated_variance(boot, inner))
        return estimate - half, estimate + half
    # BCa.
    values = _require(jackknife, method, "group-deleted (jackknife) values", 2)
    b = boot.numel()
    below = float((boot < estimate).sum()) + 0.5 * float((boot == estimate).sum())
    # θ̂ outside every replicate makes z0 infinite: clip the proportion to half a replicate from either end (the
    # interval then sits at the replicates' extreme), and say so — the bias correction is not estimable.
    proportion = min(max(below / b, 0.5 / b), 1.0 - 0.5 / b)
    if proportion != below / b:
        warnings.warn(
            f"bca: the estimate of {name} lies outside all {b} bootstrap replicates; its bias correction is not "
            "estimable and the interval is clipped to the replicates' range",
            IntervalWarning,
            stacklevel=2,
        )
    z0 = _NORMAL.inv_cdf(proportion)
    a = acceleration(values)
    probabilities = []
    for z in (_NORMAL.inv_cdf(alpha), _NORMAL.inv_cdf(1.0 - alpha)):
        shifted = z0 + z
        denominator = 1.0 - a * shifted
        if denominator <= 0.0:
            raise ValueError(
                f"bca: the acceleration a={a:.3g} of {name} is too large for confidence={confidence} "
                f"(1 − a(z0 + z) = {denominator:.3g} ≤ 0); use another method"
            )
        probabilities.append(_NORMAL.cdf(z0 + shifted / denominator))
    return _quantiles(boot, probabilities)
