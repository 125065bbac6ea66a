"""The sufficient-statistics accumulator every moment-based metric is computed from (no metric lives here).

:class:`torchspectral.Moments` is this accumulator with the metrics as methods; the metric formulas
(:mod:`torchspectral.functional`) read a :class:`MomentStatistics` and never import ``Moments``, so the
import graph runs one way: statistics → formulas → ``Moments``.

Almost every alignment metric is a function of a few sums over the paired rows: the first and
second moments of the concatenation ``[x y]``, a few sums over L2-normalised rows, and (for the
unbiased linear HSIC) sums weighted by squared row norms. They are additive, so data can stream in
batches, shards can merge and ranks can ``all_reduce``, and the result equals the one-shot value.

Numerics. Embeddings carry a large common offset (the modality gap), so a covariance formed as
``E[xxᵀ] − μμᵀ`` in float32 cancels catastrophically. Here every batch is centred on its own mean in
the compute precision (float32, or float64 for float64 input) before the one GEMM, and the batch
sums are moved to the accumulator's fixed *shift* (its first batch's mean) in float64 with exact
algebra (:meth:`Moments.reshifted`). All stored sums are float64, about the shift ``k``:

=============  ==========================================  =============================
state          meaning (``x' = x − k_x``, ``y' = y − k_y``)  used by
=============  ==========================================  =============================
``sum_x``      Σ x'                                         means
``sum_xx``     Σ x'x'ᵀ  (likewise ``sum_xy``, ``sum_yy``)   covariances: SAS, CKA, SVCCA, CORAL
``sum_a``      Σ a, with a_i = ‖x'_i‖²  (``sum_b``: b_i)     unbiased linear HSIC
``sum_ab``     Σ a b  (likewise ``sum_aa``, ``sum_bb``)     unbiased linear HSIC
``sum_a_x``    Σ a_i x'_i (likewise a·y', b·x', b·y')        unbiased linear HSIC
``sum_xhat``   Σ x̂, x̂ = x/‖x‖ (likewise ``sum_yhat``)      gap, Δcos, RMG
``sum_dot``    Σ ⟨x̂_i, ŷ_i⟩                                 true-pair cosine, Δcos, RMG
``sum_l2i``    Σ ‖x̂_i − ŷ_i‖                                L2I
``pairs_f32``  pairs summed in float32 (f32/half input)    SVCCA's numerical rank
=============  ==========================================  =============================

Everything is differentiable with respect to the rows that went in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from torchspectral.stats.rows import CHUNK_ELEMENTS, row_quantities, sums_of_rows  # noqa: F401  (re-exported)
from torchspectral.validation import check_pair, checking_values, compute_dtype

# Sums whose value depends on the shift, and sums over normalised rows (shift-free).
SHIFTED_STATE = (
    "sum_x", "sum_y", "sum_xx", "sum_xy", "sum_yy",
    "sum_a", "sum_b", "sum_ab", "sum_aa", "sum_bb",
    "sum_a_x", "sum_a_y", "sum_b_x", "sum_b_y",
)  # fmt: skip
# pairs_f32 counts the pairs whose batch sums were taken in float32 (float32 and half inputs): a count adds up
# under merge and all_reduce like the sums, and says whether the statistics carry float32 or float64 rounding.
NORMALISED_STATE = ("sum_xhat", "sum_yhat", "sum_dot", "sum_l2i", "zero_norm_x", "zero_norm_y", "pairs_f32")
STATE = SHIFTED_STATE + NORMALISED_STATE

# The state in groups, each formed only when a requested metric needs it (torchspectral.registry says which):
# the covariance blocks (SAS, CKA, SVCCA, CORAL), the sums of the unbiased linear HSIC (which need the covariance
# blocks to move to another shift), the sums over normalised rows (the gap family) and the pair distances (L2I,
# a chunked pass of its own). pairs_f32 is always kept. Streaming accumulators (Moments(d_x, d_y)) hold them all.
GROUPS = {
    "covariance": ("sum_x", "sum_y", "sum_xx", "sum_xy", "sum_yy"),
    "hsic": ("sum_a", "sum_b", "sum_ab", "sum_aa", "sum_bb", "sum_a_x", "sum_a_y", "sum_b_x", "sum_b_y"),
    "cosine": ("sum_xhat", "sum_yhat", "sum_dot", "zero_norm_x", "zero_norm_y"),
    "l2i": ("sum_l2i",),
}
ALL_GROUPS = tuple(GROUPS)
_GROUP_OF = {name: group for group, names in GROUPS.items() for name in names}
# A group that cannot be formed (or moved to a new shift) without another.
_REQUIRES = {"hsic": "covariance", "l2i": "cosine"}


def resolve_groups(groups) -> tuple[str, ...]:
    """The requested groups with what they require, in :data:`GROUPS` order; refuses unknown names."""
    wanted = {groups} if isinstance(groups, str) else set(groups)  # one name, not its characters
    unknown = wanted - set(GROUPS)
    if unknown:
        raise ValueError(f"statistics groups must be among {ALL_GROUPS}, got {sorted(unknown)}")
    wanted |= {_REQUIRES[g] for g in wanted if g in _REQUIRES}
    return tuple(g for g in GROUPS if g in wanted)


def _unit_scale(t: torch.Tensor) -> torch.Tensor:
    """The power of two 2^−e (a scalar of t's dtype, no gradient) with ``max|t| = m·2^e``, m in [0.5, 1): t times it
    peaks in [0.5, 1) (e kept within the dtype's normal exponents, so the scale itself is a normal number). 1 for an
    all-zero t, and for NaN or Inf, which the statistics then carry as they are."""
    _, exponent = torch.frexp(torch.linalg.vector_norm(t.detach(), ord=float("inf")))
    limit = {torch.float64: 1021}.get(t.dtype, 125)  # 2^±limit is a normal number (float32: 2^-126…2^127)
    return torch.ldexp(torch.ones((), dtype=t.dtype, device=t.device), (-exponent).clamp(-limit, limit))


# The power of the x and of the y scale in each shifted sum (the sums over normalised rows are scale-free).
_SCALE_POWERS = {
    "sum_x": (1, 0), "sum_y": (0, 1), "sum_xx": (2, 0), "sum_xy": (1, 1), "sum_yy": (0, 2),
    "sum_a": (2, 0), "sum_b": (0, 2), "sum_ab": (2, 2), "sum_aa": (4, 0), "sum_bb": (0, 4),
    "sum_a_x": (3, 0), "sum_a_y": (2, 1), "sum_b_x": (1, 2), "sum_b_y": (0, 3),
}  # fmt: skip


def _scaled_back(sums: dict, scale_x: torch.Tensor, scale_y: torch.Tensor) -> dict:
    """The sums of the unscaled rows from those of the rows times ``scale_x``, ``scale_y`` (exact, in float64)."""
    inv_x, inv_y = 1.0 / scale_x.double(), 1.0 / scale_y.double()
    for name, (px, py) in _SCALE_POWERS.items():
        if name in sums:
            sums[name] = sums[name] * (inv_x**px * inv_y**py)
    return sums


class Sums(dict):
    """The sums by name; asking for one whose group was not formed says so instead of a bare KeyError."""

    def __missing__(self, name: str):
        group = _GROUP_OF.get(name)
        if group is None:
            raise KeyError(name)
        raise ValueError(
            f"these statistics were formed without the {group!r} group ({name}); form them with "
            f"groups={ALL_GROUPS} (the default) to compute this metric"
        )


@dataclass
class MomentStatistics:
    """Additive sufficient statistics of paired embeddings ``x`` (n, d_x) and ``y`` (n, d_y).

    Every constructor and combinator returns the caller's class, so :class:`torchspectral.Moments` (this
    state with the metrics as methods) stays a ``Moments`` through ``update``, ``merge`` and ``reshifted``.
    """

    d_x: int | None = None
    d_y: int | None = None
    device: torch.device | str | None = None
    n: int = 0
    shift_x: torch.Tensor | None = field(default=None, repr=False)
    shift_y: torch.Tensor | None = field(default=None, repr=False)
    sums: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.sums, Sums):
            self.sums = Sums(self.sums)
        if self.d_x is not None and self.d_y is not None and not self.sums:
            self._zero_state(torch.device(self.device) if self.device is not None else torch.device("cpu"))

    # ------------------------------------------------------------------ state
    def _zero_state(self, device: torch.device) -> None:
        dx, dy = self.d_x, self.d_y
        f64 = {"dtype": torch.float64, "device": device}
        shapes = {
            "sum_x": (dx,), "sum_y": (dy,), "sum_xx": (dx, dx), "sum_xy": (dx, dy), "sum_yy": (dy, dy),
            "sum_a": (), "sum_b": (), "sum_ab": (), "sum_aa": (), "sum_bb": (),
            "sum_a_x": (dx,), "sum_a_y": (dy,), "sum_b_x": (dx,), "sum_b_y": (dy,),
            "sum_xhat": (dx,), "sum_yhat": (dy,), "sum_dot": (), "sum_l2i": (),
            "zero_norm_x": (), "zero_norm_y": (), "pairs_f32": (),
        }  # fmt: skip
        self.sums = Sums({name: torch.zeros(shapes[name], **f64) for name in STATE})
        self.shift_x = torch.zeros(dx, **f64)
        self.shift_y = torch.zeros(dy, **f64)
        self.device = device

    def __getattr__(self, name: str) -> torch.Tensor:
        # Expose the sums as attributes (m.sum_xx); only called when normal lookup fails.
        sums = self.__dict__.get("sums", {})
        if name in sums:
            return sums[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def same_dim(self) -> bool:
        return self.d_x == self.d_y

    # ------------------------------------------------------------------ building
    @classmethod
    def from_data(
        cls,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        nan_policy: str = "raise",
        metric: str = "Moments",
        same_dim: str | None = None,
        groups=ALL_GROUPS,
        about: MomentStatistics | None = None,
    ) -> MomentStatistics:
        """One-shot statistics of (x, y); `metric` and `same_dim` only shape the error messages.

        ``groups``: the statistics to form (:data:`GROUPS`; default all). A metric that needs only some — CORAL the
        covariance blocks, the modality gap the normalised-row sums — skips the cost of the others.
        ``about``: statistics of a larger sample these rows belong to; the sums are then formed about its shift
        (its mean) rather than this batch's own, so that :meth:`without` and :meth:`merge` need not move them.
        """
        x, y = check_pair(x, y, metric, same_dim=same_dim, nan_policy=nan_policy)
        shifts = None if about is None else (about.shift_x, about.shift_y)
        return cls._of_batch(x, y, groups, shifts)

    def update(self, x: torch.Tensor, y: torch.Tensor, nan_policy: str = "raise") -> MomentStatistics:
        """Add a batch of pairs. Returns self."""
        x, y = check_pair(x, y, "Moments.update", nan_policy=nan_policy)
        return self.merge(type(self)._of_batch(x, y))

    @classmethod
    def _of_batch(
        cls,
        x: torch.Tensor,
        y: torch.Tensor,
        groups=ALL_GROUPS,
        shifts: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> MomentStatistics:
        """Statistics of one validated batch, in coordinates centred on the batch's own mean (the compute
        precision centres, so the one GEMM per block does not cancel the common offset), or on ``shifts`` (the mean
        of a sample the batch belongs to, which removes the common offset just as well).

        Each modality is first scaled by a power of two that brings its peak |value| into [0.5, 1) (found on the
        device, no host read), and the float64 sums are scaled back: both steps are exact, and the float32 products
        can then neither underflow (float32 values at 1e-25) nor overflow, whatever the validation settings.
        """
        groups = resolve_groups(groups)
        cdt = compute_dtype(x, y)
        x, y = x.to(cdt), y.to(cdt)
        scale_x, scale_y = _unit_scale(x), _unit_scale(y)
        x, y = x * scale_x, y * scale_y
        if shifts is None:
            mean_x, mean_y = x.mean(0), y.mean(0)
        else:
            mean_x, mean_y = shifts[0].to(cdt) * scale_x, shifts[1].to(cdt) * scale_y
        sums = _scaled_back(sums_of_rows(row_quantities(x, y, groups, mean_x, mean_y), groups), scale_x, scale_y)
        return cls(
            d_x=x.shape[1], d_y=y.shape[1], device=x.device, n=x.shape[0],
            shift_x=mean_x.double() / scale_x.double(), shift_y=mean_y.double() / scale_y.double(), sums=sums,
        )  # fmt: skip

    @property
    def groups(self) -> tuple[str, ...]:
        """The statistics groups these sums hold (:data:`GROUPS`)."""
        return tuple(g for g, names in GROUPS.items() if all(name in self.sums for name in names))

    # ------------------------------------------------------------------ combining
    def reshifted(self, shift_x: torch.Tensor, shift_y: torch.Tensor) -> MomentStatistics:
        """The same statistics expressed about new shifts (exact algebra in float64).

        With δ = k_new − k_old, x_new = x_old − δ and a_new = a − 2⟨x_old, δ⟩ + ‖δ‖²; every sum
        expands into sums already held. Differentiable.
        """
        s, n = self.sums, self.n
        new = Sums(s)
        if "sum_x" not in s:  # only shift-free sums (the normalised rows): nothing moves
            return self._about(shift_x, shift_y, new)
        dx, dy = shift_x - self.shift_x, shift_y - self.shift_y
        c, e = dx @ dx, dy @ dy
        sum_u, sum_w = dx @ s["sum_x"], dy @ s["sum_y"]  # u_i = ⟨x_i, δx⟩, w_i = ⟨y_i, δy⟩
        xx_dx, yy_dy = s["sum_xx"] @ dx, s["sum_yy"] @ dy  # Σ u_i x_i, Σ w_i y_i
        xy_dy, yx_dx = s["sum_xy"] @ dy, s["sum_xy"].T @ dx  # Σ w_i x_i, Σ u_i y_i
        new["sum_x"] = s["sum_x"] - n * dx
        new["sum_y"] = s["sum_y"] - n * dy
        new["sum_xx"] = (
            s["sum_xx"] - torch.outer(s["sum_x"], dx) - torch.outer(dx, s["sum_x"]) + n * torch.outer(dx, dx)
        )
        new["sum_xy"] = (
            s["sum_xy"] - torch.outer(s["sum_x"], dy) - torch.outer(dx, s["sum_y"]) + n * torch.outer(dx, dy)
        )
        new["sum_yy"] = (
            s["sum_yy"] - torch.outer(s["sum_y"], dy) - torch.outer(dy, s["sum_y"]) + n * torch.outer(dy, dy)
        )
        if "sum_a" not in s:  # no HSIC sums to move
            return self._about(shift_x, shift_y, new)
        sum_uu, sum_uw, sum_ww = dx @ xx_dx, dx @ xy_dy, dy @ yy_dy
        sum_au, sum_bu = dx @ s["sum_a_x"], dx @ s["sum_b_x"]
        sum_aw, sum_bw = dy @ s["sum_a_y"], dy @ s["sum_b_y"]
        A = s["sum_a"] - 2 * sum_u + n * c
        B = s["sum_b"] - 2 * sum_w + n * e
        new["sum_a"], new["sum_b"] = A, B
        new["sum_ab"] = (
            s["sum_ab"] - 2 * sum_aw + e * s["sum_a"] - 2 * sum_bu + 4 * sum_uw
            - 2 * e * sum_u + c * s["sum_b"] - 2 * c * sum_w + n * c * e
        )  # fmt: skip
        new["sum_aa"] = s["sum_aa"] + 4 * sum_uu + n * c * c - 4 * sum_au + 2 * c * s["sum_a"] - 4 * c * sum_u
        new["sum_bb"] = s["sum_bb"] + 4 * sum_ww + n * e * e - 4 * sum_bw + 2 * e * s["sum_b"] - 4 * e * sum_w
        new["sum_a_x"] = s["sum_a_x"] - 2 * xx_dx + c * s["sum_x"] - dx * A
        new["sum_a_y"] = s["sum_a_y"] - 2 * yx_dx + c * s["sum_y"] - dy * A
        new["sum_b_x"] = s["sum_b_x"] - 2 * xy_dy + e * s["sum_x"] - dx * B
        new["sum_b_y"] = s["sum_b_y"] - 2 * yy_dy + e * s["sum_y"] - dy * B
        return self._about(shift_x, shift_y, new)

    def _about(self, shift_x: torch.Tensor, shift_y: torch.Tensor, sums: dict) -> MomentStatistics:
        """Statistics of the same pairs and class, with these shifts and sums."""
        return type(self)(
            d_x=self.d_x, d_y=self.d_y, device=self.device, n=self.n, shift_x=shift_x, shift_y=shift_y, sums=sums
        )  # fmt: skip

    def merge(self, other: MomentStatistics) -> MomentStatistics:
        """Add another accumulator's statistics into this one (any order gives the same result). Returns self."""
        if not isinstance(other, MomentStatistics):
            raise TypeError(f"Moments.merge: expected Moments, got {type(other).__name__}")
        if not other.sums:
            return self
        if not self.sums:
            self.d_x, self.d_y, self.device = other.d_x, other.d_y, other.device
            self.n, self.shift_x, self.shift_y = other.n, other.shift_x, other.shift_y
            self.sums = Sums(other.sums)
            self._cache.clear()
            return self
        if (self.d_x, self.d_y) != (other.d_x, other.d_y):
            raise ValueError(
                f"Moments.merge: dimensions differ, (d_x, d_y) = ({self.d_x}, {self.d_y}) vs ({other.d_x}, {other.d_y})"
            )
        if set(self.sums) != set(other.sums):
            raise ValueError(
                f"Moments.merge: the statistics hold different groups, {self.groups} vs {other.groups}; "
                "accumulate both with the same groups"
            )
        if self.n == 0:  # dims declared but empty: adopt the other's shift, nothing to move
            self.shift_x, self.shift_y = other.shift_x, other.shift_y
        aligned = other.reshifted(self.shift_x, self.shift_y) if other.n else other
        self.sums = Sums({name: self.sums[name] + aligned.sums[name] for name in self.sums})
        self.n += other.n
        self._cache.clear()
        return self

    def without(self, part: MomentStatistics) -> MomentStatistics:
        """The statistics of these pairs with ``part`` (statistics of some of them) taken out: the inverse of
        :meth:`merge`, returned as a new object (self is unchanged).

        ``part`` is moved to this shift exactly and its sums are subtracted in float64. The result carries the
        rounding of the sums it came from, so it is as accurate as a direct computation when ``part`` is a small
        share of the pairs (a delete-a-group jackknife); it is not meant for taking out most of them.
        """
        if not isinstance(part, MomentStatistics):
            raise TypeError(f"Moments.without: expected Moments, got {type(part).__name__}")
        if (self.d_x, self.d_y) != (part.d_x, part.d_y) or set(self.sums) != set(part.sums):
            raise ValueError("Moments.without: part must hold the same dimensions and statistics groups")
        if not 0 <= part.n < self.n:
            raise ValueError(f"Moments.without: cannot take {part.n} pairs out of {self.n} (at least one must remain)")
        same_shift = torch.equal(part.shift_x, self.shift_x) and torch.equal(part.shift_y, self.shift_y)
        aligned = part if same_shift or not part.n else part.reshifted(self.shift_x, self.shift_y)
        sums = Sums({name: self.sums[name] - aligned.sums[name] for name in self.sums})
        rest = self._about(self.shift_x, self.shift_y, sums)
        rest.n = self.n - part.n
        return rest

    def all_reduce(self, group: Any = None, differentiable: bool = False) -> MomentStatistics:
        """Sum the statistics of every rank of `group` (torch.distributed) into each rank. Returns self.

        Every rank must know its dimensions (construct ``Moments(d_x, d_y, device=...)`` on a rank
        that may see no data). The ranks first agree on one shift (the global mean, from an
        all-reduced raw sum), move their sums to it exactly, then one all_reduce sums everything.

        ``differentiable=False`` (default): states that require grad are refused rather than silently
        cut off. ``differentiable=True``: the global sums stay differentiable with respect to this rank's
        rows, so a metric of the global statistics is a loss for DDP. Convention (see
        :mod:`torchspectral.distributed`): ``backward`` gives each rank exactly ∂L/∂(its rows) for the
        global L every rank computes, with no communication in the backward; under DDP, which averages
        gradients over the W ranks, the parameters receive ∇L / W — multiply the loss by W for ∇L.
        The common shift is a constant (detached): sums about any fixed point describe the same data,
        so holding it fixed changes no value and no gradient.

        Example (single process: a one-rank gloo group):
            >>> import os, tempfile, torch, torch.distributed as dist, torchspectral as ts
            >>> _ = os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
            >>> init = "file://" + os.path.join(tempfile.mkdtemp(), "init")
            >>> dist.init_process_group("gloo", init_method=init, rank=0, world_size=1)
            >>> x = torch.randn(64, 4, dtype=torch.float64, requires_grad=True)
            >>> m = ts.Moments.from_data(x, 2 * x).all_reduce(differentiable=True)
            >>> (1 - m.cka()).backward(); x.grad.shape
            torch.Size([64, 4])
            >>> dist.destroy_process_group()
        """
        from torchspectral.distributed import require_initialised, require_same_across_ranks, sum_across_ranks

        require_initialised("Moments.all_reduce")
        if not self.sums:
            raise ValueError("Moments.all_reduce: this rank has no dimensions; construct Moments(d_x, d_y) here")
        held_mask = sum(1 << i for i, name in enumerate(STATE) if name in self.sums)
        require_same_across_ranks(
            "Moments.all_reduce", "(d_x, d_y, statistics held)", (self.d_x, self.d_y, held_mask), self.device, group
        )
        if not differentiable and any(t.requires_grad for t in self.sums.values()):
            raise RuntimeError(
                "Moments.all_reduce: the statistics require grad and differentiable=False would cut them off; "
                "pass differentiable=True (gradients flow through the global statistics) or detach them first"
            )
        n = torch.tensor([float(self.n)], dtype=torch.float64, device=self.device)
        # The shift only matters to the shifted sums; without them (normalised-row sums only) any common one will do.
        shifted = "sum_x" in self.sums
        local_sum_x = (self.sums["sum_x"] + self.n * self.shift_x).detach() if shifted else self.shift_x * 0
        local_sum_y = (self.sums["sum_y"] + self.n * self.shift_y).detach() if shifted else self.shift_y * 0
        raw = sum_across_ranks(torch.cat([n, local_sum_x, local_sum_y]), group)
        total = raw[0]
        if total == 0:
            raise ValueError("Moments.all_reduce: no rank holds any pairs")
        shift_x, shift_y = raw[1 : 1 + self.d_x] / total, raw[1 + self.d_x :] / total
        aligned = self.reshifted(shift_x, shift_y) if self.n else self
        held = [name for name in STATE if name in self.sums]  # the same on every rank: the same metric asked
        flat = torch.cat([aligned.sums[name].reshape(-1) for name in held])
        flat = sum_across_ranks(flat, group, differentiable=differentiable)
        offset = 0
        for name in held:
            size = self.sums[name].numel()
            self.sums[name] = flat[offset : offset + size].reshape(self.sums[name].shape)
            offset += size
        self.n, self.shift_x, self.shift_y = int(total.item()), shift_x, shift_y
        self._cache.clear()
        return self

    # ------------------------------------------------------------------ one flat vector (for metric states)
    def to_flat(self) -> torch.Tensor:
        """Everything in one float64 vector: [n, shift_x, shift_y, sums in STATE order]; see :meth:`from_flat`."""
        if not self.sums:
            raise ValueError("Moments.to_flat: no dimensions yet; construct Moments(d_x, d_y)")
        n = torch.tensor([float(self.n)], dtype=torch.float64, device=self.shift_x.device)
        return torch.cat([n, self.shift_x, self.shift_y, *(self.sums[name].reshape(-1) for name in STATE)])

    @classmethod
    def from_flat(cls, flat: torch.Tensor, d_x: int, d_y: int) -> MomentStatistics:
        """Inverse of :meth:`to_flat` for the given dimensions."""
        shapes = {name: tuple(t.shape) for name, t in cls(d_x, d_y).sums.items()}
        expected = 1 + d_x + d_y + sum(math.prod(shape) for shape in shapes.values())
        if flat.shape != (expected,):
            raise ValueError(f"Moments.from_flat: expected a vector of {expected} values for d_x={d_x}, d_y={d_y}")
        if checking_values():  # else NaN statistics surface later as a misleading "zero variance"
            bad = int((~torch.isfinite(flat)).sum())
            if bad:
                raise ValueError(
                    f"Moments.from_flat: {bad} of {expected} values are NaN or Inf; the statistics were accumulated "
                    "from non-finite inputs or corrupted (e.g. by an all_reduce of non-finite values)"
                )
        sums, offset = {}, 1 + d_x + d_y
        for name in STATE:
            size = math.prod(shapes[name])
            sums[name] = flat[offset : offset + size].reshape(shapes[name])
            offset += size
        return cls(
            d_x=d_x, d_y=d_y, device=flat.device, n=round(float(flat[0])),
            shift_x=flat[1 : 1 + d_x], shift_y=flat[1 + d_x : 1 + d_x + d_y], sums=sums,
        )  # fmt: skip

    # ------------------------------------------------------------------ derived statistics
    def require_pairs(self, metric: str, min_n: int, why: str) -> None:
        """Raise a ValueError naming `metric` unless at least `min_n` pairs have been accumulated."""
        if not self.sums or self.n < min_n:
            raise ValueError(f"{metric}: needs at least {min_n} pairs ({why}), got {self.n}")

    def centred(self) -> MomentStatistics:
        """The statistics about the exact mean (sum_x = sum_y = 0 up to rounding); cached."""
        if "centred" not in self._cache:
            if "sum_a" in self.sums:  # the HSIC sums move by the general algebra
                self._cache["centred"] = self.reshifted(self.mean_x, self.mean_y)
            else:
                self._cache["centred"] = self._about_the_mean()
        return self._cache["centred"]

    def _about_the_mean(self) -> MomentStatistics:
        """:meth:`reshifted` to the mean when only the covariance blocks (and shift-free sums) are held: with
        δ = s/n the general update ``S − s δᵀ − δ sᵀ + n δδᵀ`` is ``S − s sᵀ/n``, one outer product per block instead
        of three (the losses' step pays for these d×d passes, forward and backward)."""
        s, n = self.sums, self.n
        new = Sums(s)
        if "sum_x" in s:
            sx, sy = s["sum_x"], s["sum_y"]
            new["sum_x"], new["sum_y"] = sx - sx, sy - sy  # zero, with the dtype, device and graph of s
            new["sum_xx"] = s["sum_xx"] - torch.outer(sx, sx / n)
            new["sum_xy"] = s["sum_xy"] - torch.outer(sx, sy / n)
            new["sum_yy"] = s["sum_yy"] - torch.outer(sy, sy / n)
        return self._about(self.mean_x, self.mean_y, new)

    @property
    def rounding(self) -> float:
        """Machine epsilon of the arithmetic the statistics were accumulated in: float32's as soon as any batch was
        summed in float32 (float32 or half input), float64's otherwise. Rounding noise in the covariances is of
        this order relative to their scale."""
        return torch.finfo(torch.float32 if bool(self.sums["pairs_f32"] > 0) else torch.float64).eps

    @property
    def mean_x(self) -> torch.Tensor:
        return self.shift_x + self.sums["sum_x"] / self.n

    @property
    def mean_y(self) -> torch.Tensor:
        return self.shift_y + self.sums["sum_y"] / self.n

    def covariance(self, block: str, ddof: int = 0) -> torch.Tensor:
        """``"x"``, ``"y"`` or ``"xy"`` block of the covariance of ``[x y]``, divided by n − ddof; cached (SAS reads
        each block up to three times)."""
        key = ("covariance", block, ddof)
        if key not in self._cache:
            self._cache[key] = self.centred().sums["sum_" + {"x": "xx", "y": "yy", "xy": "xy"}[block]] / (self.n - ddof)
        return self._cache[key]

    def spectrum(self, which: str, standardize: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Descending eigendecomposition of Σ_x or Σ_y (1/n), or of the correlation matrix; cached."""
        from torchspectral.spectral import eigh_descending, standardized

        key = ("spectrum", which, standardize)
        if key not in self._cache:
            cov = self.covariance(which)
            self._cache[key] = eigh_descending(standardized(cov) if standardize else cov)
        return self._cache[key]
