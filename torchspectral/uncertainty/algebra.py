"""Exact bootstrap replicates of the non-spectral moment metrics without a d×d Gram per replicate.

A resample of n pairs is a vector of multiplicities w (Σw = n). Rows are centred once about the full
sample's mean (``xc_i``, ``yc_i``); the replicate's own centring is then a correction built from the
weighted sums ``s_x = Σ w_i xc_i``, ``s_y`` (its mean is ``s_x/n`` in these coordinates).

*Linear in w* (gap, L2I, true-pair cosine, Δcos, RMG): every sum is ``Σ w_i f_i`` of a per-row quantity
(``x̂_i``, ``ŷ_i``, ``⟨x̂_i, ŷ_i⟩``, ``‖x̂_i − ŷ_i‖``), so all B replicates are one (B×n)@(n×k) GEMM.

*Quadratic in w* (linear CKA biased and unbiased, CORAL): with ``P_xy = Σ w_i xc_i yc_iᵀ`` and the
sample-space Grams ``K = Xc Xcᵀ``, ``L = Yc Ycᵀ``, ``G = Xc Ycᵀ``,

    ‖P_xy‖²_F = wᵀ(K∘L)w,   ‖P_xx‖²_F = wᵀ(K∘K)w,   ⟨P_xx, P_yy⟩ = wᵀ(G∘G)w,

and the replicate-centred sums ``S_xy = P_xy − s_x s_yᵀ/n`` follow exactly:

    ‖S_xy‖² = ‖P_xy‖² − (2/n) Σ w_i (xc_i·s_x)(yc_i·s_y) + ‖s_x‖²‖s_y‖²/n²
    ⟨S_xx, S_yy⟩ = ⟨P_xx, P_yy⟩ − (1/n) Σ w_i [(xc_i·s_y)² + (yc_i·s_x)²] + (s_x·s_y)²/n².

Biased CKA is ``‖S_xy‖²/(‖S_xx‖‖S_yy‖)`` and CORAL ``‖S_xx − S_yy‖²/(n−1)²`` (over 4d² for "deep"). The
unbiased HSIC of docs/definitions.md#cka evaluated about the replicate mean (where ``Σ w x'_i = 0``) needs, besides
these norms, only ``Σ w a'``, ``Σ w a'b'``, ``Σ w a'²`` (and for b) with ``a'_i = ‖xc_i − s_x/n‖²
= a_i − 2(xc_i·s_x)/n + ‖s_x‖²/n²``: O(n) per replicate once ``xc_i·s_x`` is known (one GEMM for all B).

The quadratic forms cost O(n²) per replicate — a GEMM of the counts matrix with row blocks of the
Hadamard products, only the upper block triangle (the forms are symmetric), never an n×n matrix at
once — instead of the O(n·d²) Gram, plus O(n²·d) once to form the Grams block by block.

Numerics: GEMMs run in the compute precision of the exact path (float32, float64 for float64 input), the
per-block results accumulate in float64. CORAL is a difference of the three norms, so for two nearly equal
covariances its relative error in float32 is that of ‖S_xx‖² (≈1e-6), not of the small difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from torchspectral.functional.cka import _hsic_u
from torchspectral.functional.gap import mean_cosine, rmg_terms

if TYPE_CHECKING:
    from torchspectral.stats.weighted import WeightedRows as _Rows

LINEAR_METRICS = ("modality_gap", "l2i", "true_pair_cosine", "cosine_gap", "rmg")
QUADRATIC_METRICS = ("cka_linear", "cka_linear_unbiased", "coral")
ALGEBRA_METRICS = LINEAR_METRICS + QUADRATIC_METRICS
# Rows of each block of the Hadamard products: ≤ 4 forms × 256 × n values of the compute dtype (82 MB in
# float32 at n = 20,000) plus the Gram blocks they come from.
ROW_BLOCK = 256
# Replicates whose O(n) corrections are formed together: a few (REPLICATE_BLOCK, n) float64 temporaries.
REPLICATE_BLOCK = 128


def quadratic_forms_pay_off(n: int, d_x: int, d_y: int) -> bool:
    """Whether ≤ 4 quadratic forms (O(n²) per replicate) cost less than a weighted Gram of ``[x y]`` (O(n·(d_x+d_y)²)).

    Roughly 4·n/2 multiply-adds per row and replicate against (d_x + d_y)²/2: at d = 768 the forms win up to
    n ≈ 590,000; at d = 6 the Gram wins from n = 37 on (there the exact path is the fast one).
    """
    return 4 * n <= (d_x + d_y) ** 2


def linear_replicates(rows: _Rows, counts: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Gap-family replicates (B,) from the counts matrix (B, n) and the per-row quantities of ``rows``."""
    n = rows.n
    hat = torch.cat([rows.x_hat, rows.y_hat], 1)
    sums = (counts.to(hat.dtype) @ hat).double()
    sum_xhat, sum_yhat = sums[:, : rows.d_x], sums[:, rows.d_x :]
    w64 = counts.double()
    sum_dot, sum_l2i = w64 @ rows.cos, w64 @ rows.l2i

    def rmg() -> torch.Tensor:
        numerator, denominator = rmg_terms(sum_xhat, sum_yhat, sum_dot, n)
        return numerator / denominator

    formulas = {
        "modality_gap": lambda: torch.linalg.vector_norm(sum_xhat - sum_yhat, dim=1) / n,
        "l2i": lambda: sum_l2i / n,
        "true_pair_cosine": lambda: mean_cosine(sum_dot, n),
        "cosine_gap": lambda: sum_dot / n - ((sum_xhat * sum_yhat).sum(1) - sum_dot) / (n * (n - 1)),
        "rmg": rmg,
    }
    return {name: formulas[name]() for name in names if name in formulas}


def _quadratic_forms(xc: torch.Tensor, yc: torch.Tensor, counts: torch.Tensor, forms: Sequence[str]) -> torch.Tensor:
    """``w_bᵀ M w_b`` for every replicate b and each M in `forms` ⊂ {"kl", "kk", "ll", "gg"}: shape (B, F), float64.

    M ∈ {K∘L, K∘K, L∘L, sym(G∘G)} is symmetric, so ``wᵀMw = Σ_I [2 w_Iᵀ M_{I,≥I} w_{≥I} − w_Iᵀ M_II w_I]`` over
    row blocks I: each block row is formed once from the Gram blocks, and one GEMM applies it to all B.
    """
    n, n_boot = xc.shape[0], counts.shape[0]
    w = counts.to(xc.dtype)
    total = torch.zeros(n_boot, len(forms), dtype=torch.float64, device=xc.device)
    for r0 in range(0, n, ROW_BLOCK):
        r1 = min(n, r0 + ROW_BLOCK)
        k = xc[r0:r1] @ xc[r0:].T if {"kl", "kk"} & set(forms) else None
        ll = yc[r0:r1] @ yc[r0:].T if {"kl", "ll"} & set(forms) else None
        blocks = []
        for form in forms:
            if form == "kl":
                blocks.append(k * ll)
            elif form == "kk":
                blocks.append(k * k)
            elif form == "ll":
                blocks.append(ll * ll)
            else:  # rows I of (G∘G + (G∘G)ᵀ)/2: G_ij = xc_i·yc_j and G_ji = yc_i·xc_j
                blocks.append(((xc[r0:r1] @ yc[r0:].T) ** 2 + (yc[r0:r1] @ xc[r0:].T) ** 2) / 2)
        stacked = torch.stack(blocks)  # (F, R, n − r0)
        size = r1 - r0
        w_rest, w_block = w[:, r0:], w[:, r0:r1]
        applied = (w_rest @ stacked.reshape(-1, stacked.shape[-1]).T).reshape(n_boot, len(forms), size)
        diagonal = torch.einsum("bj,fij->bfi", w_block, stacked[:, :, :size])
        total += (2 * applied - diagonal).mul_(w_block[:, None, :]).sum(-1, dtype=torch.float64)
    return total


def quadratic_replicates(rows: _Rows, counts: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Linear-CKA (biased, unbiased) and CORAL replicates (B,) from the counts matrix (B, n); see the module doc."""
    wanted = [name for name in names if name in QUADRATIC_METRICS]
    if not wanted:
        return {}
    n, xc, yc = rows.n, rows.xc, rows.yc
    forms = ["kk", "ll"] + (["kl"] if any(name.startswith("cka") for name in wanted) else [])
    forms += ["gg"] if "coral" in wanted else []
    quad = dict(zip(forms, _quadratic_forms(xc, yc, counts, forms).unbind(1), strict=True))
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, counts.shape[0], REPLICATE_BLOCK):
        w = counts[start : start + REPLICATE_BLOCK]
        w64, wc = w.double(), w.to(xc.dtype)
        s_x, s_y = wc @ xc, wc @ yc  # Σ w xc_i, Σ w yc_i: (b, d)
        kx, ly = (s_x @ xc.T).double(), (s_y @ yc.T).double()  # xc_i·s_x, yc_i·s_y: (b, n)
        s_x, s_y = s_x.double(), s_y.double()
        sxx, syy = (s_x * s_x).sum(1), (s_y * s_y).sum(1)
        q = {key: value[start : start + REPLICATE_BLOCK] for key, value in quad.items()}
        norm_xx = q["kk"] - 2 / n * (w64 * kx * kx).sum(1) + sxx**2 / n**2  # ‖S_xx‖²
        norm_yy = q["ll"] - 2 / n * (w64 * ly * ly).sum(1) + syy**2 / n**2
        out: dict[str, torch.Tensor] = {}
        if "kl" in q:
            norm_xy = q["kl"] - 2 / n * (w64 * kx * ly).sum(1) + sxx * syy / n**2  # ‖S_xy‖²
            if "cka_linear" in wanted:
                out["cka_linear"] = norm_xy / torch.sqrt(norm_xx * norm_yy)
            if "cka_linear_unbiased" in wanted:
                a = rows.a - 2 / n * kx + (sxx / n**2)[:, None]  # ‖x_i − replicate mean‖²
                b = rows.b - 2 / n * ly + (syy / n**2)[:, None]
                sum_a, sum_b = (w64 * a).sum(1), (w64 * b).sum(1)
                sum_ab, sum_aa, sum_bb = (w64 * a * b).sum(1), (w64 * a * a).sum(1), (w64 * b * b).sum(1)
                kl = _hsic_u(n, norm_xy - sum_ab, -sum_a, -sum_b, sum_ab)
                kk = _hsic_u(n, norm_xx - sum_aa, -sum_a, -sum_a, sum_aa)
                hsic_ll = _hsic_u(n, norm_yy - sum_bb, -sum_b, -sum_b, sum_bb)
                out["cka_linear_unbiased"] = kl / torch.sqrt(kk * hsic_ll)
        if "coral" in wanted:
            xs_y, ys_x = (s_y.to(xc.dtype) @ xc.T).double(), (s_x.to(yc.dtype) @ yc.T).double()
            cross = q["gg"] - ((w64 * xs_y * xs_y).sum(1) + (w64 * ys_x * ys_x).sum(1)) / n
            cross = cross + (s_x * s_y).sum(1) ** 2 / n**2  # ⟨S_xx, S_yy⟩
            out["coral"] = (norm_xx - 2 * cross + norm_yy) / (n - 1) ** 2 / (4 * rows.d_x**2)
        for name, value in out.items():
            parts.setdefault(name, []).append(value)
    return {name: torch.cat(parts[name]) for name in wanted}
