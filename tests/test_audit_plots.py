"""torchspectral.audit.plots: every figure is a real PNG, draws the expected series, and rejects bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from audit_runs import make_run, synthetic_runs

from torchspectral.audit.plots import (
    domain_colours,
    plot_imbalance,
    plot_metric_vs_retrieval,
    plot_mode_spectra,
    plot_q_sweep,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_width=400, min_height=250):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 10_000  # a figure with axes, text and data, not an empty canvas
    pil = pytest.importorskip("PIL.Image")
    with pil.open(path) as image:
        image.load()  # decodes every pixel: a truncated file fails here
        assert image.format == "PNG"
        assert image.width >= min_width and image.height >= min_height
        assert sum(1 for count in image.convert("L").histogram() if count) > 10  # something was drawn
    assert not list(path.parent.glob(".*.png"))  # the atomic write left no temporary file


@pytest.fixture
def five_runs():
    """5 runs over 2 domains (3 natural, 2 medical), with bootstrap intervals for ΔSAS."""
    runs = synthetic_runs({"natural": ["coco"], "medical": ["roco"]})
    return runs[:5]


def test_plot_q_sweep(tmp_path, five_runs):
    path = tmp_path / "q_sweep.png"
    assert plot_q_sweep(five_runs, path) == 2 * 2
    assert_png(path)


def test_plot_mode_spectra(tmp_path, five_runs):
    path = tmp_path / "modes.png"
    assert plot_mode_spectra(five_runs, path) == 5 * 2
    assert_png(path)
    # differing active-set sizes: per-run markers instead of one boundary line; max_modes below the dimension
    five_runs[0].modes["active_x_to_y"] = 7
    assert plot_mode_spectra(five_runs, path, max_modes=10) == 10
    assert_png(path)


def test_plot_imbalance(tmp_path, five_runs):
    path = tmp_path / "imbalance.png"
    assert plot_imbalance(five_runs, path) == 2
    assert_png(path)


def test_plot_metric_vs_retrieval(tmp_path, five_runs):
    path = tmp_path / "retrieval.png"
    metrics = ["sas_symmetric", "sas_imbalance", "cka_linear", "svcca", "rmg"]
    assert plot_metric_vs_retrieval(five_runs, path, metrics=metrics) == 5 * 2
    assert_png(path)
    assert plot_metric_vs_retrieval(five_runs, path, metrics=["cka_linear"], target="t2i_rsum") == 2
    assert_png(path, min_width=300)


def test_plot_metric_vs_retrieval_default_metrics(tmp_path):
    runs = synthetic_runs()
    path = tmp_path / "retrieval_all.png"
    n = plot_metric_vs_retrieval(runs, path)
    assert n == 15 * 2  # every alignment key of the synthetic runs × 2 domains
    assert_png(path)


def test_one_domain_and_no_intervals(tmp_path):
    runs = synthetic_runs({"medical": ["roco", "mimic"]}, with_intervals=False)
    assert plot_q_sweep(runs, tmp_path / "a.png") == 2
    assert plot_mode_spectra(runs, tmp_path / "b.png") == len(runs) * 2
    assert plot_imbalance(runs, tmp_path / "c.png") == 1
    assert plot_metric_vs_retrieval(runs, tmp_path / "d.png", metrics=["sas_x_to_y", "mmd"]) == 2
    for name in "abcd":
        assert_png(tmp_path / f"{name}.png", min_width=300)


def test_single_run_and_tiny_domains(tmp_path):
    """One run per domain: no std band, Spearman undefined (n < 3) — still a figure, no warning-as-error."""
    runs = synthetic_runs({"natural": ["coco"], "medical": ["roco"]}, models=("only",))
    assert plot_q_sweep(runs, tmp_path / "q.png") == 4
    assert plot_metric_vs_retrieval(runs, tmp_path / "r.png", metrics=["cka_linear"]) == 2
    assert plot_imbalance(runs[:1], tmp_path / "i.png") == 1
    assert_png(tmp_path / "r.png", min_width=300)


def test_some_runs_lack_intervals(tmp_path, five_runs):
    five_runs[1].intervals = {}
    five_runs[3].intervals["sas_imbalance"] = [float("nan"), float("nan")]
    assert plot_imbalance(five_runs, tmp_path / "imb.png") == 2
    assert_png(tmp_path / "imb.png")


def test_writes_into_a_new_folder(tmp_path, five_runs):
    path = tmp_path / "figures" / "nested" / "q.png"
    plot_q_sweep(five_runs, path)
    assert_png(path)


@pytest.mark.parametrize("plot", [plot_q_sweep, plot_mode_spectra, plot_imbalance, plot_metric_vs_retrieval])
def test_empty_runs(tmp_path, plot):
    with pytest.raises(ValueError, match="no runs"):
        plot([], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_missing_metric(tmp_path, five_runs):
    with pytest.raises(ValueError, match="'no_such_metric'"):
        plot_metric_vs_retrieval(five_runs, tmp_path / "x.png", metrics=["no_such_metric"])
    with pytest.raises(ValueError, match="'i2t_r3'"):
        plot_metric_vs_retrieval(five_runs, tmp_path / "x.png", metrics=["cka_linear"], target="i2t_r3")
    del five_runs[2].metrics["sas_imbalance"]
    with pytest.raises(ValueError, match=r"'sas_imbalance'.*siglip-b / coco"):
        plot_imbalance(five_runs, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_missing_sweep_or_modes(tmp_path, five_runs):
    five_runs[0].modes = {}
    with pytest.raises(ValueError, match="rho_x_to_y"):
        plot_mode_spectra(five_runs, tmp_path / "x.png")
    with pytest.raises(ValueError, match="max_modes"):
        plot_mode_spectra(synthetic_runs(), tmp_path / "x.png", max_modes=0)
    five_runs[1].q_sweep = {}
    with pytest.raises(ValueError, match="q_sweep"):
        plot_q_sweep(five_runs, tmp_path / "x.png")
    runs = synthetic_runs()
    runs[0] = make_run("odd", "coco", "natural", runs[0].metrics, q_grid=[0.1, 1.0])
    with pytest.raises(ValueError, match="q grid"):
        plot_q_sweep(runs, tmp_path / "x.png")


def test_bad_interval_shape(tmp_path, five_runs):
    five_runs[0].intervals["sas_imbalance"] = [0.1]
    with pytest.raises(ValueError, match=r"\[low, high\]"):
        plot_imbalance(five_runs, tmp_path / "x.png")


def test_stable_colours(five_runs):
    assert domain_colours(five_runs) == {"natural": "#0072B2", "medical": "#E69F00"}
    assert domain_colours(five_runs[::-1]) == {"medical": "#0072B2", "natural": "#E69F00"}


def test_leaves_the_session_backend_and_pyplot_alone(tmp_path):
    """An interactive user's backend must survive an audit: the plots never import pyplot nor switch backends."""
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import matplotlib
matplotlib.use("svg")
from audit_runs import synthetic_runs
from torchspectral.audit import plots
runs = synthetic_runs({{"natural": ["coco"], "medical": ["roco"]}}, models=("a", "b", "c"))
plots.plot_q_sweep(runs, {str(tmp_path / "q.png")!r})
plots.plot_imbalance(runs, {str(tmp_path / "i.png")!r})
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert "matplotlib.pyplot" not in sys.modules
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert_png(tmp_path / "q.png")
