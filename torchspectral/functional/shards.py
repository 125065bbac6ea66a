"""Moved: the input agreement across ranks is :mod:`torchspectral.distributed.agreement`. This name stays only
for importers not yet updated (``torchspectral/metrics/pairwise_metrics.py``); it defines nothing.
"""

from __future__ import annotations

from torchspectral.distributed.agreement import agree, parts

__all__ = ["agree", "parts"]
