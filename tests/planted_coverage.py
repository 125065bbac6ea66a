"""The planted models of the calibration harnesses, their population values, and how a repeat is scored.

Shared by the harnesses in ``benchmarks/calibration/`` (``coverage.py``: every interval method; ``coverage_default.py``:
the calibrated default as ``ts.bootstrap`` returns it; ``coverage_verdict.py`` builds its models on these) and the
tests (``tests/test_calibration.py``, ``tests/test_intervals.py``), so the two cannot drift apart. The harnesses
only add the runs (workers, budget), the tables and the files they write (``benchmarks/README.md``).

**Planted model.** In a random orthonormal basis Q (d×d) every coordinate i carries an independent pair
``(x̃_i, ỹ_i)``: a latent factor u_i seen by x, of which y sees the part c_i (its own factor v_i the rest),

    x̃_i = α_i u_i,    ỹ_i = β_i (c_i u_i + sqrt(1 − c_i²) v_i),    x = μ_x + Q x̃,  y = μ_y + Q ỹ,

so x = A z + e_x, y = B z + e_y with z the factors shared (c_i ≠ 0), some factors seen by one side only (c_i = 0,
large α_i and bulk β_i or the reverse), anisotropic factor scales and a noise bulk. The population covariances
are exact: ``Σ_x = Q diag(α²) Qᵀ``, ``Σ_y = Q diag(β²) Qᵀ``, ``Σ_xy = Q diag(c α β) Qᵀ``.

**Population values.** Every metric's population value is the package's own formula (``compute_moment_metrics``,
i.e. each ``*_from_moments``) applied to a :class:`~torchspectral.stats.MomentStatistics` built from those
covariances: sums ``n·Σ`` with zero means and n = 10¹² (so CORAL's 1/(n − 1) is Σ to 1e-12). The same numbers in
closed form are checked against it (``closed_form``, agreement to 1e-9 is asserted):

- SAS x→y: ρ_i = c_i (up to ε), ``Σ_{A_x} α_i²|c_i| / Σ_{A_x} α_i²`` with A_x the top decile of α²; y→x with β;
- linear CKA (biased and unbiased estimators; both estimate the same population value)
  ``Σ c²α²β² / sqrt(Σα⁴ Σβ⁴)``;
- SVCCA with its default keep = 0.99 applied to the *population* spectra: K_x = the fewest top coordinates of α²
  holding 99% of tr Σ_x (K_y likewise), value ``Σ_{K_x ∩ K_y} |c_i| / min(|K_x|, |K_y|)`` (the mean of the
  min(|K_x|, |K_y|) canonical correlations between the two population subspaces). The sample estimator picks its
  own kept count from the sample spectrum; this is the value it estimates;
- CORAL (deep) ``Σ (α_i² − β_i²)² / (4d²)``;
- the modality-gap family (gap, L2I, true-pair cosine, Δcos, RMG) depends on the offsets μ_x, μ_y and on means of
  normalised rows, which have no closed form: its population value is the package's formula on the moments of
  ``GAP_POPULATION_PAIRS`` = 2,000,000 fresh pairs (Monte-Carlo sd ≤ sqrt(n / 2·10⁶) of the estimator's sd:
  0.05 at n = 5,000).

All eigenvalues are distinct (the bulk is spread ±10%), so every population value is well defined.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy import stats

from torchspectral.uncertainty import CALIBRATED_METHODS

# The calibrated default's resample count for the identifiability diagnostic, and which anchors each SAS metric
# reads: the harness scores the default exactly as a user gets it.
from torchspectral.uncertainty.calibrated import IDENTIFIABILITY_RESAMPLES, SAS_ANCHORS

METRICS = (
    "sas_x_to_y",
    "sas_y_to_x",
    "sas_symmetric",
    "sas_imbalance",
    "cka_linear",
    "cka_linear_unbiased",
    "svcca",
    "coral",
    "modality_gap",
    "l2i",
    "true_pair_cosine",
    "cosine_gap",
    "rmg",
)
GAP_METRICS = ("modality_gap", "l2i", "true_pair_cosine", "cosine_gap", "rmg")
GAP_POPULATION_PAIRS = 2_000_000
METHODS = ("percentile", "basic", "normal", "bca", "jackknife", "iterated_normal")
CONFIDENCE = 0.95
Q_ACTIVE = 0.1
POPULATION_N = 10**12
BULK = 0.02  # noise-bulk variance per coordinate (spread ±10% so that no two eigenvalues are equal)
DIAGNOSTIC_KEYS = ("boundary_ratio", "min_ratio", "unresolved_mass", "mode_stability")


@dataclass(frozen=True)
class Regime:
    """One planted model and sample size. ``structure``: "lossy" (y misses some of x's top factors, ΔSAS ≠ 0),
    "degenerate" (lossy, with x's top four eigenvalues within 3%, alternately shared and x-only) or "scaled"
    (y = 0.8 × an x-like variable: Σ_y = 0.64 Σ_x, so ΔSAS = 0 in the population)."""

    name: str
    n: int
    d: int
    structure: str
    repeats: int
    seed: int
    svcca: bool = True  # SVCCA moves every metric onto the weighted-moments path (≈ 1.5–2× the cost per replicate)

    @property
    def metrics(self) -> tuple[str, ...]:
        return METRICS if self.svcca else tuple(m for m in METRICS if m != "svcca")


# The committed grid of `make coverage`: what fits in ≈ 18 minutes on 2 shared cores with B = 200 (a d = 256 repeat
# costs ≈ 10× a d = 64 one; a d = 768 repeat 31 s at n = 500 and 70 s at n = 5,000, so the d = 768 regimes run apart:
# `benchmarks/calibration/coverage.py --regimes d768-n500-lossy d768-n5000-lossy
# --out benchmarks/results/coverage-d768-cpu-2core.json`).
REGIMES = (
    Regime("d64-n500-lossy", 500, 64, "lossy", 200, 1),
    Regime("d64-n500-scaled", 500, 64, "scaled", 200, 2),
    Regime("d64-n2000-lossy", 2000, 64, "lossy", 150, 14, svcca=False),
    Regime("d64-n5000-scaled", 5000, 64, "scaled", 100, 15, svcca=False),
    Regime("d64-n2000-degenerate", 2000, 64, "degenerate", 150, 3),
    Regime("d64-n5000-lossy", 5000, 64, "lossy", 100, 4),
    Regime("d256-n500-lossy", 500, 256, "lossy", 40, 5, svcca=False),
    Regime("d256-n200-lossy", 200, 256, "lossy", 40, 6, svcca=False),  # n < d
    Regime("d256-n2000-degenerate", 2000, 256, "degenerate", 20, 7, svcca=False),
    Regime("d256-n5000-lossy", 5000, 256, "lossy", 30, 16, svcca=False),
    # Held out: added after the identifiability threshold (6) and the calibrated methods were chosen on the regimes
    # above, to check those choices on models and sizes they were not fitted to.
    Regime("check-d64-n3000-lossy", 3000, 64, "lossy", 100, 21, svcca=False),
    Regime("check-d64-n10000-lossy", 10000, 64, "lossy", 50, 22, svcca=False),
    Regime("check-d128-n10000-scaled", 10000, 128, "scaled", 20, 23, svcca=False),
)
HEAVY = (
    Regime("d768-n500-lossy", 500, 768, "lossy", 20, 8, svcca=False),  # n < d
    Regime("d768-n5000-lossy", 5000, 768, "lossy", 10, 9, svcca=False),
)
QUICK = (
    Regime("quick-d16-n300-lossy", 300, 16, "lossy", 3, 11),
    Regime("quick-d16-n300-scaled", 300, 16, "scaled", 3, 12),
    Regime("quick-d64-n500-degenerate", 500, 64, "degenerate", 2, 13),
)
ALL_REGIMES = {r.name: r for r in REGIMES + HEAVY + QUICK}


def active_count(d: int, q: float = Q_ACTIVE) -> int:
    """|A| for d distinct eigenvalues (the quantile rule of docs/definitions.md#sas): d = 64 → 7, 256 → 26, 768 → 77."""
    return d - math.floor((d - 1) * (1 - q)) - 1


def planted(regime: Regime) -> dict[str, np.ndarray]:
    """Per-coordinate α², β², c (length d) and the basis Q of the regime (deterministic in its seed)."""
    d, a = regime.d, active_count(regime.d)
    rng = np.random.default_rng([regime.seed, 0])
    spread = np.linspace(1.1, 0.9, d)
    alpha2, beta2, c = BULK * spread, BULK * spread[::-1].copy(), np.zeros(d)
    if regime.structure == "scaled":
        k = a + 6
        alpha2[:k] = 10.0 * (0.25 / 10.0) ** (np.arange(k) / (k - 1))
        # Correlations from 0.9 down to 0.3, every third factor unseen by the other side (c = 0), one negative.
        c[:k] = np.linspace(0.9, 0.3, k) * np.where(np.arange(k) % 3 == 1, 0.0, 1.0)
        c[2] = -c[2]
        beta2 = 0.64 * alpha2
    else:
        shared, x_only, y_only = a + 3, (a + 1) // 2, 3
        k_x = shared + x_only
        # x's factors in descending scale; every third one is x-only (c = 0), the others shared.
        x_scales = 10.0 * (0.25 / 10.0) ** (np.arange(k_x) / (k_x - 1))
        if regime.structure == "degenerate":
            x_scales[:4] = [10.0, 9.9, 9.8, 9.7]  # within 3%: the sample eigenvectors rotate among them
            x_scales[4:] = np.minimum(x_scales[4:], 9.7 / 1.3)
        x_only_slots = [i for i in range(k_x) if i % 3 == 1][:x_only]
        if regime.structure == "degenerate":
            x_only_slots = [1, 3, *[i for i in x_only_slots if i > 4][: x_only - 2]]
        shared_slots = [i for i in range(k_x) if i not in x_only_slots][:shared]
        alpha2[:k_x] = x_scales
        c[shared_slots] = np.linspace(0.9, 0.4, len(shared_slots))
        c[shared_slots[2]] = -c[shared_slots[2]]
        # y: its own scales over the shared factors (in another order) and three y-only factors above x's bulk.
        y_slots = shared_slots + list(range(k_x, k_x + y_only))
        y_scales = 6.0 * (0.25 / 6.0) ** (np.arange(len(y_slots)) / (len(y_slots) - 1))
        order = rng.permutation(len(y_slots))
        beta2[y_slots] = y_scales[order]
    basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    return {"alpha2": alpha2, "beta2": beta2, "c": c, "basis": basis}


def population_statistics(model: dict[str, np.ndarray]):
    """A MomentStatistics holding the population covariances (sums n·Σ about a zero mean, n = 10¹²)."""
    from torchspectral.stats import MomentStatistics

    q, a2, b2, c = (torch.from_numpy(model[k]) for k in ("basis", "alpha2", "beta2", "c"))
    d = q.shape[0]
    cov_x, cov_y = (q * a2) @ q.T, (q * b2) @ q.T
    cov_xy = (q * (c * a2.sqrt() * b2.sqrt())) @ q.T
    zeros = torch.zeros(d, dtype=torch.float64)
    sums = {
        "sum_x": zeros, "sum_y": zeros.clone(), "sum_xx": POPULATION_N * cov_x, "sum_xy": POPULATION_N * cov_xy,
        "sum_yy": POPULATION_N * cov_y, "pairs_f32": torch.zeros((), dtype=torch.float64),
    }  # fmt: skip
    return MomentStatistics(d_x=d, d_y=d, n=POPULATION_N, shift_x=zeros, shift_y=zeros, sums=sums)


def population_values(regime: Regime, model: dict[str, np.ndarray]) -> dict[str, float]:
    """Every metric's population value by the package's formulas (the unbiased CKA estimand is the biased one's);
    the gap family's from ``GAP_POPULATION_PAIRS`` fresh pairs (:func:`gap_population`)."""
    from torchspectral.registry import compute_moment_metrics

    names = [m for m in METRICS if m != "cka_linear_unbiased" and m not in GAP_METRICS]
    values = {k: float(v) for k, v in compute_moment_metrics(population_statistics(model), names, Q_ACTIVE).items()}
    values["cka_linear_unbiased"] = values["cka_linear"]
    values.update(gap_population(regime, model))
    return {name: values[name] for name in METRICS}


def gap_population(regime: Regime, model: dict[str, np.ndarray], chunk: int = 100_000) -> dict[str, float]:
    """The gap family on the moments of GAP_POPULATION_PAIRS fresh pairs of the model (seeded apart from the
    repeats), streamed in chunks: its plug-in bias is O(1/N), its Monte-Carlo sd O(1/sqrt(N))."""
    from torchspectral.functional.gap import L2I_NEEDS
    from torchspectral.registry import compute_moment_metrics
    from torchspectral.stats import MomentStatistics

    total = None
    for start in range(0, GAP_POPULATION_PAIRS, chunk):
        x, y = sample(replace(regime, n=chunk), model, repeat=-1 - start // chunk)
        batch = MomentStatistics._of_batch(x, y, L2I_NEEDS)
        total = batch if total is None else total.merge(batch)
    return {k: float(v) for k, v in compute_moment_metrics(total, GAP_METRICS, Q_ACTIVE).items()}


def svcca_kept(variances: np.ndarray, keep: float = 0.99) -> np.ndarray:
    """Indices of the fewest top coordinates holding ``keep`` of the total variance (SVCCA's rule)."""
    order = np.argsort(-variances)
    fraction = np.cumsum(variances[order]) / variances.sum()
    return order[: int((fraction < keep).sum()) + 1]


def closed_form(model: dict[str, np.ndarray], eps: float | None = None) -> dict[str, float]:
    """The population values from α², β², c alone (an independent check of :func:`population_values`).

    ``eps`` None is SAS's scale-free default, 1e-8 times the mean variance of each side (the variances are α², β²).
    """
    a2, b2, c = model["alpha2"], model["beta2"], model["c"]
    d = a2.size
    eps = 1e-8 * a2.mean() * b2.mean() if eps is None else eps
    rho = c * np.sqrt(a2 * b2) / np.sqrt(a2 * b2 + eps)

    def sas(anchor: np.ndarray) -> float:
        active = anchor >= np.quantile(anchor, 1 - Q_ACTIVE)
        return float((anchor[active] * np.abs(rho[active])).sum() / anchor[active].sum())

    kx, ky = svcca_kept(a2), svcca_kept(b2)
    both = np.intersect1d(kx, ky)
    cka = float((c**2 * a2 * b2).sum() / np.sqrt((a2**2).sum() * (b2**2).sum()))
    x_to_y, y_to_x = sas(a2), sas(b2)
    return {
        "sas_x_to_y": x_to_y,
        "sas_y_to_x": y_to_x,
        "sas_symmetric": (x_to_y + y_to_x) / 2,
        "sas_imbalance": x_to_y - y_to_x,
        "cka_linear": cka,
        "cka_linear_unbiased": cka,
        "svcca": float(np.abs(c[both]).sum() / min(kx.size, ky.size)),
        "coral": float(((a2 - b2) ** 2).sum() / (4 * d**2)),
    }


def sample(regime: Regime, model: dict[str, np.ndarray], repeat: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n fresh pairs of the planted model (float64), seeded by (regime seed, repeat)."""
    rng = np.random.default_rng([regime.seed, 1, repeat] if repeat >= 0 else [regime.seed, 3, -repeat])
    n, d = regime.n, regime.d
    u, v = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    c = model["c"]
    xt = u * np.sqrt(model["alpha2"])
    yt = (c * u + np.sqrt(1 - c**2) * v) * np.sqrt(model["beta2"])
    offset = np.random.default_rng([regime.seed, 2]).normal(size=(2, d))  # a fixed modality offset (translation)
    basis = model["basis"]
    return torch.from_numpy(xt @ basis.T + offset[0]), torch.from_numpy(yt @ basis.T + offset[1])


def one_repeat(regime: Regime, model: dict[str, np.ndarray], repeat: int, n_boot: int, groups: int) -> dict:
    """Estimates, every method's interval and both bias estimates per metric for one fresh sample."""
    import torchspectral as ts
    from torchspectral.uncertainty import intervals as interval_methods
    from torchspectral.uncertainty import sas_identifiability
    from torchspectral.uncertainty.pairs import jackknife_values

    x, y = sample(regime, model, repeat)
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", interval_methods.IntervalWarning)
        names = list(regime.metrics)
        # One run gives every method's inputs: the replicates with their second level (iterated_normal, at
        # ts.bootstrap's default M and C; it draws the same first-level resamples as the others) and the
        # group-deleted values (bca, jackknife).
        result = ts.bootstrap(x, y, names, n_boot=n_boot, seed=repeat, q=Q_ACTIVE, method="iterated_normal")
        jackknife = jackknife_values(x, y, names, Q_ACTIVE, groups, repeat)
        out: dict = {"seconds": time.perf_counter() - started, "metrics": {}}
        for name in names:
            estimate, boot, jack = result.estimate[name], result.replicates[name], jackknife[name]
            intervals = {
                method: list(
                    interval_methods.interval(
                        method, estimate, CONFIDENCE, boot, jack, name=name, second_level=result.second_level[name]
                    )
                )
                for method in METHODS
            }
            out["metrics"][name] = {
                "estimate": estimate,
                "bias_bootstrap": interval_methods.bootstrap_bias(estimate, boot),
                "bias_jackknife": interval_methods.jackknife_bias(estimate, jack),
                "intervals": intervals,
            }
    out["bca_clipped"] = sum(issubclass(w.category, interval_methods.IntervalWarning) for w in caught)
    # The identifiability diagnostic on the same sample (not part of the timed bootstrap).
    diagnostic = sas_identifiability(x, y, q=Q_ACTIVE, n_resamples=IDENTIFIABILITY_RESAMPLES, seed=repeat)
    out["identifiability"] = {
        anchor: {
            key: getattr(getattr(diagnostic, anchor), key) for key in (*DIAGNOSTIC_KEYS, "active_overlap", "identified")
        }
        for anchor in ("x", "y")
    }
    return out


def methods_run(runs: list[dict]) -> list[str]:
    """The METHODS these repeats computed (runs made before a method existed lack it: it is left out, not faked)."""
    first = next(iter(runs[0]["metrics"].values()))["intervals"]
    return [method for method in METHODS if method in first]


def summarise(regime: Regime, truth: dict[str, float], runs: list[dict]) -> dict:
    """Coverage, misses, width/sd per method and bias, sd, RMSE per metric over the repeats."""
    out: dict = {}
    r = len(runs)
    for name in regime.metrics:
        theta = truth[name]
        est = np.array([run["metrics"][name]["estimate"] for run in runs])
        b_boot = np.array([run["metrics"][name]["bias_bootstrap"] for run in runs])
        b_jack = np.array([run["metrics"][name]["bias_jackknife"] for run in runs])
        sd = float(est.std(ddof=1)) if r > 1 else float("nan")
        entry: dict = {
            "truth": theta,
            "mean_estimate": float(est.mean()),
            "bias": float(est.mean() - theta),
            "sd": sd,
            "bias_over_sd": float((est.mean() - theta) / sd) if sd > 0 else float("nan"),
            "rmse": float(np.sqrt(((est - theta) ** 2).mean())),
            "mean_bias_estimate_bootstrap": float(b_boot.mean()),
            "mean_bias_estimate_jackknife": float(b_jack.mean()),
            "rmse_bootstrap_corrected": float(np.sqrt(((est - b_boot - theta) ** 2).mean())),
            "rmse_jackknife_corrected": float(np.sqrt(((est - b_jack - theta) ** 2).mean())),
            "methods": {},
        }
        for method in methods_run(runs):
            bounds = np.array([run["metrics"][name]["intervals"][method] for run in runs])
            low, high = bounds[:, 0], bounds[:, 1]
            covered = (low <= theta) & (theta <= high)
            entry["methods"][method] = {
                "coverage": float(covered.mean()),
                "covered": int(covered.sum()),
                "miss_truth_below": int((theta < low).sum()),  # the interval sits above the truth
                "miss_truth_above": int((theta > high).sum()),
                "width_over_sd": float((high - low).mean() / sd) if sd > 0 else float("nan"),
                "estimate_outside": int(((est < low) | (est > high)).sum()),
            }
        entry["default"] = calibrated_default(name, theta, sd, runs)
        if name in SAS_ANCHORS:  # coverage among the repeats the diagnostic calls identified (for this metric)
            flagged = np.array(
                [all(run["identifiability"][a]["identified"] for a in SAS_ANCHORS[name]) for run in runs], dtype=bool
            )
            entry["identified_repeats"] = int(flagged.sum())
            entry["coverage_when_identified"] = {}
            entry["coverage_when_not_identified"] = {}
            for method in methods_run(runs):
                bounds = np.array([run["metrics"][name]["intervals"][method] for run in runs])
                covered = (bounds[:, 0] <= theta) & (theta <= bounds[:, 1])
                entry["coverage_when_identified"][method] = float(covered[flagged].mean()) if flagged.any() else None
                entry["coverage_when_not_identified"][method] = (
                    float(covered[~flagged].mean()) if (~flagged).any() else None
                )
        out[name] = entry
    return out


def calibrated_default(name: str, theta: float, sd: float, runs: list[dict]) -> dict:
    """The calibrated default as a user gets it: its method's coverage over the repeats in which it gives an
    interval (for SAS, those the identifiability diagnostic calls identified)."""
    from torchspectral.uncertainty.calibrated import DEFAULT_METHODS

    method = DEFAULT_METHODS[name]
    if method is None or method not in methods_run(runs):  # none, or a method newer than these repeats
        return {"method": method, "repeats": 0, "coverage": None, "width_over_sd": None}
    given = [run for run in runs if all(run["identifiability"][a]["identified"] for a in SAS_ANCHORS.get(name, ()))]
    if not given:
        return {"method": method, "repeats": 0, "coverage": None, "width_over_sd": None}
    bounds = np.array([run["metrics"][name]["intervals"][method] for run in given])
    covered = (bounds[:, 0] <= theta) & (theta <= bounds[:, 1])
    width = float((bounds[:, 1] - bounds[:, 0]).mean() / sd) if sd > 0 else float("nan")
    return {"method": method, "repeats": len(given), "coverage": float(covered.mean()), "width_over_sd": width}


# The calibrated default alone (``coverage_default.py``): what ``ts.bootstrap`` returns at its default.

# SVCCA has no calibrated interval and its estimate is in the full harness; leaving it out keeps every other
# metric on the cheaper (non-weighted) replicate path, as it is for a user who does not ask for it.
DEFAULT_METRICS = tuple(m for m in METRICS if m != "svcca")
LOW, HIGH = 0.92, 0.99  # the acceptance band for the default's coverage


def default_repeat(
    regime, model: dict[str, np.ndarray], repeat: int, n_boot: int, groups: int, metrics=DEFAULT_METRICS
) -> dict:
    """The default ``ts.bootstrap`` on one fresh sample: per metric its estimate and interval (or the reason)."""
    import torchspectral as ts

    x, y = sample(regime, model, repeat)
    started = time.perf_counter()
    result = ts.bootstrap(x, y, list(metrics), n_boot=n_boot, seed=repeat, q=Q_ACTIVE, groups=groups)
    seconds = time.perf_counter() - started
    if result.method != "calibrated":
        raise AssertionError(f"ts.bootstrap's default method is {result.method!r}, not 'calibrated'")
    per_metric = {}
    for name in metrics:
        given = name in result.low
        per_metric[name] = {
            "estimate": result.estimate[name],
            "method": result.methods.get(name),
            "interval": [result.low[name], result.high[name]] if given else None,
            "reason": result.no_interval.get(name),
        }
    ident = result.identifiability
    return {
        "seconds": seconds,
        "metrics": per_metric,
        "identified": {a: bool(getattr(ident, a).identified) for a in ("x", "y")} if ident is not None else None,
    }


def replace_metrics(base: dict, replacements: list[tuple[str, dict]]) -> dict:
    """``base`` (a run's raw record) with the metrics of each replacement run swapped in, repeat by repeat.

    A replacement is a run of fewer metrics on the same seeded samples and resamples (same n_boot, groups; its
    repeats among the base's): after a change of one metric's default, it rescores that metric without rerunning
    the others, whose values depend only on their own methods. The result is refused unless it is what a complete
    run would give: every base repeat of a replaced metric is either replaced or got no interval in the base (a
    regime where SAS is never identified keeps its "no interval"), and the identifiability flags agree.
    The calls' seconds stay the base's; each replaced repeat also records the replacement call's seconds.
    """
    merged = json.loads(json.dumps(base))
    replaced: dict[str, set[tuple[str, int]]] = {}
    for label, record in replacements:
        for key in ("n_boot", "groups"):
            if record["settings"][key] != base["settings"][key]:
                raise ValueError(f"{label}: {key}={record['settings'][key]}, the base run's is {base['settings'][key]}")
        names = record["settings"]["metrics"]
        for regime, runs in record["runs"].items():
            by_repeat = {run["repeat"]: run for run in merged["runs"].get(regime, [])}
            for run in runs:
                target = by_repeat.get(run["repeat"])
                if "error" in run or target is None or "error" in target:
                    if "error" in run:
                        why = f"it failed: {run['error']}"
                    else:
                        why = "not in the base run" if target is None else f"the base's failed: {target['error']}"
                    raise ValueError(f"{label}: {regime} repeat {run['repeat']} cannot replace the base's ({why})")
                if run["identified"] != target["identified"]:
                    raise ValueError(f"{label}: {regime} repeat {run['repeat']}: identifiability differs from the base")
                for name in names:
                    target["metrics"][name] = run["metrics"][name]
                    replaced.setdefault(name, set()).add((regime, run["repeat"]))
                target.setdefault("seconds_replacements", []).append(run["seconds"])
    for name, done in replaced.items():
        for regime, runs in merged["runs"].items():
            for run in runs:
                if (regime, run["repeat"]) not in done and run["metrics"][name]["interval"] is not None:
                    raise ValueError(
                        f"{name} in {regime} repeat {run['repeat']}: its interval is the base run's (method "
                        f"{run['metrics'][name]['method']!r}) and no replacement covers it; rerun that repeat"
                    )
    merged["settings"]["replaced"] = {
        name: {"from": [label for label, _ in replacements], "repeats": len(done)} for name, done in replaced.items()
    }
    return merged


def clopper_pearson(covered: int, given: int) -> list[float]:
    """The exact 95% interval of a coverage observed as covered / given."""
    ci = stats.binomtest(covered, given).proportion_ci(confidence_level=0.95, method="exact")
    return [float(ci.low), float(ci.high)]


def summarise_default(truth: dict[str, float], runs: list[dict]) -> dict:
    """Per metric: coverage among the repeats given an interval, its exact CI, misses, width/sd, bias/sd."""
    out = {}
    for name in runs[0]["metrics"]:
        theta = truth[name]
        est = np.array([run["metrics"][name]["estimate"] for run in runs])
        sd = float(est.std(ddof=1))
        given = [run["metrics"][name] for run in runs if run["metrics"][name]["interval"] is not None]
        entry = {
            "truth": theta,
            "repeats": len(runs),
            "bias": float(est.mean() - theta),
            "sd": sd,
            "bias_over_sd": float((est.mean() - theta) / sd) if sd > 0 else float("nan"),
            "method": CALIBRATED_METHODS[name],
            "given": len(given),
            # Why the others got none (the first repeat's reason; SAS's quotes that repeat's eigengaps).
            "reason": next((run["metrics"][name]["reason"] for run in runs if run["metrics"][name]["reason"]), None),
        }
        if given:
            bounds = np.array([g["interval"] for g in given])
            covered = (bounds[:, 0] <= theta) & (theta <= bounds[:, 1])
            entry |= {
                "coverage": float(covered.mean()),
                "covered": int(covered.sum()),
                "coverage_ci": clopper_pearson(int(covered.sum()), len(given)),
                "miss_truth_below": int((theta < bounds[:, 0]).sum()),  # the interval sits above the truth
                "miss_truth_above": int((theta > bounds[:, 1]).sum()),
                "width_over_sd": float((bounds[:, 1] - bounds[:, 0]).mean() / sd) if sd > 0 else float("nan"),
            }
            if 2 <= len(given) < len(runs):  # ΔSAS where only some repeats are identified: also against their own sd
                sd_given = float(np.std([g["estimate"] for g in given], ddof=1))
                entry["width_over_sd_given"] = float((bounds[:, 1] - bounds[:, 0]).mean() / sd_given)
        out[name] = entry
    return out


def pooled(results: dict) -> dict:
    """Per metric over every regime: repeats given, covered, the pooled coverage and its exact CI, width/sd range."""
    out = {}
    for metric in DEFAULT_METRICS:
        cells = [v["metrics"][metric] for v in results["regimes"].values() if v["metrics"].get(metric, {}).get("given")]
        if not cells:
            continue
        given, covered = sum(e["given"] for e in cells), sum(e["covered"] for e in cells)
        widths = [e["width_over_sd"] for e in cells]
        out[metric] = {
            "regimes": len(cells),
            "given": given,
            "covered": covered,
            "coverage": covered / given,
            "coverage_ci": clopper_pearson(covered, given),
            "width_over_sd": [min(widths), max(widths)],
        }
    return out


def verdict(results: dict) -> str:
    """The (metric, regime) cells with an interval: how many lie in [LOW, HIGH]; of those outside, whether their
    exact 95% CI still meets the band (consistent with it at this R) or lies wholly outside (significantly out).

    With ~100 cells even an exactly calibrated 95% interval puts a few outside the band by Monte-Carlo error alone
    (a true 95% is observed below 92% with probability 2.4% at R = 200, 6.3% at R = 100; above 99% with 0.04% and
    0.6%), hence the second count and the expected number outside, printed with it."""
    inside, outside = 0, []
    for name, v in results["regimes"].items():
        for metric, e in v["metrics"].items():
            if not e["given"]:
                continue
            if LOW <= e["coverage"] <= HIGH:
                inside += 1
                continue
            low, high = e["coverage_ci"]
            status = "consistent with the band" if low <= HIGH and high >= LOW else "significantly outside the band"
            outside.append(
                f"{metric} in {name}: {100 * e['coverage']:.1f}% of {e['given']} (exact 95% CI "
                f"{100 * low:.1f}–{100 * high:.1f}%: {status}; width/sd {e['width_over_sd']:.2f})"
            )
    # The same classification of every possible count k of R, weighted by its probability under a true 95%.
    expected = sum(
        stats.binom.pmf(k, e["given"], 0.95)
        for v in results["regimes"].values()
        for e in v["metrics"].values()
        if e["given"]
        for k in range(e["given"] + 1)
        if not LOW <= k / e["given"] <= HIGH
    )
    lines = [f"{inside} of {inside + len(outside)} cells in [{LOW:.0%}, {HIGH:.0%}] (an exactly calibrated 95% "
             f"interval would leave {expected:.1f} outside on average at these repeat counts); outside:"]  # fmt: skip
    lines += [f"- {line}" for line in outside]
    lines.append("pooled over the regimes (coverage, exact 95% CI, width/sd range):")
    for metric, p in pooled(results).items():
        low, high = p["coverage_ci"]
        lines.append(f"- {metric}: {100 * p['coverage']:.1f}% of {p['given']} in {p['regimes']} regimes "
                     f"[{100 * low:.1f}–{100 * high:.1f}%], width/sd {p['width_over_sd'][0]:.2f}–"
                     f"{p['width_over_sd'][1]:.2f}")  # fmt: skip
    return "\n".join(lines)
