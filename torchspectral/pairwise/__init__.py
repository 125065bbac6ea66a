"""The pairwise engine (docs/definitions.md#pairwise): RBF kernel sums and retrieval ranks over all n·m pairs, never
n×m.

Three quantities need every pair of rows, and each reduces to sums over tiles of the pair grid:

* MMD: ``S_xx = Σ_ij k'(x_i, x_j)``, ``S_yy``, ``S_xy = Σ_ij k'(x_i, y_j)`` (:func:`rbf_mmd_sums`).
* RBF CKA: with ``K' = k'_x(X, X)``, ``L' = k'_y(Y, Y)`` over the same pairs, ``Σ K'∘L'``, ``Σ K'∘K'``,
  ``Σ L'∘L'`` and the row sums ``K'1``, ``L'1`` (:func:`rbf_cka_sums`); every HSIC estimator is a function
  of these.

Here ``k'(u, v) = Σ_σ expm1(−c_σ‖u − v‖²) = k(u, v) − k(u, u)``, ``c_σ = 1/(2σ²)``: the RBF kernel (or sum of
RBF kernels) shifted by its constant diagonal value. MMD and every HSIC estimator are unchanged by a constant
added to the kernel, and the shifted values keep their relative precision when k ≈ 1 (a bandwidth wide
compared with the distances, as the median heuristic gives in high dimension), where float32 sums of k
itself cancel catastrophically.
* Retrieval: the rank of each ground truth, by counting the items whose cosine beats it
  (:func:`retrieval_ranks`).

Two backends compute them, with the same results:

* ``"torch"``: chunked torch, the CPU implementation and the reference the Triton kernels are tested
  against. Tiles are square with a side chosen from :data:`TILE_BUDGET_BYTES`, so memory beyond the inputs
  is O((n + m)·d) plus a fixed tile budget, whatever n. float64 inputs are computed in float64.
* ``"triton"``: the fused kernels of :mod:`torchspectral.kernels` (float32 with fp32 tile accumulation).

``backend="auto"`` picks Triton for CUDA tensors when it is installed and the input is not float64, the
chunked torch path otherwise; nothing is probed at import. Gradients (MMD and CKA sums) always come from
the chunked torch backward, which recomputes each tile instead of storing it.

Numerics. Squared distances are formed as ``‖a‖² + ‖b‖² − 2aᵀb`` (one GEMM per tile). That expansion
loses precision when the norms are large compared with the distances, so every sample is first shifted by
a mean computed in float64 (distances are translation invariant); the rounding that can still make a
squared distance slightly negative is cut at 0 (a distance is never negative), and self-distances on the
diagonal are set to exactly 0. Tile sums are added into float64 totals.

Modules, one job each: :mod:`~torchspectral.pairwise.dispatch` (backend resolver, routine table, entry
points), :mod:`~torchspectral.pairwise.chunked` (the chunked RBF sums, forward and backward, with the autograd
Functions of both backends), :mod:`~torchspectral.pairwise.retrieval_counts` (retrieval ranks by counting),
:mod:`~torchspectral.pairwise.instance` (the spectral prior's per-pair scores, both Functions),
:mod:`~torchspectral.pairwise.bandwidth` (medians and kernel levels) and
:mod:`~torchspectral.pairwise.precision` (the precision choice and its accuracy).

Dependencies run one way: this package imports :mod:`torchspectral.kernels` (each fused Function imports its
launcher when it first runs, and the operand rounding is the launchers' own), never the reverse. The same
sums and ranks across torch.distributed ranks are :mod:`torchspectral.distributed.pairwise_engine`.
"""

from __future__ import annotations

import sys
import types

from torchspectral.pairwise import chunked
from torchspectral.pairwise.bandwidth import (
    LEVEL_SUBSAMPLE,
    MEDIAN_SUBSAMPLE,
    kernel_level,
    median_pairwise_distance,
    median_squared_distance_all_pairs,
    median_subsample,
    pooled_subsample,
)
from torchspectral.pairwise.chunked import tile_side
from torchspectral.pairwise.dispatch import (
    BACKENDS,
    rbf_cka_sums,
    rbf_mmd_sums,
    resolve_backend,
    retrieval_ranks,
    retrieval_ranks_both,
)
from torchspectral.pairwise.precision import PRECISIONS, resolve_precision
from torchspectral.pairwise.retrieval_counts import GROUND_TRUTH_CHUNK, ground_truth_scores

__all__ = [
    "BACKENDS",
    "GROUND_TRUTH_CHUNK",
    "LEVEL_SUBSAMPLE",
    "MEDIAN_SUBSAMPLE",
    "PRECISIONS",
    "TILE_BUDGET_BYTES",
    "ground_truth_scores",
    "kernel_level",
    "median_pairwise_distance",
    "median_squared_distance_all_pairs",
    "median_subsample",
    "pooled_subsample",
    "rbf_cka_sums",
    "rbf_mmd_sums",
    "resolve_backend",
    "resolve_precision",
    "retrieval_ranks",
    "retrieval_ranks_both",
    "tile_side",
]


class _Pairwise(types.ModuleType):
    """``torchspectral.pairwise.TILE_BUDGET_BYTES`` reads and sets the budget the tiles use (it lives in
    :mod:`~torchspectral.pairwise.chunked`), so ``pairwise.TILE_BUDGET_BYTES = …`` keeps working as before."""

    @property
    def TILE_BUDGET_BYTES(self) -> int:
        return chunked.TILE_BUDGET_BYTES

    @TILE_BUDGET_BYTES.setter
    def TILE_BUDGET_BYTES(self, value: int) -> None:
        chunked.TILE_BUDGET_BYTES = value


sys.modules[__name__].__class__ = _Pairwise
