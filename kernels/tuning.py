"""Autotuning shared by the pairwise kernels: one config list, keyed on bucketed sizes.

Sizes are bucketed to the next power of two so that a new n (or d) within a bucket reuses the tuned
config instead of re-tuning on every call. Under ``TRITON_INTERPRET=1`` (CPU, tests) a single small
config is used: the interpreter runs every program in Python, so larger tiles only cost time there.

``BLOCK_K`` is not tuned: the retrieval kernels compare scores from two kernels and need both to sum the
same chunks of d in the same order.
"""

from __future__ import annotations

import os

BLOCK_K = 32


def interpreting() -> bool:
    """True when Triton runs in its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def bucket(size: int) -> int:
    """The next power of two ≥ size (the autotune key), e.g. 1000 → 1024.

    Example:
        >>> bucket(1000), bucket(1024), bucket(1)
        (1024, 1024, 1)
    """
    return 1 << max(0, int(size) - 1).bit_length()


def configs(triton) -> list:
    """Tile sizes and warps to try on a GPU; one small config in the interpreter."""
    if interpreting():
        return [triton.Config({"BLOCK": 32}, num_warps=1)]
    return [
        triton.Config({"BLOCK": block}, num_warps=warps, num_stages=stages)
        for block, warps, stages in [(64, 4, 2), (64, 4, 3), (128, 8, 2), (128, 4, 3), (32, 2, 2)]
    ]
