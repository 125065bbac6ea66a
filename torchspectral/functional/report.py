"""`alignment_report`: every metric of one model on one dataset, by name.

The moment metrics share one :class:`~torchspectral.Moments` (one GEMM) and its cached eigendecompositions;
the pairwise metrics (RBF MMD, RBF CKA, retrieval) stream over tiles of pairs (no n×n matrix).
Presets: "default" (the definitions' defaults, docs/definitions.md; SAS with the scale-free ε) and "paper" (the source
paper's settings: SAS with its absolute ε = 1e-8, SVCCA on the top-10 standardised directions, CORAL as the plain
Frobenius distance, MMD with σ = 10, biased, ×100).
"""

from __future__ import annotations

import torch

from torchspectral.functional.cka import linear_cka_from_moments, rbf_cka_both
from torchspectral.functional.coral import coral_from_moments
from torchspectral.functional.gap import (
    cosine_gap_from_moments,
    l2i_from_moments,
    modality_gap_from_moments,
    rmg_from_moments,
    true_pair_cosine_from_moments,
)
from torchspectral.functional.mmd import mmd
from torchspectral.functional.retrieval import clean_retrieval_inputs, retrieval
from torchspectral.functional.sas import sas_scores_from_moments
from torchspectral.functional.svcca import svcca_from_moments
from torchspectral.spectral import PAPER_SAS_EPS
from torchspectral.stats import MomentStatistics
from torchspectral.validation import check_pair

PRESETS = {
    "default": {
        "svcca": {"keep": 0.99, "standardize": False},
        "coral": {"scale": "deep"},
        "mmd": {"sigma": "median", "estimator": "unbiased", "scale": 1.0},
    },
    "paper": {
        "svcca": {"keep": 10, "standardize": True},
        "coral": {"scale": "frobenius"},
        "mmd": {"sigma": 10.0, "estimator": "biased", "scale": 100.0},
    },
}
# SAS's ε under each preset: None = scale-free (torchspectral.spectral.sas_epsilon), a number = absolute. Kept apart
# from PRESETS, whose entries the audit repeats per preset as separate columns (SAS has four values, not one).
SAS_EPS = {"default": None, "paper": PAPER_SAS_EPS}


def report_from_moments(m: MomentStatistics, preset: str = "default") -> dict[str, float]:
    if preset not in PRESETS:
        raise ValueError(f"alignment_report: preset must be one of {tuple(PRESETS)}, got {preset!r}")
    settings = PRESETS[preset]
    values: dict[str, torch.Tensor] = {}
    if m.same_dim:
        values.update(sas_scores_from_moments(m, eps=SAS_EPS[preset]))
    values["cka_linear"] = linear_cka_from_moments(m)
    values["cka_linear_unbiased"] = linear_cka_from_moments(m, unbiased=True)
    values["svcca"] = svcca_from_moments(m, **settings["svcca"])
    if m.same_dim:
        values["coral"] = coral_from_moments(m, **settings["coral"])
        values.update(
            modality_gap=modality_gap_from_moments(m),
            l2i=l2i_from_moments(m),
            true_pair_cosine=true_pair_cosine_from_moments(m),
            cosine_gap=cosine_gap_from_moments(m),
            rmg=rmg_from_moments(m),
        )
    report = {"n_pairs": float(m.n)}
    report.update({name: float(value) for name, value in values.items()})
    return report


def pairwise_report(
    images: torch.Tensor,
    captions: torch.Tensor,
    caption_to_image: torch.Tensor | None,
    preset: str = "default",
    backend: str = "auto",
    *,
    with_retrieval: bool = True,
) -> dict[str, float]:
    """The pairwise metrics of the report on validated, finite inputs (see :func:`alignment_report`).

    ``with_retrieval=False`` leaves retrieval out, for a caller that ranks the pairs itself (the audit ranks
    them under both tie rules).
    """
    pairs_x = images if caption_to_image is None else images[caption_to_image]
    biased, unbiased = rbf_cka_both(pairs_x, captions, backend=backend)
    values: dict[str, float] = {"cka_rbf": float(biased), "cka_rbf_unbiased": float(unbiased)}
    if images.shape[1] == captions.shape[1]:
        values["mmd"] = float(mmd(images, captions, **PRESETS[preset]["mmd"], backend=backend))
        if with_retrieval:
            values.update(retrieval(images, captions, caption_to_image, backend=backend).as_dict())
    return values


def alignment_report(
    x: torch.Tensor,
    y: torch.Tensor,
    caption_to_image: torch.Tensor | None = None,
    preset: str = "default",
    *,
    pairwise: bool = True,
    nan_policy: str = "raise",
    backend: str = "auto",
) -> dict[str, float]:
    """Every metric by name → float, for x = image and y = text embeddings.

    Moment metrics: ``sas_x_to_y``, ``sas_y_to_x``, ``sas_symmetric``, ``sas_imbalance`` (ΔSAS),
    ``cka_linear``, ``cka_linear_unbiased``, ``svcca``, ``coral``, ``modality_gap``, ``l2i``,
    ``true_pair_cosine``, ``cosine_gap``, ``rmg``, and ``n_pairs``. Pairwise metrics (``pairwise=True``,
    the default): ``mmd`` (the preset's σ, estimator and scale), ``cka_rbf``, ``cka_rbf_unbiased``
    (Kornblith bandwidth), and retrieval ``i2t_r1``, ``i2t_r5``, ``i2t_r10``, ``t2i_r1``, ``t2i_r5``,
    ``t2i_r10``, ``rsum``, ``i2t_median_rank``, ``t2i_median_rank``, ``i2t_mean_rank``, ``t2i_mean_rank``.
    ``preset="default"`` computes SAS with the scale-free ε (:func:`torchspectral.sas`), ``preset="paper"`` with the
    source paper's absolute ε = 1e-8 (and SVCCA, CORAL, MMD with the paper's settings). When d_x ≠ d_y only the
    metrics defined across two spaces (CKA, SVCCA) are reported. Needs n ≥ 4.
    ``pairwise=False`` keeps the one-pass moment metrics only (what :meth:`Moments.report` gives).

    Shape: x (n, d_x), y (n, d_y), row i of x paired with row i of y. With ``caption_to_image`` (M,):
    x (N, d) are the distinct images, y (M, d) the captions and caption j describes image
    ``caption_to_image[j]``; the paired metrics then use the M pairs ``(x[caption_to_image[j]], y[j])``,
    MMD compares the N images with the M captions, and retrieval uses the map as given.

    Example:
        >>> import torch, torchspectral as ts
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(1000, 32, generator=g)
        >>> r = ts.alignment_report(x, x + 0.5 * torch.randn(1000, 32, generator=g))
        >>> sorted(r)[:4], r["i2t_r1"]
        (['cka_linear', 'cka_linear_unbiased', 'cka_rbf', 'cka_rbf_unbiased'], 1.0)
    """
    if preset not in PRESETS:
        raise ValueError(f"alignment_report: preset must be one of {tuple(PRESETS)}, got {preset!r}")
    metric = "alignment_report"
    if caption_to_image is None:
        x, y = check_pair(x, y, metric, nan_policy=nan_policy)
        images, captions, c = x, y, None
    else:
        images, captions, c = clean_retrieval_inputs(x, y, caption_to_image, metric, nan_policy)
        x, y = images[c], captions
    report = report_from_moments(MomentStatistics.from_data(x, y, metric=metric), preset=preset)
    if pairwise:
        report.update(pairwise_report(images, captions, c, preset=preset, backend=backend))
    return report
