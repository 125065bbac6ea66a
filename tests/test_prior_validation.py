"""A saved SpectralPrior is validated when loaded: a tampered or truncated state is refused, naming the key."""

from __future__ import annotations

import pytest
import torch
from conftest import paired

import torchspectral as ts

FIELDS = ("vectors", "eigenvalues", "other_variance", "signs", "population_sas")
KEYS = ("mean_x", "mean_y", "q", "eps", *(f"{d}.{f}" for d in ("x_to_y", "y_to_x") for f in FIELDS))


@pytest.fixture(scope="module")
def population() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = paired(600, 20, seed=61, offset=2.0)
    return torch.from_numpy(x), torch.from_numpy(y)


@pytest.fixture
def state(population) -> dict[str, torch.Tensor]:
    prior = ts.SpectralPrior.fit(*population, q=0.25)
    return {key: value.clone() for key, value in prior.state_dict().items()}


def refused(state: dict, *fragments: str, error: type[Exception] = ValueError) -> str:
    """Both load paths refuse `state` with `error` whose message holds every fragment."""
    with pytest.raises(error) as caught:
        ts.SpectralPrior.from_state_dict(state)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def test_the_fitted_state_loads_and_scores_the_same(population, state) -> None:
    x, y = population
    prior = ts.SpectralPrior.from_state_dict(state)
    torch.testing.assert_close(prior.score(x, y), ts.SpectralPrior.fit(x, y, q=0.25).score(x, y), rtol=0, atol=0)
    assert set(state) == set(KEYS)


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_in_any_tensor_is_refused(state, key: str, bad: float) -> None:
    state[key].reshape(-1)[0] = bad
    refused(state, f"'{key}'", "NaN or infinite")


def test_truncated_eigenvalues_are_refused(population, state) -> None:
    # Before: scores silently changed (the single kept eigenvalue broadcast over every mode).
    state["x_to_y.eigenvalues"] = state["x_to_y.eigenvalues"][:1]
    refused(state, "'x_to_y.eigenvalues'", "shape (5,)", "got (1,)", "'x_to_y.vectors'")


@pytest.mark.parametrize(
    ("key", "value", "fragments"),
    [
        ("mean_x", torch.zeros(19, dtype=torch.float64), ("'mean_y'", "shape (19,)", "'mean_x'", "got (20,)")),
        ("mean_x", torch.zeros(20, 1, dtype=torch.float64), ("'mean_x'", "1-D", "(20, 1)")),
        ("mean_y", torch.zeros(21, dtype=torch.float64), ("'mean_y'", "shape (20,)", "got (21,)")),
        ("x_to_y.vectors", torch.eye(19, 5, dtype=torch.float64), ("'x_to_y.vectors'", "(20, k)", "(19, 5)")),
        ("y_to_x.other_variance", torch.ones(4, dtype=torch.float64), ("'y_to_x.other_variance'", "(5,)", "(4,)")),
        ("y_to_x.signs", torch.ones(6, dtype=torch.float64), ("'y_to_x.signs'", "(5,)", "(6,)")),
        ("x_to_y.population_sas", torch.ones(1, dtype=torch.float64), ("'x_to_y.population_sas'", "()", "(1,)")),
        ("q", torch.tensor([0.25, 0.5], dtype=torch.float64), ("'q'", "()", "(2,)")),
    ],
)
def test_wrong_shapes_are_refused(state, key: str, value: torch.Tensor, fragments: tuple[str, ...]) -> None:
    state[key] = value
    refused(state, *fragments)


def test_a_direction_truncated_consistently_is_refused(state) -> None:
    # Every tensor of the direction cut to 3 modes: the shapes agree, but q = 0.25 of d = 20 keeps 5.
    for field in ("eigenvalues", "other_variance", "signs"):
        state[f"y_to_x.{field}"] = state[f"y_to_x.{field}"][:3]
    state["y_to_x.vectors"] = state["y_to_x.vectors"][:, :3]
    refused(state, "'y_to_x.eigenvalues'", "3 active modes", "q = 0.25", "at least 5")


@pytest.mark.parametrize(
    ("key", "change", "fragments"),
    [
        ("x_to_y.eigenvalues", lambda t: t.flip(0), ("'x_to_y.eigenvalues'", "descending")),
        ("x_to_y.eigenvalues", lambda t: t - t[0] / 2, ("'x_to_y.eigenvalues'", "non-negative")),
        ("x_to_y.eigenvalues", lambda t: t * 0, ("'x_to_y.eigenvalues'", "positive")),
        ("y_to_x.other_variance", lambda t: -t, ("'y_to_x.other_variance'", "non-negative")),
        ("y_to_x.signs", lambda t: t / 2, ("'y_to_x.signs'", "-1 or +1")),
        ("x_to_y.population_sas", lambda t: t + 1.5, ("'x_to_y.population_sas'", "[0, 1]")),
        ("x_to_y.vectors", lambda t: t * 2, ("'x_to_y.vectors'", "orthonormal")),
        ("q", lambda t: t * 0, ("'q'", "(0, 1]", "0.0")),
        ("q", lambda t: t * 8, ("'q'", "(0, 1]", "2.0")),
        ("eps", lambda t: t * 0 - 1e-3, ("'eps'", ">= 0", "-0.001")),
    ],
)
def test_impossible_values_are_refused(state, key: str, change, fragments: tuple[str, ...]) -> None:
    state[key] = change(state[key])
    refused(state, *fragments)


def test_types_dtypes_and_devices(state) -> None:
    state["mean_x"] = state["mean_x"].round().to(torch.int64)
    refused(state, "'mean_x'", "floating", "torch.int64")
    state["mean_x"] = [0.0] * 20
    refused(state, "'mean_x'", "tensor", "list", error=TypeError)
    state["mean_x"] = torch.zeros(20, dtype=torch.float64, device="meta")
    refused(state, "'mean_x'", "meta")
    with pytest.raises(TypeError, match="mapping"):
        ts.SpectralPrior.from_state_dict([("mean_x", torch.zeros(3))])


def test_missing_and_unknown_keys_name_them(state) -> None:
    del state["y_to_x.signs"]
    state["extra"] = torch.zeros(1)
    message = refused(state, "'y_to_x.signs'", "'extra'")
    # Both KeyError (as before) and ValueError, with a readable message (not a quoted repr).
    for error in (KeyError, ValueError):
        with pytest.raises(error):
            ts.SpectralPrior.from_state_dict(state)
    assert not message.startswith(("'", '"'))


def test_load_state_dict_validates_and_keeps_the_prior_on_failure(population, state) -> None:
    x, y = population
    prior = ts.SpectralPrior.fit(y, x, q=0.5)
    before = prior.score(x, y)
    state["x_to_y.signs"][0] = float("nan")
    with pytest.raises(ValueError, match=r"load_state_dict: 'x_to_y\.signs'"):
        prior.load_state_dict(state)
    torch.testing.assert_close(prior.score(x, y), before, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rank_deficient_fits_and_float32_copies_load(dtype: torch.dtype) -> None:
    """Rounding makes the null eigenvalues of n < d data slightly negative: still a valid prior."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 20, generator=g, dtype=dtype) + 3
    y = x + torch.randn(5, 20, generator=g, dtype=dtype)
    prior = ts.SpectralPrior.fit(x, y, q=1.0)
    state = prior.state_dict()
    ts.SpectralPrior.from_state_dict(state)
    halved = ts.SpectralPrior.from_state_dict({key: value.float() for key, value in state.items()})
    torch.testing.assert_close(halved.score(x.float(), y.float()), prior.score(x.float(), y.float()))
