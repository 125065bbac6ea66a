"""torchspectral: how well are two embedding spaces aligned? Differentiable, streaming, GPU-ready metrics.

>>> import torchspectral as ts
>>> sorted(ts.__all__)[:3]
['Moments', 'Retrieval', 'SpectralAlignment']
"""

from torchspectral.functional import (
    Retrieval,
    SpectralAlignment,
    alignment_report,
    cka,
    coral,
    cosine_gap,
    l2i,
    mmd,
    modality_gap,
    retrieval,
    rmg,
    sas,
    spectral_alignment,
    svcca,
    true_pair_cosine,
)
from torchspectral.moments import Moments

__version__ = "0.1.0"

__all__ = [
    "Moments",
    "Retrieval",
    "SpectralAlignment",
    "alignment_report",
    "cka",
    "coral",
    "cosine_gap",
    "l2i",
    "mmd",
    "modality_gap",
    "retrieval",
    "rmg",
    "sas",
    "spectral_alignment",
    "svcca",
    "true_pair_cosine",
]
