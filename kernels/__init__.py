"""Device code (Triton kernels and their launchers), installed as ``torchspectral.kernels``.

Triton is optional: nothing here imports it until asked, and nothing probes a device at import.
The moment metrics need no custom kernel (their cost is one GEMM at BLAS/cuBLAS speed). The
tile-streaming pairwise kernels live here, one op per file, each with its launcher:

* ``rbf_mmd_sums``: within- and cross-sample RBF kernel sums for MMD (one or several bandwidths);
* ``rbf_cka_sums``: ``Σ K∘L``, ``Σ K∘K``, ``Σ L∘L`` and the row sums of K and L for RBF CKA;
* ``retrieval_ranks``: ground-truth ranks in both directions by counting, tile by tile;
* ``expm1`` (device helper) and ``tuning`` (autotune configs keyed on bucketed sizes).

Dispatch, the chunked torch path they are tested against, and gradients (a tile-recomputing backward)
are in :mod:`torchspectral.pairwise`. On CPU they run in Triton's interpreter (``TRITON_INTERPRET=1``,
set before triton is imported).
"""

from __future__ import annotations

import importlib.util


def available() -> bool:
    """True when Triton can be imported (kernels then run on CUDA tensors, or on CPU under TRITON_INTERPRET=1)."""
    return importlib.util.find_spec("triton") is not None
