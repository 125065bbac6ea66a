"""The resamples of the pair bootstrap: row indices, and the same resamples as multiplicities (counts)."""

from __future__ import annotations

from collections.abc import Iterator

import torch

# Replicates resampled together: a block's counts matrix is COUNTS_BLOCK × n float64 (164 MB at n = 20,000), and the
# fast engine forms its sample-space Grams once per block.
COUNTS_BLOCK = 1024


def resample_indices(n: int, n_boot: int, seed: int) -> Iterator[torch.Tensor]:
    """The row indices of each bootstrap resample (the naive loop and `bootstrap` share them)."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(n_boot):
        yield torch.randint(n, (n,), generator=generator)


def resample_counts(n: int, n_boot: int, seed: int, device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
    """Multiplicities of the resamples of :func:`resample_indices`, float64 blocks of ≤ COUNTS_BLOCK rows (b, n)."""
    block: list[torch.Tensor] = []
    for idx in resample_indices(n, n_boot, seed):
        block.append(torch.bincount(idx, minlength=n))
        if len(block) == COUNTS_BLOCK:
            yield torch.stack(block).to(device=device, dtype=torch.float64)
            block = []
    if block:
        yield torch.stack(block).to(device=device, dtype=torch.float64)
