"""The calibrated default interval of each moment metric: ``method="calibrated"``.

Each metric gets the interval method that covered the population value at its nominal rate against known truth
(planted models with exact population covariances, ``make coverage`` and ``make coverage-default``), or no
interval where no method did — with the reason, which the audit prints. The measurements behind each choice are in
docs/uncertainty.md#calibration. The choices:

- ΔSAS (``sas_imbalance``): ``"iterated_normal"`` (the bootstrap variance corrected by an iterated bootstrap), and
  only where :func:`sas_identifiability` calls both directions' eigenmodes identified; none otherwise.
- SAS x→y, y→x and symmetric: none (biased even where identified; ΔSAS's biases cancel, theirs do not).
- unbiased linear CKA: ``"jackknife"`` (the delete-a-group t-interval).
- biased linear CKA: none (biased upward unless n ≫ d; the unbiased estimator has an interval).
- CORAL: ``"basic"`` (corrects the plug-in's bias where n < d).
- SVCCA: none (no method covers it at keep = 0.99).
- the modality-gap family: ``"normal"`` (smooth functions of row means).
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
