"""Autotuning of every kernel, in one place: the config lists, keyed on bucketed sizes.

Sizes are bucketed to the next power of two so that a new n (or d) within a bucket reuses the tuned
config instead of re-tuning on every call. Under ``TRITON_INTERPRET=1`` (CPU, tests) a single small
config is used: the interpreter runs every program in Python, so larger tiles only cost time there.

``BLOCK_K`` is not tuned: the retrieval kernels compare scores from two kernels and need both to sum the
same chunks of d in the same order.
"""

from __future__ import annotations

import triton
from torchspectral.kernels import interpreting

BLOCK_K = 32


def bucket(size: int, cap: int | None = None) -> int:
    """The next power of two ≥ size (the autotune key), e.g. 1000 → 1024; at most ``cap`` when given.

    Example:
        >>> bucket(1000), bucket(1024), bucket(1), bucket(5000, cap=4096)
        (1024, 1024, 1, 4096)
    """
    value = 1 << max(0, int(size) - 1).bit_length()
    return value if cap is None else min(value, cap)


def pairwise_configs() -> list[triton.Config]:
    """Square tiles (``BLOCK`` rows × ``BLOCK`` columns) and warps to try on a GPU; one small config interpreted."""
    if interpreting():
        return [triton.Config({"BLOCK": 32}, num_warps=1)]
    return [
        triton.Config({"BLOCK": block}, num_warps=warps, num_stages=stages)
        for block, warps, stages in [(64, 4, 2), (64, 4, 3), (128, 8, 2), (128, 4, 3), (32, 2, 2)]
    ]


def instance_score_configs() -> list[triton.Config]:
    """(rows, modes, features) per program of the instance-score kernel, warps and stages.

    Interpreted: one config, blocks big enough to keep the Python overhead down, small enough that the tests
    cover several row, mode and feature chunks with small shapes. On a GPU: fp32 "ieee" dots run on the FMA
    units, so the kernel is compute-bound for k beyond a few dozen modes; ``BLOCK_K`` trades padding waste
    (k=77 in a 128 chunk wastes 40%) against re-reading the rows once per chunk.
    """
    sizes = [(32, 32, 32, 4, 1)] if interpreting() else [
        (16, 16, 64, 4, 3), (16, 64, 32, 4, 3), (32, 16, 64, 4, 3), (32, 32, 64, 4, 3),
        (64, 32, 32, 4, 3), (64, 32, 64, 4, 3), (64, 64, 32, 4, 3), (64, 64, 64, 8, 3),
        (128, 32, 32, 8, 3), (128, 64, 32, 8, 3), (64, 128, 32, 8, 2), (128, 128, 32, 8, 2),
    ]  # fmt: skip
    return [
        triton.Config({"BLOCK_N": bn, "BLOCK_K": bk, "BLOCK_D": bd}, num_warps=nw, num_stages=ns)
        for bn, bk, bd, nw, ns in sizes
    ]


def prune_instance_score(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
    """Drop mode chunks wider than the (padded) number of modes and row tiles much taller than n."""
    k_cap = max(16, triton.next_power_of_2(int(named_args["K"])))
    n_cap = max(16, triton.next_power_of_2(int(named_args["N"])))
    kept = [c for c in configs if c.kwargs["BLOCK_K"] <= k_cap and c.kwargs["BLOCK_N"] <= n_cap]
    return kept or [min(configs, key=lambda c: (c.kwargs["BLOCK_K"], c.kwargs["BLOCK_N"]))]
