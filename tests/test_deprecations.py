"""Renamed public names and values keep working for one release, each with a DeprecationWarning naming the new one."""

from __future__ import annotations

import pytest
import torch

import torchspectral as ts
import torchspectral.functional as F


def _pairs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 5, generator=g, dtype=torch.float64)
    return x, x + torch.randn(60, 5, generator=g, dtype=torch.float64)


@pytest.mark.parametrize(
    ("old", "new"), [("SpectralAlignment", "SpectralAlignmentResult"), ("Retrieval", "RetrievalResult")]
)
@pytest.mark.parametrize("module", [ts, F], ids=["torchspectral", "functional"])
def test_renamed_result_types(module, old, new) -> None:
    with pytest.warns(DeprecationWarning, match=f"{old} is renamed .*{new}"):
        assert getattr(module, old) is getattr(module, new)
    assert isinstance(ts.spectral_alignment(*_pairs()), ts.SpectralAlignmentResult)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        module.Nope  # noqa: B018


@pytest.mark.parametrize(("old", "new"), [("fast", "algebraic"), ("exact", "moments")])
def test_renamed_engines_give_the_same_replicates(old, new) -> None:
    x, y = _pairs()
    with pytest.warns(DeprecationWarning, match=f"engine='{old}' is now engine='{new}'"):
        before = ts.bootstrap(x, y, ["cka_linear", "sas_x_to_y"], n_boot=6, seed=2, engine=old, method="percentile")
    after = ts.bootstrap(x, y, ["cka_linear", "sas_x_to_y"], n_boot=6, seed=2, engine=new, method="percentile")
    assert all(
        torch.equal(torch.as_tensor(before.replicates[k]), torch.as_tensor(after.replicates[k]))
        for k in after.replicates
    )


def test_ritz_rank_none_is_the_old_off() -> None:
    x, y = _pairs()
    with pytest.warns(DeprecationWarning, match="ritz_rank=None is now ritz_rank=0"):
        before = ts.bootstrap(x, y, ["sas_x_to_y"], n_boot=6, seed=2, ritz_rank=None, method="percentile")
    off = ts.bootstrap(x, y, ["sas_x_to_y"], n_boot=6, seed=2, method="percentile")
    assert torch.equal(torch.as_tensor(before.replicates["sas_x_to_y"]), torch.as_tensor(off.replicates["sas_x_to_y"]))
