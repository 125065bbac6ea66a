"""Coverage of the bootstrap's interval methods against known truth (issue 13): not a timed test.

The planted models, their population values (the package's formulas on exact population covariances, checked
against closed forms) and the scoring of a repeat are in ``tests/planted_coverage.py``, which the tests share.

**The calibrated default** (``method="calibrated"``, :mod:`torchspectral.uncertainty.calibrated`) is scored as a
user gets it: each metric's method, SAS only in the repeats the identifiability diagnostic calls identified (with
the default's resample count). The digest the audit quotes comes from the default-only pass with more repeats,
``benchmarks/calibration/coverage_default.py``.

**Per repeat** fresh data (float64, seeded by regime and repeat), then one ``ts.bootstrap(..., method="bca")``
(engine default): its B replicates and G group-deleted values give every interval method on the same resamples
(:func:`torchspectral.uncertainty.intervals.interval`, the function ``ts.bootstrap`` itself uses; tests check they
agree). Per metric × method × regime: coverage of the nominal 95% interval, misses below/above, mean width over
the estimator's true sd (the sd of the estimates over the repeats), and per metric the estimator's bias and RMSE,
and the RMSE of the bootstrap- and jackknife-bias-corrected estimates (is a correction worth reporting?).

Run: ``make coverage`` (the committed settings; about 18 minutes on 2 cores), ``--quick`` for a smoke run
(seconds, writes nothing unless ``--out``). Repeats run in chunks, round-robin over the regimes, on ``--workers``
processes of one thread each, until ``--budget-min``: a regime that did not finish reports the repeats it did.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # planted_coverage: the models and scoring the tests share
from planted_coverage import (  # noqa: E402
    ALL_REGIMES,
    DIAGNOSTIC_KEYS,
    METHODS,
    METRICS,
    POPULATION_N,
    QUICK,
    REGIMES,
    Regime,
    active_count,
    closed_form,
    one_repeat,
    planted,
    population_values,
    summarise,
    svcca_kept,
)
from runner import add_run_arguments, band_cell, machine, run_repeats, run_settings  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "coverage-cpu-2core.json"


def run_chunk(regime: Regime, repeats: list[int], n_boot: int, groups: int, deadline: float) -> list[dict]:
    """Repeats of one regime until the wall-clock deadline (time.time()); the ones done, with their index."""
    model = planted(regime)
    done = []
    for repeat in repeats:
        if time.time() > deadline:
            break
        started = time.perf_counter()
        try:
            run = one_repeat(regime, model, repeat, n_boot, groups)
        except Exception as error:  # one failed repeat is reported, not the end of the run
            done.append({"repeat": repeat, "error": repr(error)})
            continue
        # "seconds": the ts.bootstrap call (B replicates + G jackknife evaluations); "total_seconds": with the
        # data, the five methods' intervals and the identifiability diagnostic.
        done.append({"repeat": repeat, **run, "total_seconds": time.perf_counter() - started})
    return done


def default_table(results: dict, low: float = 0.92, high: float = 0.99) -> str:
    """The calibrated default per metric and regime: coverage % (repeats with an interval / repeats)."""
    regimes = {k: v for k, v in results["regimes"].items() if v["metrics"]}
    names = list(regimes)
    lines = [f"The calibrated default (`method=\"calibrated\"`): coverage % of the repeats in which it gives an "
             f"interval (those repeats / all; SAS only where identified). In [{100 * low:.0f}, {100 * high:.0f}]: "
             "plain; outside: bold.", "",
             "| metric | method | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]  # fmt: skip
    for metric in METRICS:
        cells, method = [], None
        for k in names:
            entry = regimes[k]["metrics"].get(metric)
            if entry is None:
                cells.append("—")
                continue
            default = entry["default"]
            method = default["method"] or "none"
            if not default["repeats"]:
                cells.append(f"no interval (0/{regimes[k]['repeats_done']})")
                continue
            value = band_cell(default["coverage"], 0, low, high)
            cells.append(f"{value} ({default['repeats']}/{regimes[k]['repeats_done']})")
        lines.append(f"| {metric} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def methods_summarised(results: dict) -> list[str]:
    """The METHODS a results JSON holds (one made before a method existed lacks it)."""
    regime = next(v for v in results["regimes"].values() if v["metrics"])
    return [method for method in METHODS if method in next(iter(regime["metrics"].values()))["methods"]]


def markdown(results: dict) -> str:
    """One table: a row per regime × metric, coverage (width/sd) per method, then bias (sd)."""
    methods = methods_summarised(results)
    head = "| regime | R | metric | truth | " + " | ".join(methods) + " | bias (sd) |"
    lines = [head, "|" + "---|" * (len(methods) + 5)]
    for name, regime in results["regimes"].items():
        for metric, entry in regime["metrics"].items():  # the metrics this regime bootstrapped
            cells = [
                f"{100 * m['coverage']:.0f}% ({m['width_over_sd']:.2f})" for m in (entry["methods"][k] for k in methods)
            ]
            lines.append(
                f"| {name} | {regime['repeats_done']} | {metric} | {entry['truth']:.4g} | "
                + " | ".join(cells)
                + f" | {entry['bias']:+.3g} ({entry['sd']:.2g}) |"
            )
    return "\n".join(lines)


README_METRICS = (
    "sas_x_to_y", "sas_y_to_x", "sas_imbalance", "cka_linear", "cka_linear_unbiased", "svcca", "coral",
    "modality_gap", "true_pair_cosine", "rmg",
)  # fmt: skip


def readme_tables(results: dict) -> str:
    """The README's Calibration tables: coverage (width/sd) per metric × method by regime; bias; identifiability."""
    methods = methods_summarised(results)
    regimes = {k: v for k, v in results["regimes"].items() if v["metrics"]}
    names = list(regimes)
    head = "| metric | method | " + " | ".join(names) + " |"
    rule = "|---|---|" + "---|" * len(names)
    repeats = "| | repeats R | " + " | ".join(str(regimes[k]["repeats_done"]) for k in names) + " |"
    cost = "| | s / repeat | " + " | ".join(f"{regimes[k]['seconds_per_repeat']:.1f}" for k in names) + " |"
    lines = [default_table(results), "",
             "Coverage of the nominal 95% interval, % of R repeats (mean width / true sd of the estimator):", "",
             head, rule, repeats, cost]  # fmt: skip
    for metric in README_METRICS:
        for method in methods:
            cells = []
            for k in names:
                if metric not in regimes[k]["metrics"]:
                    cells.append("—")
                    continue
                m = regimes[k]["metrics"][metric]["methods"][method]
                cells.append(f"{100 * m['coverage']:.0f} ({m['width_over_sd']:.2f})")
            lines.append(f"| {metric} | {method} | " + " | ".join(cells) + " |")
    lines += ["", "Estimator bias (its sd over the repeats); RMSE of the bootstrap-bias-corrected estimate over the "
              "plain RMSE (< 1: the correction helps):", "", "| metric | " + " | ".join(names) + " |",
              "|---|" + "---|" * len(names)]  # fmt: skip
    for metric in README_METRICS:
        cells = []
        for k in names:
            if metric not in regimes[k]["metrics"]:
                cells.append("—")
                continue
            e = regimes[k]["metrics"][metric]
            ratio = e["rmse_bootstrap_corrected"] / e["rmse"] if e["rmse"] > 0 else float("nan")
            cells.append(f"{e['bias']:+.2g} ({e['sd']:.2g}); {ratio:.2f}")
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    lines += ["", "SAS identifiability diagnostic (fraction of repeats called identified, x / y anchor) and SAS x→y "
              "coverage (percentile / basic / normal / bca) among the identified repeats:", "",
              "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]  # fmt: skip
    fractions, conditional = [], []
    for k in names:
        ident = regimes[k]["identifiability"]
        fractions.append(f"{ident['x']['identified_fraction']:.2f} / {ident['y']['identified_fraction']:.2f}")
        when = regimes[k]["metrics"]["sas_x_to_y"].get("coverage_when_identified", {})
        count = regimes[k]["metrics"]["sas_x_to_y"].get("identified_repeats", 0)
        if count:
            conditional.append(
                " / ".join(f"{100 * when[m]:.0f}" for m in ("percentile", "basic", "normal", "bca")) + f" (of {count})"
            )
        else:
            conditional.append("none identified")
    lines.append("| identified x / y | " + " | ".join(fractions) + " |")
    lines.append("| SAS x→y coverage when identified | " + " | ".join(conditional) + " |")
    lines += ["", summary_table(results)]
    return "\n".join(lines)


def summary_table(results: dict, low: float = 0.92, high: float = 0.99) -> str:
    """Per metric × method over the regimes run: how many have coverage in [low, high], the range, the median
    width/sd — the evidence for a per-metric default."""
    methods = methods_summarised(results)
    regimes = [v for v in results["regimes"].values() if v["metrics"]]
    lines = [f"Per metric and method, over the {len(regimes)} regimes: regimes with coverage in "
             f"[{100 * low:.0f}%, {100 * high:.0f}%], coverage range, median width/sd:", "",
             "| metric | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]  # fmt: skip
    for metric in README_METRICS:
        cells = []
        held = [r for r in regimes if metric in r["metrics"]]
        if not held:
            continue
        for method in methods:
            cov = [r["metrics"][metric]["methods"][method]["coverage"] for r in held]
            width = [r["metrics"][metric]["methods"][method]["width_over_sd"] for r in held]
            inside = sum(low <= c <= high for c in cov)
            cells.append(f"{inside}/{len(cov)}: {100 * min(cov):.0f}–{100 * max(cov):.0f}%, {np.median(width):.2f}")
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _read_raw(path: Path) -> str:
    """An earlier run's repeats (``--raw``), plain or gzipped (the committed ones are gzipped)."""
    if path.suffix == ".gz":
        import gzip

        return gzip.decompress(path.read_bytes()).decode()
    return path.read_text()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_run_arguments(parser, budget_min=12.0, results=RESULTS)
    parser.add_argument("--tables-from", type=Path, default=None, help="print the README tables of a results JSON")
    parser.add_argument("--raw", type=Path, default=Path("/tmp/coverage-raw.json"), help="every repeat's numbers")
    parser.add_argument(
        "--from-raw",
        type=Path,
        default=None,
        help="summarise the repeats of an earlier --raw (.json or .json.gz; the committed runs: "
        "benchmarks/results/coverage-raw-*.json.gz)",
    )
    args = parser.parse_args(argv)
    if args.tables_from is not None:
        results = json.loads(args.tables_from.read_text())
        print(readme_tables(results))
        return results
    if args.quick:
        regimes, n_boot, groups = list(QUICK), 40, 10
    else:
        regimes, n_boot, groups = list(REGIMES), args.n_boot, args.groups
    if args.regimes:
        unknown = [r for r in args.regimes if r not in ALL_REGIMES]
        if unknown:
            parser.error(f"unknown regimes {unknown}; choose from {list(ALL_REGIMES)}")
        regimes = [ALL_REGIMES[r] for r in args.regimes]
    if args.repeats is not None:
        regimes = [replace(r, repeats=args.repeats) for r in regimes]
    out_path = args.out if args.out is not None else (None if args.quick else RESULTS)

    truths, closed = {}, {}
    for regime in regimes:
        model = planted(regime)
        truths[regime.name], closed[regime.name] = population_values(regime, model), closed_form(model)
        for name in closed[regime.name]:  # the population construction agrees with the closed form
            gap = abs(truths[regime.name][name] - closed[regime.name][name])
            if gap > 1e-9:
                raise AssertionError(f"{regime.name} {name}: package {truths[regime.name][name]} vs closed form")

    runs: dict[str, list[dict]]
    if args.from_raw is not None:  # summarise an earlier run's repeats again
        raw = json.loads(_read_raw(args.from_raw))
        runs, wall = raw["runs"], raw["wall_seconds"]
    else:
        runs, wall = run_repeats(run_chunk, regimes, n_boot, groups, args.chunk, args.workers, args.budget_min)
        # Every repeat's numbers, before any summary (the summary can be redone from them: --from-raw).
        args.raw.write_text(json.dumps({"runs": runs, "wall_seconds": wall}) + "\n")
    errors = {name: [run for run in v if "error" in run] for name, v in runs.items()}
    runs = {name: [run for run in v if "error" not in run] for name, v in runs.items()}

    results: dict = {
        "settings": run_settings(
            n_boot,
            groups,
            args.workers,
            args.budget_min,
            engine="algebraic (ts.bootstrap default)",
            methods=list(METHODS),
            population_n=POPULATION_N,
        ),
        "machine": machine(),
        "wall_seconds": wall,
        "regimes": {},
    }
    for regime in regimes:
        done = sorted(runs[regime.name], key=lambda run: run["repeat"])
        model = planted(regime)
        entry = {
            **asdict(regime),
            "repeats_done": len(done),
            "active_modes": active_count(regime.d),
            "svcca_kept_population": [int(svcca_kept(model["alpha2"]).size), int(svcca_kept(model["beta2"]).size)],
            "top_eigenvalues_x": sorted(model["alpha2"].tolist(), reverse=True)[: active_count(regime.d) + 2],
            "seconds": float(sum(run["seconds"] for run in done)),
            "seconds_per_repeat": float(np.mean([run["seconds"] for run in done])) if done else None,
            "total_seconds": float(sum(run["total_seconds"] for run in done)),
            "bca_clipped": int(sum(run["bca_clipped"] for run in done)),
            "failed_repeats": errors.get(regime.name, []),
            "closed_form": closed[regime.name],
            "identifiability": {
                anchor: {
                    "identified_fraction": (
                        float(np.mean([run["identifiability"][anchor]["identified"] for run in done])) if done else None
                    ),
                    **{
                        f"median_{key}": float(np.median([run["identifiability"][anchor][key] for run in done]))
                        if done
                        else None
                        for key in DIAGNOSTIC_KEYS
                    },
                }
                for anchor in ("x", "y")
            },
        }
        if len(done) >= 2:
            entry["metrics"] = summarise(regime, truths[regime.name], done)
        else:
            entry["metrics"] = {}
        results["regimes"][regime.name] = entry
    table = markdown(results)
    print(table)
    print(f"\nwall {wall:.0f} s; repeats done: { ({k: v['repeats_done'] for k, v in results['regimes'].items()}) }")
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {out_path}")
    return results


if __name__ == "__main__":
    main()
