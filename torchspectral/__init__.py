"""torchspectral: how well are two embedding spaces aligned? Differentiable, streaming, GPU-ready metrics.

>>> import torch, torchspectral as ts
>>> x = torch.randn(1000, 16, generator=torch.Generator().manual_seed(0))
>>> r = ts.spectral_alignment(x, x)
>>> round(float(r.symmetric), 6), float(r.imbalance)
(1.0, 0.0)
"""

from torchspectral import functional, nn
from torchspectral.functional import *  # noqa: F403  (every stateless metric, listed once in its __all__)
from torchspectral.moments import Moments
from torchspectral.prior import SpectralPrior
from torchspectral.uncertainty import BootstrapResult, PermutationResult, bootstrap, permutation_test
from torchspectral.verdict import Verdict, imbalance_verdict, subspace_scores

__version__ = "0.1.0"


def __getattr__(name: str):
    # ts.metrics on first use: it needs the optional torchmetrics, which `import torchspectral` must not.
    if name == "metrics":
        import importlib

        return importlib.import_module("torchspectral.metrics")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    *functional.__all__,
    "BootstrapResult",
    "Moments",
    "PermutationResult",
    "SpectralPrior",
    "Verdict",
    "bootstrap",
    "imbalance_verdict",
    "metrics",  # noqa: F405  (a lazy attribute: see __getattr__)
    "nn",
    "permutation_test",
    "subspace_scores",
]
