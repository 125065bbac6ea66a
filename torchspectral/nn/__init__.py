"""Loss modules (stateless except learnable temperatures): gap-closing losses and metrics as losses."""

from torchspectral.nn.contrastive import CLIPLoss, SigLIPLoss
from torchspectral.nn.gap_closing import (
    AlignTruePairsLoss,
    CentroidUniformityLoss,
    GapClosingLoss,
    paper_schedule,
)
from torchspectral.nn.metric_losses import CKALoss, CORALLoss, MMDLoss, SASLoss

__all__ = [
    "AlignTruePairsLoss",
    "CKALoss",
    "CLIPLoss",
    "CORALLoss",
    "CentroidUniformityLoss",
    "GapClosingLoss",
    "MMDLoss",
    "SASLoss",
    "SigLIPLoss",
    "paper_schedule",
]
