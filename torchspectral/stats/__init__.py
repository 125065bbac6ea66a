"""Sufficient statistics of paired embeddings: the one accumulator every moment metric reads."""

from torchspectral.stats.accumulator import (
    CHUNK_ELEMENTS,
    NORMALISED_STATE,
    SHIFTED_STATE,
    STATE,
    MomentStatistics,
)

__all__ = ["CHUNK_ELEMENTS", "NORMALISED_STATE", "SHIFTED_STATE", "STATE", "MomentStatistics"]
