"""Cross-run statistics of the audit (docs/definitions.md#statistics): the analyses of the source paper's experiments
1–4.

Every function is a pure function of a sequence of :class:`~torchspectral.audit.records.RunResult` and returns
plain lists/dicts of ``float``/``int``/``str``/``bool``/``None`` (JSON-ready; the report writer renders them).

* :func:`domain_comparison` — exp. 1: per metric, each domain's n/mean/std and a two-sided Mann–Whitney U test
  between every pair of domains.
* :func:`imbalance_tests` — exp. 2: ΔSAS per domain against 0 (one-sample t-test), the fraction of runs with
  ΔSAS > 0, the per-dataset breakdown, and a one-sided MWU that one domain's ΔSAS exceeds another's.
* :func:`q_sweep_by_domain` — exp. 3: per domain mean ± std of SAS x→y, y→x and ΔSAS at every q.
* :func:`retrieval_correlations` — exp. 4: Spearman ρ of every metric with retrieval, pooled and per domain.
* :func:`dataset_summary` — per dataset mean ± std of any metric (the paper's per-dataset tables).

Conventions: domains are listed in order of first appearance in ``runs`` (the manifest order), so tables and plot
colours are stable. A statistic that cannot be computed is ``None`` with a ``reason`` — never a silent NaN.
Non-finite metric values (a run whose metric came out NaN) are left out of that metric's statistics; ``n``
always counts the values actually used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from itertools import combinations, permutations

import numpy as np
from scipy import stats

from torchspectral.audit.records import RunResult
from torchspectral.registry import METRICS, RETRIEVAL_METRICS

RETRIEVAL_KEYS = RETRIEVAL_METRICS
# Report keys that describe the input, not the alignment: never compared across domains by default.
NON_METRIC_KEYS = ("n_pairs",)
# Per-direction sums (100·(R@1 + R@5 + R@10) of one direction; they add up to rSum): derived, not stored.
DERIVED_TARGETS = {
    "i2t_rsum": ("i2t_r1", "i2t_r5", "i2t_r10"),
    "t2i_rsum": ("t2i_r1", "t2i_r5", "t2i_r10"),
}
DEFAULT_TARGETS = ("rsum", "i2t_r1", "t2i_r1", "i2t_rsum", "t2i_rsum")
SWEEP_KEYS = ("sas_x_to_y", "sas_y_to_x", "sas_imbalance")
MIN_SPEARMAN_N = 3
# Up to this many runs in a stratum, Spearman's p is exact (all n! pairings). scipy's spearmanr p comes from a
# t approximation that is poor for small n: at n = 3 with ρ = 1 it gives p = 0 ("***") where the exact two-sided p
# is 1/3. Above it, the approximation (the paper's method) is used; 8! = 40,320 pairings take milliseconds.
EXACT_SPEARMAN_MAX_N = 8
# Default metric order of tables and figures: the registry's (SAS first), then any other key (e.g. the ``paper/``
# preset) alphabetically.
REPORT_ORDER = tuple(METRICS)


def significance_stars(p: float | None) -> str:
    """``"***"`` for p < .001, ``"**"`` for p < .01, ``"*"`` for p < .05, ``""`` otherwise (and for NaN/None).

    Example:
        >>> [significance_stars(p) for p in (0.0004, 0.001, 0.009, 0.04, 0.05, float("nan"), None)]
        ['***', '**', '**', '*', '', '', '']
    """
    if p is None or not math.isfinite(p):
        return ""
    if p < 0.001:
        return "***"
    if p < 0.01:
        return "**"
    if p < 0.05:
        return "*"
    return ""


def domains_of(runs: Sequence[RunResult]) -> list[str]:
    """The distinct domains of ``runs`` in order of first appearance (the order of every table and legend)."""
    return list(dict.fromkeys(run.domain for run in runs))


def domain_comparison(runs: Sequence[RunResult], metrics: Sequence[str] | None = None) -> list[dict]:
    """Exp. 1: does each metric differ between domains? Per-domain summaries and pairwise two-sided MWU tests.

    Args:
        runs: the audit's runs (each with a ``domain`` label).
        metrics: metric names; default every key present in all runs except ``n_pairs`` (retrieval keys
            included — their domain shift is part of the picture), in report order (SAS first, then CKA, …,
            retrieval; other keys such as ``paper/…`` alphabetically after).

    Returns:
        One dict per metric, in the order of ``metrics``::

            {"metric": "cka_linear",
             "domains": {"natural": {"n": 26, "mean": 0.61, "std": 0.05, "median": 0.60}, ...},
             "tests": [{"a": "natural", "b": "medical", "test": "mann-whitney-u", "alternative": "two-sided",
                        "u": 650.0, "rank_biserial": 0.92, "p": 1.2e-9, "stars": "***", "reason": None}, ...]}

        ``std`` uses ddof=1 (``None`` when n < 2). ``u`` is the U statistic of domain ``a`` (scipy's convention:
        the number of (a, b) pairs with a > b, ties counting ½); ``rank_biserial = 2U/(n_a n_b) − 1`` ∈ [−1, 1] is
        the effect size (+1: every run of ``a`` above every run of ``b``). p: scipy's default method (exact for
        small samples without ties, else the normal approximation with continuity correction).
        ``tests`` has one entry per pair of domains (empty with one domain); a pair with an empty group has
        ``u = p = None`` and a ``reason``.
    """
    runs = _check_runs(runs, "domain_comparison")
    metrics = _resolve_metrics(runs, metrics, "domain_comparison", exclude=NON_METRIC_KEYS)
    domains = domains_of(runs)
    rows = []
    for metric in metrics:
        groups = {d: _values([r for r in runs if r.domain == d], metric) for d in domains}
        tests = [_mwu(a, b, groups[a], groups[b], "two-sided") for a, b in combinations(domains, 2)]
        rows.append({"metric": metric, "domains": {d: _summary(v) for d, v in groups.items()}, "tests": tests})
    return rows


def imbalance_tests(runs: Sequence[RunResult], greater: tuple[str, str] = ("medical", "natural")) -> dict:
    """Exp. 2: is ΔSAS = SAS_x→y − SAS_y→x (image anchor minus text anchor) non-zero, and larger in one domain?

    ΔSAS > 0 means the image's dominant eigenspace is recovered from the text better than the reverse.

    Args:
        runs: the audit's runs; every run needs the ``sas_imbalance`` metric.
        greater: ``(a, b)``: test one-sided that ΔSAS of domain ``a`` is greater than that of domain ``b``
            (the paper's hypothesis: medical > natural).

    Returns:
        ::

            {"metric": "sas_imbalance",
             "domains": {"medical": {"n": 26, "mean": 0.08, "std": 0.03, "t": 12.1, "p": 3e-12, "stars": "***",
                                     "n_positive": 26, "fraction_positive": 1.0, "reason": None}, ...},
             "datasets": {"roco": {"domain": "medical", "n": 13, "mean": ..., "std": ..., "n_positive": 13,
                                   "fraction_positive": 1.0, "all_positive": True}, ...},
             "greater": {"a": "medical", "b": "natural", "test": "mann-whitney-u", "alternative": "greater",
                         "u": 640.0, "rank_biserial": 0.89, "p": 1e-8, "stars": "***", "reason": None}}

        Per domain, a two-sided one-sample t-test of ΔSAS against 0 (``scipy.stats.ttest_1samp``); ``t``/``p`` are
        ``None`` with a reason when n < 2 or every value is the same (the t statistic is undefined). ``greater``
        has ``u = p = None`` and a reason when either domain is absent.
    """
    metric = "sas_imbalance"
    runs = _check_runs(runs, "imbalance_tests")
    _resolve_metrics(runs, [metric], "imbalance_tests", exclude=())
    if len(greater) != 2 or greater[0] == greater[1]:
        raise ValueError(f"imbalance_tests: greater must name two different domains, got {greater!r}")
    domains = domains_of(runs)
    groups = {d: _values([r for r in runs if r.domain == d], metric) for d in domains}
    per_domain = {d: {**_summary(v, median=False), **_ttest_zero(v), **_positives(v)} for d, v in groups.items()}
    per_dataset = {}
    for dataset in dict.fromkeys(r.dataset for r in runs):
        members = [r for r in runs if r.dataset == dataset]
        values = _values(members, metric)
        positives = _positives(values)
        per_dataset[dataset] = {
            "domain": _joined(r.domain for r in members),
            **_summary(values, median=False),
            **positives,
            "all_positive": bool(values.size) and positives["n_positive"] == values.size,
        }
    a, b = greater
    missing = [d for d in (a, b) if d not in groups]
    if missing:
        test = _no_test(a, b, "greater", f"no runs with domain {' or '.join(map(repr, missing))}")
    else:
        test = _mwu(a, b, groups[a], groups[b], "greater")
    return {"metric": metric, "domains": per_domain, "datasets": per_dataset, "greater": test}


def q_sweep_by_domain(runs: Sequence[RunResult]) -> dict:
    """Exp. 3: how SAS and ΔSAS depend on the active-set depth q, per domain.

    Every run must carry ``q_sweep`` over the same q grid (otherwise ``ValueError``: the means would mix
    different active sets).

    Returns:
        ::

            {"q": [0.01, 0.05, 0.1, ...],
             "domains": {"natural": {"n": 26,
                                     "sas_x_to_y": {"mean": [...], "std": [...]},
                                     "sas_y_to_x": {"mean": [...], "std": [...]},
                                     "sas_imbalance": {"mean": [...], "std": [...]}}, ...},
             "gaps": [{"a": "natural", "b": "medical", "sas_x_to_y": [...], "sas_y_to_x": [...],
                       "sas_imbalance": [...]}, ...]}

        Lists run along ``q``. ``std`` uses ddof=1 and is ``None`` at every q when a domain has one run.
        ``gaps`` holds mean(a) − mean(b) at every q for each pair of domains (the paper's natural–medical gap).
    """
    runs = _check_runs(runs, "q_sweep_by_domain")
    grid = _common_q_grid(runs)
    domains = domains_of(runs)
    per_domain: dict[str, dict] = {}
    for d in domains:
        members = [r for r in runs if r.domain == d]
        entry: dict = {"n": len(members)}
        for key in SWEEP_KEYS:
            values = np.array([r.q_sweep[key] for r in members], dtype=np.float64)  # (runs, q)
            entry[key] = {
                "mean": _floats(values.mean(axis=0)),
                "std": _floats(values.std(axis=0, ddof=1)) if len(members) > 1 else [None] * len(grid),
            }
        per_domain[d] = entry
    gaps = []
    for a, b in combinations(domains, 2):
        gap: dict = {"a": a, "b": b}
        for key in SWEEP_KEYS:
            gap[key] = _floats(np.subtract(per_domain[a][key]["mean"], per_domain[b][key]["mean"]))
        gaps.append(gap)
    return {"q": _floats(grid), "domains": per_domain, "gaps": gaps}


def retrieval_correlations(
    runs: Sequence[RunResult],
    metrics: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
) -> list[dict]:
    """Exp. 4: how well does each metric rank runs by retrieval quality? Spearman ρ, pooled and per domain.

    Args:
        runs: the audit's runs.
        metrics: alignment metrics to correlate; default every key present in all runs except the retrieval keys
            and ``n_pairs``.
        targets: retrieval quantities; default those of ``("rsum", "i2t_r1", "t2i_r1", "i2t_rsum", "t2i_rsum")``
            available in all runs. ``i2t_rsum``/``t2i_rsum`` are derived per-direction sums
            ``100·(R@1 + R@5 + R@10)`` of one direction (they add up to ``rsum``). Explicit targets must exist.

    Returns:
        One dict per (metric, target, stratum), metrics outermost, then targets, then strata (pooled first,
        then each domain)::

            {"metric": "sas_symmetric", "target": "rsum", "stratum": "medical", "domain": "medical",
             "n": 26, "rho": 0.969, "p": 2e-16, "p_method": "t-approximation", "stars": "***", "reason": None}

        The pooled stratum has ``stratum = "all"`` and ``domain = None``. ``rho`` is ``scipy.stats.spearmanr``'s;
        ``p`` is two-sided: scipy's t approximation (the paper's method) when n > 8, and the exact permutation p
        (every pairing of the runs) when n ≤ 8, where the approximation is unreliable (``p_method`` says which).
        ``rho``/``p`` are ``None`` with a reason when n < 3 (``"n < 3"``) or when either side is constant within
        the stratum (``"constant"``: ρ is undefined); such rows have no ``p_method``.
    """
    runs = _check_runs(runs, "retrieval_correlations")
    metrics = _resolve_metrics(
        runs, metrics, "retrieval_correlations", exclude=(*RETRIEVAL_KEYS, *NON_METRIC_KEYS, *DERIVED_TARGETS)
    )
    targets = _resolve_targets(runs, targets)
    domains = domains_of(runs)
    strata: list[tuple[str, str | None, list[RunResult]]] = [("all", None, list(runs))]
    strata += [(d, d, [r for r in runs if r.domain == d]) for d in domains]
    rows = []
    for metric in metrics:
        for target in targets:
            for stratum, domain, members in strata:
                x = np.array([r.metrics[metric] for r in members], dtype=np.float64)
                y = np.array([retrieval_value(r, target) for r in members], dtype=np.float64)
                rows.append(
                    {"metric": metric, "target": target, "stratum": stratum, "domain": domain, **_spearman(x, y)}
                )
    return rows


def dataset_summary(runs: Sequence[RunResult], metrics: Sequence[str] | None = None) -> list[dict]:
    """Per dataset (across models): n, mean, std (ddof=1) of each metric — the paper's per-dataset tables.

    Returns:
        One dict per dataset, in order of first appearance::

            {"dataset": "roco", "domain": "medical", "n": 13,
             "metrics": {"sas_imbalance": {"n": 13, "mean": 0.09, "std": 0.02, "median": 0.09}, ...}}

        ``domain`` joins the distinct domains with ``", "`` should one dataset carry several labels.
    """
    runs = _check_runs(runs, "dataset_summary")
    metrics = _resolve_metrics(runs, metrics, "dataset_summary", exclude=NON_METRIC_KEYS)
    rows = []
    for dataset in dict.fromkeys(r.dataset for r in runs):
        members = [r for r in runs if r.dataset == dataset]
        rows.append(
            {
                "dataset": dataset,
                "domain": _joined(r.domain for r in members),
                "n": len(members),
                "metrics": {m: _summary(_values(members, m)) for m in metrics},
            }
        )
    return rows


def retrieval_value(run: RunResult, target: str) -> float:
    """``run.metrics[target]``, or for the derived ``i2t_rsum``/``t2i_rsum`` the per-direction sum 100·Σ R@K."""
    if target in DERIVED_TARGETS:
        return 100.0 * sum(run.metrics[key] for key in DERIVED_TARGETS[target])
    return run.metrics[target]


# ---------------------------------------------------------------------------------------------------------------
# helpers


def report_order(name: str) -> tuple[int, str]:
    """Sort key of metric names in tables and figures: :data:`REPORT_ORDER`, then any other key alphabetically."""
    return (REPORT_ORDER.index(name) if name in REPORT_ORDER else len(REPORT_ORDER), name)


def _check_runs(runs: Sequence[RunResult], where: str) -> list[RunResult]:
    runs = list(runs)
    if not runs:
        raise ValueError(f"{where}: no runs (the statistics need at least one RunResult)")
    return runs


def _resolve_metrics(
    runs: list[RunResult], metrics: Sequence[str] | None, where: str, exclude: Sequence[str]
) -> list[str]:
    if metrics is None:
        common = set(runs[0].metrics).intersection(*(r.metrics for r in runs[1:]))
        chosen = sorted(common - set(exclude), key=report_order)
        if not chosen:
            raise ValueError(f"{where}: no metric is present in every run")
        return chosen
    if isinstance(metrics, str):
        metrics = [metrics]  # a bare name, not its characters
    chosen = list(dict.fromkeys(metrics))
    for metric in chosen:
        lacking = [r.name for r in runs if metric not in r.metrics]
        if lacking:
            raise ValueError(f"{where}: metric {metric!r} is missing from {len(lacking)} run(s): {_few(lacking)}")
    return chosen


def _resolve_targets(runs: list[RunResult], targets: Sequence[str] | None) -> list[str]:
    def available(target: str) -> bool:
        needed = DERIVED_TARGETS.get(target, (target,))
        return all(key in r.metrics for r in runs for key in needed)

    if targets is None:
        chosen = [t for t in DEFAULT_TARGETS if available(t)]
        if not chosen:
            raise ValueError(
                f"retrieval_correlations: none of the default targets {DEFAULT_TARGETS} is present in every run "
                "(were the runs audited without retrieval?)"
            )
        return chosen
    if isinstance(targets, str):
        targets = [targets]
    chosen = list(dict.fromkeys(targets))
    for target in chosen:
        needed = DERIVED_TARGETS.get(target, (target,))
        lacking = [r.name for r in runs if any(key not in r.metrics for key in needed)]
        if lacking:
            raise ValueError(
                f"retrieval_correlations: target {target!r} is missing from {len(lacking)} run(s): {_few(lacking)}"
            )
    return chosen


def _common_q_grid(runs: list[RunResult]) -> np.ndarray:
    lacking = [r.name for r in runs if not r.q_sweep or "q" not in r.q_sweep]
    if lacking:
        raise ValueError(f"q_sweep_by_domain: {len(lacking)} run(s) have no q_sweep: {_few(lacking)}")
    grid = np.asarray(runs[0].q_sweep["q"], dtype=np.float64)
    for run in runs:
        q = np.asarray(run.q_sweep["q"], dtype=np.float64)
        # The grids come from one configuration, so they match to rounding; anything else is a different sweep.
        if q.shape != grid.shape or not np.allclose(q, grid, rtol=1e-9, atol=0.0):
            raise ValueError(
                f"q_sweep_by_domain: runs must share one q grid; {run.name!r} has q={q.tolist()} but "
                f"{runs[0].name!r} has q={grid.tolist()}"
            )
        for key in SWEEP_KEYS:
            if len(run.q_sweep.get(key, ())) != grid.size:
                raise ValueError(
                    f"q_sweep_by_domain: {run.name!r} q_sweep[{key!r}] must have one value per q ({grid.size})"
                )
    return grid


def _values(runs: Sequence[RunResult], metric: str) -> np.ndarray:
    values = np.array([r.metrics[metric] for r in runs], dtype=np.float64)
    return values[np.isfinite(values)]


def _summary(values: np.ndarray, median: bool = True) -> dict:
    n = int(values.size)
    out: dict = {
        "n": n,
        "mean": float(values.mean()) if n else None,
        "std": float(values.std(ddof=1)) if n > 1 else None,
    }
    if median:
        out["median"] = float(np.median(values)) if n else None
    return out


def _positives(values: np.ndarray) -> dict:
    n_positive = int((values > 0).sum())
    return {"n_positive": n_positive, "fraction_positive": n_positive / values.size if values.size else None}


def _ttest_zero(values: np.ndarray) -> dict:
    if values.size < 2:
        return {"t": None, "p": None, "stars": "", "reason": f"n = {values.size} < 2"}
    if np.ptp(values) == 0:
        # scipy returns NaN (with a warning) or ±inf depending on version: the t statistic is undefined.
        return {"t": None, "p": None, "stars": "", "reason": "constant"}
    res = stats.ttest_1samp(values, 0.0)
    return {"t": float(res.statistic), "p": float(res.pvalue), "stars": significance_stars(res.pvalue), "reason": None}


def _mwu(a: str, b: str, xa: np.ndarray, xb: np.ndarray, alternative: str) -> dict:
    empty = [d for d, v in ((a, xa), (b, xb)) if v.size == 0]
    if empty:
        return _no_test(a, b, alternative, f"no finite values for {' and '.join(map(repr, empty))}")
    res = stats.mannwhitneyu(xa, xb, alternative=alternative)
    return {
        "a": a,
        "b": b,
        "test": "mann-whitney-u",
        "alternative": alternative,
        "u": float(res.statistic),
        # effect size next to p: with 26 runs a domain p says little about how far apart the domains are
        "rank_biserial": float(2.0 * res.statistic / (xa.size * xb.size) - 1.0),
        "p": float(res.pvalue),
        "stars": significance_stars(res.pvalue),
        "reason": None,
    }


def _no_test(a: str, b: str, alternative: str, reason: str) -> dict:
    return {
        "a": a,
        "b": b,
        "test": "mann-whitney-u",
        "alternative": alternative,
        "u": None,
        "rank_biserial": None,
        "p": None,
        "stars": "",
        "reason": reason,
    }


def _spearman(x: np.ndarray, y: np.ndarray) -> dict:
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(x.size)
    if n < MIN_SPEARMAN_N:
        return {"n": n, "rho": None, "p": None, "stars": "", "reason": f"n < {MIN_SPEARMAN_N}"}
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        # spearmanr warns and returns NaN here: ρ is undefined when one side has a single rank.
        return {"n": n, "rho": None, "p": None, "stars": "", "reason": "constant"}
    res = stats.spearmanr(x, y)
    rho = float(res.statistic)
    if n <= EXACT_SPEARMAN_MAX_N:
        p, method = _spearman_exact_p(x, y, rho), "exact"
    else:
        p, method = float(res.pvalue), "t-approximation"
    return {"n": n, "rho": rho, "p": p, "p_method": method, "stars": significance_stars(p), "reason": None}


def _spearman_exact_p(x: np.ndarray, y: np.ndarray, rho: float) -> float:
    """Two-sided permutation p of Spearman ρ over every pairing of y with x (ties keep their average ranks).

    Two-sided as in ``scipy.stats.permutation_test``: twice the smaller one-sided p (capped at 1), which with
    ties — where the null distribution need not be symmetric — differs from counting |ρ*| ≥ |ρ|.
    """
    rx = stats.rankdata(x)
    ry = stats.rankdata(y)
    dx = rx - rx.mean()
    dy = ry - ry.mean()
    # Pearson correlation of the ranks = Spearman ρ; the means and norms do not change under permutation.
    rhos = dy[_all_permutations(x.size)] @ dx / (np.linalg.norm(dx) * np.linalg.norm(dy))
    slack = 1e-12 * max(abs(rho), 1.0)  # a pairing as strong as the observed one counts, up to rounding
    greater = np.mean(rhos >= rho - slack)
    less = np.mean(rhos <= rho + slack)
    return float(min(1.0, 2.0 * min(greater, less)))


@lru_cache(maxsize=EXACT_SPEARMAN_MAX_N)
def _all_permutations(n: int) -> np.ndarray:
    return np.array(list(permutations(range(n))), dtype=np.intp)  # (n!, n)


def _floats(values) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64).tolist()]


def _joined(labels) -> str:
    return ", ".join(dict.fromkeys(labels))


def _few(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", … ({len(names) - limit} more)" if len(names) > limit else "")
