"""Streaming metrics for training loops (torchmetrics ``Metric``; needs the ``torchmetrics`` package)."""

try:
    import torchmetrics  # noqa: F401  (checked here so that a missing extra is named, not a deep import)
except ModuleNotFoundError as error:
    if error.name != "torchmetrics":
        raise
    raise ImportError(
        "torchspectral.metrics needs torchmetrics, which is not installed: pip install 'torchspectral[metrics]'"
    ) from error

from torchspectral.metrics.moment_metrics import (
    CKA,
    AlignmentMetrics,
    ModalityGap,
    MomentMetric,
    Procrustes,
    SpectralAlignment,
)
from torchspectral.metrics.pairwise_metrics import MMD, KernelCKA, NeighbourAlignment, Retrieval

__all__ = [
    "CKA",
    "MMD",
    "AlignmentMetrics",
    "KernelCKA",
    "ModalityGap",
    "MomentMetric",
    "NeighbourAlignment",
    "Procrustes",
    "Retrieval",
    "SpectralAlignment",
]
