"""Moved: the sharded pairwise engine is :mod:`torchspectral.distributed.pairwise_engine`, its collectives
:mod:`torchspectral.distributed.collectives`. This name stays only for importers not yet updated
(``torchspectral/metrics/pairwise_metrics.py``); it defines nothing.
"""

from __future__ import annotations

from torchspectral.distributed.collectives import gather_objects, gather_rows, global_blocks, group_rank_world

__all__ = ["gather_objects", "gather_rows", "global_blocks", "group_rank_world"]
