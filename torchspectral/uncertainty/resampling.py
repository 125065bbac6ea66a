"""The resamples of the pair bootstrap: row indices, the same resamples as multiplicities (counts), and the
second-level resamples of the iterated bootstrap (resamples of a resample)."""

from __future__ import annotations

from collections.abc import Iterator

import torch

# Replicates resampled together: a block's counts matrix is COUNTS_BLOCK × n float64 (164 MB at n = 20,000), and the
# fast engine forms its sample-space Grams once per block.
COUNTS_BLOCK = 1024
# The second level draws from its own generator (seed + this offset), so asking for it changes no first-level draw.
SECOND_LEVEL_OFFSET = 0x2ECD


def resample_indices(n: int, n_boot: int, seed: int) -> Iterator[torch.Tensor]:
    """The row indices of each bootstrap resample (the naive loop and `bootstrap` share them)."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(n_boot):
        yield torch.randint(n, (n,), generator=generator)


def _blocks(indices: Iterator[torch.Tensor], n: int, device: torch.device | str) -> Iterator[torch.Tensor]:
    block: list[torch.Tensor] = []
    for idx in indices:
        block.append(torch.bincount(idx, minlength=n))
        if len(block) == COUNTS_BLOCK:
            yield torch.stack(block).to(device=device, dtype=torch.float64)
            block = []
    if block:
        yield torch.stack(block).to(device=device, dtype=torch.float64)


def resample_counts(n: int, n_boot: int, seed: int, device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
    """Multiplicities of the resamples of :func:`resample_indices`, float64 blocks of ≤ COUNTS_BLOCK rows (b, n)."""
    return _blocks(resample_indices(n, n_boot, seed), n, device)


def second_level_indices(n: int, first: int, inner: int, seed: int) -> Iterator[torch.Tensor]:
    """Rows of ``inner`` resamples of each of the first ``first`` resamples of :func:`resample_indices` (same
    seed), first-level-major: n rows drawn with replacement from the resample's own n rows (its duplicates
    included), as indices into the original rows."""
    generator = torch.Generator().manual_seed(seed + SECOND_LEVEL_OFFSET)
    for outer in resample_indices(n, first, seed):
        for _ in range(inner):
            yield outer[torch.randint(n, (n,), generator=generator)]


def second_level_counts(
    n: int, first: int, inner: int, seed: int, device: torch.device | str = "cpu"
) -> Iterator[torch.Tensor]:
    """Multiplicities of :func:`second_level_indices` (first · inner resamples), blocks as :func:`resample_counts`."""
    return _blocks(second_level_indices(n, first, inner, seed), n, device)
