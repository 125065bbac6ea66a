"""Uncertainty for the moment metrics: the pair bootstrap (``bootstrap``), its interval methods, their calibrated
default per metric, and the permutation test of independent towers.

``ts.bootstrap`` and ``ts.permutation_test`` are the entries; the modules are public for what the audit, the
harnesses and the tests read from them:

- ``pairs``: ``bootstrap``, its result and its replicate loop (engine "moments": every replicate's weighted moments);
- ``resampling``: the resamples (indices, and the same resamples as multiplicities);
- ``algebra``: the gap family, linear CKA and CORAL without a d×d matrix per replicate (engine "algebraic");
- ``exact_sas``: exact SAS replicates from two weighted Grams;
- ``ritz``: the opt-in Rayleigh–Ritz approximation of SAS replicates (``ritz_rank``);
- ``intervals``: the interval methods (``INTERVAL_METHODS``) from replicates and grouped-jackknife values;
- ``calibrated``: the calibrated default method per metric (``CALIBRATED_METHODS``, ``method="calibrated"``) and
  ``calibration.json``, what the coverage harness measured for each;
- ``identifiability``: ``sas_identifiability``, whether the eigenmodes SAS reads are identified at this n;
- ``permutation``: ``permutation_test``.
"""

from torchspectral.uncertainty.calibrated import DEFAULT_METHODS as CALIBRATED_METHODS
from torchspectral.uncertainty.identifiability import DirectionIdentifiability, Identifiability, sas_identifiability
from torchspectral.uncertainty.intervals import IntervalWarning
from torchspectral.uncertainty.pairs import (
    ENGINES,
    INTERVAL_METHODS,
    MOMENT_METRICS,
    SAME_DIM_METRICS,
    BootstrapResult,
    bootstrap,
    evaluate,
)
from torchspectral.uncertainty.permutation import PermutationResult, permutation_test
from torchspectral.uncertainty.resampling import resample_counts, resample_indices

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
