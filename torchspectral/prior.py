"""Instance-level SAS (docs/definitions.md#instance-sas): a spectral prior fitted on a population, scoring any number of
pairs.

Fitting freezes, per direction (anchor x or anchor y), the means μ_x, μ_y, the active eigenvectors
V_A and eigenvalues λ_A of the anchor's covariance, the other modality's variance σ²_k = v_kᵀΣv_k,
and the population signs s_k = sign(ρ_k). A pair (x, y) projects to ``zx = (x − μ_x)V``,
``zy = (y − μ_y)V`` and gets per-mode correlations ``ρ_k(x, y) = zx_k zy_k / sqrt(λ_k σ²_k + ε)``.

* ``mode="decompose"`` (default): ``Σ_A λ_k s_k ρ_k(x, y) / Σ_A λ_k`` — a bilinear form
  ``(x − μ_x)ᵀ M (y − μ_y)`` whose mean over the fitting population *is* the population SAS
  (before clamping). Unbounded per pair; it says which pairs carry the shared structure.
* ``mode="abs"``: the paper-literal ``Σ_A λ_k |ρ_k(x, y)| / Σ_A λ_k``.

Scoring is one batched pass: a fused Triton kernel on CUDA (no (n, |A|) projections in memory), a
chunked torch path elsewhere; both differentiable in x and y (the prior itself is frozen).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from torchspectral.functional.sas import NEEDS as SAS_NEEDS
from torchspectral.functional.sas import SAME_DIM_REASON, sas_eps
from torchspectral.moments import Moments
from torchspectral.pairwise.dispatch import resolve_backend, routine
from torchspectral.pairwise.precision import resolve_precision
from torchspectral.spectral import active_masks, rho_denominator, sas_score
from torchspectral.validation import check_pair, check_q

DIRECTIONS = ("x_to_y", "y_to_x")
MODES = ("decompose", "abs")
# Rows per chunk on the torch path: the (rows, |A|) projections stay around 16 MB.
CHUNK_ELEMENTS = 1 << 22
FIELDS = ("vectors", "eigenvalues", "other_variance", "signs", "population_sas")
STATE_KEYS = ("mean_x", "mean_y", "q", "eps", *(f"{n}.{f}" for n in DIRECTIONS for f in FIELDS))
# A fitted λ_k or σ²_k of a (near-)null mode can be a rounding below zero: by at most about n·ε_float32 of the
# largest (measured ~5e-8 relative on float32 data); a saved value further below zero was not fitted.
ROUNDING_NEGATIVE = 1e-4


@dataclass(frozen=True)
class FrozenDirection:
    """The frozen spectral parameters of one direction (anchor → other)."""

    vectors: torch.Tensor  # (d, |A|) active eigenvectors of the anchor's covariance, descending λ
    eigenvalues: torch.Tensor  # (|A|,)
    other_variance: torch.Tensor  # (|A|,) σ²_k = v_kᵀ Σ_other v_k
    signs: torch.Tensor  # (|A|,) population sign of ρ_k
    population_sas: torch.Tensor  # () the population SAS of this direction (clamped, as ts.sas)


class SpectralPrior:
    """A frozen spectral basis fitted on a reference population, for per-pair SAS scores.

    Example:
        >>> import torch, torchspectral as ts
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(2000, 32, generator=g, dtype=torch.float64)
        >>> y = x + torch.randn(2000, 32, generator=g, dtype=torch.float64)
        >>> prior = ts.SpectralPrior.fit(x, y, q=0.25)
        >>> scores = prior.score(x, y)                       # (2000,) one score per pair
        >>> bool(torch.isclose(scores.mean(), ts.sas(x, y, q=0.25)))
        True
        >>> prior.per_mode(x[:5], y[:5]).shape               # contribution of each active mode
        torch.Size([5, 8])
    """

    def __init__(self, mean_x: torch.Tensor, mean_y: torch.Tensor, q: float, eps: float, directions: dict) -> None:
        self.mean_x, self.mean_y, self.q, self.eps = mean_x, mean_y, float(q), float(eps)
        self.directions: dict[str, FrozenDirection] = directions

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls, x: torch.Tensor, y: torch.Tensor, q: float = 0.1, eps: float | None = None, *, nan_policy: str = "raise"
    ) -> SpectralPrior:
        """Fit on paired embeddings x, y (n, d). The fitted parameters are detached (the prior is frozen).

        ``eps``: ε inside ρ's root. None (default): the scale-free ``1e-8 · (tr Σ_x / d) · (tr Σ_y / d)`` of the
        fitting population (:func:`torchspectral.sas`), frozen as a number with the rest; a positive number: that
        absolute ε (the source paper's 1e-8)."""
        check_q(q, "SpectralPrior.fit")
        # No graph is recorded (the prior is frozen); the inputs are validated as they came, so a non-tensor gets
        # the TypeError every entry point gives.
        with torch.no_grad():
            moments = Moments.from_data(
                x, y, nan_policy=nan_policy, metric="SpectralPrior.fit", same_dim=SAME_DIM_REASON, groups=SAS_NEEDS
            )
        return cls.from_moments(moments, q=q, eps=eps)

    @classmethod
    def from_moments(cls, m: Moments, q: float = 0.1, eps: float | None = None) -> SpectralPrior:
        """Fit from accumulated statistics (e.g. a population streamed in batches); ``eps`` as in :meth:`fit`."""
        check_q(q, "SpectralPrior.fit")
        if not m.same_dim:
            raise ValueError(f"SpectralPrior.fit: needs d_x = d_y ({SAME_DIM_REASON}), got {m.d_x}, {m.d_y}")
        m.require_pairs("SpectralPrior.fit", 2, "a covariance needs two pairs")
        eps = float(sas_eps(m, eps, "SpectralPrior.fit"))  # the population's absolute ε, frozen with the prior
        directions = {}
        for name, anchor, other in (("x_to_y", "x", "y"), ("y_to_x", "y", "x")):
            if not bool(torch.trace(m.covariance(anchor)) > 0):
                raise ValueError(f"SpectralPrior.fit: {anchor} has zero variance; its spectrum is empty")
            eigenvalues, eigenvectors = (t.detach() for t in m.spectrum(anchor))
            active = active_masks(eigenvalues, q)[0]
            vectors = eigenvectors[:, active]
            cross = ((m.covariance("xy").detach() @ vectors) * vectors).sum(0)
            other_variance = ((m.covariance(other).detach() @ vectors) * vectors).sum(0)
            lam = eigenvalues[active]
            population_sas, rho = sas_score(lam, cross, other_variance, eps)
            directions[name] = FrozenDirection(
                vectors=vectors,
                eigenvalues=lam,
                other_variance=other_variance,
                # A mode with ρ_k = 0 exactly contributes 0 either way; count it as positive.
                signs=torch.where(rho < 0, -1.0, 1.0).to(rho.dtype),
                population_sas=population_sas,
            )
        return cls(m.mean_x.detach(), m.mean_y.detach(), q, eps, directions)

    # ------------------------------------------------------------------ scoring
    def weights(self, direction: str = "x_to_y", mode: str = "decompose") -> torch.Tensor:
        """Per-mode coefficients w_k with score = Σ_k w_k · zx_k zy_k (decompose) or Σ_k w_k |zx_k zy_k| (abs)."""
        frozen = self._direction(direction)
        if mode not in MODES:
            raise ValueError(f"SpectralPrior: mode must be one of {MODES}, got {mode!r}")
        lam = frozen.eigenvalues
        w = lam / (rho_denominator(lam, frozen.other_variance, self.eps) * lam.sum())
        return w * frozen.signs if mode == "decompose" else w

    def score(
        self, x: torch.Tensor, y: torch.Tensor, mode: str = "decompose", direction: str = "x_to_y",
        backend: str = "auto", precision: str | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Per-pair SAS scores, shape (n,). `direction` is "x_to_y", "y_to_x" or "symmetric" (their mean).

        `backend`: "auto" (Triton on CUDA float32/half inputs when installed, chunked torch otherwise),
        "torch" or "triton". Float64 inputs are scored in float64 on the torch path. `precision` of the
        projections: None ("tf32x3" for the kernel on CUDA, "ieee" otherwise), "ieee", "tf32x3", "tf32" or "bf16"
        (:mod:`torchspectral.pairwise.precision`), honoured by both backends, forward and backward.
        """
        if direction == "symmetric":
            forward = self.score(x, y, mode, "x_to_y", backend, precision)
            return (forward + self.score(x, y, mode, "y_to_x", backend, precision)) / 2
        weights = self.weights(direction, mode)
        x, y = self._check(x, y, "SpectralPrior.score")
        frozen = self._direction(direction)
        chosen = resolve_backend(backend, "SpectralPrior.score", x, y)
        precision = resolve_precision(precision, chosen, "SpectralPrior.score", x, y)
        dtype = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
        device = x.device
        return routine("instance_score", chosen)(
            x,
            y,
            self.mean_x.to(device, dtype),
            self.mean_y.to(device, dtype),
            frozen.vectors.to(device, dtype),
            weights.to(device, dtype),
            mode == "abs",
            max(1, CHUNK_ELEMENTS // max(x.shape[1], frozen.vectors.shape[1])),  # rows of projections per chunk
            precision,
        )

    def per_mode(self, x: torch.Tensor, y: torch.Tensor, direction: str = "x_to_y") -> torch.Tensor:
        """Contribution of each active eigenmode to the decompose score, shape (n, |A|); rows sum to `score`.

        Column k is ``λ_k s_k ρ_k(x, y) / Σλ``: a pair that lacks direction v_k (or has it with the
        opposite sign to the population) shows a small or negative entry there.
        """
        weights = self.weights(direction, "decompose")
        x, y = self._check(x, y, "SpectralPrior.per_mode")
        frozen = self._direction(direction)
        dtype = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
        vectors = frozen.vectors.to(x.device, dtype)
        zx = (x.to(dtype) - self.mean_x.to(x.device, dtype)) @ vectors
        zy = (y.to(dtype) - self.mean_y.to(x.device, dtype)) @ vectors
        return zx * zy * weights.to(x.device, dtype)

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, torch.Tensor]:
        """Plain tensors (safetensors- and ``torch.load(weights_only=True)``-friendly)."""
        state = {
            "mean_x": self.mean_x,
            "mean_y": self.mean_y,
            "q": torch.tensor(self.q, dtype=torch.float64),
            "eps": torch.tensor(self.eps, dtype=torch.float64),
        }
        for name, frozen in self.directions.items():
            for field in ("vectors", "eigenvalues", "other_variance", "signs", "population_sas"):
                state[f"{name}.{field}"] = getattr(frozen, field)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Replace this prior's parameters with those of `state` (from :meth:`state_dict`), validated first.

        Raises:
            KeyError, ValueError, TypeError: as :meth:`from_state_dict`; the prior is then left unchanged.
        """
        loaded = self.from_state_dict(state)
        self.__dict__.update(loaded.__dict__)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> SpectralPrior:
        """A prior from a :meth:`state_dict` (e.g. read back with safetensors or ``torch.load(weights_only=True)``).

        The state is checked as :meth:`fit` would have written it, so a truncated or tampered file is refused
        instead of giving silently wrong (or NaN) scores: exactly the keys of :meth:`state_dict`; every value a
        finite floating-point tensor with values (not on the meta device); ``mean_x`` and ``mean_y`` of one width
        d; per direction, ``vectors`` (d, k) with orthonormal columns, ``eigenvalues``, ``other_variance`` and
        ``signs`` of shape (k,), ``population_sas`` a scalar in [0, 1]; eigenvalues descending, non-negative (up
        to rounding) with a positive sum; ``other_variance`` non-negative (up to rounding); signs ±1; at least the
        k that q of d keeps; ``q`` in (0, 1] and ``eps`` ≥ 0 (scalars).

        Raises:
            KeyError: a key is missing or unknown (also a :class:`ValueError`); every such key is named.
            TypeError: ``state`` is not a mapping, or a value is not a tensor.
            ValueError: a value breaks one of the rules above; the message names the key, what was expected and
                what was found.
        """
        _check_state(state)
        directions = {n: FrozenDirection(**{f: state[f"{n}.{f}"] for f in FIELDS}) for n in DIRECTIONS}
        return cls(state["mean_x"], state["mean_y"], float(state["q"]), float(state["eps"]), directions)

    # ------------------------------------------------------------------ helpers
    def _direction(self, direction: str) -> FrozenDirection:
        if direction not in self.directions:
            raise ValueError(f"SpectralPrior: direction must be one of {(*DIRECTIONS, 'symmetric')}, got {direction!r}")
        return self.directions[direction]

    def _check(self, x: torch.Tensor, y: torch.Tensor, metric: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = check_pair(x, y, metric, same_dim=SAME_DIM_REASON)
        d = self.mean_x.shape[0]
        if x.shape[1] != d:
            raise ValueError(f"{metric}: the prior was fitted on d={d} features, got d={x.shape[1]}")
        return x, y

    def __repr__(self) -> str:
        sizes = {n: int(f.eigenvalues.numel()) for n, f in self.directions.items()}
        return f"SpectralPrior(d={self.mean_x.shape[0]}, q={self.q}, active_modes={sizes})"


class StateKeyError(KeyError, ValueError):
    """Missing or unknown keys in a saved :class:`SpectralPrior`: a :class:`KeyError` (as always) and a
    :class:`ValueError` (as every other problem of a saved prior), with a readable message."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _check_state(state: Mapping[str, torch.Tensor]) -> None:
    """Refuse a state that :meth:`SpectralPrior.fit` cannot have written (see :meth:`SpectralPrior.from_state_dict`)."""
    where = "SpectralPrior.load_state_dict"
    if not isinstance(state, Mapping):
        raise TypeError(
            f"{where}: state must be a mapping of names to tensors (state_dict()), got {type(state).__name__}"
        )
    missing = [key for key in STATE_KEYS if key not in state]
    unknown = sorted(str(key) for key in state if key not in STATE_KEYS)
    if missing or unknown:
        raise StateKeyError(f"{where}: missing keys {missing}, unknown keys {unknown} (expected {list(STATE_KEYS)})")

    def fail(key: str, expected: str, found: object) -> ValueError:
        return ValueError(f"{where}: {key!r} must be {expected}, got {found}")

    for key in STATE_KEYS:
        value = state[key]
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{where}: {key!r} must be a tensor, got {type(value).__name__}")
        if not value.is_floating_point():
            raise fail(key, "a floating-point tensor", value.dtype)
        if value.is_meta:
            raise fail(key, "a tensor with values", "one on the meta device")
        if not bool(torch.isfinite(value).all()):
            raise fail(key, "finite", f"NaN or infinite values in {int((~torch.isfinite(value)).sum())} entries")

    def shape_of(key: str) -> tuple[int, ...]:
        return tuple(state[key].shape)

    for key in ("q", "eps", *(f"{n}.population_sas" for n in DIRECTIONS)):
        if shape_of(key) != ():
            raise fail(key, "a scalar of shape ()", shape_of(key))
    q, eps = float(state["q"]), float(state["eps"])
    if not 0.0 < q <= 1.0:
        raise fail("q", "in (0, 1]", q)
    if eps < 0.0:
        raise fail("eps", ">= 0", eps)
    if len(shape_of("mean_x")) != 1:
        raise fail("mean_x", "1-D of width d (the width of 'mean_y')", f"shape {shape_of('mean_x')}")
    d = shape_of("mean_x")[0]
    if shape_of("mean_y") != (d,):
        raise fail("mean_y", f"of shape ({d},) like 'mean_x' (SpectralPrior needs d_x = d_y)", shape_of("mean_y"))
    # Quantile of the eigenvalues at 1 − q (linear interpolation): every mode at or above it is active, so with
    # distinct eigenvalues d − ⌈(1 − q)(d − 1)⌉ are kept (ties keep more).
    fewest = max(1, d - math.ceil((1.0 - q) * (d - 1) - 1e-9))
    for name in DIRECTIONS:
        vectors = f"{name}.vectors"
        if len(shape_of(vectors)) != 2 or shape_of(vectors)[0] != d:
            raise fail(vectors, f"of shape ({d}, k) (d = {d} from 'mean_x', k active modes)", shape_of(vectors))
        k = shape_of(vectors)[1]
        for field in ("eigenvalues", "other_variance", "signs"):
            key = f"{name}.{field}"
            if shape_of(key) != (k,):
                raise fail(key, f"of shape ({k},) (one per column of {vectors!r})", shape_of(key))
        lam = state[f"{name}.eigenvalues"].double()
        if not k >= fewest:
            raise fail(
                f"{name}.eigenvalues", f"at least {fewest} active modes (q = {q} of d = {d})", f"{k} active modes"
            )
        if not bool((lam[:-1] >= lam[1:]).all()):
            raise fail(f"{name}.eigenvalues", "in descending order, as fitted", "an increase")
        if not float(lam[0]) > 0:
            raise fail(f"{name}.eigenvalues", "of positive sum (the largest > 0)", f"largest {float(lam[0])}")
        if float(lam[-1]) < -ROUNDING_NEGATIVE * float(lam[0]):
            raise fail(f"{name}.eigenvalues", "non-negative (a variance)", f"{float(lam[-1])}")
        other = state[f"{name}.other_variance"].double()
        if float(other.min()) < -ROUNDING_NEGATIVE * max(float(other.max()), 0.0):
            raise fail(f"{name}.other_variance", "non-negative (a variance)", f"{float(other.min())}")
        signs = state[f"{name}.signs"]
        if not bool(((signs == 1) | (signs == -1)).all()):
            odd = signs[(signs != 1) & (signs != -1)]
            raise fail(f"{name}.signs", "-1 or +1 in every entry", f"{float(odd[0])}")
        sas = float(state[f"{name}.population_sas"])
        if not 0.0 <= sas <= 1.0:
            raise fail(f"{name}.population_sas", "in [0, 1] (a SAS)", sas)
        basis = state[vectors].double()
        error = float((basis.T @ basis - torch.eye(k, dtype=torch.float64, device=basis.device)).abs().max())
        if error > torch.finfo(state[vectors].dtype).eps ** 0.5:
            raise fail(vectors, "orthonormal columns (eigenvectors)", f"|VᵀV − I| up to {error:.3g}")
