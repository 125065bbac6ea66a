"""torchspectral: how well are two embedding spaces aligned? Differentiable, streaming, GPU-ready metrics.

>>> import torchspectral as ts
>>> sorted(ts.__all__)[:3]
['Moments', 'SpectralAlignment', 'alignment_report']
"""

from torchspectral.bootstrap import BootstrapResult, PermutationResult, bootstrap, permutation_test
from torchspectral.functional import (
    SpectralAlignment,
    alignment_report,
    cka,
    coral,
    cosine_gap,
    l2i,
    modality_gap,
    rmg,
    sas,
    spectral_alignment,
    svcca,
    true_pair_cosine,
)
from torchspectral.moments import Moments
from torchspectral.prior import SpectralPrior

__version__ = "0.1.0"

__all__ = [
    "BootstrapResult",
    "Moments",
    "PermutationResult",
    "SpectralAlignment",
    "SpectralPrior",
    "alignment_report",
    "bootstrap",
    "cka",
    "coral",
    "cosine_gap",
    "l2i",
    "modality_gap",
    "permutation_test",
    "rmg",
    "sas",
    "spectral_alignment",
    "svcca",
    "true_pair_cosine",
]
