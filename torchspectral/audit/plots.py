"""PNG figures of the audit (matplotlib, Agg): the q-sweep, per-mode spectra, ΔSAS per run, metrics vs retrieval.

Each function draws one figure from a sequence of :class:`~torchspectral.audit.records.RunResult`, writes it to
``path`` as a PNG and returns the number of data series it drew (what the tests count).

The figures are built on :class:`matplotlib.figure.Figure` with an explicit ``FigureCanvasAgg`` rather than
through ``pyplot``: pyplot would pick (and could switch) the global backend and keep a registry of open figures,
which would disturb a user calling the audit from a notebook or an interactive session. Style settings apply
inside a ``matplotlib.rc_context`` for the same reason.

Colours: the Okabe–Ito palette (distinguishable with the common colour-vision deficiencies); a domain keeps its
colour in every figure (domains in order of first appearance in ``runs``).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from torchspectral.audit.records import RunResult
from torchspectral.audit.statistics import (
    DERIVED_TARGETS,
    domains_of,
    q_sweep_by_domain,
    retrieval_correlations,
    retrieval_value,
)

DPI = 120
# Okabe & Ito (2008), yellow last: it is hard to see on white.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 9.5,
    "legend.frameon": False,
    "figure.titlesize": 13,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
}
DEFAULT_Q = 0.1
TARGET_LABELS = {
    "rsum": "rSum (R@1+R@5+R@10, both directions, max 600)",
    "i2t_rsum": "image→text rSum (R@1+R@5+R@10, max 300)",
    "t2i_rsum": "text→image rSum (R@1+R@5+R@10, max 300)",
    "i2t_r1": "image→text R@1",
    "i2t_r5": "image→text R@5",
    "i2t_r10": "image→text R@10",
    "t2i_r1": "text→image R@1",
    "t2i_r5": "text→image R@5",
    "t2i_r10": "text→image R@10",
}


def domain_colours(runs: Sequence[RunResult]) -> dict[str, str]:
    """Domain → colour (hex), the mapping every figure uses."""
    return {d: PALETTE[i % len(PALETTE)] for i, d in enumerate(domains_of(runs))}


def plot_q_sweep(runs: Sequence[RunResult], path: str | os.PathLike) -> int:
    """Exp. 3: mean SAS per domain as a function of the active-set depth q, both directions.

    Solid lines: SAS x→y (image eigenmodes as anchor); dashed: y→x (text anchor); shading: ±1 std over the
    domain's runs (none for a single-run domain). A dotted line marks the default q = 0.1.

    The q axis is logarithmic when the grid is positive and spans at least a decade (the usual sweep, e.g.
    0.01 … 1): the interesting part — the top few percent of modes, where the paper finds the domain gap largest —
    would otherwise be squeezed against the left edge. A grid within one decade is shown on a linear axis.

    Returns:
        The number of lines drawn: number of domains × 2.
    """
    _check_runs(runs, "plot_q_sweep")
    sweep = q_sweep_by_domain(runs)  # checks the runs share one q grid
    q = np.asarray(sweep["q"], dtype=np.float64)
    colours = domain_colours(runs)
    log_axis = q.size > 1 and q.min() > 0 and q.max() / q.min() >= 10
    series = 0
    with matplotlib.rc_context(STYLE):
        fig, ax = _figure((7.5, 4.8))
        for domain, entry in sweep["domains"].items():
            for key, style, direction in (
                ("sas_x_to_y", "-", "x→y (image anchor)"),
                ("sas_y_to_x", "--", "y→x (text anchor)"),
            ):
                mean = _array(entry[key]["mean"])
                std = _array(entry[key]["std"])
                colour = colours[domain]
                ax.plot(
                    q,
                    mean,
                    style,
                    color=colour,
                    lw=2,
                    marker="o",
                    ms=3.5,
                    label=f"{domain} (n={entry['n']}) · {direction}",
                )
                if np.isfinite(std).any():
                    ax.fill_between(q, mean - std, mean + std, color=colour, alpha=0.13, lw=0)
                series += 1
        if q.min() <= DEFAULT_Q <= q.max():
            ax.axvline(DEFAULT_Q, color="0.4", ls=":", lw=1.2, label=f"default q = {DEFAULT_Q}")
        if log_axis:
            ax.set_xscale("log")
        scale = " (log scale)" if log_axis else ""
        ax.set_xlabel(f"q — fraction of the anchor's eigenmodes in the active set{scale}")
        ax.set_ylabel("SAS (mean ± 1 std over runs)")
        ax.set_title("Spectral alignment vs. active-set depth q, by domain")
        ax.legend(loc="best")
        _save(fig, path)
    return series


def plot_mode_spectra(runs: Sequence[RunResult], path: str | os.PathLike, max_modes: int = 100) -> int:
    """Per-eigenmode alignment |ρ_k| against mode index k (descending anchor eigenvalue), one line per run.

    Left panel: x→y (modes of the image covariance, ``modes["rho_x_to_y"]``); right panel: y→x (text covariance,
    ``modes["rho_y_to_x"]``). Lines are coloured by domain. A dot marks each run's last active mode (the active
    set at q = 0.1, ``modes["active_*"]``); when every run has the same active-set size a dotted vertical line
    marks that boundary instead. Only the first ``max_modes`` modes are drawn.

    Returns:
        The number of lines drawn: number of runs × 2 (one per run in each direction panel).
    """
    runs = _check_runs(runs, "plot_mode_spectra")
    if not isinstance(max_modes, int) or isinstance(max_modes, bool) or max_modes < 1:
        raise ValueError(f"plot_mode_spectra: max_modes must be a positive integer, got {max_modes!r}")
    directions = (
        ("rho_x_to_y", "active_x_to_y", "x→y: anchor = image eigenmodes"),
        ("rho_y_to_x", "active_y_to_x", "y→x: anchor = text eigenmodes"),
    )
    for run in runs:
        lacking = [k for rho, active, _ in directions for k in (rho, active) if k not in run.modes]
        if lacking:
            raise ValueError(f"plot_mode_spectra: run {run.name!r} has no modes[{lacking[0]!r}] (per-mode profile)")
    colours = domain_colours(runs)
    series = 0
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(12, 4.8), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2, sharey=True)
        drew_line = drew_dots = False  # which boundary marks the legend must explain
        for ax, (rho_key, active_key, title) in zip(axes, directions, strict=True):
            actives = {int(run.modes[active_key]) for run in runs}
            shared_boundary = len(actives) == 1
            for run in runs:
                rho = np.abs(np.asarray(run.modes[rho_key], dtype=np.float64))[:max_modes]
                k = np.arange(1, rho.size + 1)
                colour = colours[run.domain]
                ax.plot(k, rho, color=colour, lw=1.2, alpha=0.8)
                series += 1
                active = int(run.modes[active_key])
                if not shared_boundary and 1 <= active <= rho.size:
                    ax.plot(active, rho[active - 1], "o", color=colour, ms=5, mec="white", mew=0.8)
                    drew_dots = True
            (active,) = actives if shared_boundary else (None,)
            if active is not None and active <= max_modes:
                # between the last active mode and the first inactive one
                ax.axvline(active + 0.5, color="0.3", ls=":", lw=1.3)
                drew_line = True
            ax.set_title(title)
            ax.set_xlabel("eigenmode k (anchor eigenvalues, descending)")
            ax.set_xlim(0.5, None)
        axes[0].set_ylabel("|ρ_k| — cross-modal correlation of mode k")
        handles = [
            Line2D([], [], color=colours[d], lw=2, label=f"{d} ({sum(r.domain == d for r in runs)} runs)")
            for d in colours
        ]
        if drew_line:
            handles.append(Line2D([], [], color="0.3", ls=":", lw=1.3, label="active-set boundary (q = 0.1)"))
        if drew_dots:
            handles.append(Line2D([], [], color="0.3", marker="o", ls="none", ms=5, label="last active mode (q = 0.1)"))
        axes[1].legend(handles=handles, loc="upper right")
        fig.suptitle("Per-eigenmode alignment profile (one line per model × dataset)")
        _save(fig, path)
    return series


def plot_imbalance(runs: Sequence[RunResult], path: str | os.PathLike) -> int:
    """Exp. 2: ΔSAS = SAS x→y − SAS y→x per run as horizontal bars, sorted, coloured by domain.

    Error bars: the bootstrap confidence interval ``run.intervals["sas_imbalance"]`` where the run has one (runs
    without an interval get a bare bar). Bars right of the zero line: the image's dominant eigenspace is
    recovered from the text better than the reverse. Runs whose ΔSAS is not finite are left out.

    Returns:
        The number of bar series drawn: one per domain with at least one finite ΔSAS.
    """
    metric = "sas_imbalance"
    runs = _check_runs(runs, "plot_imbalance")
    _require_metric(runs, metric, "plot_imbalance")
    shown = sorted((r for r in runs if math.isfinite(r.metrics[metric])), key=lambda r: r.metrics[metric])
    if not shown:
        raise ValueError("plot_imbalance: no run has a finite sas_imbalance")
    colours = domain_colours(runs)
    values = np.array([r.metrics[metric] for r in shown])
    ys = np.arange(len(shown))
    lower, upper, has_ci = np.zeros(len(shown)), np.zeros(len(shown)), np.zeros(len(shown), dtype=bool)
    for i, run in enumerate(shown):
        interval = run.intervals.get(metric)
        if interval is None:
            continue
        if len(interval) != 2:
            raise ValueError(
                f"plot_imbalance: {run.name!r} intervals[{metric!r}] must be [low, high], got {interval!r}"
            )
        low, high = float(interval[0]), float(interval[1])
        if math.isfinite(low) and math.isfinite(high):
            # A percentile interval need not contain the point estimate; error bars cannot be negative.
            lower[i], upper[i], has_ci[i] = max(values[i] - low, 0.0), max(high - values[i], 0.0), True
    series = 0
    with matplotlib.rc_context(STYLE):
        fig, ax = _figure((8.5, max(3.2, 1.4 + 0.34 * len(shown))))
        for domain, colour in colours.items():
            member = np.array([r.domain == domain for r in shown])
            if not member.any():
                continue
            ax.barh(
                ys[member],
                values[member],
                height=0.7,
                color=colour,
                alpha=0.9,
                label=f"{domain} (n={int(member.sum())})",
            )
            series += 1
        if has_ci.any():
            ax.errorbar(
                values[has_ci],
                ys[has_ci],
                xerr=np.vstack([lower[has_ci], upper[has_ci]]),
                fmt="none",
                ecolor="0.15",
                elinewidth=1.1,
                capsize=3,
                label="95% bootstrap CI",
            )
        ax.axvline(0.0, color="0.2", lw=1.0)
        ax.set_yticks(ys, [r.name for r in shown])
        ax.grid(axis="y", visible=False)
        ax.set_ylim(-0.7, len(shown) - 0.3)
        ax.set_xlabel("ΔSAS = SAS x→y − SAS y→x   (> 0: image structure better recovered from text)")
        ax.set_title("Modality imbalance per model / dataset")
        ax.legend(loc="lower right")
        _save(fig, path)
    return series


def plot_metric_vs_retrieval(
    runs: Sequence[RunResult],
    path: str | os.PathLike,
    metrics: Sequence[str] | None = None,
    target: str = "rsum",
) -> int:
    """Exp. 4: one scatter panel per metric — metric value (x) against retrieval ``target`` (y), one point per run.

    Points are coloured by domain. Each panel title gives the pooled Spearman ρ with significance stars; a box in
    the panel gives ρ within each domain (from :func:`~torchspectral.audit.statistics.retrieval_correlations`,
    so the figure and the report agree). ``metrics`` defaults to every non-retrieval metric present in all runs;
    ``target`` may be any retrieval key or the derived ``i2t_rsum``/``t2i_rsum``.

    Returns:
        The number of scatter series drawn: metrics × domains (a domain with no finite point in a panel is
        skipped there).
    """
    runs = _check_runs(runs, "plot_metric_vs_retrieval")
    if not isinstance(target, str):
        raise ValueError(f"plot_metric_vs_retrieval: target must be one retrieval key, got {target!r}")
    rows = retrieval_correlations(runs, metrics=metrics, targets=[target])  # validates metrics and target
    metric_names = list(dict.fromkeys(r["metric"] for r in rows))
    stats_of = {(r["metric"], r["domain"]): r for r in rows}  # domain None = pooled
    colours = domain_colours(runs)
    y_all = np.array([retrieval_value(r, target) for r in runs], dtype=np.float64)
    ncols = min(4, len(metric_names))
    nrows = math.ceil(len(metric_names) / ncols)
    series = 0
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(3.6 * ncols + 0.4, 3.2 * nrows + 0.9), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
        for ax, metric in zip(axes, metric_names, strict=False):  # spare panels stay empty
            x_all = np.array([r.metrics[metric] for r in runs], dtype=np.float64)
            for domain, colour in colours.items():
                member = np.array([r.domain == domain for r in runs]) & np.isfinite(x_all) & np.isfinite(y_all)
                if not member.any():
                    continue
                ax.scatter(
                    x_all[member], y_all[member], s=34, color=colour, alpha=0.85, edgecolors="white", linewidths=0.6
                )
                series += 1
            # The per-domain ρ go in the title, not in a box on the axes, where they would hide points.
            title = [metric, f"all: {_rho_text(stats_of[metric, None])}"]
            if len(colours) > 1:
                parts = [f"{d} {_rho_short(stats_of[metric, d])}" for d in colours]
                title += ["  ·  ".join(parts[i : i + 2]) for i in range(0, len(parts), 2)]
            ax.set_title("\n".join(title), fontsize=10)
            ax.set_xlabel(metric, fontsize=9.5)
        for ax in axes[len(metric_names) :]:
            ax.set_visible(False)
        fig.supylabel(_target_label(target), fontsize=11)
        handles = [
            Line2D([], [], color=c, marker="o", ls="none", ms=7, label=f"{d} (n={sum(r.domain == d for r in runs)})")
            for d, c in colours.items()
        ]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6))
        fig.suptitle(f"Alignment metrics vs. retrieval ({target}) — Spearman ρ, * p<.05  ** p<.01  *** p<.001")
        _save(fig, path)
    return series


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _check_runs(runs: Sequence[RunResult], where: str) -> list[RunResult]:
    runs = list(runs)
    if not runs:
        raise ValueError(f"{where}: no runs to plot")
    return runs


def _require_metric(runs: list[RunResult], metric: str, where: str) -> None:
    lacking = [r.name for r in runs if metric not in r.metrics]
    if lacking:
        raise ValueError(f"{where}: metric {metric!r} is missing from {len(lacking)} run(s), e.g. {lacking[0]!r}")


def _figure(size: tuple[float, float]):
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, path: str | os.PathLike) -> None:
    """Write the PNG atomically (temporary file in the same folder, then rename): no half-written figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".png", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            fig.savefig(handle, format="png", dpi=DPI)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _array(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _rho_text(row: dict) -> str:
    if row["rho"] is None:
        return f"ρ = n/a ({row['reason']}, n={row['n']})"
    return f"ρ = {row['rho']:+.2f}{row['stars']} (n={row['n']})"


def _rho_short(row: dict) -> str:
    return f"n/a ({row['reason']})" if row["rho"] is None else f"{row['rho']:+.2f}{row['stars']}"


def _target_label(target: str) -> str:
    if target in TARGET_LABELS:
        return TARGET_LABELS[target]
    return target if target not in DERIVED_TARGETS else f"{target} (derived)"
