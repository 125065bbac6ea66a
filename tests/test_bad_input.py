"""Bad input gets a clear error naming the problem; nothing is silently dropped or turned into NaN."""

from __future__ import annotations

import pytest
import torch
from conftest import paired

import torchspectral as ts

ENTRY_POINTS = {
    "sas": ts.sas,
    "spectral_alignment": ts.spectral_alignment,
    "cka": ts.cka,
    "cka(unbiased=True)": lambda x, y, **kw: ts.cka(x, y, unbiased=True, **kw),
    "svcca": ts.svcca,
    "coral": ts.coral,
    "modality_gap": ts.modality_gap,
    "l2i": ts.l2i,
    "true_pair_cosine": ts.true_pair_cosine,
    "cosine_gap": ts.cosine_gap,
    "rmg": ts.rmg,
    "alignment_report": ts.alignment_report,
    "Moments.update": lambda x, y, **kw: ts.Moments().update(x, y, **kw).sas(),
}
NEEDS_SAME_DIM = {"sas", "spectral_alignment", "coral", "modality_gap", "l2i", "true_pair_cosine", "cosine_gap", "rmg"}
MIN_ROWS = {"sas": 2, "spectral_alignment": 2, "cka": 2, "cka(unbiased=True)": 4, "svcca": 2, "coral": 2,
            "modality_gap": 1, "l2i": 1, "true_pair_cosine": 1, "cosine_gap": 2, "rmg": 2,
            "alignment_report": 4, "Moments.update": 2}  # fmt: skip


def good(n: int = 40, d: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = paired(n, d, seed=41)
    return torch.from_numpy(x), torch.from_numpy(y)


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_nan_and_inf_rows_are_counted(name: str) -> None:
    x, y = good()
    x[3, 1] = float("nan")
    y[7, 0] = float("inf")
    y[3, 2] = float("-inf")  # same pair as the NaN: counted once
    with pytest.raises(ValueError, match=r"2 of 40 pairs contain NaN or Inf"):
        ENTRY_POINTS[name](x, y)


@pytest.mark.parametrize("name", [n for n in ENTRY_POINTS if n != "Moments.update"])
def test_nan_policy_omit_drops_exactly_those_pairs(name: str) -> None:
    x, y = good()
    keep = torch.ones(40, dtype=torch.bool)
    keep[[3, 7]] = False
    want = ENTRY_POINTS[name](x[keep].clone(), y[keep].clone())
    x[3, 1], y[7, 0] = float("nan"), float("inf")
    got = ENTRY_POINTS[name](x, y, nan_policy="omit")
    if isinstance(want, dict):
        assert got == pytest.approx(want, rel=1e-12)
    elif isinstance(want, torch.Tensor):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    else:
        torch.testing.assert_close(got.symmetric, want.symmetric, rtol=1e-12, atol=0)


def test_nan_policy_omit_with_nothing_left() -> None:
    x, y = good()
    x[:, 0] = float("nan")
    with pytest.raises(ValueError, match="every pair contains NaN"):
        ts.cka(x, y, nan_policy="omit")
    with pytest.raises(ValueError, match="nan_policy must be one of"):
        ts.cka(*good(), nan_policy="drop")


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_mismatched_number_of_pairs(name: str) -> None:
    x, y = good()
    with pytest.raises(ValueError, match="same number of paired rows, got 40 and 39"):
        ENTRY_POINTS[name](x, y[:39])


@pytest.mark.parametrize("name", sorted(NEEDS_SAME_DIM))
def test_different_widths_say_why(name: str) -> None:
    x, _ = good(d=6)
    _, y = good(d=4)
    with pytest.raises(ValueError, match=r"needs d_x = d_y \(.+\), got d_x=6, d_y=4"):
        ENTRY_POINTS[name](x, y)


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_too_few_pairs(name: str) -> None:
    needed = MIN_ROWS[name]
    if needed == 1:
        return  # one pair is enough for these: nothing to refuse
    x, y = good(n=needed - 1)
    with pytest.raises(ValueError, match=f"needs at least {needed} pairs"):
        ENTRY_POINTS[name](x, y)
    x, y = good(n=needed)
    ENTRY_POINTS[name](x, y)  # and the minimum itself works


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
@pytest.mark.parametrize(
    "shape_x,shape_y,message",
    [((0, 6), (0, 6), "is empty"), ((40, 0), (40, 0), "is empty"), ((40,), (40,), "must be 2-D"),
     ((2, 20, 6), (2, 20, 6), "must be 2-D")],
)  # fmt: skip
def test_wrong_shapes(name: str, shape_x: tuple, shape_y: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ENTRY_POINTS[name](torch.randn(shape_x), torch.randn(shape_y))


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_integer_dtypes(name: str, dtype: torch.dtype) -> None:
    x = torch.ones(40, 6, dtype=dtype)
    with pytest.raises(TypeError, match=f"has dtype {dtype}; embeddings must be floating point"):
        ENTRY_POINTS[name](x, good()[1])


def test_not_a_tensor() -> None:
    with pytest.raises(TypeError, match=r"must be a torch\.Tensor"):
        ts.sas([[1.0, 2.0]], torch.randn(1, 2))


@pytest.mark.parametrize("name", ["modality_gap", "l2i", "true_pair_cosine", "cosine_gap", "rmg"])
def test_zero_norm_rows_cannot_be_normalised(name: str) -> None:
    x, y = good()
    x[5] = 0.0
    with pytest.raises(ValueError, match=r"zero norm cannot be L2-normalised \(1 in x, 0 in y\)"):
        ENTRY_POINTS[name](x, y)
    ts.cka(x, y)  # metrics that do not normalise still work


@pytest.mark.parametrize("q", [0.0, -0.1, 1.5, [0.1, 0.0]])
def test_q_outside_unit_interval(q) -> None:
    with pytest.raises(ValueError, match="q is the fraction of top eigenmodes"):
        ts.sas(*good(), q=q)


def test_bad_options() -> None:
    x, y = good(n=60, d=6)
    with pytest.raises(ValueError, match="scale must be one of"):
        ts.coral(x, y, scale="l2")
    with pytest.raises(ValueError, match="preset must be one of"):
        ts.alignment_report(x, y, preset="fast")
    with pytest.raises(ValueError, match="keep=7 exceeds the numerical rank 6"):
        ts.svcca(x, y, keep=7)
    with pytest.raises(ValueError, match="variance fraction in"):
        ts.svcca(x, y, keep=1.5)
    with pytest.raises(ValueError, match="kernel must be"):
        ts.cka(x, y, kernel="poly")
    with pytest.raises(ValueError, match="x is on"):
        ts.cka(x, y.to("meta"))
