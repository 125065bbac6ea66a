"""Device code, installed as ``torchspectral.kernels``: one op per file, kernel + launcher + autograd Function.

Triton is optional: nothing here imports it until asked, and nothing probes a device at import.
The moment metrics need no custom kernel (their cost is one GEMM at BLAS/cuBLAS speed). The
tile-streaming kernels live here, one op per file:

* ``rbf_mmd_sums``: within- and cross-sample RBF kernel sums for MMD (one or several bandwidths);
* ``rbf_cka_sums``: ``Σ K∘L``, ``Σ K∘K``, ``Σ L∘L`` and the row sums of K and L for RBF CKA;
* ``retrieval_ranks``: ground-truth ranks in both directions by counting, tile by tile;
* ``instance_score``: the spectral prior's per-pair scores;
* ``tiles`` (the device helpers every kernel shares: dot-product tile in the chosen precision, squared
  distances, RBF terms, expm1, TF32/bf16 rounding, the device guard), ``tuning`` (every autotune config, keyed
  on bucketed sizes and pruned by shared memory) and ``aot`` (ahead-of-time compiles for sm_80/sm_90 and the
  facts the AOT test checks: tensor-core instructions, spills, shared memory, 64-bit pointer offsets).

Each op's autograd Function runs the fused forward and inherits the backward of the chunked torch path it
is tested against (:mod:`torchspectral.pairwise`, which also chooses the backend). On CPU the kernels run
in Triton's interpreter (``TRITON_INTERPRET=1``, set before triton is imported).
"""

from __future__ import annotations

import functools
import importlib.util
import os

MIN_CAPABILITY = (8, 0)  # tf32/bf16 tensor cores (mma.sync .tf32) and cp.async: Ampere or newer


def available() -> bool:
    """True when Triton can be imported (kernels then run on CUDA tensors, or on CPU under TRITON_INTERPRET=1).

    Whether a given CUDA device can run them is :func:`cuda_unsupported`.
    """
    return importlib.util.find_spec("triton") is not None


@functools.cache
def cuda_unsupported(index: int) -> str | None:
    """Why the kernels cannot run on CUDA device ``index`` (None: they can): Triton missing, no driver Triton can
    load, or compute capability below 8.0. Probed on first use per device, never at import, and cached."""
    import torch

    if not available():
        return "the triton package is not installed (pip install triton)"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    major, minor = torch.cuda.get_device_capability(index)
    if (major, minor) < MIN_CAPABILITY:
        name = torch.cuda.get_device_name(index)
        return f"cuda:{index} ({name}) has compute capability {major}.{minor}; the kernels need 8.0 or newer"
    try:
        from triton.runtime import driver

        target = driver.active.get_current_target()
    except Exception as error:  # any failure to load the driver means: no kernels on this device
        return f"Triton cannot use the CUDA driver ({type(error).__name__}: {error})"
    if target.backend != "cuda":
        return f"Triton's active backend is {target.backend!r}, not 'cuda'"
    return None


def interpreting() -> bool:
    """True when Triton runs in its CPU interpreter (TRITON_INTERPRET=1; Triton reads it when it is imported)."""
    return os.environ.get("TRITON_INTERPRET") == "1"
