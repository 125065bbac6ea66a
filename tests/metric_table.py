"""Every metric by name, as the package computes it and as tests/reference.py does (float64 NumPy), and the
scaled pairs the range tests feed them: the shared table of tests/test_large_values.py (values whose squares
overflow) and tests/test_reliability_numerics.py (values whose squares underflow)."""

from __future__ import annotations

import reference as R
import torch
from sas_defaults import default_eps

import torchspectral as ts

# name → (package call, float64 reference on the same values, with the package's default settings)
METRICS = {
    "sas": (ts.sas, lambda x, y: R.sas(x, y, eps=default_eps(x, y))),
    "cka": (ts.cka, R.cka_linear),
    "cka_unbiased": (lambda x, y: ts.cka(x, y, unbiased=True), lambda x, y: R.cka_linear(x, y, unbiased=True)),
    "cka_rbf": (lambda x, y: ts.cka(x, y, kernel="rbf"), R.cka_rbf),
    "svcca": (ts.svcca, R.svcca),
    "coral": (ts.coral, R.coral),
    "mmd": (ts.mmd, R.mmd),
    "modality_gap": (ts.modality_gap, R.modality_gap),
    "l2i": (ts.l2i, R.l2i),
    "true_pair_cosine": (ts.true_pair_cosine, R.true_pair_cosine),
    "cosine_gap": (ts.cosine_gap, R.cosine_gap),
    "rmg": (ts.rmg, R.rmg),
    "retrieval_rsum": (lambda x, y: ts.retrieval(x, y).rsum, lambda x, y: R.retrieval(x, y)["rsum"]),
}


def scaled_pairs(
    scale: float, dtype: torch.dtype, seed: int, n: int = 64, d: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Correlated float64 pairs (y = 0.6 x + noise) multiplied by ``scale``, then cast to ``dtype``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = 0.6 * x + torch.randn(n, d, generator=g, dtype=torch.float64)
    return (x * scale).to(dtype), (y * scale).to(dtype)
