"""Write an audit's report directory atomically: report.json, runs.csv, report.md and plots/*.png.

Everything is written into a staging directory next to ``out`` that is renamed onto it only when every file
is complete (:mod:`torchspectral.audit.destination`), so an error, a full disk, Ctrl-C or SIGTERM leaves no
partial report behind — either the whole report exists or nothing does.
"""

from __future__ import annotations

import csv
import json
import math
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from torchspectral.audit import plots, statistics
from torchspectral.audit.destination import ReportDestination
from torchspectral.audit.errors import AuditWriteError, os_reason
from torchspectral.audit.records import RunFailure, RunResult
from torchspectral.functional.report import PRESETS
from torchspectral.uncertainty.calibrated import harness_coverage

# The columns of the headline table: (metric key, header).
HEADLINE = (
    ("sas_x_to_y", "SAS img→txt"),
    ("sas_y_to_x", "SAS txt→img"),
    ("sas_imbalance", "ΔSAS"),
    ("cka_linear_unbiased", "CKA (unbiased)"),
    ("svcca", "SVCCA"),
    ("modality_gap", "gap"),
    ("true_pair_cosine", "true-pair cos"),
    ("rsum", "rSum"),
)
PLOT_FILES = {
    "q_sweep": "q_sweep.png",
    "mode_spectra": "mode_spectra.png",
    "imbalance": "imbalance.png",
    "metric_vs_rsum": "metric_vs_rsum.png",
}


# Below this many runs a cross-run test or correlation says nothing (Spearman needs 3 points; a t-test 2 per domain).
MIN_CROSS_RUNS = 3


def cross_run_analysis(runs: Sequence[RunResult]) -> dict:
    """The paper's cross-run analyses (docs/definitions.md#statistics) as one JSON-ready dict.

    Each analysis uses the runs that have what it needs (a run with d_x ≠ d_y has no ΔSAS, q-sweep or retrieval)
    and is left empty when fewer than :data:`MIN_CROSS_RUNS` runs qualify; with fewer runs in all, every analysis
    is empty and ``"note"`` says why.
    """
    empty = {"domain_comparison": [], "imbalance_tests": {}, "q_sweep_by_domain": {}, "retrieval_correlations": []}
    if len(runs) < MIN_CROSS_RUNS:
        return {
            **empty,
            "note": f"cross-run statistics need at least {MIN_CROSS_RUNS} runs; this audit has {len(runs)}",
        }
    with_imbalance = [r for r in runs if "sas_imbalance" in r.metrics]
    with_sweep = [r for r in runs if r.q_sweep]
    with_retrieval = [r for r in runs if "rsum" in r.metrics]
    enough = len(with_imbalance) >= MIN_CROSS_RUNS, len(with_sweep) >= MIN_CROSS_RUNS
    # Per metric, over the runs that have it: a run with d_x ≠ d_y must not drop SAS from everyone's comparison.
    names = sorted({k for r in runs for k in r.metrics} - set(statistics.NON_METRIC_KEYS), key=statistics.report_order)
    comparison = []
    for name in names:
        having = [r for r in runs if name in r.metrics]
        if len(having) >= MIN_CROSS_RUNS:
            comparison += statistics.domain_comparison(having, [name])
    return {
        "domain_comparison": comparison,
        "imbalance_tests": statistics.imbalance_tests(with_imbalance) if enough[0] else {},
        "q_sweep_by_domain": statistics.q_sweep_by_domain(with_sweep) if enough[1] else {},
        "retrieval_correlations": (
            statistics.retrieval_correlations(with_retrieval) if len(with_retrieval) >= MIN_CROSS_RUNS else []
        ),
    }


def write_report(
    out: str | Path,
    runs: Sequence[RunResult],
    *,
    manifest: str | Path,
    settings: dict,
    stage_seconds: dict[str, float],
    force: bool = False,
    failures: Sequence[RunFailure] = (),
    inputs: Sequence[str | Path] = (),
) -> Path:
    """Analyse across runs, draw the plots and write the report directory ``out`` atomically.

    Args:
        runs: the per-run results, in manifest order.
        manifest: the manifest's path (recorded in the report; ``out`` may never be written over it).
        settings: the audit settings actually used (recorded in the report).
        stage_seconds: seconds spent before writing (e.g. reading, analysing); the report's timing
            section adds the cross-run statistics, the plots and the writing.
        force: replace an existing ``out``, only when it is a previous report, and only once the new one is complete.
        failures: runs that could not be analysed (the report's "Failed runs" section).
        inputs: files the report may never be written over, besides the manifest.
    """
    if not runs:
        raise ValueError("write_report: no runs to report")
    with ReportDestination(out, force=force, inputs=[manifest, *inputs]) as destination:
        with destination.writing() as staging:
            write_report_files(
                staging, runs, manifest=manifest, settings=settings, stage_seconds=stage_seconds, failures=failures
            )
        return destination.publish()


def write_report_files(
    folder: Path,
    runs: Sequence[RunResult],
    *,
    manifest: str | Path,
    settings: dict,
    stage_seconds: dict[str, float],
    failures: Sequence[RunFailure] = (),
) -> None:
    """Write report.json, runs.csv, report.md and plots/ into the existing (staging) directory ``folder``.

    Raises:
        AuditWriteError: a file could not be written (one line naming it, relative to ``folder``, and the OS error).
    """
    if not runs:
        raise ValueError("write_report: no runs to report")
    timings = dict(stage_seconds)
    started = time.perf_counter()
    cross = cross_run_analysis(runs)
    timings["cross-run statistics"] = time.perf_counter() - started
    started = time.perf_counter()
    series = _draw_plots(folder, runs)
    timings["plots"] = time.perf_counter() - started
    started = time.perf_counter()
    report = {
        "manifest": str(manifest),
        "settings": settings,
        "runs": [run.to_dict() for run in runs],
        "failed_runs": [failure.to_dict() for failure in failures],
        "cross_run": cross,
        "plots": {name: f"plots/{file}" for name, file in PLOT_FILES.items() if name in series},
        "timings": timings,
    }
    with _writing("report.json"):
        _write_json(folder / "report.json", report)
    with _writing("runs.csv"):
        _write_csv(folder / "runs.csv", runs)
    timings["write"] = time.perf_counter() - started
    markdown = render_markdown(report)
    with _writing("report.md"):
        (folder / "report.md").write_text(markdown, encoding="utf-8")
    with _writing("report.json"):
        _write_json(folder / "report.json", report)  # again: now with the write time


@contextmanager
def _writing(name: str) -> Iterator[None]:
    """Around the writing of the report's file ``name``: an OSError becomes an AuditWriteError naming it."""
    try:
        yield
    except AuditWriteError:
        raise
    except OSError as error:
        raise AuditWriteError(f"cannot write {name}: {os_reason(error)}") from None


def _draw_plots(report: Path, runs: Sequence[RunResult]) -> dict[str, int]:
    folder = report / "plots"
    with _writing("plots/"):
        folder.mkdir()
    # Each plot shows the runs that have what it needs (a run with d_x ≠ d_y has no ΔSAS, spectra or retrieval).
    drawers: dict[str, tuple[Callable[[Sequence[RunResult], Path], int], list[RunResult]]] = {
        "imbalance": (plots.plot_imbalance, [r for r in runs if "sas_imbalance" in r.metrics]),
        "q_sweep": (plots.plot_q_sweep, [r for r in runs if r.q_sweep]),
        "mode_spectra": (plots.plot_mode_spectra, [r for r in runs if r.modes]),
    }
    with_retrieval = [r for r in runs if "rsum" in r.metrics]
    if len(with_retrieval) >= MIN_CROSS_RUNS:  # a rank correlation needs three runs
        drawers["metric_vs_rsum"] = (plots.plot_metric_vs_retrieval, with_retrieval)
    drawn = {}
    for name, (draw, shown) in drawers.items():
        if shown:
            with _writing(f"plots/{PLOT_FILES[name]}"):
                drawn[name] = draw(shown, folder / PLOT_FILES[name])
    return drawn


def _json_ready(value):
    # JSON has no NaN/Infinity: write null so every JSON parser reads the report.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(_json_ready(data), indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _write_csv(path: Path, runs: Sequence[RunResult]) -> None:
    metric_names = list(dict.fromkeys(name for run in runs for name in run.metrics))
    interval_names = list(dict.fromkeys(name for run in runs for name in run.intervals))
    header = ["model", "dataset", "domain", "n_images", "n_captions", "dim", *metric_names]
    header += [f"{name}_ci_{end}" for name in interval_names for end in ("low", "high")]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for run in runs:
            row = [run.model, run.dataset, run.domain, run.n_images, run.n_captions, run.dim]
            row += [run.metrics.get(name, "") for name in metric_names]
            for name in interval_names:
                row += run.intervals.get(name, ["", ""])
            writer.writerow(row)


# ---------------------------------------------------------------------------------------------- markdown
# Markdown and HTML punctuation that would change what a user-given name means in report.md: `|` splits a table
# cell, `<`/`>`/`&` make tags and entities, `[`/`]` links, `` ` `` and `*` code and emphasis, `\` escapes.
_MARKDOWN_SPECIAL = frozenset("\\|<>&[]`*")


def _md(text: object) -> str:
    """User-given text (a model, dataset or domain name, a path, a failure's reason) as inert markdown on one line.

    Markdown and HTML punctuation is backslash-escaped (so ``a|b`` stays in its table cell and ``<b>`` is no tag);
    control characters and line separators are written as Python escapes (``\\n``, ``\\x00``), so a newline never
    ends a table row and no NUL byte reaches report.md. runs.csv and report.json keep the names as given.

    Args:
        text: the text (anything; ``str()`` of it).

    Returns:
        The text to put into report.md.
    """
    out = []
    for char in str(text):
        if char in _MARKDOWN_SPECIAL:
            out.append("\\" + char)
        elif unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


def _run_name(run: dict) -> str:
    """``model / dataset`` of a run (or failed run), escaped for report.md."""
    return f"{_md(run['model'])} / {_md(run['dataset'])}"


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:.{digits}g}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _metric_cell(run: dict, name: str) -> str:
    """A metric's value; "n/a" where the run does not define it (d_x ≠ d_y)."""
    return _fmt(run["metrics"][name]) if name in run["metrics"] else "n/a"


def _with_interval(run: dict, name: str) -> str:
    if name not in run["metrics"]:
        return "n/a"
    value = run["metrics"][name]
    if name == "rsum" and run.get("ties", {}).get("tied_queries"):
        return f"{_fmt(value)} ({_fmt(run['ties']['pessimistic']['rsum'])})"
    interval = run["intervals"].get(name)
    if not interval:
        return _fmt(value)
    # † marks an interval that misses its own estimate: the bootstrap distribution is shifted by the
    # estimator's bias (duplicated pairs inflate CKA/SVCCA/SAS when n is not ≫ d); see the note below.
    mark = "" if value is None or interval[0] <= value <= interval[1] else "†"
    return f"{_fmt(value)} [{_fmt(interval[0], 3)}, {_fmt(interval[1], 3)}]{mark}"


def _bottleneck(run: dict) -> str:
    """A plain-language reading of ΔSAS and its interval for one run."""
    delta = run["metrics"].get("sas_imbalance")
    if delta is None:
        return "no ΔSAS: image and text live in spaces of different dimension"
    text_loses = "the text recovers less of the image's dominant eigenspace than the reverse: text is the bottleneck"
    image_loses = "the image recovers less of the text's dominant eigenspace than the reverse: image is the bottleneck"
    reading = text_loses if delta > 0 else image_loses
    interval = run["intervals"].get("sas_imbalance")
    if interval is None:
        reason = run.get("no_interval", {}).get("sas_imbalance")
        if reason is None:
            return f"ΔSAS = {delta:+.3f}: {reading} (no interval: bootstrap off)"
        side = "text" if delta > 0 else "image"
        if "not identified" in reason:  # the details are under "Metrics without an interval"
            reason = "the eigenmodes SAS reads are not identified at this n, so no interval is calibrated"
        return (
            f"ΔSAS = {delta:+.3f}: inconclusive — the estimate points at the {side} as the bottleneck, but {reason} "
            "(the coverage harness saw every interval fail in such regimes)"
        )
    method = run.get("interval_methods", {}).get("sas_imbalance")
    bounds = f"95% interval [{interval[0]:+.3f}, {interval[1]:+.3f}]{_calibration_note(run, 'sas_imbalance', method)}"
    if interval[0] <= 0 <= interval[1]:
        return f"ΔSAS = {delta:+.3f}, {bounds} includes 0: no clear bottleneck"
    return f"ΔSAS = {delta:+.3f}, {bounds}: {reading}"


VERDICT_HEADLINES = {
    "image": "image is the bottleneck",
    "text": "text is the bottleneck",
    "none": "no bottleneck detected",
    "inconclusive": "inconclusive",
}


def _verdict(run: dict) -> str:
    """The run's verdict in one sentence (report.json's ``verdict``), or why there is none."""
    verdict = run.get("verdict")
    if not verdict:
        return "no verdict (a report from a version without one)"
    return f"**{VERDICT_HEADLINES[verdict['bottleneck']]}** — {_md(verdict['reason'])}"


def _markdown_verdicts(runs: Sequence[dict]) -> list[str]:
    """The section report.md leads with: per run the verdict, then the per-mode ΔSAS's own reading."""
    lines = [
        "## Which modality is the bottleneck?",
        "",
        "The verdict reads the subspace imbalance ΔS = S img→txt − S txt→img: each tower's top-q eigen*subspace*,",
        "never single eigenmodes, so it stays defined where eigenvalues are too close to tell modes apart (then",
        "per-mode SAS is not). It equals ΔSAS when the two covariances share eigenvectors; ΔS > 0 names the text.",
        "The interval is measured against planted models of known imbalance (docs/verdict.md). The per-mode ΔSAS",
        "(the paper's metric) follows as a descriptive number.",
        "",
    ]
    for r in runs:
        lines.append(f"- **{_run_name(r)}** ({_md(r['domain'])}): {_verdict(r)}. Per-mode {_bottleneck(r)}.")
    return [*lines, ""]


def _calibration_note(run: dict, name: str, method: str | None) -> str:
    """The interval's method and what the coverage harness measured for it in the regime most like this run's
    (docs/uncertainty.md#calibration), e.g. " (normal; in the coverage harness it covered the true value in 99% of
    100 planted repeats at n = 5,000, d = 64)"."""
    if method is None:
        return ""
    # The harness scored SAS intervals only where the diagnostic called them identified: quote it only for such runs.
    verdicts = run.get("identifiability", {})
    if name.startswith("sas_") and not (verdicts and all(v["identified"] for v in verdicts.values())):
        return f" ({method})"
    measured = harness_coverage(name, run["n_captions"], run["dim"])
    if measured is None or measured["method"] != method:
        return f" ({method})"
    return (
        f" ({method}; in the coverage harness it covered the true value in {100 * measured['coverage']:.0f}% of "
        f"{measured['repeats']} planted repeats at n = {measured['n']:,}, d = {measured['d']})"
    )


def _markdown_missing_intervals(runs: Sequence[dict]) -> list[str]:
    """Why a metric has no interval: the other metrics once per reason (with the runs it applies to when not all of
    them); SAS once per run, with the identifiability verdict of each anchor it could not use."""
    by_reason: dict[tuple[str, str], list[str]] = {}
    sas_lines = []
    for r in runs:
        label = _run_name(r)
        missing = [
            name
            for name, reason in r.get("no_interval", {}).items()
            if name.startswith("sas_") and "not identified" in reason
        ]
        for name, reason in r.get("no_interval", {}).items():
            if name not in missing:
                by_reason.setdefault((name, reason), []).append(label)
        if missing:
            anchors = {"x": "image (SAS img→txt)", "y": "text (SAS txt→img)"}
            verdicts = "; ".join(
                f"{anchors[a]}: {v['reason']}" for a, v in r.get("identifiability", {}).items() if not v["identified"]
            )
            sas_lines.append(f"- **{', '.join(missing)}** ({label}): eigenmodes not identified at this n — {verdicts}")
    if not by_reason and not sas_lines:
        return []
    lines = ["## Metrics without an interval", ""]
    for (name, reason), names in by_reason.items():
        where = "every run" if len(names) == len(runs) else ", ".join(names)
        lines.append(f"- **{name}** ({where}): {reason}")
    return [*lines, *sas_lines, ""]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def render_markdown(report: dict) -> str:
    """report.md: the tables a person reads, built from the JSON report."""
    runs, cross = report["runs"], report["cross_run"]
    failed = report.get("failed_runs", [])
    settings = report["settings"]
    counted = _plural(len(runs), "run") + (f" ({len(failed)} more failed, listed below)" if failed else "")
    interval = settings.get("interval", "percentile")
    if interval == "calibrated":
        brackets = [
            "ΔSAS = SAS img→txt − SAS txt→img > 0 means the text side loses image structure. Brackets: 95%",
            "intervals, each metric by the method that measured calibrated for it against known truth",
            "(docs/uncertainty.md#calibration): normal for ΔSAS (where its eigenmodes are identified) and the gap",
            "family, basic for CORAL, the grouped jackknife for unbiased CKA. A metric without one is listed under",
            '"Metrics without an interval", with the reason.',
        ]
    else:
        brackets = [
            "ΔSAS = SAS img→txt − SAS txt→img > 0 means the text side loses image structure. Brackets: bootstrap",
            f"95% intervals ({interval}, for every metric) over resampled pairs. No single method is calibrated",
            "for every metric and regime (docs/uncertainty.md#calibration); the default, interval =",
            '"calibrated", picks each metric\'s own.',
        ]
    lines = [
        "# torchspectral audit",
        "",
        f"Manifest: {_md(report['manifest'])} — {counted}. Settings: "
        + ", ".join(f"{k} = {v}" for k, v in settings.items()),
        "",
        "Image = x, text = y. SAS img→txt asks how much of the image's dominant eigenspace the text recovers;",
        *brackets,
        "† marks an interval that misses its own estimate (resampling duplicates pairs, which biases CKA, SVCCA",
        "and SAS when n is not much larger than d).",
        "Retrieval (rSum, R@K) counts tied similarity scores optimistically: only a strictly higher score ranks",
        "ahead of the true match. Where ties occur, the pessimistic figure follows in parentheses (a tied wrong",
        "item ranks ahead); the source paper's own code lands between the two.",
        "",
    ]
    lines += _markdown_verdicts(runs)
    lines += ["## Runs", ""]
    header = ["model", "dataset", "domain", "images", "captions", *(h for _, h in HEADLINE)]
    rows = [
        [_md(r["model"]), _md(r["dataset"]), _md(r["domain"]), r["n_images"], r["n_captions"]]
        + [_with_interval(r, key) for key, _ in HEADLINE]
        for r in runs
    ]
    lines += _table(header, rows)
    if any(key not in r["metrics"] for r in runs for key, _ in HEADLINE):
        lines += ["n/a: not defined for that run — its image and text embeddings differ in dimension, so only the",
                  "metrics that compare two spaces (CKA, SVCCA) are computed.", ""]  # fmt: skip
    lines += _markdown_presets(runs, settings.get("presets", ["default"]))
    lines += _markdown_ties(runs)
    lines += _markdown_missing_intervals(runs)
    lines += _markdown_failures(failed)
    if cross.get("note"):
        lines += ["## Across runs", "", f"Omitted: {cross['note']}.", ""]
    else:
        lines += _markdown_statistics(cross)
    lines += _markdown_extremes(runs)
    if report["plots"]:
        lines += ["## Plots", ""]
        lines += [f"![{name}]({path})" for name, path in report["plots"].items()] + [""]
    lines += _markdown_timings(report["timings"], runs)
    return "\n".join(lines)


def _markdown_presets(runs: Sequence[dict], presets: Sequence[str]) -> list[str]:
    """With several presets: the metrics whose settings a preset changes, one column per (metric, preset)."""
    if len(presets) < 2:
        return []
    changed = list(dict.fromkeys(name for preset in presets for name in PRESETS[preset]))

    def key(name: str, preset: str) -> str:
        return name if preset == presets[0] else f"{preset}/{name}"

    lines = ["## Metrics under each preset", ""]
    for preset in presets:
        described = "; ".join(
            f"{name} " + ", ".join(f"{k}={v}" for k, v in options.items()) for name, options in PRESETS[preset].items()
        )
        lines.append(f"- **{preset}**: {described}")
    lines.append("")
    header = ["model", "dataset", *(f"{name.upper()} ({preset})" for name in changed for preset in presets)]
    rows = [
        [
            _md(r["model"]),
            _md(r["dataset"]),
            *(_metric_cell(r, key(name, preset)) for name in changed for preset in presets),
        ]
        for r in runs
    ]
    return lines + _table(header, rows)


def _markdown_ties(runs: Sequence[dict]) -> list[str]:
    tied = [r for r in runs if r.get("ties", {}).get("tied_queries")]
    if not tied:
        return []
    lines = ["## Tied retrieval scores", "",
             "Queries whose rank depends on the tie rule, and retrieval under both rules (optimistic / pessimistic):",
             ""]  # fmt: skip
    keys = ("rsum", "i2t_r1", "t2i_r1")
    rows = []
    for r in tied:
        pessimistic = r["ties"]["pessimistic"]
        cells = [f"{_fmt(r['metrics'][k])} / {_fmt(pessimistic[k])}" for k in keys]
        rows.append([_run_name(r), r["ties"]["tied_queries"], *cells])
    return lines + _table(["run", "tied queries", "rSum", "i2t R@1", "t2i R@1"], rows)


def _markdown_failures(failed: Sequence[dict]) -> list[str]:
    if not failed:
        return []
    lines = [
        "## Failed runs",
        "",
        "These runs could not be analysed and are in no table or statistic above or below:",
        "",
    ]
    lines += [f"- **{_run_name(f)}** ({_md(f['domain'])}): {_md(f['reason'])}" for f in failed]
    return [*lines, ""]


def _markdown_extremes(runs: Sequence[dict]) -> list[str]:
    if not any(r["extremes"] for r in runs):
        return []
    lines = [
        "## Best- and worst-aligned pairs (instance-level SAS img→txt)",
        "",
        "Per-pair SAS from a prior fitted on the run (decompose mode: the scores average to the run's SAS).",
        "Unlike the run's SAS, a per-pair score is not bounded to [0, 1] (docs/definitions.md#instance-sas): it is",
        "one pair's term of the average, and may be negative or above 1. Each entry is `caption (image): score`;",
        "look at the worst pairs first.",
        "",
    ]

    def entries(items: list[dict]) -> str:
        return ", ".join(f"{i['caption']} ({i['image']}): {i['score']:.3g}" for i in items)

    rows = [
        [_run_name(r), entries(r["extremes"]["top"]), entries(r["extremes"]["bottom"])] for r in runs if r["extremes"]
    ]
    return lines + _table(["run", "best aligned", "worst aligned"], rows)


def _markdown_timings(timings: dict[str, float], runs: Sequence[dict]) -> list[str]:
    lines = ["## Where the time went", ""]
    lines += _table(["stage", "seconds"], [[k, round(v, 2)] for k, v in timings.items()])
    stages = list(dict.fromkeys(stage for r in runs for stage in r["timings"]))
    rows = [[_run_name(r), *(round(r["timings"].get(s, 0.0), 2) for s in stages)] for r in runs]
    return lines + _table(["run", *stages], rows)


def _p(test: dict) -> str:
    if test.get("p") is None:
        return f"– ({test.get('reason')})"
    return f"{test['p']:.3g}{test['stars']}"


def _mean_std(summary: dict) -> str:
    if summary.get("mean") is None:
        return "–"
    std = summary.get("std")
    return _fmt(summary["mean"]) + (f" ± {_fmt(std, 2)}" if std is not None else "")


def _markdown_imbalance(tests: dict) -> list[str]:
    lines = ["## Directional imbalance across runs (ΔSAS)", ""]
    rows = [
        [_md(domain), t["n"], _mean_std(t), _fmt(t.get("t")), _p(t), f"{t['n_positive']}/{t['n']}"]
        for domain, t in tests["domains"].items()
    ]
    lines += ["One-sample t-test of ΔSAS against 0 per domain:", ""]
    lines += _table(["domain", "runs", "ΔSAS mean ± std", "t", "p", "ΔSAS > 0"], rows)
    greater = tests["greater"]
    lines += [f"Mann–Whitney U, ΔSAS {_md(greater['a'])} > {_md(greater['b'])} (one-sided): "
              f"U = {_fmt(greater.get('u'))}, p = {_p(greater)}.", ""]  # fmt: skip
    rows = [[_md(name), _md(d["domain"]), d["n"], _mean_std(d), "yes" if d["all_positive"] else "no"]
            for name, d in tests["datasets"].items()]  # fmt: skip
    return lines + _table(["dataset", "domain", "runs", "ΔSAS mean ± std", "all > 0?"], rows)


def _markdown_statistics(cross: dict) -> list[str]:
    """The cross-run analyses (docs/definitions.md#statistics; the source paper's experiments 1–4) as markdown
    tables."""
    lines = _markdown_imbalance(cross["imbalance_tests"]) if cross["imbalance_tests"] else []
    comparison = cross["domain_comparison"]
    if comparison:
        # Rows may cover different runs (a metric is compared over the runs that have it), so columns are by name.
        domains = list(dict.fromkeys(d for row in comparison for d in row["domains"]))
        pairs = list(dict.fromkeys((t["a"], t["b"]) for row in comparison for t in row["tests"]))
        lines += ["## Domains compared, per metric", "", "Mean ± std over runs; two-sided Mann–Whitney U.", ""]
        rows = []
        for row in comparison:
            tests = {(t["a"], t["b"]): t for t in row["tests"]}
            rows.append([
                row["metric"],
                *(_mean_std(row["domains"][d]) if d in row["domains"] else "n/a" for d in domains),
                *(_p(tests[pair]) if pair in tests else "n/a" for pair in pairs),
            ])  # fmt: skip
        header = ["metric", *map(_md, domains), *(f"p ({_md(a)} vs {_md(b)})" for a, b in pairs)]
        lines += _table(header, rows)

    sweep = cross["q_sweep_by_domain"]
    if sweep:
        domains = list(sweep["domains"])
        lines += ["## q-sweep per domain", "", "Mean SAS over the domain's runs at every active-set fraction q.", ""]
        header = ["q", *(f"{_md(d)} {k}" for d in domains for k in ("img→txt", "txt→img", "ΔSAS"))]
        rows = []
        for i, q in enumerate(sweep["q"]):
            row = [q]
            for d in domains:
                entry = sweep["domains"][d]
                row += [entry[key]["mean"][i] for key in ("sas_x_to_y", "sas_y_to_x", "sas_imbalance")]
            rows.append(row)
        lines += _table(header, rows)

    correlations = cross["retrieval_correlations"]
    if correlations:
        lines += ["## Which metrics predict retrieval?", "",
                  "Spearman ρ of each metric with rSum over runs, pooled and within each domain (full set of "
                  "targets — rSum, R@1 and per-direction sums — in report.json).", ""]  # fmt: skip
        strata = list(dict.fromkeys(c["stratum"] for c in correlations))
        table: dict[str, dict[str, str]] = {}
        for c in correlations:
            if c["target"] != "rsum":
                continue
            cell = "–" if c["rho"] is None else f"{c['rho']:+.2f}{c['stars']}"
            table.setdefault(c["metric"], {})[c["stratum"]] = f"{cell} (n={c['n']})"
        rows = [[metric, *(cells.get(s, "–") for s in strata)] for metric, cells in table.items()]
        lines += _table(["metric", *map(_md, strata)], rows)
    return lines
