"""The verdict as users get it, scored against planted models with known population values (issue 26).

Each regime is a planted linear model ``x = μ_x + s_x·F_x w``, ``y = μ_y + s_y·F_y w`` with w of independent
unit-variance factors (Gaussian, or Student-t with 5 degrees of freedom: heavy tails), optionally followed by
L2 normalisation of every row. Without normalisation the population covariances are exact,
``Σ_x = s_x² F_x F_xᵀ``, ``Σ_y = s_y² F_y F_yᵀ``, ``Σ_xy = s_x s_y F_x F_yᵀ``; with it they are the moments of
``POPULATION_PAIRS`` fresh pairs. The population imbalance ΔS is :func:`torchspectral.verdict.subspace_scores`
on those covariances, and the per-mode ΔSAS (the paper's metric) beside it, so that their signs can be compared.

Per repeat, fresh data and one :func:`torchspectral.verdict.imbalance_verdict` call at its defaults. Per regime:
how often a direction is claimed and whether it is the right one, "none", "inconclusive", the coverage of the
interval (Clopper–Pearson 95% interval of that coverage), bias and sd of the estimate, mean se over the true sd.

Models:

- ``lossy``, ``scaled``, ``degenerate``: the models of the bootstrap harness (``tests/planted_coverage.py``), whose
  covariances share one eigenbasis, so ΔS = ΔSAS there.
- ``power``: ``lossy`` with the correlation of x's one-sided factors raised until ΔS = ±``target`` (a small
  imbalance: the verdict's power); ``reversed`` swaps the towers.
- ``scales``: ``scaled`` with x multiplied by 1e3 and y by 1e-3 (ΔS = 0; the verdict is scale-free).
- adversarial nulls (ΔS = ΔSAS = 0 exactly, by a symmetry that swaps the towers):
  ``interleaved``: triples of coordinates (shared, x-only, y-only) whose eigenvalues are within 0.5%, decaying by
  1% per triple, so the anchors' spectra are near-degenerate everywhere, the active-set boundary included, and
  one-sided modes sit between shared ones; ``reflected``: ``x = A z + e``, ``y = P A z + e'`` with P a Householder
  reflection whose axis lies in A's top directions, so the towers' eigenvectors differ (no shared basis) and the
  towers' scales differ by the reflection's effect on the spectrum; ``rotated``: the same with P a reflection of an
  8-dimensional subspace.

Held out: the three ``check-`` regimes were fixed (this file's first commit) before the estimator's details were
frozen, and were run only once, for the committed results.

Run: ``make coverage-verdict`` (about 20 minutes on 2 cores). Writes
``benchmarks/results/coverage-verdict-cpu-2core.json`` and every repeat gzipped beside it.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import math
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from scipy import stats

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # planted_coverage: the bootstrap harness's models
import planted_coverage  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "coverage-verdict-cpu-2core.json"
Q_ACTIVE = 0.1
POPULATION_PAIRS = 1_000_000
NULL = 1e-9  # |population ΔS| below this is "no imbalance"


@dataclass(frozen=True)
class Regime:
    name: str
    n: int
    d: int
    model: str  # lossy / scaled / degenerate / power / scales / interleaved / reflected / rotated
    repeats: int
    seed: int
    factors: str = "gauss"  # or "t5"
    l2: bool = False
    reverse: bool = False  # swap the towers
    target: float = 0.02  # |ΔS| of a "power" model
    adversarial: bool = False


REGIMES = (
    Regime("d256-n2000-lossy", 2000, 256, "lossy", 200, 101),
    Regime("d256-n5000-lossy", 5000, 256, "lossy", 200, 102),
    Regime("d256-n2000-scaled-null", 2000, 256, "scaled", 200, 103),
    Regime("d256-n2000-degenerate", 2000, 256, "degenerate", 200, 104),
    Regime("d256-n200-lossy", 200, 256, "lossy", 200, 105),  # n < d
    Regime("d256-n5000-heavy", 5000, 256, "lossy", 200, 106, factors="t5"),
    Regime("d256-n5000-l2", 5000, 256, "lossy", 200, 107, l2=True),
    Regime("d256-n5000-scales-null", 5000, 256, "scales", 200, 108),
    Regime("d768-n2000-lossy", 2000, 768, "lossy", 100, 109),
    Regime("d768-n5000-lossy", 5000, 768, "lossy", 100, 110),
    Regime("d768-n20000-lossy", 20000, 768, "lossy", 40, 111),
    Regime("d768-n500-lossy", 500, 768, "lossy", 100, 112),  # n < d
    Regime("d768-n5000-power", 5000, 768, "power", 100, 113),
    Regime("d768-n5000-power-reversed", 5000, 768, "power", 100, 114, reverse=True),
    Regime("d256-n2000-interleaved-null", 2000, 256, "interleaved", 200, 115, adversarial=True),
    Regime("d256-n5000-interleaved-null", 5000, 256, "interleaved", 200, 116, adversarial=True),
    Regime("d768-n5000-interleaved-null", 5000, 768, "interleaved", 100, 117, adversarial=True),
    Regime("d256-n5000-reflected-null", 5000, 256, "reflected", 200, 118, adversarial=True),
    # Held out (see the module docstring).
    Regime("check-d512-n3000-heavy-reversed", 3000, 512, "lossy", 100, 201, factors="t5", reverse=True),
    Regime("check-d384-n10000-l2-power", 10000, 384, "power", 100, 202, l2=True),
    Regime("check-d256-n4000-rotated-null", 4000, 256, "rotated", 100, 203, adversarial=True),
)
QUICK = (
    Regime("quick-d64-n2000-lossy", 2000, 64, "lossy", 4, 301),
    Regime("quick-d64-n2000-interleaved-null", 2000, 64, "interleaved", 4, 302, adversarial=True),
    Regime("quick-d64-n2000-l2", 2000, 64, "lossy", 4, 303, l2=True),
)
ALL = {r.name: r for r in REGIMES + QUICK}


def _diagonal_loadings(alpha2, beta2, c, basis):
    """F_x, F_y of the per-coordinate model x̃_i = α_i u_i, ỹ_i = β_i (c_i u_i + sqrt(1 − c_i²) v_i) in ``basis``."""
    d = alpha2.size
    fx = np.zeros((d, 2 * d))
    fy = np.zeros((d, 2 * d))
    fx[:, :d] = basis * np.sqrt(alpha2)
    fy[:, :d] = basis * (np.sqrt(beta2) * c)
    fy[:, d:] = basis * (np.sqrt(beta2) * np.sqrt(1 - c**2))
    return fx, fy


def _population_delta(fx, fy) -> tuple[float, float]:
    """(ΔS, per-mode ΔSAS) of exact covariances."""
    from torchspectral.registry import compute_moment_metrics
    from torchspectral.verdict import subspace_scores

    cx, cy, cxy = (torch.from_numpy(m) for m in (fx @ fx.T, fy @ fy.T, fx @ fy.T))
    s_xy, s_yx = subspace_scores(cx, cy, cxy, Q_ACTIVE)
    d = cx.shape[0]
    zeros = torch.zeros(d, dtype=torch.float64)
    from torchspectral.stats import MomentStatistics

    big = planted_coverage.POPULATION_N
    sums = {"sum_x": zeros, "sum_y": zeros.clone(), "sum_xx": big * cx, "sum_xy": big * cxy, "sum_yy": big * cy,
            "pairs_f32": torch.zeros((), dtype=torch.float64)}  # fmt: skip
    moments = MomentStatistics(d_x=d, d_y=d, n=big, shift_x=zeros, shift_y=zeros, sums=sums)
    delta_sas = float(compute_moment_metrics(moments, ["sas_imbalance"], Q_ACTIVE)["sas_imbalance"])
    return float(s_xy - s_yx), delta_sas


def _reflection(d: int, top: np.ndarray, rank: int, rng) -> np.ndarray:
    """I − 2 W Wᵀ with W (d × rank) orthonormal, mostly in the span of ``top`` (d × m)."""
    mix = top @ rng.normal(size=(top.shape[1], rank)) + 0.3 * rng.normal(size=(d, rank)) / math.sqrt(d)
    w = np.linalg.qr(mix)[0]
    return np.eye(d) - 2 * w @ w.T


def build(regime: Regime) -> dict:
    """The regime's loadings (F_x, F_y), offsets and population values (deterministic in its seed)."""
    d, rng = regime.d, np.random.default_rng([regime.seed, 0])
    a = planted_coverage.active_count(d)
    if regime.model in ("lossy", "scaled", "degenerate", "power", "scales"):
        structure = {"power": "lossy", "scales": "scaled"}.get(regime.model, regime.model)
        m = planted_coverage.planted(planted_coverage.Regime(regime.name, regime.n, d, structure, 1, regime.seed))
        alpha2, beta2, c = m["alpha2"], m["beta2"], m["c"].copy()
        if regime.model == "power":
            c = _tune_power(alpha2, beta2, c, m["basis"], regime.target)
        fx, fy = _diagonal_loadings(alpha2, beta2, c, m["basis"])
        if regime.model == "scales":
            fx, fy = 1e3 * fx, 1e-3 * fy
    elif regime.model == "interleaved":
        triples = (d - 16) // 3
        basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
        alpha2 = np.full(d, 0.02) * np.linspace(1.1, 0.9, d)
        beta2 = alpha2.copy()
        c = np.zeros(d)
        for t in range(triples):
            level = 10.0 * 0.99**t
            shared, x_only, y_only = 3 * t, 3 * t + 1, 3 * t + 2
            alpha2[[shared, x_only, y_only]] = [level, level * 0.995, 0.02]
            beta2[[shared, x_only, y_only]] = [level, 0.02, level * 0.995]
            c[shared] = 0.8
        # The swap symmetry: exchanging x ↔ y and the coordinates x_only ↔ y_only maps the model onto itself.
        fx, fy = _diagonal_loadings(alpha2, beta2, c, basis)
    elif regime.model in ("reflected", "rotated"):
        basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
        k = 2 * a
        scales = np.sqrt(10.0 * (0.05 / 10.0) ** (np.arange(k) / (k - 1)))
        loading = basis[:, :k] * scales  # A: d × k factors along decaying directions
        rank = 1 if regime.model == "reflected" else 8
        reflection = _reflection(d, basis[:, : a // 2 + rank], rank, rng)
        noise = math.sqrt(0.02)
        # x = A z + e, y = P A z + e' (e, e' isotropic): (y, x) has the law of (P x, P y), so ΔS = 0.
        fx = np.concatenate([loading, noise * np.eye(d), np.zeros((d, d))], 1)
        fy = np.concatenate([reflection @ loading, np.zeros((d, d)), noise * np.eye(d)], 1)
    else:
        raise ValueError(regime.model)
    if regime.reverse:
        fx, fy = fy, fx
    offsets = np.random.default_rng([regime.seed, 2]).normal(size=(2, d)) * (0.5 if regime.l2 else 1.0)
    model = {"fx": fx, "fy": fy, "offsets": offsets}
    if regime.l2:
        model["population"] = _l2_population(regime, model)
    else:
        model["population"] = dict(zip(("delta_s", "delta_sas"), _population_delta(fx, fy), strict=True))
    return model


def _tune_power(alpha2, beta2, c, basis, target: float) -> np.ndarray:
    """``c`` with x's one-sided factors (c = 0 among x's top factors) given a common correlation s, chosen by
    bisection so that the population ΔS is −target (x the less recovered anchor, as in ``lossy``)."""
    top = np.argsort(-alpha2)[: int((alpha2 > 0.05).sum())]
    one_sided = top[c[top] == 0]

    def delta(s):
        trial = c.copy()
        trial[one_sided] = s
        return _population_delta(*_diagonal_loadings(alpha2, beta2, trial, basis))[0], trial

    low, high = 0.0, 0.95
    for _ in range(40):
        mid = (low + high) / 2
        if delta(mid)[0] < -target:
            low = mid
        else:
            high = mid
    return delta((low + high) / 2)[1]


def sample(regime: Regime, model: dict, repeat: int, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """n fresh pairs (float64), seeded by (regime seed, repeat)."""
    n = regime.n if n is None else n
    rng = np.random.default_rng([regime.seed, 1, repeat] if repeat >= 0 else [regime.seed, 3, -repeat])
    width = model["fx"].shape[1]
    if regime.factors == "t5":
        w = rng.standard_t(5, size=(n, width)) / math.sqrt(5 / 3)
    else:
        w = rng.standard_normal((n, width))
    x = w @ model["fx"].T + model["offsets"][0]
    y = w @ model["fy"].T + model["offsets"][1]
    if regime.l2:
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        y /= np.linalg.norm(y, axis=1, keepdims=True)
    return torch.from_numpy(x), torch.from_numpy(y)


def _l2_population(regime: Regime, model: dict, chunk: int = 50_000) -> dict[str, float]:
    """ΔS and ΔSAS of L2-normalised rows, from the moments of POPULATION_PAIRS fresh pairs."""
    from torchspectral.registry import compute_moment_metrics
    from torchspectral.stats import MomentStatistics
    from torchspectral.verdict import subspace_scores

    total = None
    for start in range(0, POPULATION_PAIRS, chunk):
        x, y = sample(regime, model, -1 - start // chunk, n=chunk)
        batch = MomentStatistics._of_batch(x, y, ("covariance",))
        total = batch if total is None else total.merge(batch)
    delta_sas = float(compute_moment_metrics(total, ["sas_imbalance"], Q_ACTIVE)["sas_imbalance"])
    cov_x, cov_y, cov_xy = (total.covariance(block) for block in ("x", "y", "xy"))
    s_xy, s_yx = subspace_scores(cov_x, cov_y, cov_xy, Q_ACTIVE)
    return {"delta_s": float(s_xy - s_yx), "delta_sas": delta_sas}


def one_repeat(regime: Regime, model: dict, repeat: int) -> dict:
    from torchspectral.verdict import imbalance_verdict

    x, y = sample(regime, model, repeat)
    started = time.perf_counter()
    v = imbalance_verdict(x, y, q=Q_ACTIVE, seed=repeat)
    return {
        "repeat": repeat, "seconds": time.perf_counter() - started, "bottleneck": v.bottleneck,
        "estimate": v.estimate, "low": v.low, "high": v.high, "se": v.se, "delta_sas": v.delta_sas,
        "reason": v.reason if v.bottleneck == "inconclusive" else None, "variance_parts": v.variance_parts,
    }  # fmt: skip


def _init_worker() -> None:
    torch.set_num_threads(1)


@functools.lru_cache(maxsize=2)
def _model(regime: Regime) -> dict:
    return build(regime)  # once per regime and worker process (the population values cost seconds to minutes)


def run_regime(regime: Regime, repeats: list[int]) -> tuple[str, dict, list[dict]]:
    model = _model(regime)
    return regime.name, model["population"], [one_repeat(regime, model, r) for r in repeats]


def summarise(regime: Regime, population: dict, runs: list[dict]) -> dict:
    truth = population["delta_s"]
    null = abs(truth) < NULL
    right = "y" if truth > 0 else "x"
    claims = [r for r in runs if r["bottleneck"] in ("x", "y")]
    with_interval = [r for r in runs if r["low"] is not None]
    covered = sum(r["low"] <= truth <= r["high"] for r in with_interval)
    estimates = np.array([r["estimate"] for r in with_interval]) if with_interval else np.array([])
    out = {
        "regime": asdict(regime),
        "population_delta_s": truth,
        "population_delta_sas": population["delta_sas"],
        "signs_agree": None if null else bool(np.sign(truth) == np.sign(population["delta_sas"])),
        "repeats": len(runs),
        "claimed": len(claims) / len(runs),
        "wrong_direction": sum(null or r["bottleneck"] != right for r in claims) / len(runs),
        "right_direction": 0.0 if null else sum(r["bottleneck"] == right for r in claims) / len(runs),
        "none": sum(r["bottleneck"] == "none" for r in runs) / len(runs),
        "inconclusive": sum(r["bottleneck"] == "inconclusive" for r in runs) / len(runs),
        "inconclusive_reasons": sorted({r["reason"].split(":")[0] for r in runs if r["reason"]}),
        "seconds_per_call": float(np.mean([r["seconds"] for r in runs])),
    }
    if with_interval:
        k, m = covered, len(with_interval)
        out |= {
            "coverage": k / m,
            "coverage_ci": [
                float(stats.beta.ppf(0.025, k, m - k + 1)) if k > 0 else 0.0,
                float(stats.beta.ppf(0.975, k + 1, m - k)) if k < m else 1.0,
            ],
            "bias": float(estimates.mean() - truth),
            "sd": float(estimates.std(ddof=1)) if m > 1 else None,
            "se_over_sd": float(np.mean([r["se"] for r in with_interval]) / estimates.std(ddof=1)) if m > 1 else None,
        }
    return out


def table(summaries: list[dict]) -> str:
    head = (
        f"{'regime':36s} {'ΔS pop':>8s} {'ΔSAS pop':>8s} {'claim':>6s} {'wrong':>6s} {'right':>6s} {'none':>5s} "
        f"{'inconc':>6s} {'cover':>6s} {'bias/sd':>7s} {'se/sd':>6s} {'s/call':>6s}"
    )
    lines = [head]
    for s in summaries:
        bias_sd = s["bias"] / s["sd"] if s.get("sd") else float("nan")
        lines.append(
            f"{s['regime']['name']:36s} {s['population_delta_s']:+8.4f} {s['population_delta_sas']:+8.4f} "
            f"{s['claimed']:6.1%} {s['wrong_direction']:6.1%} {s['right_direction']:6.1%} {s['none']:5.0%} "
            f"{s['inconclusive']:6.1%} {s.get('coverage', float('nan')):6.1%} {bias_sd:+7.2f} "
            f"{s.get('se_over_sd') or float('nan'):6.2f} {s['seconds_per_call']:6.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--regimes", nargs="*", help="names (default: all committed regimes)")
    parser.add_argument("--quick", action="store_true", help="the tiny smoke regimes; writes nothing unless --out")
    parser.add_argument("--repeats", type=int, help="override every regime's repeat count")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=25, help="repeats per task")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    regimes = QUICK if args.quick else tuple(ALL[n] for n in args.regimes) if args.regimes else REGIMES
    out = args.out if args.out or args.quick else RESULTS
    started = time.perf_counter()
    tasks = []
    for regime in regimes:
        count = args.repeats or regime.repeats
        tasks += [(regime, list(range(s, min(s + args.chunk, count)))) for s in range(0, count, args.chunk)]
    results: dict[str, tuple[dict, list[dict]]] = {}
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn"), initializer=_init_worker) as pool:
        for name, population, runs in pool.map(run_regime, *zip(*tasks, strict=True)):
            results.setdefault(name, (population, []))[1].extend(runs)
            print(f"[{time.perf_counter() - started:7.0f} s] {name}: {len(results[name][1])} repeats", flush=True)
    summaries = [summarise(r, *results[r.name]) for r in regimes]
    print(table(summaries))
    if out:
        report = {
            "machine": {
                "cpu_count": __import__("os").cpu_count(),
                "python": platform.python_version(),
                "torch": torch.__version__,
            },
            "seconds": time.perf_counter() - started,
            "regimes": summaries,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
        raw = {name: {"population": pop, "runs": runs} for name, (pop, runs) in results.items()}
        with gzip.open(out.with_name(out.name.replace(".json", "-raw.json.gz")), "wt") as f:
            json.dump(raw, f)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
