"""Streaming metrics for training loops (torchmetrics ``Metric``; needs the ``torchmetrics`` package)."""

from torchspectral.metrics.moment_metrics import CKA, AlignmentMetrics, ModalityGap, MomentMetric, SpectralAlignment

__all__ = ["CKA", "AlignmentMetrics", "ModalityGap", "MomentMetric", "SpectralAlignment"]
