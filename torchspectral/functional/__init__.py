"""Stateless, differentiable alignment metrics; each takes tensors and returns tensors."""

from torchspectral.functional.cka import cka
from torchspectral.functional.coral import coral
from torchspectral.functional.gap import cosine_gap, l2i, modality_gap, rmg, true_pair_cosine
from torchspectral.functional.mmd import mmd
from torchspectral.functional.neighbours import cknna, cycle_knn, mutual_knn, neighbourhood_alignment
from torchspectral.functional.procrustes import procrustes
from torchspectral.functional.report import alignment_report
from torchspectral.functional.retrieval import RetrievalResult, retrieval
from torchspectral.functional.sas import SpectralAlignmentResult, sas, spectral_alignment
from torchspectral.functional.svcca import svcca

__all__ = [
    "RetrievalResult",
    "SpectralAlignmentResult",
    "alignment_report",
    "cka",
    "cknna",
    "coral",
    "cosine_gap",
    "cycle_knn",
    "l2i",
    "mmd",
    "modality_gap",
    "mutual_knn",
    "neighbourhood_alignment",
    "procrustes",
    "retrieval",
    "rmg",
    "sas",
    "spectral_alignment",
    "svcca",
    "true_pair_cosine",
]
