"""The calibrated default's coverage as a user gets it, with many repeats (issue 13): not a timed test.

``benchmarks/coverage.py`` compares every interval method on the same resamples; that costs every method's
replicates (SAS ones included) in every repeat, so its expensive regimes got 10–40 repeats, and at 20 repeats an
observed 100% is what a true 95% gives 36% of the time. This pass scores only what ``ts.bootstrap`` returns at its
default, ``method="calibrated"``, with the interval the user gets for each metric (or none, and why), on the same
planted models, population values and samples as the full harness. It draws only the replicates the default needs
(no SAS replicate where ΔSAS is not identified), so it affords ≥ 100 repeats in every regime, d = 768 included.

Per metric × regime: coverage of the 95% interval among the repeats that got one, its Clopper–Pearson 95%
interval (is an observed 100% or 91% distinguishable from 95% at this R?), misses below/above, mean width over the
estimator's true sd, bias over sd; per regime the seconds of the ``ts.bootstrap`` call (its cost to a user).

It writes ``benchmarks/results/coverage-default-cpu-2core.json``, every repeat's numbers gzipped beside it, and the
digest the audit quotes (``torchspectral/uncertainty/calibration.json``). Run: ``make coverage-default``.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
from scipy import stats

from torchspectral.uncertainty import CALIBRATED_METHODS


def _load_harness():
    """The full harness (``coverage.py``) under its own name: ``import coverage`` could find coverage.py the
    package. Registered in sys.modules, so its Regime pickles to the spawned workers (which run this file first)."""
    name = "coverage_harness"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("coverage.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


harness = _load_harness()
ALL_REGIMES, CONFIDENCE, HEAVY, METRICS = harness.ALL_REGIMES, harness.CONFIDENCE, harness.HEAVY, harness.METRICS
Q_ACTIVE, QUICK, REGIMES = harness.Q_ACTIVE, harness.QUICK, harness.REGIMES
planted, population_values, sample = harness.planted, harness.population_values, harness.sample

RESULTS = Path(__file__).resolve().parent / "results" / "coverage-default-cpu-2core.json"
DIGEST = Path(__file__).resolve().parent.parent / "torchspectral" / "bootstrap" / "calibration.json"
RAW_SCRATCH = Path("/tmp/coverage-default-raw.json.gz")  # the repeats of a run that writes no results file
# Every regime of the full harness, d = 768 included; 200 repeats each except where one costs > 5 s.
REPEATS = {r.name: 200 for r in REGIMES + HEAVY} | {"check-d128-n10000-scaled": 100, "d768-n5000-lossy": 100}
# SVCCA has no calibrated interval and its estimate is in the full harness; leaving it out keeps every other
# metric on the cheaper (non-weighted) replicate path, as it is for a user who does not ask for it.
DEFAULT_METRICS = tuple(m for m in METRICS if m != "svcca")
LOW, HIGH = 0.92, 0.99  # the acceptance band for the default's coverage


def one_repeat(
    regime, model: dict[str, np.ndarray], repeat: int, n_boot: int, groups: int, metrics=DEFAULT_METRICS
) -> dict:
    """The default ``ts.bootstrap`` on one fresh sample: per metric its estimate and interval (or the reason)."""
    import torchspectral as ts

    x, y = sample(regime, model, repeat)
    started = time.perf_counter()
    result = ts.bootstrap(x, y, list(metrics), n_boot=n_boot, seed=repeat, q=Q_ACTIVE, groups=groups)
    seconds = time.perf_counter() - started
    if result.method != "calibrated":
        raise AssertionError(f"ts.bootstrap's default method is {result.method!r}, not 'calibrated'")
    per_metric = {}
    for name in metrics:
        given = name in result.low
        per_metric[name] = {
            "estimate": result.estimate[name],
            "method": result.methods.get(name),
            "interval": [result.low[name], result.high[name]] if given else None,
            "reason": result.no_interval.get(name),
        }
    ident = result.identifiability
    return {
        "seconds": seconds,
        "metrics": per_metric,
        "identified": {a: bool(getattr(ident, a).identified) for a in ("x", "y")} if ident is not None else None,
    }


def run_chunk(
    regime, repeats: list[int], n_boot: int, groups: int, deadline: float, metrics=DEFAULT_METRICS, first: int = 0
) -> list[dict]:
    """Repeats of one regime until the wall-clock deadline (seeded first + index); a failed one is reported."""
    model = planted(regime)
    done = []
    for repeat in (first + r for r in repeats):
        if time.time() > deadline:
            break
        try:
            done.append({"repeat": repeat, **one_repeat(regime, model, repeat, n_boot, groups, metrics)})
        except Exception as error:
            done.append({"repeat": repeat, "error": repr(error)})
    return done


def replace_metrics(base: dict, replacements: list[tuple[str, dict]]) -> dict:
    """``base`` (a run's raw record) with the metrics of each replacement run swapped in, repeat by repeat.

    A replacement is a run of fewer metrics on the same seeded samples and resamples (same n_boot, groups; its
    repeats among the base's): after a change of one metric's default, it rescores that metric without rerunning
    the others, whose values depend only on their own methods. The result is refused unless it is what a complete
    run would give: every base repeat of a replaced metric is either replaced or got no interval in the base (a
    regime where SAS is never identified keeps its "no interval"), and the identifiability flags agree.
    The calls' seconds stay the base's; each replaced repeat also records the replacement call's seconds.
    """
    merged = json.loads(json.dumps(base))
    replaced: dict[str, set[tuple[str, int]]] = {}
    for label, record in replacements:
        for key in ("n_boot", "groups"):
            if record["settings"][key] != base["settings"][key]:
                raise ValueError(f"{label}: {key}={record['settings'][key]}, the base run's is {base['settings'][key]}")
        names = record["settings"]["metrics"]
        for regime, runs in record["runs"].items():
            by_repeat = {run["repeat"]: run for run in merged["runs"].get(regime, [])}
            for run in runs:
                target = by_repeat.get(run["repeat"])
                if "error" in run or target is None or "error" in target:
                    if "error" in run:
                        why = f"it failed: {run['error']}"
                    else:
                        why = "not in the base run" if target is None else f"the base's failed: {target['error']}"
                    raise ValueError(f"{label}: {regime} repeat {run['repeat']} cannot replace the base's ({why})")
                if run["identified"] != target["identified"]:
                    raise ValueError(f"{label}: {regime} repeat {run['repeat']}: identifiability differs from the base")
                for name in names:
                    target["metrics"][name] = run["metrics"][name]
                    replaced.setdefault(name, set()).add((regime, run["repeat"]))
                target.setdefault("seconds_replacements", []).append(run["seconds"])
    for name, done in replaced.items():
        for regime, runs in merged["runs"].items():
            for run in runs:
                if (regime, run["repeat"]) not in done and run["metrics"][name]["interval"] is not None:
                    raise ValueError(
                        f"{name} in {regime} repeat {run['repeat']}: its interval is the base run's (method "
                        f"{run['metrics'][name]['method']!r}) and no replacement covers it; rerun that repeat"
                    )
    merged["settings"]["replaced"] = {
        name: {"from": [label for label, _ in replacements], "repeats": len(done)} for name, done in replaced.items()
    }
    return merged


def clopper_pearson(covered: int, given: int) -> list[float]:
    """The exact 95% interval of a coverage observed as covered / given."""
    ci = stats.binomtest(covered, given).proportion_ci(confidence_level=0.95, method="exact")
    return [float(ci.low), float(ci.high)]


def summarise(truth: dict[str, float], runs: list[dict]) -> dict:
    """Per metric: coverage among the repeats given an interval, its exact CI, misses, width/sd, bias/sd."""
    out = {}
    for name in runs[0]["metrics"]:
        theta = truth[name]
        est = np.array([run["metrics"][name]["estimate"] for run in runs])
        sd = float(est.std(ddof=1))
        given = [run["metrics"][name] for run in runs if run["metrics"][name]["interval"] is not None]
        entry = {
            "truth": theta,
            "repeats": len(runs),
            "bias": float(est.mean() - theta),
            "sd": sd,
            "bias_over_sd": float((est.mean() - theta) / sd) if sd > 0 else float("nan"),
            "method": CALIBRATED_METHODS[name],
            "given": len(given),
            # Why the others got none (the first repeat's reason; SAS's quotes that repeat's eigengaps).
            "reason": next((run["metrics"][name]["reason"] for run in runs if run["metrics"][name]["reason"]), None),
        }
        if given:
            bounds = np.array([g["interval"] for g in given])
            covered = (bounds[:, 0] <= theta) & (theta <= bounds[:, 1])
            entry |= {
                "coverage": float(covered.mean()),
                "covered": int(covered.sum()),
                "coverage_ci": clopper_pearson(int(covered.sum()), len(given)),
                "miss_truth_below": int((theta < bounds[:, 0]).sum()),  # the interval sits above the truth
                "miss_truth_above": int((theta > bounds[:, 1]).sum()),
                "width_over_sd": float((bounds[:, 1] - bounds[:, 0]).mean() / sd) if sd > 0 else float("nan"),
            }
            if 2 <= len(given) < len(runs):  # ΔSAS where only some repeats are identified: also against their own sd
                sd_given = float(np.std([g["estimate"] for g in given], ddof=1))
                entry["width_over_sd_given"] = float((bounds[:, 1] - bounds[:, 0]).mean() / sd_given)
        out[name] = entry
    return out


def digest(results: dict) -> dict:
    """What the audit quotes: per regime, n, d and per metric the default's method, coverage and repeats given."""
    regimes = []
    for name, regime in results["regimes"].items():
        metrics = {
            metric: {"method": e["method"], "coverage": e["coverage"], "repeats": e["given"]}
            for metric, e in regime["metrics"].items()
            if e["given"]
        }
        if metrics:
            regimes.append({"name": name, "n": regime["n"], "d": regime["d"], "structure": regime["structure"],
                            "metrics": metrics})  # fmt: skip
    return {
        "what": "coverage of each metric's calibrated interval (ts.bootstrap's default) on planted models with known "
        "population values, among the repeats in which it gave one; benchmarks/coverage_default.py, "
        "docs/uncertainty.md#calibration",
        "confidence": results["settings"]["confidence"],
        "n_boot": results["settings"]["n_boot"],
        "regimes": regimes,
    }


def table(results: dict) -> str:
    """Metric × regime: coverage % (its exact 95% CI) and repeats given / run; bold outside [LOW, HIGH]."""
    regimes = {k: v for k, v in results["regimes"].items() if v["metrics"]}
    lines = ["| metric | method | " + " | ".join(regimes) + " |", "|---|---|" + "---|" * len(regimes)]
    lines.append("| | s / call | " + " | ".join(f"{v['seconds_per_repeat']:.2f}" for v in regimes.values()) + " |")
    for metric in next(iter(regimes.values()))["metrics"] if regimes else ():
        cells, method = [], "none"
        for v in regimes.values():
            e = v["metrics"][metric]
            method = e["method"] or method
            if not e["given"]:
                cells.append(f"— (0/{e['repeats']})")
                continue
            value = harness.band_cell(e["coverage"], 1, LOW, HIGH)
            low, high = e["coverage_ci"]
            cells.append(f"{value} [{100 * low:.0f}–{100 * high:.0f}] ({e['given']}/{e['repeats']})")
        lines.append(f"| {metric} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pooled(results: dict) -> dict:
    """Per metric over every regime: repeats given, covered, the pooled coverage and its exact CI, width/sd range."""
    out = {}
    for metric in DEFAULT_METRICS:
        cells = [v["metrics"][metric] for v in results["regimes"].values() if v["metrics"].get(metric, {}).get("given")]
        if not cells:
            continue
        given, covered = sum(e["given"] for e in cells), sum(e["covered"] for e in cells)
        widths = [e["width_over_sd"] for e in cells]
        out[metric] = {
            "regimes": len(cells),
            "given": given,
            "covered": covered,
            "coverage": covered / given,
            "coverage_ci": clopper_pearson(covered, given),
            "width_over_sd": [min(widths), max(widths)],
        }
    return out


def verdict(results: dict) -> str:
    """The (metric, regime) cells with an interval: how many lie in [LOW, HIGH]; of those outside, whether their
    exact 95% CI still meets the band (consistent with it at this R) or lies wholly outside (significantly out).

    With ~100 cells even an exactly calibrated 95% interval puts a few outside the band by Monte-Carlo error alone
    (a true 95% is observed below 92% with probability 2.4% at R = 200, 6.3% at R = 100; above 99% with 0.04% and
    0.6%), hence the second count and the expected number outside, printed with it."""
    inside, outside = 0, []
    for name, v in results["regimes"].items():
        for metric, e in v["metrics"].items():
            if not e["given"]:
                continue
            if LOW <= e["coverage"] <= HIGH:
                inside += 1
                continue
            low, high = e["coverage_ci"]
            status = "consistent with the band" if low <= HIGH and high >= LOW else "significantly outside the band"
            outside.append(
                f"{metric} in {name}: {100 * e['coverage']:.1f}% of {e['given']} (exact 95% CI "
                f"{100 * low:.1f}–{100 * high:.1f}%: {status}; width/sd {e['width_over_sd']:.2f})"
            )
    # The same classification of every possible count k of R, weighted by its probability under a true 95%.
    expected = sum(
        stats.binom.pmf(k, e["given"], 0.95)
        for v in results["regimes"].values()
        for e in v["metrics"].values()
        if e["given"]
        for k in range(e["given"] + 1)
        if not LOW <= k / e["given"] <= HIGH
    )
    lines = [f"{inside} of {inside + len(outside)} cells in [{LOW:.0%}, {HIGH:.0%}] (an exactly calibrated 95% "
             f"interval would leave {expected:.1f} outside on average at these repeat counts); outside:"]  # fmt: skip
    lines += [f"- {line}" for line in outside]
    lines.append("pooled over the regimes (coverage, exact 95% CI, width/sd range):")
    for metric, p in pooled(results).items():
        low, high = p["coverage_ci"]
        lines.append(f"- {metric}: {100 * p['coverage']:.1f}% of {p['given']} in {p['regimes']} regimes "
                     f"[{100 * low:.1f}–{100 * high:.1f}%], width/sd {p['width_over_sd'][0]:.2f}–"
                     f"{p['width_over_sd'][1]:.2f}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    harness.add_run_arguments(parser, budget_min=45.0, results=RESULTS)
    parser.add_argument("--from-raw", type=Path, default=None, help="summarise an earlier run's repeats (.json.gz)")
    parser.add_argument(
        "--replace-from",
        type=Path,
        nargs="+",
        default=(),
        help="with --from-raw: swap in these runs' metrics, repeat by repeat (replace_metrics); writes the merged raw",
    )
    parser.add_argument("--metrics", nargs="*", help=f"a subset of {list(DEFAULT_METRICS)} (default: all of them)")
    parser.add_argument("--first-repeat", type=int, default=0, help="seed the repeats first, first + 1, … (fresh data)")
    args = parser.parse_args(argv)
    if args.quick:
        regimes, n_boot, groups = [replace(r, repeats=4) for r in QUICK], 40, 10
    else:
        regimes = [replace(r, repeats=REPEATS[r.name]) for r in REGIMES + HEAVY]
        n_boot, groups = args.n_boot, args.groups
    if args.regimes:
        unknown = [r for r in args.regimes if r not in ALL_REGIMES]
        if unknown:
            parser.error(f"unknown regimes {unknown}; choose from {list(ALL_REGIMES)}")
        regimes = [replace(ALL_REGIMES[r], repeats=REPEATS.get(r, 4)) for r in args.regimes]
    if args.repeats is not None:
        regimes = [replace(r, repeats=args.repeats) for r in regimes]
    metrics = tuple(args.metrics) if args.metrics else DEFAULT_METRICS
    if set(metrics) - set(DEFAULT_METRICS):
        parser.error(f"unknown metrics {sorted(set(metrics) - set(DEFAULT_METRICS))}; choose from {DEFAULT_METRICS}")
    full = not (args.quick or args.regimes or args.repeats is not None or args.metrics or args.first_repeat)
    out_path = args.out if args.out is not None else (RESULTS if full else None)

    raw = json.loads(gzip.decompress(args.from_raw.read_bytes())) if args.from_raw is not None else {}
    if args.replace_from:
        if args.from_raw is None:
            parser.error("--replace-from needs --from-raw (the base run)")
        replacements = [(str(path), json.loads(gzip.decompress(path.read_bytes()))) for path in args.replace_from]
        raw = replace_metrics(raw, replacements)
    if "settings" in raw:  # summarise the run as it was made, whatever this command line says
        settings = raw["settings"]
        regimes = [replace(ALL_REGIMES[name], repeats=count) for name, count in settings["regimes"].items()]
        n_boot, groups, args.workers, args.budget_min = (
            settings[k] for k in ("n_boot", "groups", "workers", "budget_min")
        )
        metrics, args.first_repeat = tuple(settings.get("metrics", DEFAULT_METRICS)), settings.get("first_repeat", 0)
    # The population values (the gap family's from 2·10⁶ pairs per regime: minutes at d = 768), or the raw run's.
    truths = {r.name: raw["truths"][r.name] if "truths" in raw else population_values(r, planted(r)) for r in regimes}
    if args.from_raw is not None:
        runs, wall = raw["runs"], raw["wall_seconds"]
        if args.replace_from and out_path is not None:  # the merged repeats beside the results they summarise
            raw_path = out_path.with_name(out_path.name.replace(".json", "-raw.json.gz"))
            raw_path.write_bytes(gzip.compress(json.dumps(raw).encode()))
            print(f"wrote {raw_path}")
    else:
        chunk_runner = partial(run_chunk, metrics=metrics, first=args.first_repeat)
        runs, wall = harness.run_repeats(
            chunk_runner, regimes, n_boot, groups, args.chunk, args.workers, args.budget_min
        )
        # Every repeat, before any summary (which --from-raw can redo): beside the results, or in /tmp.
        raw_path = out_path.with_name(out_path.name.replace(".json", "-raw.json.gz")) if out_path else RAW_SCRATCH
        settings = {"regimes": {r.name: r.repeats for r in regimes}, "n_boot": n_boot, "groups": groups,
                    "workers": args.workers, "budget_min": args.budget_min, "metrics": list(metrics),
                    "first_repeat": args.first_repeat}  # fmt: skip
        record = {"runs": runs, "wall_seconds": wall, "truths": truths, "settings": settings}
        raw_path.write_bytes(gzip.compress(json.dumps(record).encode()))
        print(f"wrote {raw_path}")
    results: dict = {
        "settings": harness.run_settings(
            n_boot,
            groups,
            args.workers,
            args.budget_min,
            method="calibrated (ts.bootstrap's default method)",
            metrics=list(metrics),
            first_repeat=args.first_repeat,
            acceptance=[LOW, HIGH],
            replaced=raw.get("settings", {}).get("replaced"),  # metrics rescored by --replace-from
        ),
        "machine": harness.machine(),
        "wall_seconds": wall,
        "regimes": {},
    }
    for regime in regimes:
        done = sorted((run for run in runs[regime.name] if "error" not in run), key=lambda run: run["repeat"])
        identified = [run["identified"] for run in done if run["identified"] is not None]
        results["regimes"][regime.name] = {
            "n": regime.n, "d": regime.d, "structure": regime.structure, "seed": regime.seed,
            "repeats_asked": regime.repeats, "repeats_done": len(done),
            "failed_repeats": [run for run in runs[regime.name] if "error" in run],
            "seconds_per_repeat": float(np.mean([run["seconds"] for run in done])) if done else None,
            "identified_fraction": {a: float(np.mean([i[a] for i in identified])) if identified else None
                                    for a in ("x", "y")},
            "metrics": summarise(truths[regime.name], done) if len(done) >= 2 else {},
        }  # fmt: skip
    results["pooled"] = pooled(results)
    print(table(results))
    print(verdict(results))
    print(f"wall {wall:.0f} s")
    if out_path is not None:
        out_path.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {out_path}")
        if out_path.resolve() == RESULTS:
            # The audit quotes the digest: only a complete run may replace it.
            short = {
                k: v["repeats_done"] for k, v in results["regimes"].items() if v["repeats_done"] < v["repeats_asked"]
            }
            failed = {k: len(v["failed_repeats"]) for k, v in results["regimes"].items() if v["failed_repeats"]}
            if short or failed:
                print(f"digest NOT written: repeats short of those asked {short}, failed repeats {failed}")
            else:
                DIGEST.write_text(json.dumps(digest(results), indent=1) + "\n")
                print(f"wrote {DIGEST}")
    return results


if __name__ == "__main__":
    main()
