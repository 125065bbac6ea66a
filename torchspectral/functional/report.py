"""`alignment_report`: every moment metric of one model on one dataset, from one pass over the data.

All metrics share one :class:`~torchspectral.Moments` (one GEMM) and its cached eigendecompositions.
Presets: "default" (SPEC defaults) and "paper" (the source paper's settings: SVCCA on the top-10
standardised directions, CORAL as the plain Frobenius distance).
"""

from __future__ import annotations

import torch

from torchspectral.moments import Moments

PRESETS = {
    "default": {"svcca": {"keep": 0.99, "standardize": False}, "coral": {"scale": "deep"}},
    "paper": {"svcca": {"keep": 10, "standardize": True}, "coral": {"scale": "frobenius"}},
}


def report_from_moments(m: Moments, preset: str = "default") -> dict[str, float]:
    if preset not in PRESETS:
        raise ValueError(f"alignment_report: preset must be one of {tuple(PRESETS)}, got {preset!r}")
    settings = PRESETS[preset]
    values: dict[str, torch.Tensor] = {}
    if m.same_dim:
        sa = m.spectral_alignment()
        values.update(
            sas_x_to_y=sa.x_to_y, sas_y_to_x=sa.y_to_x, sas_symmetric=sa.symmetric, sas_imbalance=sa.imbalance
        )
    values["cka_linear"] = m.cka()
    values["cka_linear_unbiased"] = m.cka(unbiased=True)
    values["svcca"] = m.svcca(**settings["svcca"])
    if m.same_dim:
        values["coral"] = m.coral(**settings["coral"])
        values.update(
            modality_gap=m.modality_gap(),
            l2i=m.l2i(),
            true_pair_cosine=m.true_pair_cosine(),
            cosine_gap=m.cosine_gap(),
            rmg=m.rmg(),
        )
    report = {"n_pairs": float(m.n)}
    report.update({name: float(value) for name, value in values.items()})
    return report


def alignment_report(
    x: torch.Tensor,
    y: torch.Tensor,
    caption_to_image: torch.Tensor | None = None,
    preset: str = "default",
    *,
    nan_policy: str = "raise",
) -> dict[str, float]:
    """Every moment metric by name → float, for x = image and y = text embeddings (n, d).

    Keys: ``sas_x_to_y``, ``sas_y_to_x``, ``sas_symmetric``, ``sas_imbalance`` (ΔSAS), ``cka_linear``,
    ``cka_linear_unbiased``, ``svcca``, ``coral``, ``modality_gap``, ``l2i``, ``true_pair_cosine``,
    ``cosine_gap``, ``rmg``, and ``n_pairs``. When d_x ≠ d_y only the metrics defined across two spaces
    (CKA, SVCCA) are reported. Needs n ≥ 4 (unbiased CKA).

    `caption_to_image` is reserved for the pairwise metrics (retrieval), which are not in this release;
    passing it raises rather than being ignored.

    Example:
        >>> import torch, torchspectral as ts
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(1000, 32, generator=g)
        >>> r = ts.alignment_report(x, x + 0.5 * torch.randn(1000, 32, generator=g))
        >>> sorted(r)[:4]
        ['cka_linear', 'cka_linear_unbiased', 'coral', 'cosine_gap']
    """
    if caption_to_image is not None:
        raise NotImplementedError(
            "alignment_report: caption_to_image is used by retrieval, which needs the pairwise engine "
            "(not in this release)"
        )
    m = Moments.from_data(x, y, nan_policy=nan_policy, metric="alignment_report")
    return report_from_moments(m, preset=preset)
