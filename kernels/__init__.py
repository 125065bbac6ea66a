"""Device code (Triton kernels and their launchers), installed as ``torchspectral.kernels``.

Triton is optional: nothing here imports it until asked, and nothing probes a device at import.
The moment metrics need no custom kernel (their cost is one GEMM at BLAS/cuBLAS speed); the
tile-streaming pairwise kernels (MMD, RBF-CKA, retrieval) will live here, one op per file.
"""

from __future__ import annotations

import importlib.util


def available() -> bool:
    """True when Triton can be imported (kernels then run on CUDA tensors, or on CPU under TRITON_INTERPRET=1)."""
    return importlib.util.find_spec("triton") is not None
