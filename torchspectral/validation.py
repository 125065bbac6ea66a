"""Input checks shared by every entry point: one place that turns bad input into a clear error.

Each check names the metric it guards, so a user calling `ts.alignment_report` on a bad tensor
learns which metric refused and why, instead of getting NaN out of a covariance.

Finite values can still be out of the arithmetic's range: float32 embeddings at 1e20 have squares that overflow
float32, at 1e-22 squares that underflow it. Such inputs are moved to float64, where every metric is computed
correctly; values too large or too small even for float64 are refused with an error that says so
(:func:`within_range`, :func:`range_dtype`).

Checks of *values* (finite, in range, non-zero variance, non-zero rows) read the data on the host: on CUDA each
is a synchronisation. They run by default; ``validate_args=False`` on a functional metric, or the losses' and
metrics' default ``validate_args="first"`` after their first call, turns them off (:func:`value_checks`), and
then bad values give NaN or Inf like any torch op instead of an error. Checks of shapes, dtypes and devices
cost nothing and always run.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import math
import numbers
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch

NAN_POLICIES = ("raise", "omit")
# validate_args of the losses and streaming metrics: every call, never, or the first call only (the default).
VALIDATE_MODES = (True, False, "first")

_CHECK_VALUES = contextvars.ContextVar("torchspectral_check_values", default=True)


def checking_values() -> bool:
    """Whether checks that read values on the host run here (see :func:`value_checks`)."""
    return _CHECK_VALUES.get()


@contextlib.contextmanager
def value_checks(enabled: bool) -> Iterator[None]:
    """Run the enclosed computation with the host-reading value checks on or off (restored on exit)."""
    token = _CHECK_VALUES.set(bool(enabled))
    try:
        yield
    finally:
        _CHECK_VALUES.reset(token)


F = TypeVar("F", bound=Callable)


def with_validate_args(fn: F) -> F:
    """Give a functional metric the keyword ``validate_args: bool = True``.

    ``validate_args=False`` skips the checks that read values (finiteness, range, zero variance, zero rows; one
    host synchronisation each on CUDA): for training loops and benchmarks on data already checked. Bad values
    then give NaN or Inf. ``nan_policy="omit"`` needs the values and is refused with ``validate_args=False``.
    """

    @functools.wraps(fn)
    def wrapper(*args, validate_args: bool = True, **kwargs):
        if not isinstance(validate_args, bool):
            raise TypeError(f"{fn.__name__}: validate_args must be True or False, got {validate_args!r}")
        if not validate_args and kwargs.get("nan_policy", "raise") == "omit":
            raise ValueError(f"{fn.__name__}: nan_policy='omit' needs the values checked; pass validate_args=True")
        with value_checks(validate_args and checking_values()):
            return fn(*args, **kwargs)

    signature = inspect.signature(fn)
    keyword = inspect.Parameter("validate_args", inspect.Parameter.KEYWORD_ONLY, default=True, annotation="bool")
    parameters = list(signature.parameters.values())
    at = next((i for i, p in enumerate(parameters) if p.kind is inspect.Parameter.VAR_KEYWORD), len(parameters))
    wrapper.__signature__ = signature.replace(parameters=[*parameters[:at], keyword, *parameters[at:]])
    return wrapper  # type: ignore[return-value]


class ValidatesArgs:
    """For modules called once per step (losses, streaming metrics): ``validate_args`` True (every call), False
    (never) or ``"first"`` (the first call only: a wrong input is caught at once, and later steps do not
    synchronise the host). Use ``with self.step_checks(): ...`` around the step. Inside an enclosing step whose
    checks are off (a loss made of losses), they are off here too."""

    def _set_validate_args(self, validate_args: bool | str, name: str) -> None:
        # By identity for the booleans: 1 == True, but 1 is not a mode.
        known = (validate_args is mode or (isinstance(mode, str) and validate_args == mode) for mode in VALIDATE_MODES)
        if not any(known):
            raise ValueError(f"{name}: validate_args must be True, False or 'first', got {validate_args!r}")
        self.validate_args = validate_args
        self._args_validated = False

    @contextlib.contextmanager
    def step_checks(self) -> Iterator[None]:
        check = self.validate_args is True or (self.validate_args == "first" and not self._args_validated)
        check = check and checking_values()
        with value_checks(check):
            yield
        if check:
            self._args_validated = True


def check_matrix(t: torch.Tensor, name: str, metric: str) -> None:
    """Require a non-empty floating-point 2-D tensor (n, d)."""
    check_rows_tensor(t, name, metric)
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{metric}: {name} is empty (shape {tuple(t.shape)})")


def check_rows_tensor(t: torch.Tensor, name: str, metric: str) -> None:
    """Require a floating-point 2-D tensor (n, d), possibly with no rows (a rank's empty shard)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{metric}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.is_meta:
        raise ValueError(
            f"{metric}: {name} is on the meta device: it has a shape but no values to measure "
            "(move it to a real device first, e.g. with .to_empty() and loading real weights)"
        )
    if t.dim() != 2:
        raise ValueError(f"{metric}: {name} must be 2-D (n, d), got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(
            f"{metric}: {name} has dtype {t.dtype}; embeddings must be floating point (convert with {name}.float())"
        )


def check_pair(
    x: torch.Tensor,
    y: torch.Tensor,
    metric: str,
    *,
    same_dim: str | None = None,
    nan_policy: str = "raise",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate paired embeddings and apply the NaN policy; returns the pairs to use.

    `same_dim` is the reason the metric needs d_x = d_y (None when it does not).
    """
    if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.device != y.device:
        raise ValueError(f"{metric}: x is on {x.device} but y is on {y.device}")  # before "is on the meta device"
    check_matrix(x, "x", metric)
    check_matrix(y, "y", metric)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{metric}: x and y must hold the same number of paired rows, got {x.shape[0]} and {y.shape[0]}"
        )
    if same_dim is not None and x.shape[1] != y.shape[1]:
        raise ValueError(f"{metric}: needs d_x = d_y ({same_dim}), got d_x={x.shape[1]}, d_y={y.shape[1]}")
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"{metric}: nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    x, y = _usable_values({"x": x, "y": y}, metric, nan_policy, "pairs", "every pair contains")
    return x, y


def check_min_rows(n: int, needed: int, metric: str, why: str) -> None:
    if n < needed:
        raise ValueError(f"{metric}: needs at least {needed} pairs ({why}), got {n}")


def check_positive(value: float, name: str, metric: str) -> float:
    """A setting that must be a positive number (a temperature, a scale, an exponent), as a float."""
    if not value > 0:
        raise ValueError(f"{metric}: {name} must be positive, got {value}")
    return float(value)


def check_q(q: float, metric: str) -> None:
    if not (0.0 < float(q) <= 1.0):
        raise ValueError(f"{metric}: q is the fraction of top eigenmodes kept and must lie in (0, 1], got {q}")


def check_sample(t: torch.Tensor, name: str, metric: str, nan_policy: str = "raise") -> torch.Tensor:
    """Validate one unpaired sample (n, d) and apply the NaN policy to its rows; returns the rows to use."""
    check_matrix(t, name, metric)
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"{metric}: nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    (t,) = _usable_values({name: t}, metric, nan_policy, f"rows of {name}", f"every row of {name} contains")
    return t


def _usable_values(
    tensors: dict[str, torch.Tensor], metric: str, nan_policy: str, rows: str, every: str
) -> list[torch.Tensor]:
    """The NaN policy and the range check of :func:`check_pair` and :func:`check_sample` (the rows of every tensor
    go together: a row is dropped from all of them); nothing is read when value checks are off."""
    values = list(tensors.values())
    if not checking_values():
        return values
    n, d = values[0].shape[0], max(t.shape[1] for t in values)
    if usable_as_is(n, d, *values):
        return values
    finite = finite_rows(values[0])
    for t in values[1:]:
        finite = finite & finite_rows(t)
    n_bad = int((~finite).sum())
    if n_bad:
        if nan_policy == "raise":
            raise ValueError(
                f"{metric}: {n_bad} of {n} {rows} contain NaN or Inf "
                f"(pass nan_policy='omit' to drop those {rows.split()[0]})"
            )
        values = [t[finite] for t in values]
        if values[0].shape[0] == 0:
            raise ValueError(f"{metric}: {every} NaN or Inf; nothing is left after nan_policy='omit'")
    return within_range(dict(zip(tensors, values, strict=True)), metric, values[0].shape[0], d)


def finite_rows(t: torch.Tensor) -> torch.Tensor:
    """Boolean (n,) mask of the rows without NaN or Inf (element-wise: only reached once :func:`peak` flagged t)."""
    return torch.isfinite(t).all(dim=1)


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 when any input is float64, else float32 (half precisions are upcast first)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def peak(t: torch.Tensor) -> torch.Tensor:
    """max |t| as a float64 scalar tensor, NaN when t holds a NaN (one pass, no n×d temporary, no sync)."""
    low, high = torch.aminmax(t.detach())
    return torch.maximum(high, -low).double()


# Headroom below the largest float for the few terms of that size that are added together.
_HEADROOM = 16.0
# How far below its peak |value| the spread of real data may sit and still be computed clear of underflow.
_SPREAD = 256.0


def magnitude_limit(dtype: torch.dtype, n: int, d: int) -> float:
    """The largest |value| of n rows of width d whose statistics stay finite when computed in `dtype`.

    With v = max|value|, centred values are at most 2v and a squared row norm at most 4dv². In float32 (the
    compute dtype of float32 and half inputs) the batch sums reach third powers: ``Σ_i ‖xc_i‖² xc_i`` (unbiased
    CKA) is at most 8ndv³. In float64 (every accumulated statistic) the metrics combine them up to fourth
    powers: ``‖Σ_i xc_i xc_iᵀ‖²_F`` is at most 16n²d²v⁴, and SAS's λ_k·σ²_k is of that order. Squared
    distances, norms and logits of the pairwise metrics and losses stay far below both bounds.

    Example:
        >>> f"{magnitude_limit(torch.float32, 64, 8):.2e}"
        '1.73e+11'
    """
    big = torch.finfo(dtype).max / _HEADROOM
    if dtype == torch.float64:
        return (big / (16.0 * n * n * d * d)) ** 0.25
    return (big / (8.0 * n * d)) ** (1.0 / 3.0)


def smallness_limit(dtype: torch.dtype) -> float:
    """The smallest peak |value| of a tensor whose statistics stay clear of underflow when computed in `dtype`.

    In float32 (the compute dtype of float32 and half inputs) the batch sums reach third powers of the values
    (``Σ_i ‖xc_i‖² xc_i``), in float64 the metrics fourth powers (``‖Σ_xy‖²_F``, SAS's λ_k·σ²_k, the self-HSIC
    terms). Such a power of values down to 1/256 of the peak (the spread of real data sits below its peak) is kept
    at or above ``tiny / eps`` of the dtype, so that underflow loses no more than rounding does:
    ``limit = 256 · (tiny / eps)^(1/power)``, about 1.2e-8 for float32 and 2.6e-71 for float64. An all-zero tensor
    (peak 0) has no scale and is left to the checks that name zero variance.

    Example:
        >>> f"{smallness_limit(torch.float32):.2e}", f"{smallness_limit(torch.float64):.2e}"
        ('1.18e-08', '2.56e-71')
    """
    info = torch.finfo(dtype)
    power = 4 if dtype == torch.float64 else 3
    return _SPREAD * (info.tiny / info.eps) ** (1.0 / power)


def usable_as_is(n: int, d: int, *tensors: torch.Tensor) -> bool:
    """Whether every value is finite and every tensor's peak |value| lies within :func:`smallness_limit` and
    :func:`magnitude_limit` for n rows of width d.

    One reduction per tensor and one host sync, as a finiteness check alone needs: the peak |value| is NaN
    or Inf whenever any value is, so "finite and in range" is one comparison. Only when it fails do the
    callers look closer (which rows are bad, how large or small the values are, whether a tensor is all zero).
    """
    peaks = torch.stack([peak(t) for t in tensors])
    dtype = compute_dtype(*tensors)
    return bool((peaks.amax() <= magnitude_limit(dtype, n, d)) & (peaks.amin() >= smallness_limit(dtype)))


def range_dtype(peaks: dict[str, float], dtype: torch.dtype, metric: str, n: int, d: int) -> torch.dtype:
    """The dtype to compute in for tensors with these peak |values| (name → peak, finite): `dtype` (their compute
    dtype) when every peak fits it, else float64 when they fit float64.

    Raises:
        ValueError: a tensor's values are too large for float64 (:func:`magnitude_limit`) or, peak 0 aside, too
            small for it (:func:`smallness_limit`); the message names the tensor, its peak and the limit.
    """
    nonzero = {name: p for name, p in peaks.items() if p > 0}

    def fits(dt: torch.dtype) -> bool:
        return max(peaks.values()) <= magnitude_limit(dt, n, d) and all(
            p >= smallness_limit(dt) for p in nonzero.values()
        )

    if fits(dtype):
        return dtype
    if fits(torch.float64):
        return torch.float64
    largest = max(peaks, key=peaks.__getitem__)
    limit = magnitude_limit(torch.float64, n, d)
    if peaks[largest] > limit:
        raise ValueError(
            f"{metric}: {largest} has values up to {peaks[largest]:.3g}, too large for float64: the statistics need "
            f"their squares and sums of up to fourth powers over {n} rows × {d} features, which overflow float64 "
            f"beyond |values| ≈ {limit:.3g} here; rescale the embeddings"
        )
    smallest = min(nonzero, key=nonzero.__getitem__)
    exponent = -math.floor(math.log2(nonzero[smallest]))
    raise ValueError(
        f"{metric}: {smallest} has values of at most {nonzero[smallest]:.3g}, too small for float64: the statistics "
        f"need sums of up to fourth powers of the values, which underflow float64 below |values| ≈ "
        f"{smallness_limit(torch.float64):.3g}; rescale the embeddings (e.g. multiply {smallest} by 2**{exponent}, "
        "which is exact)"
    )


def within_range(tensors: dict[str, torch.Tensor], metric: str, n: int, d: int) -> list[torch.Tensor]:
    """The finite `tensors` (name → tensor), in float64 when their values are too large or too small for float32
    arithmetic (:func:`range_dtype`).

    float64 holds the squares and fourth powers of every float32 value, so moving such inputs to float64 computes
    every metric correctly (scale-invariant or not) instead of returning NaN or a value the underflow made up;
    gradients flow back in the input dtype.

    Raises:
        ValueError: values too large or too small even for float64, naming the input and the overflow or underflow.
    """
    values = list(tensors.values())
    dtype = compute_dtype(*values)
    peaks = {name: float(peak(t)) for name, t in tensors.items()}
    if range_dtype(peaks, dtype, metric, n, d) == dtype:
        return values
    return [t.to(torch.float64) for t in values]


def is_finite_number(value: object) -> bool:
    """A finite real int or float (bool is not a number here)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def check_bandwidth(sigma: object, metric: str, name: str = "sigma") -> float:
    """A bandwidth must be a positive, finite real number (bool is not a number here)."""
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
        if isinstance(sigma, torch.Tensor) and sigma.numel() == 1 and sigma.is_floating_point():
            sigma = float(sigma)
        else:
            raise TypeError(f"{metric}: {name} must be a positive number, got {type(sigma).__name__}")
    if not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"{metric}: {name} must be a positive, finite bandwidth, got {sigma}")
    return float(sigma)
