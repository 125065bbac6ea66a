"""The calibrated default interval of each moment metric: ``method="calibrated"`` (issue 13).

The method per metric was chosen by the coverage each one measured against known truth on planted models whose
population covariances are exact (``benchmarks/calibration/coverage.py``, ``make coverage``; the tables are in
docs/uncertainty.md#calibration and ``benchmarks/results/coverage-cpu-2core.json``), not by taste. The default alone was
then scored as ``ts.bootstrap`` returns it (B = 200) with 100–200 repeats in each of 15 regimes
(``benchmarks/calibration/coverage_default.py``, ``make coverage-default``; 101 of 110 cells in [92, 99]%):

- ΔSAS (``sas_imbalance``, the audit's verdict): ``"iterated_normal"`` (estimate ± z·v*/sqrt(v**), the bootstrap
  variance corrected by an iterated bootstrap of M = C = 20), and only where :func:`sas_identifiability` calls both
  directions identified. There the plain ``"normal"`` interval covered 98.5–100% (4.5–5.6 true sd wide: the
  bootstrap sd of ΔSAS is too large, eigenvector leakage into the modes the other side does not see being a
  second-order error that the bootstrap doubles); the iterated correction covered 95–100% (pooled 97.0% of 758
  identified repeats), 3.95–4.71 true sd wide. Where the diagnostic does not call it identified, no method is
  calibrated: with close eigenvalues the sample eigenvectors rotate from sample to sample, SAS is biased by up to
  4 sd and every interval covered 0–72% in some such regime. There no interval is given, and the reason says why.
- SAS x→y, y→x and symmetric: none. Even where identified they are biased by 0.3–1.4 sd (the |ρ| of active modes
  the other side does not see is biased up, O(1/sqrt(n)) like the sd), and in the held-out regimes every method
  fell below 92% for one of them (normal 83% and 86%, basic 88–90%). ΔSAS's biases cancel; theirs do not.
- unbiased linear CKA: ``"jackknife"`` (the delete-a-group t-interval; also the cheapest, G evaluations): 92.5–97%.
- biased linear CKA: none. Its upward bias is large unless n ≫ d (2.7 sd at d = 256, n = 500; 4.1 at d = 256,
  n = 200; 4.8 at d = 768, n = 5,000; 13.7 at d = 768, n = 500), and no method covered ≥ 92% in every regime; the
  unbiased estimator estimates the same population CKA and has a calibrated interval.
- CORAL: ``"basic"``: 91–99.5% (the plug-in is biased by up to 7 sd where n < d; basic corrects for it).
- SVCCA: none (every method covered 0%: at keep = 0.99 the estimator is biased by 34–41 sd).
- the modality-gap family: ``"normal"`` (smooth functions of row means): 88–97.5%, pooled 94.0–94.8% per metric;
  percentile covered 87–100% in the full harness.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

from torchspectral.spectral import SAS_METRICS

CALIBRATED = "calibrated"

# metric → its calibrated interval method, or None where no method is calibrated (the reason is in NO_INTERVAL).
DEFAULT_METHODS: dict[str, str | None] = {
    **dict.fromkeys(SAS_METRICS, None),
    "sas_imbalance": "iterated_normal",
    "cka_linear": None,
    "cka_linear_unbiased": "jackknife",
    "svcca": None,
    "coral": "basic",
    **dict.fromkeys(("modality_gap", "l2i", "true_pair_cosine", "cosine_gap", "rmg"), "normal"),
}

_SAS_BIASED = (
    "no calibrated interval: even where its eigenmodes are identified, SAS in one direction is biased by up to 1.4 sd "
    "(the |ρ| of modes the other side does not see is biased up) and no method covered ≥ 92% in every planted regime; "
    "ΔSAS, whose biases cancel, has one"
)
NO_INTERVAL = {
    "sas_x_to_y": _SAS_BIASED,
    "sas_y_to_x": _SAS_BIASED,
    "sas_symmetric": _SAS_BIASED,
    "cka_linear": (
        "no calibrated interval for the biased estimator (biased upward by up to 14 sd on planted models with n < d); "
        "the unbiased linear CKA estimates the same population value and has one"
    ),
    "svcca": "no calibrated interval: SVCCA at keep = 0.99 is biased by 34–41 sd on planted models; no method covers",
}

# Which anchors' eigenmodes each SAS metric reads (x: SAS x→y; y: SAS y→x).
SAS_ANCHORS = {"sas_x_to_y": ("x",), "sas_y_to_x": ("y",), "sas_symmetric": ("x", "y"), "sas_imbalance": ("x", "y")}

# Pair resamples of the identifiability diagnostic under method="calibrated" (the harness uses the same number).
IDENTIFIABILITY_RESAMPLES = 10


def default_method(name: str) -> str | None:
    """The calibrated interval method of one moment metric (None: no calibrated interval exists for it)."""
    try:
        return DEFAULT_METHODS[name]
    except KeyError:
        raise ValueError(f"calibrated: no calibrated method is recorded for {name!r}") from None


def unidentified_reason(name: str, identifiability) -> str | None:
    """Why SAS metric ``name`` gets no interval under this diagnostic (None: its directions are identified)."""
    failing = [getattr(identifiability, a) for a in SAS_ANCHORS[name] if not getattr(identifiability, a).identified]
    if not failing:
        return None
    words = {"x": "x (SAS x→y)", "y": "y (SAS y→x)"}
    return (
        "the eigenmodes SAS reads are not identified at this n, so no interval is calibrated ("
        + "; ".join(f"anchor {words[d.anchor]}: {d.reason.removeprefix('not identified: ')}" for d in failing)
        + ")"
    )


# The harness's coverage of each metric's calibrated method per regime, shipped with the package so that a report
# can quote it for a regime like its run's (written by ``benchmarks/calibration/coverage_default.py`` on a full run).
DIGEST = Path(__file__).with_name("calibration.json")


@lru_cache(maxsize=1)
def _digest() -> dict:
    return json.loads(DIGEST.read_text(encoding="utf-8"))


def harness_coverage(name: str, n: int, d: int, min_repeats: int = 10) -> dict | None:
    """The harness regime most like a run of n pairs in d dimensions (nearest in log n and log d) among those where
    ``name``'s calibrated method gave an interval in at least ``min_repeats`` repeats, with that method's measured
    coverage there: ``{"regime", "n", "d", "method", "coverage", "repeats"}`` (None: no such regime)."""
    best, distance = None, math.inf
    for regime in _digest()["regimes"]:
        entry = regime["metrics"].get(name)
        # A digest from before a change of the metric's default measured another method: never quote it for this one.
        if entry is None or entry["repeats"] < min_repeats or entry["method"] != DEFAULT_METHODS.get(name):
            continue
        gap = abs(math.log(n / regime["n"])) + abs(math.log(d / regime["d"]))
        if gap < distance:
            best, distance = {"regime": regime["name"], "n": regime["n"], "d": regime["d"], **entry}, gap
    return best
