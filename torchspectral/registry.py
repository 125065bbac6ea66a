"""The metric registry: every reported metric once, with how it is computed and what it needs.

Everything that lists metrics — the bootstrap, the report, the audit's tables and statistics, the tests —
reads :data:`METRICS` instead of writing the names again, so a new metric is added here and nowhere else
(besides its formula in :mod:`torchspectral.functional`).

Each :class:`MetricInfo` says where the metric comes from (``"moments"``: a function of the one-pass
:class:`~torchspectral.stats.MomentStatistics`; ``"pairwise"``: streamed over tiles of pairs; ``"retrieval"``:
ranks), whether it needs d_x = d_y, its mathematical range, and which way is better aligned. Moment metrics
carry ``compute``: the metric of a statistics object at the default settings of docs/definitions.md (q = 0.1 for SAS).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from torchspectral.functional.cka import linear_cka_from_moments, linear_cka_needs
from torchspectral.functional.coral import NEEDS as CORAL_NEEDS
from torchspectral.functional.coral import coral_from_moments
from torchspectral.functional.gap import (
    L2I_NEEDS,
    cosine_gap_from_moments,
    l2i_from_moments,
    modality_gap_from_moments,
    rmg_from_moments,
    true_pair_cosine_from_moments,
)
from torchspectral.functional.gap import NEEDS as GAP_NEEDS
from torchspectral.functional.sas import NEEDS as SAS_NEEDS
from torchspectral.functional.sas import sas_scores_from_moments
from torchspectral.functional.svcca import NEEDS as SVCCA_NEEDS
from torchspectral.functional.svcca import svcca_from_moments
from torchspectral.spectral import SAS_METRICS
from torchspectral.stats import MomentStatistics

__all__ = [
    "METRICS",
    "MOMENT_METRICS",
    "PAIRWISE_METRICS",
    "RETRIEVAL_METRICS",
    "SAME_DIM_METRICS",
    "MetricInfo",
    "compute_moment_metrics",
    "metrics_table",
]


@dataclass(frozen=True)
class MetricInfo:
    """One metric: its name (the report key), source, dimension requirement, range and direction.

    ``needs``: the statistics groups (:data:`torchspectral.stats.GROUPS`) ``compute`` reads, as the formula's
    module declares them. ``low``/``high``: the mathematical range (None: unbounded on that side).
    ``higher_is_better``: True when a larger value means better aligned, False when smaller does, None when
    neither (ΔSAS: its sign says which modality loses information, its size how much).
    """

    name: str
    source: str
    same_dim: bool
    low: float | None
    high: float | None
    higher_is_better: bool | None
    compute: Callable[[MomentStatistics], torch.Tensor] | None = None
    needs: tuple[str, ...] = ()


def _sas(direction: str) -> Callable[[MomentStatistics], torch.Tensor]:
    def compute(m: MomentStatistics) -> torch.Tensor:
        return sas_scores_from_moments(m)[direction]

    return compute


def _cka_unbiased(m: MomentStatistics) -> torch.Tensor:
    return linear_cka_from_moments(m, unbiased=True)


# In report order: SAS first, then the similarity indices, the distribution distances, the gap family, retrieval.
_ALL = (
    MetricInfo("sas_x_to_y", "moments", True, 0.0, 1.0, True, _sas("sas_x_to_y"), SAS_NEEDS),
    MetricInfo("sas_y_to_x", "moments", True, 0.0, 1.0, True, _sas("sas_y_to_x"), SAS_NEEDS),
    MetricInfo("sas_symmetric", "moments", True, 0.0, 1.0, True, _sas("sas_symmetric"), SAS_NEEDS),
    MetricInfo("sas_imbalance", "moments", True, -1.0, 1.0, None, _sas("sas_imbalance"), SAS_NEEDS),
    MetricInfo("cka_linear", "moments", False, 0.0, 1.0, True, linear_cka_from_moments, linear_cka_needs(False)),
    # The unbiased estimates can leave [0, 1] (or go below 0, MMD) on small samples: no range is claimed.
    MetricInfo("cka_linear_unbiased", "moments", False, None, None, True, _cka_unbiased, linear_cka_needs(True)),
    MetricInfo("cka_rbf", "pairwise", False, 0.0, 1.0, True),
    MetricInfo("cka_rbf_unbiased", "pairwise", False, None, None, True),
    MetricInfo("svcca", "moments", False, 0.0, 1.0, True, svcca_from_moments, SVCCA_NEEDS),
    MetricInfo("coral", "moments", True, 0.0, None, False, coral_from_moments, CORAL_NEEDS),
    MetricInfo("mmd", "pairwise", True, None, None, False),
    MetricInfo("modality_gap", "moments", True, 0.0, 2.0, False, modality_gap_from_moments, GAP_NEEDS),
    MetricInfo("l2i", "moments", True, 0.0, 2.0, False, l2i_from_moments, L2I_NEEDS),
    MetricInfo("true_pair_cosine", "moments", True, -1.0, 1.0, True, true_pair_cosine_from_moments, GAP_NEEDS),
    MetricInfo("cosine_gap", "moments", True, -2.0, 2.0, None, cosine_gap_from_moments, GAP_NEEDS),
    MetricInfo("rmg", "moments", True, 0.0, 1.0, False, rmg_from_moments, GAP_NEEDS),
    *(MetricInfo(f"{side}_r{k}", "retrieval", True, 0.0, 1.0, True) for side in ("i2t", "t2i") for k in (1, 5, 10)),
    MetricInfo("rsum", "retrieval", True, 0.0, 600.0, True),
    *(MetricInfo(f"{side}_{kind}_rank", "retrieval", True, 1.0, None, False)
      for kind in ("median", "mean") for side in ("i2t", "t2i")),
)  # fmt: skip

METRICS: dict[str, MetricInfo] = {info.name: info for info in _ALL}
MOMENT_METRICS = tuple(info.name for info in _ALL if info.source == "moments")
PAIRWISE_METRICS = tuple(info.name for info in _ALL if info.source == "pairwise")
RETRIEVAL_METRICS = tuple(info.name for info in _ALL if info.source == "retrieval")
SAME_DIM_METRICS = frozenset(info.name for info in _ALL if info.same_dim)


def compute_moment_metrics(m: MomentStatistics, names: Sequence[str], q: float = 0.1) -> dict[str, torch.Tensor]:
    """The named moment metrics of ``m`` at default settings (SAS at ``q``, all four from one spectral alignment)."""
    if isinstance(names, str):
        names = [names]  # one name, not its characters
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; the moment metrics are {MOMENT_METRICS}")
    out: dict[str, torch.Tensor] = {}
    if any(name in SAS_METRICS for name in names):
        out.update(sas_scores_from_moments(m, q=q))
    for name in names:
        if name not in out:
            compute = METRICS[name].compute
            if compute is None:
                raise ValueError(f"{name} is a {METRICS[name].source} metric, not a function of the moments")
            out[name] = compute(m)
    return {name: out[name] for name in names}


def _interval(low: float | None, high: float | None) -> str:
    def number(value: float) -> str:
        return f"{value:g}".replace("-", "−")

    left = "(−∞" if low is None else f"[{number(low)}"
    right = "∞)" if high is None else f"{number(high)}]"
    return f"{left}, {right}"


_DIRECTION = {True: "higher", False: "lower", None: "neither"}


def metrics_table() -> str:
    """Every metric of :data:`METRICS` as a markdown table (the README's and the docs' metric table).

    Columns: the report key, its source, whether it needs d_x = d_y, its range, and which way is better aligned.

        >>> print(metrics_table().splitlines()[2])
        | `sas_x_to_y` | moments | yes | [0, 1] | higher |
    """
    lines = [
        "| metric | source | needs d_x = d_y | range | better aligned |",
        "|---|---|---|---|---|",
    ]
    for info in _ALL:
        same_dim = "yes" if info.same_dim else "no"
        lines.append(
            f"| `{info.name}` | {info.source} | {same_dim} | {_interval(info.low, info.high)} "
            f"| {_DIRECTION[info.higher_is_better]} |"
        )
    return "\n".join(lines)
