"""Everything torchspectral does across ``torch.distributed`` ranks, in one package.

* :mod:`~torchspectral.distributed.reduction`: :func:`sum_across_ranks` (with the differentiable path for
  losses under DDP and its gradient convention), :func:`require_initialised`, :func:`require_same_across_ranks`.
* :mod:`~torchspectral.distributed.collectives`: the collectives over a process group (``group=None``: one
  process, nothing communicated) and the row movement of the sharded computations (blocks broadcast by the
  rank that holds them).
* :mod:`~torchspectral.distributed.agreement`: the ranks agree on their inputs before any collective (one
  gather of every rank's verdict and facts), so bad input on one rank is the same error on all, never a hang.
* :mod:`~torchspectral.distributed.pairwise_engine`: the pairwise sums and retrieval ranks of
  :mod:`torchspectral.pairwise` over the concatenation of every rank's shard, no rank holding more than its
  shard and a few blocks (the ``group=`` argument of ``ts.mmd``, ``ts.cka(kernel="rbf")``, ``ts.retrieval``
  and the metrics ``ts.metrics.MMD``, ``KernelCKA``, ``Retrieval``).

The audit's split of runs across processes (``torchspectral audit --distributed``) is
:mod:`torchspectral.audit.process_ranks`, which communicates through :mod:`~torchspectral.distributed.collectives`.
Importing this package imports nothing of ``torch.distributed``; each function imports it when it runs.
"""

from __future__ import annotations

from torchspectral.distributed.reduction import require_initialised, require_same_across_ranks, sum_across_ranks

__all__ = ["require_initialised", "require_same_across_ranks", "sum_across_ranks"]
