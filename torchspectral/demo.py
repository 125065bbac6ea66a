"""A synthetic paired dataset with a *planted* alignment imbalance, and the report that should find it.

Generative model (all choices deterministic given the seed):

* ``k`` shared latent factors ``z ~ N(0, diag(s²))`` with decaying scales ``s_j = j^{-1/2}``, each
  living along its own orthonormal direction ``u_j`` of a shared ``d``-dimensional space.
* **image** ``= Σ_j z_j u_j + noise``: the image tower sees every factor.
* **text** ``= Σ_{j∈S} z_j u_j + style + noise``: the text tower sees only a subset S of the factors
  (the ``text_keeps`` fraction, chosen at random; the draw depends on the seed and on n) and carries
  a strong text-only "style" subspace (think caption templates) in directions orthogonal to every factor.
* A common offset per modality, then L2 normalisation, as CLIP-like towers produce (a modality gap).

What the metrics should recover: the image's dominant eigenspace is made of shared factors, most
of which the text also carries, while the text's dominant eigenspace is largely its own style, which
the image lacks. So SAS_{image→text} > SAS_{text→image}, i.e. ΔSAS > 0. The "balanced" control
(text sees every factor, no style subspace) should give ΔSAS ≈ 0.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch


@dataclass(frozen=True)
class PlantedModel:
    name: str
    text_keeps: float  # fraction of latent factors the text tower sees
    style_dims: int  # text-only nuisance directions
    style_scale: float  # their standard deviation relative to the strongest factor
    noise: float = 0.05  # isotropic noise per modality; more noise = a weaker model (lower retrieval)


PLANTED = (
    PlantedModel("balanced", text_keeps=1.0, style_dims=0, style_scale=0.0),
    PlantedModel("text-lossy", text_keeps=0.6, style_dims=12, style_scale=1.5),
)


def planted_pairs(
    model: PlantedModel, n: int = 20_000, d: int = 256, factors: int = 48, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(image, text) float32 embeddings of shape (n, d), L2-normalised, for one planted model."""
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    basis = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=f64))[0]
    directions, style_directions = basis[:, :factors], basis[:, factors : factors + model.style_dims]
    scales = torch.arange(1, factors + 1, dtype=f64).rsqrt()
    z = torch.randn(n, factors, generator=g, dtype=f64) * scales
    seen = torch.randperm(factors, generator=g)[: round(model.text_keeps * factors)]
    text_mask = torch.zeros(factors, dtype=f64)
    text_mask[seen] = 1.0
    image = z @ directions.T + model.noise * torch.randn(n, d, generator=g, dtype=f64)
    style = model.style_scale * torch.randn(n, model.style_dims, generator=g, dtype=f64)
    text_noise = model.noise * torch.randn(n, d, generator=g, dtype=f64)
    text = (z * text_mask) @ directions.T + style @ style_directions.T + text_noise
    # A common offset per modality (in directions outside the factors), then unit norm: a modality gap.
    unused = basis[:, factors + model.style_dims :]
    offset = torch.randn(2, unused.shape[1], generator=g, dtype=f64) @ unused.T
    offset = 2.0 * offset / torch.linalg.vector_norm(offset, dim=1, keepdim=True)
    image = torch.nn.functional.normalize(image + offset[0], dim=1)
    text = torch.nn.functional.normalize(text + offset[1], dim=1)
    return image.float(), text.float()


# The audit demo: four "models" (weaker to stronger: less noise) × two "datasets" from two domains. In the
# natural domain both towers see every factor (ΔSAS ≈ 0); in the medical domain the text tower misses
# 45% of the factors and carries its own style subspace (ΔSAS > 0) — the paper's finding, planted.
DEMO_MODELS = (("vlm-small", 0.4), ("vlm-base", 0.3), ("vlm-large", 0.2), ("vlm-xl", 0.12))
DEMO_DATASETS = (
    ("web-captions", "natural", PlantedModel("natural", text_keeps=1.0, style_dims=0, style_scale=0.0)),
    ("radiology-reports", "medical", PlantedModel("medical", text_keeps=0.55, style_dims=12, style_scale=1.5)),
)


def write_demo_inputs(folder: str | Path, n: int = 2_000, seed: int = 0, n_boot: int = 200) -> Path:
    """Write the demo's embeddings (one .safetensors per run) and its manifest.toml into ``folder``.

    Returns the manifest's path. Every run of one dataset shares the seed (the same "data"); the models
    differ only in their noise, so retrieval quality varies across models while the domain sets ΔSAS.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "# torchspectral demo manifest: planted synthetic embeddings (torchspectral/demo.py)",
        "[audit]",
        f"n_boot = {n_boot}",
        f"seed = {seed}",
        "",
    ]
    for dataset_index, (dataset, domain, planted) in enumerate(DEMO_DATASETS):
        for model, noise in DEMO_MODELS:
            image, text = planted_pairs(replace(planted, noise=noise), n=n, seed=seed + 1000 * dataset_index)
            file = f"{model}_{dataset}.safetensors"
            save_file({"image": image.contiguous(), "text": text.contiguous()}, str(folder / file))
            lines += [
                "[[run]]",
                f'model = "{model}"',
                f'dataset = "{dataset}"',
                f'domain = "{domain}"',
                f'embeddings = "{file}"',
                "",
            ]
    manifest = folder / "manifest.toml"
    manifest.write_text("\n".join(lines), encoding="utf-8")
    return manifest
