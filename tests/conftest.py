"""Shared test data: paired embeddings with a known, non-degenerate structure."""

from __future__ import annotations

import os

import torch

# The Triton kernels run on CPU tensors in Triton's interpreter; it must be chosen before triton is
# imported (kernels are bound to it when their module is imported). On a CUDA machine they run compiled.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import numpy as np
import pytest
from hypothesis import settings

# Parity tolerances assume exact float32 matmuls (SPEC: TF32 off).
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=25, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def paired(n: int, d: int, seed: int = 0, d_y: int | None = None, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Correlated float64 pairs: shared latent factors with a decaying spectrum, modality noise, an offset in y."""
    rng = np.random.default_rng(seed)
    d_y = d if d_y is None else d_y
    scales = 1.0 / np.sqrt(np.arange(1, d + 1))
    z = rng.normal(size=(n, d)) * scales
    x = z @ np.linalg.qr(rng.normal(size=(d, d)))[0] + 0.3 * rng.normal(size=(n, d))
    y = z @ rng.normal(size=(d, d_y)) / np.sqrt(d) + 0.5 * rng.normal(size=(n, d_y)) * scales[:d_y].mean() + offset
    return x, y


@pytest.fixture
def pair64() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = paired(240, 12, seed=1, offset=0.7)
    return torch.from_numpy(x), torch.from_numpy(y)
