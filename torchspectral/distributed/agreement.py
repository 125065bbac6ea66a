"""The ranks agree on their inputs before any collective (``group=``): every rank learns every rank's verdict,
so bad input on one rank is the same clear error on all of them, never a hang in a collective.

Each rank checks its own tensors and reports small facts (rows, width, dtype, largest value, bad rows) or its
error; one ``all_gather_object`` shares them, and the checks that need the global picture (NaN counts, the
width of every shard, the float64 promotion of values out of float32's range) are taken from the same gathered
facts on every rank, so they agree. An empty shard ((0, d) rows, any d) is allowed; its width is not compared.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from torchspectral.distributed.collectives import gather_objects, sum_all
from torchspectral.validation import check_rows_tensor, finite_rows, peak, range_dtype

_ERRORS = {"ValueError": ValueError, "TypeError": TypeError}


def agree(local_checks: Callable[[], Any], group: Any) -> list[Any]:
    """Every rank's ``local_checks()`` result, in rank order; if it raised on some rank, the same error on all."""
    try:
        verdict: tuple[str | None, Any] = (None, local_checks())
    except (ValueError, TypeError) as error:
        verdict = (f"{type(error).__name__}\0{error}", None)
    verdicts = gather_objects(verdict, group)
    for rank, (error, _) in enumerate(verdicts):
        if error is not None:
            kind, message = error.split("\0", 1)
            raise _ERRORS[kind](message if group is None else f"{message} (on rank {rank})")
    return [facts for _, facts in verdicts]


def describe_shard(t: torch.Tensor, name: str, metric: str) -> dict[str, Any]:
    """Check one rank's rows (a floating-point 2-D tensor, possibly with no rows) and report them."""
    check_rows_tensor(t, name, metric)
    n = t.shape[0]
    bad = int((~finite_rows(t)).sum()) if n else 0
    return {
        "n": n,
        "d": t.shape[1] if n else None,
        "float64": t.dtype == torch.float64,
        "bad": bad,
        "peak": float(peak(t)) if n and not bad else 0.0,
    }


def parts(t: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The row blocks of a tensor (itself) or of a list of blocks."""
    return [t] if isinstance(t, torch.Tensor) else list(t)


def detached(t: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    return t.detach() if isinstance(t, torch.Tensor) else [p.detach() for p in t]


def device_of(*rows: torch.Tensor | Sequence[torch.Tensor]) -> torch.device:
    for t in rows:
        for p in parts(t):
            return p.device
    return torch.device("cpu")


def describe_rows(t: torch.Tensor | Sequence[torch.Tensor], name: str, metric: str) -> dict[str, Any]:
    """:func:`describe_shard` of a tensor, or of a list of row blocks taken together (one width)."""
    if isinstance(t, torch.Tensor):
        return describe_shard(t, name, metric)
    if not isinstance(t, list | tuple):
        raise TypeError(f"{metric}: {name} must be a torch.Tensor, got {type(t).__name__}")
    facts = [describe_shard(p, name, metric) for p in t]
    widths = {f["d"] for f in facts if f["d"] is not None}
    if len(widths) > 1:
        raise ValueError(f"{metric}: the row blocks of {name} have different widths {sorted(widths)}")
    return {
        "n": sum(f["n"] for f in facts),
        "d": next(iter(widths)) if widths else None,
        "float64": any(f["float64"] for f in facts),
        "bad": sum(f["bad"] for f in facts),
        "peak": max((f["peak"] for f in facts), default=0.0),
    }


def width(facts: Sequence[dict[str, Any]], name: str, metric: str) -> int:
    """The one width of a sharded input across ranks (a clear error naming the ranks when they differ)."""
    widths = {rank: f["d"] for rank, f in enumerate(facts) if f["d"] is not None}
    if not widths:
        raise ValueError(f"{metric}: {name} is empty on every rank")
    if len(set(widths.values())) > 1:
        raise ValueError(f"{metric}: {name} has a different width on different ranks ({name} widths by rank: {widths})")
    return next(iter(widths.values()))


def compute_dtype_across(
    metric: str, n: int, d: int, *groups: Sequence[dict[str, Any]], names: Sequence[str] | None = None
) -> torch.dtype:
    """float64 when any shard is float64 or the values are too large or too small for float32 arithmetic (as
    :func:`~torchspectral.validation.within_range` decides for the concatenated inputs), else float32. Each group
    holds one input's shard facts; ``names`` name the groups in errors (default "x", "y").

    Raises:
        ValueError: values out of float64's range (:func:`~torchspectral.validation.range_dtype`).
    """
    float64 = any(f["float64"] for facts in groups for f in facts)
    names = ("x", "y")[: len(groups)] if names is None else names
    peaks = {name: max(f["peak"] for f in facts) for name, facts in zip(names, groups, strict=True)}
    return range_dtype(peaks, torch.float64 if float64 else torch.float32, metric, n, d)


def as_rows(t: torch.Tensor, d: int, dtype: torch.dtype) -> torch.Tensor:
    """This rank's rows in the compute dtype; an empty shard becomes (0, d)."""
    if t.shape[0] == 0:
        return t.new_empty((0, d), dtype=dtype)
    return t.detach().to(dtype)


def global_mean(parts: Sequence[torch.Tensor], total: int, group: Any) -> torch.Tensor:
    """The float64 mean over the ranks of the rows of ``parts`` (summed in float64, as one process does)."""
    s = sum(p.sum(0, dtype=torch.float64) for p in parts)
    return sum_all(s.clone(), group) / total


def reject_grad(metric: str, *tensors: torch.Tensor) -> None:
    if any(t.requires_grad for t in tensors):
        raise ValueError(
            f"{metric}: with group= the value is computed across ranks without a graph; detach the inputs "
            "(no gradient flows through the sharded pairwise engine)"
        )


def check_no_omit(nan_policy: str, metric: str) -> None:
    if nan_policy != "raise":
        raise ValueError(
            f"{metric}: with group= only nan_policy='raise' is supported, got {nan_policy!r} (dropping rows on one "
            "rank would renumber the rows of the others); drop the bad rows before calling"
        )


def check_backend(backend: str, metric: str) -> None:
    """The sharded engine runs the chunked torch tiles (the fused kernels take whole inputs)."""
    if backend not in ("auto", "torch"):
        raise ValueError(
            f"{metric}: with group= the sharded engine runs the chunked torch tiles; backend must be 'auto' or "
            f"'torch', got {backend!r}"
        )


def check_group_options(metric: str, nan_policy: str, backend: str) -> None:
    """The options every pairwise metric's ``group=`` path refuses, checked on each rank before the ranks agree."""
    check_no_omit(nan_policy, metric)
    check_backend(backend, metric)


def refuse_precision(metric: str, precision: str | None) -> None:
    """``precision=`` with ``group=``: the sharded engine computes in "ieee" (the same error on every rank: it
    depends on an argument every rank passes alike)."""
    if precision is not None:
        raise ValueError(f"{metric}: precision applies to one process; the sharded engine (group=) computes in ieee")
