"""Alignment metrics as losses (docs/definitions.md#losses): 1 − SAS (+ γ|ΔSAS|), 1 − CKA, MMD², deep CORAL.

Each is the functional metric with a sign, so gradients are exactly the metric's: the spectral ones go
through the degeneracy-safe eigendecomposition backward and stay finite on repeated eigenvalues.
"""

from __future__ import annotations

from typing import Any

import torch

import torchspectral.functional as F
from torchspectral.distributed import require_initialised
from torchspectral.functional.cka import linear_cka_from_moments, linear_cka_needs
from torchspectral.functional.sas import NEEDS as SAS_NEEDS
from torchspectral.functional.sas import SAME_DIM_REASON, spectral_alignment_from_moments
from torchspectral.moments import Moments, compute_dtype
from torchspectral.nn.base import Loss
from torchspectral.prior import SpectralPrior
from torchspectral.spectral import active_masks, check_sas_eps, sas_epsilon, sas_score, sas_summaries
from torchspectral.stats import MomentStatistics
from torchspectral.validation import check_pair, check_q, checking_values

BASES = ("batch", "frozen", "ema")
# Buffers whose shape is only known once a basis exists (lazy, and |A| may change at a refresh).
_BASIS_BUFFERS = ("mean_x", "mean_y", "basis_x", "basis_y", "ema_cov_x", "ema_cov_y")


class SASLoss(Loss):
    r"""``1 − SAS_sym`` (+ ``γ·|ΔSAS|`` to penalise a one-sided alignment), optionally without a per-step eigh.

    ``SAS_sym = ½(SAS_{X→Y} + SAS_{Y→X})`` and ``ΔSAS = SAS_{X→Y} − SAS_{Y→X}`` (docs/definitions.md#sas); each
    direction is ``Σ_{k∈A} λ_k |ρ_k| / Σ_{k∈A} λ_k`` over the anchor's top-q eigenmodes v_k.

    **Where the eigenbasis comes from** (``basis``):

    * ``"batch"`` (default): the exact SAS of the batch; two d×d eigendecompositions per step, and the
      gradient flows through them (degeneracy-safe backward).
    * ``"frozen"``: the anchors' active eigenvectors V_A and the centring point are taken once from
      ``reference`` (a fitted :class:`~torchspectral.SpectralPrior`, whose q is used, or a
      :class:`~torchspectral.Moments` of a reference population) and never updated.
    * ``"ema"``: the module keeps exponential moving averages of the batch means and covariances
      ``C ← (1 − momentum)·C + momentum·Σ_batch`` (in training mode; the first batch initialises them)
      and recomputes V_A from them every ``refresh_every`` steps. No gradient flows into the basis.

    With a fixed basis the batch statistics are projections, all differentiable in the batch:
    ``λ̂_k = v_kᵀΣ_x v_k``, ``σ²_k = v_kᵀΣ_y v_k``, ``a_k = v_kᵀΣ_xy v_k``, ``ρ_k = a_k / sqrt(λ̂_k σ²_k + ε)``
    (the default ε from the batch's own mean variances, as below),
    ``SAS_{X→Y} = Σ_{k∈A} λ̂_k |ρ_k| / Σ_{k∈A} λ̂_k`` with A the reference's active set (and likewise with
    Y's basis for Y→X). Only the |A| ≈ q·d active directions are needed: the cost is O(B·d·|A|) for the
    projections, no d×d covariance and no eigh. When V is the batch's own eigenbasis this *is* the batch
    SAS (λ̂_k is then the eigenvalue). It is a good approximation while the batch's top eigenspace stays
    close to V: λ̂_k is a Rayleigh quotient, stationary in v_k, so it is off by O(‖ΔV‖²); a_k, σ²_k are off
    by O(‖ΔV‖). The gradient is the batch gradient without the eigenvector-rotation terms. Use it when
    the embedding distribution drifts slowly compared with ``refresh_every`` steps and the active modes
    are well separated from the rest; small batches (B ≲ d), whose own eigenbasis is mostly sampling
    noise, gain accuracy from an EMA basis, not lose it.

    **Across ranks** (``sync_dist=True``): the loss is computed on the statistics of the *global* batch,
    all-reduced differentiably (:meth:`Moments.all_reduce` with ``differentiable=True``; the projections
    when the basis is fixed, so only O(|A|²) numbers travel). Each rank's rows get exactly ∂L/∂rows; under
    DDP, which averages gradients over W ranks, parameters get ∇L / W — multiply the loss by W for ∇L
    (see :mod:`torchspectral.distributed`). Every rank must use the same reference; the EMA is fed with
    the global batch statistics, so it stays identical on every rank.

    Args:
        q: fraction of top eigenmodes in the active set; default 0.1, or a SpectralPrior reference's q.
        gamma: weight of ``|ΔSAS|`` (≥ 0).
        eps: ε, added inside the root of ρ's denominator. None (default): scale-free,
            ``ε = 1e-8 · (tr Σ_x / d) · (tr Σ_y / d)`` from the (global, with sync_dist) batch's mean variances, for
            every basis, so the loss does not change when either modality is scaled
            (:func:`torchspectral.spectral.sas_epsilon`). A positive number: that absolute ε (the source paper's
            1e-8).
        basis: ``"batch"``, ``"frozen"`` or ``"ema"``.
        reference: SpectralPrior or Moments; required for ``"frozen"``, not used otherwise.
        refresh_every: steps between eigenbasis refreshes for ``"ema"`` (1 = every step).
        momentum: EMA weight of the new batch for ``"ema"``, in (0, 1] (1 = the current batch only).
        sync_dist: compute on the all-reduced statistics of every rank (needs torch.distributed).
        process_group: the group to reduce over (None = the default group).
        validate_args: ``"first"`` (default): check the input values on the first call only; True: every call;
            False: never (see :class:`torchspectral.nn.base.Loss`).

    Shape: x (B, d), y (B, d) → ().

    Example:
        >>> import torch, torchspectral as ts
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(256, 8, generator=g)
        >>> float(ts.nn.SASLoss()(x, x)) < 1e-6
        True
        >>> y = x + torch.randn(256, 8, generator=g)
        >>> prior = ts.SpectralPrior.fit(x, y, q=0.25)
        >>> frozen = ts.nn.SASLoss(q=0.25, basis="frozen", reference=prior)
        >>> bool(torch.isclose(frozen(x, y), 1 - prior.directions["x_to_y"].population_sas / 2
        ...      - prior.directions["y_to_x"].population_sas / 2, rtol=1e-5))
        True
        >>> ema = ts.nn.SASLoss(basis="ema", refresh_every=50)
        >>> loss = ema(x, y); sorted(k for k in ema.state_dict())
        ['basis_x', 'basis_y', 'ema_cov_x', 'ema_cov_y', 'mean_x', 'mean_y', 'num_updates']
    """

    def __init__(
        self,
        q: float | None = None,
        gamma: float = 0.0,
        eps: float | None = None,
        *,
        basis: str = "batch",
        reference: SpectralPrior | Moments | None = None,
        refresh_every: int = 1,
        momentum: float = 0.1,
        sync_dist: bool = False,
        process_group: Any = None,
        validate_args: bool | str = "first",
    ) -> None:
        super().__init__(validate_args)
        if gamma < 0:
            raise ValueError(f"SASLoss: gamma must be ≥ 0, got {gamma}")
        if basis not in BASES:
            raise ValueError(f"SASLoss: basis must be one of {BASES}, got {basis!r}")
        if basis == "frozen" and reference is None:
            raise ValueError("SASLoss(basis='frozen'): pass reference= a fitted SpectralPrior or a Moments")
        if basis != "frozen" and reference is not None:
            raise ValueError(f"SASLoss: reference is only used with basis='frozen', got basis={basis!r}")
        if not (isinstance(refresh_every, int) and refresh_every >= 1):
            raise ValueError(f"SASLoss: refresh_every must be an integer ≥ 1, got {refresh_every!r}")
        if not 0 < momentum <= 1:
            raise ValueError(f"SASLoss: momentum must be in (0, 1], got {momentum}")
        if isinstance(reference, SpectralPrior):
            if q is not None and q != reference.q:
                raise ValueError(f"SASLoss: q={q} differs from the reference SpectralPrior's q={reference.q}")
            q = reference.q
        q = 0.1 if q is None else q
        check_q(q, "SASLoss")
        self.q, self.gamma, self.eps, self.basis = q, float(gamma), check_sas_eps(eps, "SASLoss"), basis
        self.refresh_every, self.momentum = refresh_every, float(momentum)
        self.sync_dist, self.process_group = sync_dist, process_group
        if basis == "batch":
            return
        for name in _BASIS_BUFFERS:
            self.register_buffer(name, None)
        if basis == "ema":
            self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
            # The same count on the host, so the cadence needs no read of the buffer (a sync on CUDA) per step.
            self._updates = 0
        else:
            self._freeze(reference)

    # ------------------------------------------------------------------ the basis
    def _freeze(self, reference: SpectralPrior | Moments) -> None:
        if isinstance(reference, SpectralPrior):
            mean_x, mean_y = reference.mean_x, reference.mean_y
            basis_x, basis_y = reference.directions["x_to_y"].vectors, reference.directions["y_to_x"].vectors
        elif isinstance(reference, Moments):
            if not reference.same_dim:
                raise ValueError(f"SASLoss: needs d_x = d_y ({SAME_DIM_REASON}), got {reference.d_x}, {reference.d_y}")
            reference.require_pairs("SASLoss", 2, "a covariance needs two pairs")
            mean_x, mean_y = reference.mean_x, reference.mean_y
            basis_x = self._active_vectors(reference.covariance("x"))
            basis_y = self._active_vectors(reference.covariance("y"))
        else:
            raise TypeError(f"SASLoss: reference must be a SpectralPrior or a Moments, got {type(reference).__name__}")
        self.mean_x, self.mean_y = mean_x.detach().double(), mean_y.detach().double()
        self.basis_x, self.basis_y = basis_x.detach().double(), basis_y.detach().double()

    def _active_vectors(self, cov: torch.Tensor) -> torch.Tensor:
        """The eigenvectors (d, |A|) of the q-active modes of a covariance, descending; no gradient."""
        eigenvalues, eigenvectors = torch.linalg.eigh(cov.detach().double())
        eigenvalues, eigenvectors = eigenvalues.flip(-1), eigenvectors.flip(-1)
        if checking_values() and not bool(eigenvalues[0] > 0):
            raise ValueError("SASLoss: the reference covariance is zero (every feature constant); no eigenbasis")
        return eigenvectors[:, active_masks(eigenvalues, self.q)[0]]

    @torch.no_grad()
    def _update_ema(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Fold the batch (global batch with sync_dist) means and covariances into the EMA; refresh V_A on cadence."""
        mean_x, mean_y, cov_x, cov_y = _batch_covariances(x, y, self.sync_dist, self.process_group)
        if self._updates == 0:
            self.mean_x, self.mean_y, self.ema_cov_x, self.ema_cov_y = mean_x, mean_y, cov_x, cov_y
        else:
            for name, new in (("mean_x", mean_x), ("mean_y", mean_y), ("ema_cov_x", cov_x), ("ema_cov_y", cov_y)):
                getattr(self, name).lerp_(new.to(getattr(self, name)), self.momentum)
        if self._updates % self.refresh_every == 0:
            self.basis_x = self._active_vectors(self.ema_cov_x)
            self.basis_y = self._active_vectors(self.ema_cov_y)
        self.num_updates += 1
        self._updates += 1

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        # The basis buffers are lazy (None before the first step) and |A| may change at a refresh: take the
        # stored shapes, then let nn.Module copy the values.
        for name in _BASIS_BUFFERS:
            key = prefix + name
            if name in self._buffers and key in state_dict:
                current = self._buffers[name]
                device = current.device if current is not None else state_dict[key].device
                self._buffers[name] = torch.empty_like(state_dict[key], device=device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if "num_updates" in self._buffers:
            self._updates = int(self.num_updates)  # once per load, not per step

    # ------------------------------------------------------------------ the loss
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.sync_dist:
            require_initialised("SASLoss(sync_dist=True)")
        if self.basis == "batch":
            if self.sync_dist:
                m = Moments.from_data(x, y, metric="SASLoss", same_dim=SAME_DIM_REASON, groups=SAS_NEEDS)
                m.all_reduce(self.process_group, differentiable=True)
                result = spectral_alignment_from_moments(m, q=self.q, eps=self.eps)
            else:
                result = F.spectral_alignment(x, y, q=self.q, eps=self.eps)
            x_to_y, y_to_x = result.x_to_y, result.y_to_x
        else:
            x, y = check_pair(x, y, "SASLoss", same_dim=SAME_DIM_REASON)
            if self.basis == "ema" and self.training:
                self._update_ema(x, y)
            if self.basis_x is None:
                raise RuntimeError("SASLoss(basis='ema'): no eigenbasis yet; run a training-mode step first")
            if x.shape[1] != self.basis_x.shape[0]:
                raise ValueError(f"SASLoss: the basis is {self.basis_x.shape[0]}-dimensional, got d={x.shape[1]}")
            x_to_y, y_to_x = self._projected(x, y)
        summaries = sas_summaries(x_to_y, y_to_x)
        loss = 1 - summaries["sas_symmetric"]
        return loss + self.gamma * summaries["sas_imbalance"].abs() if self.gamma else loss

    def _projected(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both SAS directions from the batch's projections onto the fixed active eigenvectors."""
        cdt = compute_dtype(x, y)
        k = self.basis_x.shape[1]
        w = torch.cat([self.basis_x, self.basis_y], dim=1).to(cdt)  # (d, |A_x| + |A_y|)
        # Subtract the (constant) reference mean before projecting: it removes the large common offset
        # in the compute precision; the covariances below are about the batch mean whatever the shift.
        zx = (x.to(cdt) - self.mean_x.to(cdt)) @ w
        zy = (y.to(cdt) - self.mean_y.to(cdt)) @ w
        # The moments of the projections are the projections of the moments; SAS reads the covariance blocks only.
        m = Moments._of_batch(zx, zy, SAS_NEEDS)
        if self.sync_dist:
            m.all_reduce(self.process_group, differentiable=True)
        var_x, var_y = torch.diagonal(m.covariance("x")), torch.diagonal(m.covariance("y"))
        cross = torch.diagonal(m.covariance("xy"))
        eps = self.eps
        if eps is None:
            eps = sas_epsilon(*_mean_variances(x.to(cdt), y.to(cdt), self.sync_dist, self.process_group), None)
        x_to_y = _direction_score(var_x[:k], var_y[:k], cross[:k], eps)
        y_to_x = _direction_score(var_y[k:], var_x[k:], cross[k:], eps)
        return x_to_y, y_to_x


def _direction_score(
    lam: torch.Tensor, other: torch.Tensor, cross: torch.Tensor, eps: float | torch.Tensor
) -> torch.Tensor:
    """SAS over the given (active) modes from the projected variances λ̂_k (:func:`torchspectral.spectral.sas_score`)."""
    return sas_score(lam, cross, other, eps)[0]


def _mean_variances(x: torch.Tensor, y: torch.Tensor, sync: bool, group: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``tr Σ / d`` (1/n, float64) of x and of y over the batch, or over the global batch of `group` with `sync`;
    differentiable, O(B·d). Each rank sums its rows about its own mean (no cancellation of a common offset); with
    `sync` the parts combine as ``Σ_i ‖x_i − x̄‖² = Σ_r (S_r + n_r ‖x̄_r‖²) − n ‖x̄‖²`` from one all-reduce."""
    n_local = float(x.shape[0])
    means = [t.mean(0) for t in (x, y)]
    spreads = [torch.linalg.vector_norm(t - mean).double() ** 2 for t, mean in zip((x, y), means, strict=True)]
    if not sync:
        return spreads[0] / (n_local * x.shape[1]), spreads[1] / (n_local * y.shape[1])
    from torchspectral.distributed import sum_across_ranks

    parts = [torch.tensor([n_local], dtype=torch.float64, device=x.device)]
    for spread, mean in zip(spreads, means, strict=True):
        mean = mean.double()
        parts += [(spread + n_local * (mean @ mean)).reshape(1), n_local * mean]
    flat = sum_across_ranks(torch.cat(parts), group, differentiable=True)
    n, d_x = flat[0], x.shape[1]
    sum_x, sum_y = flat[2 : 2 + d_x], flat[3 + d_x :]
    trace_x = (flat[1] - sum_x @ sum_x / n).clamp_min(0.0) / n
    trace_y = (flat[2 + d_x] - sum_y @ sum_y / n).clamp_min(0.0) / n
    return trace_x / d_x, trace_y / y.shape[1]


def _batch_covariances(
    x: torch.Tensor, y: torch.Tensor, sync: bool, group: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Means and 1/n covariances (float64, detached) of the batch, or of the global batch of `group` with `sync`:
    the accumulator's covariance blocks and its exact merge across ranks (no second derivation here)."""
    m = MomentStatistics._of_batch(x.detach(), y.detach(), SAS_NEEDS)
    if sync:
        m.all_reduce(group)
    return m.mean_x, m.mean_y, m.covariance("x"), m.covariance("y")


class CKALoss(Loss):
    """``1 − CKA`` (linear or RBF, biased or unbiased). Shape: (B, d_x), (B, d_y) → ().

    ``sync_dist=True`` (linear kernel only: RBF CKA needs every pair, not additive statistics) computes
    the CKA of the global batch from differentiably all-reduced moments; gradient convention as in
    :class:`SASLoss` (each rank gets exactly ∂L/∂rows; under DDP multiply the loss by the world size).
    """

    def __init__(
        self,
        kernel: str = "linear",
        unbiased: bool = False,
        sigma: float | None = None,
        *,
        sync_dist: bool = False,
        process_group: Any = None,
        validate_args: bool | str = "first",
    ) -> None:
        super().__init__(validate_args)
        if sync_dist and kernel != "linear":
            raise ValueError(
                f"CKALoss: sync_dist=True needs kernel='linear' (a function of additive moments), got {kernel!r}"
            )
        self.kernel, self.unbiased, self.sigma = kernel, unbiased, sigma
        self.sync_dist, self.process_group = sync_dist, process_group

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not self.sync_dist:
            return 1 - F.cka(x, y, kernel=self.kernel, unbiased=self.unbiased, sigma=self.sigma)
        require_initialised("CKALoss(sync_dist=True)")
        m = Moments.from_data(x, y, metric="CKALoss", groups=linear_cka_needs(self.unbiased))
        m.all_reduce(self.process_group, differentiable=True)
        return 1 - linear_cka_from_moments(m, unbiased=self.unbiased)


class MMDLoss(Loss):
    """Squared RBF MMD between the two batches (they may differ in size). Shape: (B, d), (M, d) → ().

    ``sync_dist=True`` computes the MMD of the *global* batches (every rank's rows; the median bandwidth of the
    global pooled batch) by the sharded pairwise engine: no rank gathers the others' rows. Gradient convention
    as in :class:`SASLoss`: each rank gets exactly ∂L/∂(its rows), the backward needs no communication; under
    DistributedDataParallel multiply the loss by the world size.
    """

    def __init__(
        self,
        sigma: float | str | list[float] = "median",
        estimator: str = "unbiased",
        *,
        sync_dist: bool = False,
        process_group: Any = None,
        validate_args: bool | str = "first",
    ) -> None:
        super().__init__(validate_args)
        self.sigma, self.estimator = sigma, estimator
        self.sync_dist, self.process_group = sync_dist, process_group

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not self.sync_dist:
            return F.mmd(x, y, sigma=self.sigma, estimator=self.estimator)
        require_initialised("MMDLoss(sync_dist=True)")
        import torch.distributed as dist

        group = self.process_group if self.process_group is not None else dist.group.WORLD
        return F.mmd(x, y, sigma=self.sigma, estimator=self.estimator, group=group)


class CORALLoss(Loss):
    """Deep CORAL, ``‖C_x − C_y‖²_F / (4d²)``. Shape: (B, d), (B, d) → ()."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.coral(x, y, scale="deep")
