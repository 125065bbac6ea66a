"""Instance-level Spectral Alignment Score (docs/definitions.md#instance-sas) as one fused Triton kernel.

For paired rows ``x_i``, ``y_i`` and frozen population statistics (means ``μ_x``, ``μ_y``, the ``k`` active
eigenvectors ``V`` and per-mode weights ``w``)::

    zx_i = (x_i − μ_x) V,      zy_i = (y_i − μ_y) V                  (k projections per row)
    score_i = Σ_k w_k · zx_ik · zy_ik          (absolute=False, the bilinear form of mode="decompose")
    score_i = Σ_k w_k · |zx_ik · zy_ik|        (absolute=True, mode="abs" with w_k = λ_k / (Σλ · sqrt(λ_k σ²_k + ε)))

The caller folds ``λ_k``, the signs ``s_k`` and the normalisation into ``w``. The projections ``zx``, ``zy``
(n × k) are never written to memory: one program owns ``BLOCK_N`` rows, loops over the modes in ``BLOCK_K``
chunks and, for each chunk, over the features in ``BLOCK_D`` chunks, accumulating both projections in fp32
registers with ``tl.dot`` in the chosen precision (:mod:`torchspectral.pairwise.precision`: "ieee" exact fp32,
"tf32x3" ≈ fp32 on tensor cores, the CUDA default; "tf32"; "bf16"), then reduces the chunk's modes into the
row score. No atomics; every output element is written once.

The rows are centred on the loaded tile, before the dot product. Centring afterwards (``x V − μ V``) cancels
catastrophically when the embeddings carry a large common offset (e.g. +1e3): both terms are then ~1e3 times
larger than their difference and fp32 keeps only ~4 significant digits of it.

Half-precision inputs (float16, bfloat16) are upcast to fp32 right after loading; the means, vectors and
weights are used as contiguous float32. float64 is not supported here (use the torch path).
:func:`instance_score` is the launcher, forward only;
:class:`torchspectral.pairwise.instance.FusedInstanceScore` runs it as the forward of the chunked torch path's
autograd Function, whose backward it keeps.

Shape:
    - x, y: ``(n, d)``, float32 / float16 / bfloat16, any strides (the same dtype is not required).
    - mean_x, mean_y: ``(d,)``.
    - vectors: ``(d, k)``, ``k ≥ 1``.
    - weights: ``(k,)``.
    - output: ``(n,)`` float32, on the device of ``x``.

Example (needs a CUDA device, or ``TRITON_INTERPRET=1`` set before Triton is imported)::

    >>> import torch
    >>> from torchspectral.kernels.instance_score import instance_score
    >>> x, y = torch.randn(5, 8), torch.randn(5, 8)
    >>> v = torch.linalg.qr(torch.randn(8, 3))[0]
    >>> instance_score(x, y, x.mean(0), y.mean(0), v, torch.ones(3)).shape  # doctest: +SKIP
    torch.Size([5])
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from torchspectral.kernels.operands import default_precision, round_operand
from torchspectral.kernels.tiles import bf16_dot, check_precision, on_device, round_bf16, round_tf32
from torchspectral.kernels.tuning import autotune_options, bucket, instance_score_configs, prune_instance_score

__all__ = ["instance_score"]

_SUPPORTED = (torch.float32, torch.float16, torch.bfloat16)


@triton.autotune(
    configs=instance_score_configs(),
    key=["N_BUCKET", "D_BUCKET", "K_BUCKET", "ABSOLUTE", "PRECISION"],
    prune_configs_by={"early_config_prune": prune_instance_score},
    **autotune_options(),
)
@triton.jit
def _instance_score_kernel(
    x_ptr,
    y_ptr,
    mx_ptr,
    my_ptr,
    v_ptr,
    w_ptr,
    out_ptr,
    N,
    D,
    K,
    stride_xn,
    stride_xd,
    stride_yn,
    stride_yd,
    N_BUCKET,  # autotune key only
    D_BUCKET,  # autotune key only
    K_BUCKET,  # autotune key only
    ABSOLUTE: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)
    row_mask = rows < N
    offs_d = tl.arange(0, BLOCK_D).to(tl.int64)
    offs_k = tl.arange(0, BLOCK_K).to(tl.int64)

    score = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + offs_k
        k_mask = ks < K
        zx = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
        zy = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
        for d0 in range(0, D, BLOCK_D):
            ds = d0 + offs_d
            d_mask = ds < D
            tile_mask = row_mask[:, None] & d_mask[None, :]
            # Padding (rows ≥ N, features ≥ D) is zero after centring, so it adds nothing to the dots.
            mx = tl.load(mx_ptr + ds, mask=d_mask, other=0.0)
            my = tl.load(my_ptr + ds, mask=d_mask, other=0.0)
            xt = tl.load(x_ptr + rows[:, None] * stride_xn + ds[None, :] * stride_xd, mask=tile_mask, other=0.0)
            yt = tl.load(y_ptr + rows[:, None] * stride_yn + ds[None, :] * stride_yd, mask=tile_mask, other=0.0)
            xc = tl.where(tile_mask, xt.to(tl.float32) - mx[None, :], 0.0)
            yc = tl.where(tile_mask, yt.to(tl.float32) - my[None, :], 0.0)
            vt = tl.load(v_ptr + ds[:, None] * K + ks[None, :], mask=d_mask[:, None] & k_mask[None, :], other=0.0)
            # The centred rows exist only here, so they are rounded here ("tf32": as the torch path's
            # round_tf32; "bf16": a cast); V arrives rounded from the launcher.
            if PRECISION == "bf16":
                zx = bf16_dot(round_bf16(xc), vt, zx)
                zy = bf16_dot(round_bf16(yc), vt, zy)
            elif PRECISION == "tf32":
                zx = tl.dot(round_tf32(xc), vt, acc=zx, input_precision="tf32")
                zy = tl.dot(round_tf32(yc), vt, acc=zy, input_precision="tf32")
            else:
                zx = tl.dot(xc, vt, acc=zx, input_precision=PRECISION)
                zy = tl.dot(yc, vt, acc=zy, input_precision=PRECISION)
        w = tl.load(w_ptr + ks, mask=k_mask, other=0.0)
        prod = zx * zy
        if ABSOLUTE:
            prod = tl.abs(prod)
        score += tl.sum(prod * w[None, :], axis=1)
    tl.store(out_ptr + rows, score, mask=row_mask)


# On CPU the kernel only runs interpreted, and only when Triton's own library (tl.zeros, tl.sum, ... are
# `@triton.jit` functions too) was also built for the interpreter, i.e. TRITON_INTERPRET=1 was set before the
# first `import triton` anywhere in the process, not merely before this module. Checked by type name because
# InterpretedFunction lives in a private module.
_KERNEL_INTERPRETED = type(_instance_score_kernel.fn).__name__ == "InterpretedFunction"
_TRITON_INTERPRETED = type(tl.zeros).__name__ == "InterpretedFunction"


def _check_float(name: str, t: torch.Tensor) -> None:
    if t.dtype == torch.float64:
        raise TypeError(
            f"{name} is float64, which the Triton instance-score kernel does not support; use the torch path "
            '(backend="torch") for float64 inputs'
        )
    if t.dtype not in _SUPPORTED:
        raise TypeError(f"{name} must be float32, float16 or bfloat16, got {t.dtype}")


def instance_score(
    x: torch.Tensor,
    y: torch.Tensor,
    mean_x: torch.Tensor,
    mean_y: torch.Tensor,
    vectors: torch.Tensor,
    weights: torch.Tensor,
    absolute: bool = False,
    precision: str | None = None,
) -> torch.Tensor:
    """Per-row ``Σ_k w_k · zx_ik · zy_ik`` (or ``Σ_k w_k · |zx_ik · zy_ik|``), ``z = (row − mean) @ vectors``.

    See the module docstring for the maths and shapes. Returns a float32 tensor of shape ``(n,)``.
    ``precision`` of the projections (:mod:`torchspectral.pairwise.precision`; None: "tf32x3" on CUDA, "ieee"
    interpreted). Forward only (no autograd).
    """
    tensors = {"x": x, "y": y, "mean_x": mean_x, "mean_y": mean_y, "vectors": vectors, "weights": weights}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    devices = {t.device for t in tensors.values()}
    if len(devices) != 1:
        listing = ", ".join(f"{name} on {t.device}" for name, t in tensors.items())
        raise ValueError(f"all inputs must be on one device, got {listing}")
    if x.dim() != 2 or y.dim() != 2:
        raise ValueError(f"x and y must be 2-D (n, d), got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    _check_float("x", x)
    _check_float("y", y)
    n, d = x.shape
    if mean_x.shape != (d,) or mean_y.shape != (d,):
        raise ValueError(
            f"mean_x and mean_y must have shape ({d},), got {tuple(mean_x.shape)} and {tuple(mean_y.shape)}"
        )
    if vectors.dim() != 2 or vectors.shape[0] != d:
        raise ValueError(f"vectors must have shape ({d}, k), got {tuple(vectors.shape)}")
    k = vectors.shape[1]
    if k < 1:
        raise ValueError("vectors must hold at least one mode (k ≥ 1), got k = 0")
    if weights.shape != (k,):
        raise ValueError(f"weights must have shape ({k},) to match vectors, got {tuple(weights.shape)}")
    for name in ("mean_x", "mean_y", "vectors", "weights"):
        t = tensors[name]
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a real floating tensor, got {t.dtype}")
    if x.device.type != "cuda" and not _KERNEL_INTERPRETED:
        raise ValueError(
            f"the Triton kernel needs CUDA tensors (got {x.device}); on CPU set TRITON_INTERPRET=1 before Triton "
            "is imported, or use the torch path"
        )
    if _KERNEL_INTERPRETED and not _TRITON_INTERPRETED:
        raise RuntimeError(
            "TRITON_INTERPRET=1 was set after triton had already been imported, so only part of Triton runs "
            "interpreted; set it before the first `import triton` in the process"
        )

    precision = check_precision("instance_score", default_precision(x) if precision is None else precision)
    out = torch.empty(n, dtype=torch.float32, device=x.device)
    if n == 0:
        return out
    if d == 0:
        return out.zero_()  # empty projections: every sum is empty
    mean_x = mean_x.detach().to(torch.float32).contiguous()
    mean_y = mean_y.detach().to(torch.float32).contiguous()
    vectors = round_operand(vectors.detach().to(torch.float32).contiguous(), precision)
    weights = weights.detach().to(torch.float32).contiguous()

    def grid(meta: dict) -> tuple[int]:
        return (triton.cdiv(n, meta["BLOCK_N"]),)

    with on_device(x):
        _instance_score_kernel[grid](
            x.detach(),
            y.detach(),
            mean_x,
            mean_y,
            vectors,
            weights,
            out,
            n,
            d,
            k,
            x.stride(0),
            x.stride(1),
            y.stride(0),
            y.stride(1),
            bucket(n, 1 << 20),
            bucket(d, 1 << 14),
            bucket(k, 1 << 12),
            ABSOLUTE=bool(absolute),
            PRECISION=precision,
        )
    return out
