"""Autotuning of every kernel, in one place: the config lists, keyed on bucketed sizes.

Sizes are bucketed to the next power of two so that a new n (or d) within a bucket reuses the tuned
config instead of re-tuning on every call. Under ``TRITON_INTERPRET=1`` (CPU, tests) a single small
config is used: the interpreter runs every program in Python, so larger tiles only cost time there.

``BLOCK_K`` is not tuned: the retrieval kernels compare scores from two kernels and need both to sum the
same chunks of d in the same order.
"""

from __future__ import annotations

import functools
import inspect

import torch
import triton

from torchspectral.kernels import interpreting

BLOCK_K = 32

# The largest shared memory one block may opt in to, in bytes, by compute capability (CUDA C++ Programming
# Guide, "Technical Specifications per Compute Capability"). The AOT test checks every default config against
# these; at run time the driver's own figure is used (:func:`shared_memory_limit`).
SHARED_MEMORY_LIMIT = {80: 166912, 86: 101376, 87: 166912, 89: 101376, 90: 232448, 100: 232448, 120: 101376}


def target_programs(device: torch.device) -> int:
    """Programs that fill a GPU (about 4 per SM) for the kernels that split their column loop when there are
    few row blocks; interpreted, 8, so that the split is exercised on the tests' small shapes."""
    if device.type != "cuda":
        return 8
    return 4 * _device_sms(device.index if device.index is not None else torch.cuda.current_device())


@functools.cache
def _device_sms(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def autotune_options() -> dict:
    """Extra ``triton.autotune`` arguments this Triton supports: ``cache_results`` keeps the tuned config of each
    key (bucketed sizes) on disk, so a new process does not re-run every config's full O(N²d) pass."""
    return {"cache_results": True} if "cache_results" in inspect.signature(triton.autotune).parameters else {}


@functools.cache
def _device_shared_memory(index: int) -> int:
    return int(triton.runtime.driver.active.utils.get_device_properties(index)["max_shared_mem"])


def shared_memory_limit(named_args: dict) -> int | None:
    """The opt-in shared memory per block of the device the launch's tensors are on (None: not a CUDA launch)."""
    for value in named_args.values():
        if isinstance(value, torch.Tensor):
            return _device_shared_memory(value.device.index or 0) if value.is_cuda else None
    return None


def pairwise_shared_memory(config: triton.Config) -> int:
    """Bytes of shared memory a pairwise config needs: ``num_stages`` buffers of the two fp32 operand tiles
    (BLOCK × BLOCK_K each) of the software-pipelined dot loop. An upper bound of what Triton allocated in the
    AOT compiles (tests/test_kernels_aot.py checks that it is one)."""
    return config.num_stages * 2 * config.kwargs["BLOCK"] * BLOCK_K * 4


def instance_shared_memory(config: triton.Config) -> int:
    """Bytes for the instance-score kernel: ``num_stages`` buffers of the x, y (BLOCK_N × BLOCK_D) and V
    (BLOCK_D × BLOCK_K) fp32 tiles, one more V tile and 1 KB. The last two are calibrated on the AOT sweep:
    on sm_90 in tf32x3 Triton allocates up to BLOCK_D·BLOCK_K·4 + 512 bytes beyond the pipelined buffers
    (the wgmma operand staging); the AOT test checks that the estimate stays an upper bound."""
    kw = config.kwargs
    buffers = config.num_stages * (2 * kw["BLOCK_N"] * kw["BLOCK_D"] + kw["BLOCK_D"] * kw["BLOCK_K"]) * 4
    return buffers + kw["BLOCK_D"] * kw["BLOCK_K"] * 4 + 1024


def fits_shared_memory(configs: list[triton.Config], limit: int | None, need) -> list[triton.Config]:
    """The configs whose estimated shared memory ``need(config)`` fits ``limit`` (all of them when the limit is
    unknown, the smallest one when none fits: it then fails with Triton's own OutOfResources, which names it)."""
    if limit is None:
        return configs
    return [c for c in configs if need(c) <= limit] or [min(configs, key=need)]


def prune_pairwise(dot_tiles: int):
    """``early_config_prune`` of a pairwise kernel: drop configs whose pipelined tiles exceed the device's shared
    memory (sm_86/89 have 99 KB per block, sm_80 163 KB, sm_90 227 KB), before any of them is compiled.
    ``dot_tiles`` (the number of dot loops in the kernel) is recorded for the AOT report; the loops run one
    after the other, so their buffers are not live at once."""

    def prune(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
        return fits_shared_memory(configs, shared_memory_limit(named_args), pairwise_shared_memory)

    prune.dot_tiles = dot_tiles
    return prune


def bucket(size: int, cap: int | None = None) -> int:
    """The next power of two ≥ size (the autotune key), e.g. 1000 → 1024; at most ``cap`` when given.

    Example:
        >>> bucket(1000), bucket(1024), bucket(1), bucket(5000, cap=4096)
        (1024, 1024, 1, 4096)
    """
    value = 1 << max(0, int(size) - 1).bit_length()
    return value if cap is None else min(value, cap)


# (BLOCK, warps, stages) tried on a GPU. The first of a kernel's list is its default: the config the AOT test
# requires to compile without spills on sm_80 and sm_90 in every precision (64×64 tiles on 8 warps: 4 warps
# spill in the CKA pass, which keeps two score tiles live). 128×128 tiles spill on sm_80 (up to 3.7 KB per
# thread in tf32x3) but not on sm_90 in the tensor-core precisions of MMD and retrieval (make aot-sweep): a
# candidate the autotuner may pick there.
PAIRWISE_CONFIGS = [(64, 8, 4), (64, 8, 3), (64, 4, 3), (128, 8, 3), (32, 2, 2)]


def pairwise_configs(default: tuple[int, int, int] = PAIRWISE_CONFIGS[0]) -> list[triton.Config]:
    """Square tiles (``BLOCK`` rows × ``BLOCK`` columns), warps and stages to try on a GPU, ``default`` first;
    one small config interpreted."""
    if interpreting():
        return [triton.Config({"BLOCK": 32}, num_warps=1)]
    ordered = [default, *(c for c in PAIRWISE_CONFIGS if c != default)]
    return [triton.Config({"BLOCK": block}, num_warps=warps, num_stages=stages) for block, warps, stages in ordered]


def instance_score_configs() -> list[triton.Config]:
    """(rows, modes, features) per program of the instance-score kernel, warps and stages.

    Interpreted: one config, blocks big enough to keep the Python overhead down, small enough that the tests
    cover several row, mode and feature chunks with small shapes. On a GPU: fp32 "ieee" dots run on the FMA
    units, so the kernel is compute-bound for k beyond a few dozen modes; ``BLOCK_K`` trades padding waste
    (k=77 in a 128 chunk wastes 40%) against re-reading the rows once per chunk.
    """
    # The first GPU config is the default (no spills on sm_80/sm_90 in any precision or input dtype, by the
    # AOT test; (16, 16, 64) spilled 28–76 B per thread in tf32x3 there). The others spill at most 160 B in
    # some variants (make aot-sweep); configs that spilled 0.7–26 KB per thread somewhere ((32, 32, 64),
    # (64, 32, 64), (64, 64, 32), (64, 64, 64), (128, 64, 32), (128, 128, 32)) are not tried.
    sizes = [(32, 32, 32, 4, 1)] if interpreting() else [
        (32, 32, 32, 4, 3), (16, 16, 64, 4, 3), (16, 64, 32, 4, 3), (32, 16, 64, 4, 3),
        (64, 32, 32, 4, 3), (128, 32, 32, 8, 3), (64, 128, 32, 8, 2),
    ]  # fmt: skip
    return [
        triton.Config({"BLOCK_N": bn, "BLOCK_K": bk, "BLOCK_D": bd}, num_warps=nw, num_stages=ns)
        for bn, bk, bd, nw, ns in sizes
    ]


def prune_instance_score(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
    """Drop mode chunks wider than the (padded) number of modes, row tiles much taller than n, and configs whose
    shared memory exceeds the device's."""
    k_cap = max(16, triton.next_power_of_2(int(named_args["K"])))
    n_cap = max(16, triton.next_power_of_2(int(named_args["N"])))
    kept = [c for c in configs if c.kwargs["BLOCK_K"] <= k_cap and c.kwargs["BLOCK_N"] <= n_cap]
    kept = kept or [min(configs, key=lambda c: (c.kwargs["BLOCK_K"], c.kwargs["BLOCK_N"]))]
    return fits_shared_memory(kept, shared_memory_limit(named_args), instance_shared_memory)
