"""The pair bootstrap of the moment metrics (docs/definitions.md#statistics): ``bootstrap``, its result, and the
replicate loop.

Bootstrap: resampling n pairs with replacement is a vector of multiplicities w (Σw = n), and every
sufficient statistic of the resample is a w-weighted sum over the original rows. So each replicate
is one weighted Gram (only over the ≈63% of rows drawn at least once) plus weighted GEMVs over
quantities computed once (centred rows, squared norms, normalised rows, true-pair cosines) — the
raw rows are never gathered, validated, normalised or centred again. The replicate spectra are then
decomposed in batches of B×d×d. Same seed ⇒ the same resamples as the naive loop
``alignment_report(x[idx], y[idx], pairwise=False)``, and the same replicate values up to rounding.
That is ``engine="moments"``; it costs O(n·d²) per replicate, like the naive loop.

The default ``engine="algebraic"`` computes the metrics that are not spectral without any d×d matrix per
replicate, still exactly (:mod:`torchspectral.uncertainty.algebra`): the gap family is linear in the
multiplicities (one GEMM for all B), linear CKA (biased, unbiased) and CORAL are quadratic forms in them
(O(n²) per replicate). SAS needs each replicate's eigenvectors; it gets them exactly from two weighted
Grams per replicate and nothing else of the moments (:mod:`torchspectral.uncertainty.exact_sas`), unless
``ritz_rank`` opts it into a Rayleigh–Ritz approximation (:mod:`torchspectral.uncertainty.ritz`). SVCCA keeps
the weighted-moment path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch

from torchspectral.moments import Moments

# The metrics a pair bootstrap resamples are the moment metrics of the registry (re-exported here).
from torchspectral.registry import METRICS, MOMENT_METRICS, SAME_DIM_METRICS, compute_moment_metrics
from torchspectral.spectral import SAS_METRICS, eigh_descending
from torchspectral.stats.accumulator import resolve_groups
from torchspectral.stats.weighted import WeightedRows
from torchspectral.uncertainty import algebra as algebraic
from torchspectral.uncertainty.algebra import LINEAR_METRICS, QUADRATIC_METRICS, linear_replicates
from torchspectral.uncertainty.calibrated import (
    CALIBRATED,
    IDENTIFIABILITY_RESAMPLES,
    NO_INTERVAL,
    default_method,
    unidentified_reason,
)
from torchspectral.uncertainty.exact_sas import exact_sas_replicates
from torchspectral.uncertainty.identifiability import Identifiability, sas_identifiability
from torchspectral.uncertainty.intervals import (
    DEFAULT_GROUPS,
    DEFAULT_ITERATED,
    INTERVAL_METHODS,  # noqa: F401  (re-exported by the package)
    ITERATED_METHODS,
    JACKKNIFE_METHODS,
    RESAMPLING_METHODS,
    bootstrap_bias,
    check_groups,
    check_iterated,
    check_method,
    interval,
    jackknife_bias,
    jackknife_groups,
)
from torchspectral.uncertainty.resampling import resample_counts, second_level_counts
from torchspectral.uncertainty.ritz import ritz_sas_replicates
from torchspectral.validation import check_pair, check_q

# "algebraic": each metric by its own cheapest exact route; "moments": every replicate's full weighted moments.
ENGINES = ("algebraic", "moments")
# Replicates whose covariances are decomposed together: B×d×d float64 at d=768 is 4.7 MB per matrix.
EIGH_BATCH = 32


@dataclass(frozen=True)
class BootstrapResult:
    """Point estimates and intervals per metric; `replicates[name]` holds all B values.

    ``low``/``high`` hold the metrics that have an interval, by ``methods[name]`` (the one ``method`` asked for, or
    with ``method="calibrated"`` each metric's calibrated method); ``no_interval[name]`` says why a metric has
    none (``method="calibrated"`` only: no method is calibrated for it, or SAS is not identified at this n —
    ``identifiability`` holds the diagnostic it read).
    ``bias[name]``: the estimated bias of the estimate — mean(replicates) − estimate for the resampling methods,
    the delete-a-group jackknife's (G − 1)(mean(jackknife) − estimate) for ``method="jackknife"`` (which draws no
    replicate: ``replicates`` is then empty and ``n_boot`` 0); absent for a metric with neither. The estimate
    itself is never bias-corrected.
    ``jackknife[name]``: the G group-deleted values (methods "bca" and "jackknife"; empty otherwise), ``groups`` G.
    ``second_level[name]``: (M, C), the C second-level replicates of each of the first M resamples (method
    "iterated_normal"; empty otherwise), ``iterated`` (M, C) or None.
    """

    estimate: dict[str, float]
    low: dict[str, float]
    high: dict[str, float]
    replicates: dict[str, torch.Tensor]
    confidence: float
    n_boot: int
    seed: int
    method: str
    bias: dict[str, float] = field(default_factory=dict)
    jackknife: dict[str, torch.Tensor] = field(default_factory=dict)
    groups: int = 0
    methods: dict[str, str] = field(default_factory=dict)
    no_interval: dict[str, str] = field(default_factory=dict)
    identifiability: Identifiability | None = None
    second_level: dict[str, torch.Tensor] = field(default_factory=dict)
    iterated: tuple[int, int] | None = None

    def table(self) -> str:
        """A markdown table: metric | estimate | bias | method | CI low | CI high (bias: see the class docstring);
        a metric without an interval shows "—" and, below the table, why."""
        level = f"{100 * self.confidence:g}% CI"
        lines = [f"| metric | estimate | bias | method | {level} low | {level} high |", "|---|---|---|---|---|---|"]
        for name, value in self.estimate.items():
            bias = f"{self.bias[name]:+.2g}" if name in self.bias else ""
            if name in self.low:
                bounds = f"{self.methods[name]} | {self.low[name]:.4g} | {self.high[name]:.4g}"
            else:
                bounds = "— | — | —"
            lines.append(f"| {name} | {value:.4g} | {bias} | {bounds} |")
        lines += [f"- {name}: {reason}" for name, reason in self.no_interval.items()]
        return "\n".join(lines)


def _require_replicate_variance(rows: WeightedRows, counts: torch.Tensor, start: int, label: str = "resample") -> None:
    """Refuse a block in which a resample has no variance in x or y, as the exact engine does.

    A resample that drew a single distinct row has Σ_b = 0: SAS is undefined for it (and would silently come
    out 0 or NaN on the fast paths). trace(Σ_b) = (Σ w_i ‖xc_i‖² − ‖s‖²/n)/n costs O(n·d) per replicate; for
    such a resample it is rounding, ≲ ε·Σ w_i ‖xc_i‖²/n.
    """
    n, eps = rows.n, torch.finfo(rows.xc.dtype).eps
    for which, centred, squares in (("x", rows.xc, rows.a), ("y", rows.yc, rows.b)):
        total = counts @ squares
        s = (counts.to(centred.dtype) @ centred).double()
        trace = (total - (s * s).sum(1) / n) / n
        empty = torch.nonzero(trace <= 64 * eps * total / n).squeeze(1)
        if empty.numel():
            raise ValueError(
                f"bootstrap: {label} {start + int(empty[0])} drew a single distinct pair, so {which} has zero "
                "variance in it and SAS is undefined; bootstrap SAS needs more (distinct) pairs"
            )


def evaluate(m: Moments, names: Sequence[str], q: float = 0.1) -> dict[str, torch.Tensor]:
    """The named moment metrics of one Moments (SVCCA, CORAL with their default settings)."""
    return compute_moment_metrics(m, names, q=q)


def jackknife_values(
    x: torch.Tensor, y: torch.Tensor, names: Sequence[str], q: float, groups: int, seed: int
) -> dict[str, torch.Tensor]:
    """The named metrics with each of ``groups`` random groups of rows deleted in turn: (G,) float64 per metric.

    Each value is the metric of the remaining rows: the statistics of all rows minus those of the deleted group
    (:meth:`~torchspectral.stats.accumulator.MomentStatistics.without`), so the G deletions cost two passes over
    the data instead of G. A deleted group is not a resample of n rows, so the bootstrap's weighted engines (which
    assume the weights sum to n) do not apply.
    """
    out: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    needs = resolve_groups({group for name in names for group in METRICS[name].needs})
    everything = Moments.from_data(x, y, metric="bootstrap", groups=needs)
    for group in jackknife_groups(x.shape[0], groups, seed):
        group = group.to(x.device)
        deleted = Moments.from_data(x[group], y[group], metric="bootstrap", groups=needs, about=everything)
        for name, value in evaluate(everything.without(deleted), names, q).items():
            out[name].append(value.detach().double())
    return {name: torch.stack(v) for name, v in out.items()}


def _decompose_together(batch: list[Moments], names: Sequence[str]) -> None:
    """Fill each replicate's spectrum cache from one batched eigendecomposition per block."""
    blocks = []
    if any(name.startswith("sas_") or name == "svcca" for name in names):
        blocks = ["x", "y"]
    for block in blocks:
        values, vectors = eigh_descending(torch.stack([m.covariance(block) for m in batch]))
        for i, m in enumerate(batch):
            m._cache[("spectrum", block, False)] = (values[i], vectors[i])


def _replicate_values(
    rows: WeightedRows,
    blocks: Iterable[torch.Tensor],
    names: Sequence[str],
    algebra: Sequence[str],
    q: float,
    ritz_rank: int,
    label: str,
) -> dict[str, torch.Tensor]:
    """The named metrics of every resample given as blocks of counts (b, n): (B,) float64 per metric.

    ``algebra``: the names computed by the algebraic engine (the others from each replicate's weighted moments).
    ``label`` names the resamples in errors ("resample", "second-level resample").
    """
    algebra = [name for name in names if name in algebra]
    spectral = [name for name in names if name not in algebra]
    values: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    batch: list[Moments] = []

    def flush() -> None:
        if not batch:  # the block's size was a multiple of EIGH_BATCH: nothing left to decompose
            return
        _decompose_together(batch, spectral)
        per_name: dict[str, list[torch.Tensor]] = {name: [] for name in spectral}
        for m in batch:
            for name, value in evaluate(m, spectral, q).items():
                per_name[name].append(value)
        for name, v in per_name.items():
            if v:
                values[name].append(torch.stack(v))
        batch.clear()

    done = 0  # replicates before this block
    for counts in blocks:
        if algebra:
            if any(name in SAS_METRICS for name in algebra):
                _require_replicate_variance(rows, counts, start=done, label=label)
            values_now = linear_replicates(rows, counts, algebra)
            values_now.update(algebraic.quadratic_replicates(rows, counts, algebra))
            if ritz_rank:
                values_now.update(ritz_sas_replicates(rows, counts, algebra, q, ritz_rank))
            else:
                values_now.update(exact_sas_replicates(rows, counts, algebra, q))
            for name, value in values_now.items():
                values[name].append(value)
        if spectral:
            for weights in counts:
                batch.append(rows.moments(weights))
                if len(batch) == EIGH_BATCH:
                    flush()
            flush()
        done += counts.shape[0]
    return {name: torch.cat(v) for name, v in values.items() if v}


def bootstrap(
    x: torch.Tensor,
    y: torch.Tensor,
    metrics: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    q: float = 0.1,
    method: str = CALIBRATED,
    *,
    groups: int = DEFAULT_GROUPS,
    iterated: tuple[int, int] | None = None,
    engine: str = "algebraic",
    ritz_rank: int = 0,
    nan_policy: str = "raise",
) -> BootstrapResult:
    """Bootstrap (resampling pairs) or grouped-jackknife intervals for moment metrics of x (n, d_x), y (n, d_y).

    Args:
        metrics: names among ``MOMENT_METRICS`` (default: all that apply to these shapes).
        n_boot: number of resamples B. seed: makes the resamples (and the result) deterministic.
        confidence: central interval mass; the interval is the (1 ± confidence)/2 quantiles.
        q: SAS active-set fraction.
        method: ``"calibrated"`` (default) or one of ``INTERVAL_METHODS`` (formulas:
            :mod:`torchspectral.uncertainty.intervals`; measured coverage against known truth:
            docs/uncertainty.md#calibration, ``make coverage``).
            "calibrated": each metric by the method that measured calibrated for it
            (:mod:`torchspectral.uncertainty.calibrated`: normal for ΔSAS and the gap family, basic for CORAL,
            the grouped jackknife for unbiased CKA), ΔSAS only where :func:`sas_identifiability` (with
            ``IDENTIFIABILITY_RESAMPLES`` resamples from ``seed``) calls it identified; no interval for SAS in one
            direction or symmetric, biased linear CKA and SVCCA (``no_interval`` says why). Replicates (and the
            jackknife) are computed only for the metrics whose interval reads them.
            "percentile" (the source paper's default, docs/definitions.md#statistics): the (1 ±
            confidence)/2 quantiles of the replicates;
            "basic": ``2·estimate −`` those quantiles (the percentile interval reflected about the estimate);
            "normal": estimate ± z·sd(replicates);
            "bca": bias-corrected and accelerated percentile interval, the acceleration from a delete-a-group
            jackknife with ``groups`` groups (G extra metric evaluations);
            "jackknife": the delete-a-group jackknife t-interval (t with G − 1 degrees of freedom); it draws no
            bootstrap replicate, so ``n_boot`` is not used — G metric evaluations in all;
            "iterated_normal": estimate ± z·v*/sqrt(v**), the normal interval with its bootstrap variance v*
            corrected by an iterated bootstrap (``iterated`` = (M, C) second-level resamples; v** their mean
            variance): for ΔSAS, whose plain bootstrap sd is too large.
        groups: G, the number of random row groups of the delete-a-group jackknife ("bca", "jackknife"); the groups
            are drawn from ``seed``.
        iterated: (M, C) of "iterated_normal": the first M of the B resamples are each resampled C times more
            (M·C extra replicates, drawn from ``seed`` apart from the first level, which they do not change).
            None (default): M = min(20, B), C = 20, the M = C = 20 measured in the harness.
        engine: how replicates are computed; both give the same replicate values (up to rounding) on the
            same resamples as the naive loop ``alignment_report(x[idx], y[idx])``.
            "algebraic" (default): each metric by its
            cheapest exact route — the gap family (O(n) per replicate, one GEMM for all B) and linear CKA
            biased, unbiased and CORAL (quadratic forms in the counts, O(n²) per replicate instead of O(n·d²);
            see :mod:`torchspectral.uncertainty.algebra`); SAS, which needs each replicate's eigenvectors, from
            two weighted Grams per replicate (:mod:`torchspectral.uncertainty.exact_sas`); SVCCA through weighted
            moments as in "moments" — and then CKA and CORAL too, since they come free with those moments,
            as they do when d is small against n (:func:`~torchspectral.uncertainty.algebra.quadratic_forms_pay_off`).
            "moments": every metric from the
            replicate's weighted moments (one weighted d×d Gram per replicate, spectra decomposed in batches).
        ritz_rank: 0 (default) = off, exact SAS replicates. k > 0 opts SAS into an approximation with
            engine="algebraic": Rayleigh–Ritz in the full sample's top
            ``ritz_rank`` eigenvectors of each anchor, O(n·k²) per replicate (:mod:`torchspectral.uncertainty.ritz`).
            Exact only when ``ritz_rank ≥ d``. Otherwise the error depends on the spectrum: ≈3e-4 on a
            power-law spectrum at n = 20,000, but endpoints off by up to 1.8e-2 — about one interval width — on
            planted data with a noise bulk at n = 5,000, d = 768 (measured: docs/performance.md#ritz). Compare with the
            default on a few replicates first.

    Example:
        >>> import torch, torchspectral as ts
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(500, 8, generator=g, dtype=torch.float64)
        >>> y = x + torch.randn(500, 8, generator=g, dtype=torch.float64)
        >>> r = ts.bootstrap(x, y, ["cka_linear_unbiased", "coral"], n_boot=50)
        >>> r.methods  # the calibrated default: each metric by its own measured method
        {'cka_linear_unbiased': 'jackknife', 'coral': 'basic'}
        >>> r.low["cka_linear_unbiased"] < r.estimate["cka_linear_unbiased"] < r.high["cka_linear_unbiased"]
        True
    """
    x, y = check_pair(x, y, "bootstrap", nan_policy=nan_policy)
    plan = plan_bootstrap(x, y, metrics, n_boot, seed, confidence, q, method, groups, iterated, engine, ritz_rank)
    draws = draw_replicates(x, y, plan, n_boot, seed, q, groups, ritz_rank)
    bounds, bias = interval_bounds(plan, draws, confidence)
    return BootstrapResult(
        estimate=draws.estimate,
        low={name: b[0] for name, b in bounds.items()},
        high={name: b[1] for name, b in bounds.items()},
        replicates=draws.replicates,
        confidence=confidence,
        n_boot=draws.n_boot,
        seed=seed,
        method=method,
        bias=bias,
        jackknife=draws.jackknife,
        groups=groups if plan.jackknifed else 0,
        methods={name: m for name, m in plan.methods.items() if m is not None},
        no_interval=plan.no_interval,
        identifiability=plan.identifiability,
        second_level=draws.second_level,
        iterated=plan.iterations,
    )


@dataclass(frozen=True)
class BootstrapPlan:
    """What one :func:`bootstrap` call computes, decided before any replicate is drawn.

    ``methods``: each metric's interval method (None: no interval, for the reason in ``no_interval``);
    ``resampled``, ``jackknifed``, ``iterated``: the metrics whose interval reads bootstrap replicates,
    group-deleted values, or second-level replicates ((M, C) = ``iterations``); ``algebra``: the resampled metrics the
    algebraic engine computes (the others come from each replicate's weighted moments).
    """

    names: list[str]
    methods: dict[str, str | None]
    no_interval: dict[str, str]
    identifiability: Identifiability | None
    resampled: list[str]
    jackknifed: list[str]
    iterated: list[str]
    iterations: tuple[int, int] | None
    algebra: list[str]


def plan_bootstrap(
    x: torch.Tensor,
    y: torch.Tensor,
    metrics: Sequence[str] | None,
    n_boot: int,
    seed: int,
    confidence: float,
    q: float,
    method: str,
    groups: int,
    iterated: tuple[int, int] | None,
    engine: str,
    ritz_rank: int,
) -> BootstrapPlan:
    """Check the settings of :func:`bootstrap` (validated x, y) and decide each metric's method and engine.

    Under ``method="calibrated"`` this runs the identifiability diagnostic of ΔSAS (its own few resamples).
    """
    check_q(q, "bootstrap")
    if not isinstance(n_boot, int) or n_boot < 2:
        raise ValueError(f"bootstrap: n_boot must be an integer ≥ 2, got {n_boot!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"bootstrap: confidence must lie in (0, 1), got {confidence}")
    if method != CALIBRATED:
        check_method(method, "bootstrap")
    if engine not in ENGINES:
        raise ValueError(f"bootstrap: engine must be one of {ENGINES}, got {engine!r}")
    if isinstance(ritz_rank, bool) or not isinstance(ritz_rank, int) or ritz_rank < 0:
        raise ValueError(f"bootstrap: ritz_rank must be 0 (off) or a positive integer, got {ritz_rank!r}")
    if ritz_rank and engine != "algebraic":
        raise ValueError(
            "bootstrap: ritz_rank is an approximation of the algebraic engine; engine='moments' ignores it"
        )
    same_dim = x.shape[1] == y.shape[1]
    names = (
        list(metrics) if metrics is not None else [n for n in MOMENT_METRICS if same_dim or n not in SAME_DIM_METRICS]
    )
    unknown = [n for n in names if n not in MOMENT_METRICS]
    if unknown:
        raise ValueError(f"bootstrap: unknown metrics {unknown}; choose from {MOMENT_METRICS}")
    if not same_dim and any(n in SAME_DIM_METRICS for n in names):
        raise ValueError(f"bootstrap: {sorted(set(names) & SAME_DIM_METRICS)} need d_x = d_y")
    methods: dict[str, str | None] = dict.fromkeys(names, method)
    no_interval: dict[str, str] = {}
    identifiability = None
    if method == CALIBRATED:
        methods = {name: default_method(name) for name in names}
        no_interval = {name: NO_INTERVAL[name] for name in names if methods[name] is None}
        calibrated_sas = [name for name in names if name in SAS_METRICS and methods[name] is not None]
        if calibrated_sas:
            identifiability = sas_identifiability(x, y, q, IDENTIFIABILITY_RESAMPLES, seed, always_resample=False)
            for name in calibrated_sas:
                reason = unidentified_reason(name, identifiability)
                if reason is not None:
                    methods[name], no_interval[name] = None, reason
    if any(m in JACKKNIFE_METHODS for m in methods.values()):
        check_groups(groups, x.shape[0], "bootstrap")
    resampled = [name for name in names if methods[name] in RESAMPLING_METHODS]
    jackknifed = [name for name in names if methods[name] in JACKKNIFE_METHODS]
    iterated_names = [name for name in names if methods[name] in ITERATED_METHODS]
    iterations = None
    if iterated_names:
        if iterated is None:
            iterated = (min(DEFAULT_ITERATED[0], n_boot), DEFAULT_ITERATED[1])
        iterations = check_iterated(iterated, n_boot, "bootstrap")
    # SVCCA needs the full weighted moments of each replicate; then CKA and CORAL come free with them. The
    # weighted Gram is also cheaper than the O(n²) forms of CKA and CORAL when d is small against n.
    needs_svcca = "svcca" in resampled
    forms = not needs_svcca and algebraic.quadratic_forms_pay_off(x.shape[0], x.shape[1], y.shape[1])
    moments_formed = needs_svcca or (not forms and any(name in QUADRATIC_METRICS for name in resampled))
    # Where the moments are formed anyway, their spectra serve SAS too (unless Ritz is asked for).
    fast_names = list(LINEAR_METRICS) + list(SAS_METRICS if ritz_rank or not moments_formed else ())
    fast_names += list(QUADRATIC_METRICS if forms else ())
    algebra = [name for name in resampled if name in fast_names] if engine == "algebraic" else []
    return BootstrapPlan(
        names, methods, no_interval, identifiability, resampled, jackknifed, iterated_names, iterations, algebra
    )


@dataclass(frozen=True)
class Draws:
    """The values a plan's intervals read: the point ``estimate``, ``n_boot`` bootstrap ``replicates`` (B,),
    ``second_level`` replicates (M, C) and group-deleted ``jackknife`` values (G,), each per metric that needs them."""

    estimate: dict[str, float]
    replicates: dict[str, torch.Tensor]
    second_level: dict[str, torch.Tensor]
    jackknife: dict[str, torch.Tensor]
    n_boot: int


def draw_replicates(
    x: torch.Tensor, y: torch.Tensor, plan: BootstrapPlan, n_boot: int, seed: int, q: float, groups: int, ritz_rank: int
) -> Draws:
    """Every replicate the plan's intervals read, from resamples drawn from ``seed`` (no gradient)."""
    with torch.no_grad():
        rows = WeightedRows(x, y, Moments)
        # The point estimate also validates what every replicate needs (variance, non-zero rows, n).
        estimate = {k: float(v) for k, v in evaluate(rows.point, plan.names, q).items()}
        draws = n_boot if plan.resampled else 0  # "jackknife" draws no resample
        replicates = _replicate_values(
            rows, resample_counts(rows.n, draws, seed, x.device), plan.resampled, plan.algebra, q, ritz_rank, "resample"
        )
        second_level = {}
        if plan.iterated:
            first, inner = plan.iterations
            counts = second_level_counts(rows.n, first, inner, seed, x.device)
            values = _replicate_values(rows, counts, plan.iterated, plan.algebra, q, ritz_rank, "second-level resample")
            second_level = {name: v.view(first, inner) for name, v in values.items()}
        jackknife = jackknife_values(x, y, plan.jackknifed, q, groups, seed) if plan.jackknifed else {}
    return Draws(estimate, replicates, second_level, jackknife, draws)


def interval_bounds(
    plan: BootstrapPlan, draws: Draws, confidence: float
) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
    """Each planned interval (low, high) and the bias estimate beside it, from the draws."""
    bounds, bias = {}, {}
    for name in plan.names:
        method = plan.methods[name]
        if method is None:
            continue
        bounds[name] = interval(
            method,
            draws.estimate[name],
            confidence,
            draws.replicates.get(name),
            draws.jackknife.get(name),
            name=name,
            second_level=draws.second_level.get(name),
        )
        if name in draws.replicates:
            bias[name] = bootstrap_bias(draws.estimate[name], draws.replicates[name])
        else:
            bias[name] = jackknife_bias(draws.estimate[name], draws.jackknife[name])
    return bounds, bias
