"""Shared test data: paired embeddings with a known, non-degenerate structure."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

import torch

# The Triton kernels run on CPU tensors in Triton's interpreter; it must be chosen before triton is
# imported (kernels are bound to it when their module is imported). On a CUDA machine they run compiled.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import numpy as np
import pytest
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import settings

# Parity tolerances assume exact float32 matmuls (TF32 off: docs/definitions.md#numerics).
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


def _rank_entry(rank: int, world: int, init_file: str, results: dict, worker: Callable, args: tuple) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        results[rank] = worker(rank, world, *args)
    finally:
        dist.destroy_process_group()


def run_ranks(worker: Callable[..., Any], world: int, *args: Any) -> dict[int, Any]:
    """Run ``worker(rank, world, *args)`` in `world` spawned processes joined in one gloo group (CPU).

    `worker` must be a module-level function; it returns a picklable result per rank (floats, numpy
    arrays: tensors would travel through shared memory). Returns {rank: result} for every rank.
    """
    with tempfile.TemporaryDirectory() as tmp, mp.Manager() as manager:
        results = manager.dict()
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        mp.spawn(_rank_entry, args=(world, os.path.join(tmp, "init"), results, worker, args), nprocs=world, join=True)
        out = dict(results)
    assert sorted(out) == list(range(world)), f"ranks that returned: {sorted(out)}"
    return out


def expect_audit_error(call: Callable[[], Any], *fragments: str) -> str:
    """`call()` raises the audit's input error: one line, containing every fragment; returns the message."""
    from torchspectral.audit.errors import AuditInputError

    with pytest.raises(AuditInputError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message, "errors are one line"
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message
