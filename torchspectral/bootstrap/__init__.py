"""Uncertainty for the moment metrics: the pair bootstrap (``bootstrap``) and the permutation null for ΔSAS.

One public entry per question; the engines behind them are private modules:

- ``_resampling``: the resamples (indices, and the same resamples as multiplicities);
- ``_pairs``: ``bootstrap`` and its replicate loop (engine "moments": every replicate's weighted moments);
- ``_algebra``: the gap family, linear CKA and CORAL without a d×d matrix per replicate (engine "algebraic");
- ``_exact_sas``: exact SAS replicates from two weighted Grams;
- ``_ritz``: the opt-in Rayleigh–Ritz approximation of SAS replicates (``ritz_rank``);
- ``_permutation``: ``permutation_test``;
- ``_intervals``: the interval methods (``INTERVAL_METHODS``) from replicates and grouped-jackknife values;
- ``_calibrated``: the calibrated default method per metric (``CALIBRATED_METHODS``, ``method="calibrated"``);
- ``_identifiability``: ``sas_identifiability``, whether the eigenmodes SAS reads are identified at this n.
"""

from torchspectral.bootstrap._calibrated import DEFAULT_METHODS as CALIBRATED_METHODS
from torchspectral.bootstrap._identifiability import DirectionIdentifiability, Identifiability, sas_identifiability
from torchspectral.bootstrap._intervals import IntervalWarning
from torchspectral.bootstrap._pairs import (
    ENGINES,
    INTERVAL_METHODS,
    MOMENT_METRICS,
    SAME_DIM_METRICS,
    BootstrapResult,
    bootstrap,
    evaluate,
)
from torchspectral.bootstrap._permutation import PermutationResult, permutation_test
from torchspectral.bootstrap._resampling import resample_counts, resample_indices

__all__ = [
    "CALIBRATED_METHODS",
    "ENGINES",
    "INTERVAL_METHODS",
    "MOMENT_METRICS",
    "SAME_DIM_METRICS",
    "BootstrapResult",
    "DirectionIdentifiability",
    "Identifiability",
    "IntervalWarning",
    "PermutationResult",
    "bootstrap",
    "evaluate",
    "permutation_test",
    "resample_counts",
    "resample_indices",
    "sas_identifiability",
]
