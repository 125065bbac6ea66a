"""What report.md tells a reader: the retrieval tie rule, every requested preset, n/a for undefined metrics,
cross-run sections only where they mean something, and which scores are unbounded."""

from __future__ import annotations

import json
import re

import torch

from torchspectral.audit.analysis import analyse_run
from torchspectral.audit.output import write_report


def _pairs(n: int, d: int, seed: int, d_y: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = x[:, : d_y or d] + 0.8 * torch.randn(n, d_y or d, generator=g)
    return x, y


def _markdown(tmp_path, runs, presets=("default",)) -> tuple[str, dict]:
    out = write_report(tmp_path / "report", runs, manifest="m.toml", settings={"presets": list(presets)},
                       stage_seconds={})  # fmt: skip
    return (out / "report.md").read_text(), json.loads((out / "report.json").read_text())


def test_tied_retrieval_scores_are_counted_and_both_rules_shown(tmp_path) -> None:
    x, y = _pairs(60, 8, 0)
    # Two images share one embedding: their captions tie between them, and the rule decides the ranks.
    x[1] = x[0]
    y[30] = y[31]
    tied = analyse_run("m", "d", "natural", x, y, n_boot=0, top_k=0)
    assert tied.ties["rule"] == "optimistic" and tied.ties["tied_queries"] > 0
    assert tied.ties["pessimistic"]["rsum"] < tied.metrics["rsum"]
    clean = analyse_run("m", "clean", "natural", *_pairs(60, 8, 1), n_boot=0, top_k=0)
    assert clean.ties == {"rule": "optimistic", "tied_queries": 0}
    markdown, _ = _markdown(tmp_path, [tied, clean])
    assert "counts tied similarity scores optimistically" in markdown
    assert "## Tied retrieval scores" in markdown
    section = markdown.split("## Tied retrieval scores")[1].split("##")[0]
    assert "m / d |" in section and "m / clean" not in section
    assert f"{tied.metrics['rsum']:.4g} ({tied.ties['pessimistic']['rsum']:.4g})" in markdown


def test_every_requested_preset_has_its_values_in_a_table(tmp_path) -> None:
    runs = [analyse_run("m", f"d{i}", "natural", *_pairs(80, 16, i), presets=("default", "paper"), n_boot=0, top_k=0)
            for i in range(2)]  # fmt: skip
    markdown, _ = _markdown(tmp_path, runs, presets=("default", "paper"))
    assert "## Metrics under each preset" in markdown
    table = markdown.split("## Metrics under each preset")[1].split("\n## ")[0]
    for header in ("SVCCA (default)", "SVCCA (paper)", "CORAL (paper)", "MMD (default)", "MMD (paper)"):
        assert header in table
    assert f"{runs[0].metrics['paper/svcca']:.4g}" in table and f"{runs[0].metrics['svcca']:.4g}" in table
    single, _ = _markdown(tmp_path / "one", runs)
    assert "## Metrics under each preset" not in single


def test_a_run_with_different_dimensions_is_reported_with_n_a(tmp_path) -> None:
    runs = [analyse_run("m", f"d{i}", "natural", *_pairs(80, 8, i), n_boot=0, top_k=0) for i in range(3)]
    runs.append(analyse_run("narrow", "d", "medical", *_pairs(80, 8, 9, d_y=5), n_boot=0, top_k=0))
    markdown, report = _markdown(tmp_path, runs)
    row = next(line for line in markdown.splitlines() if line.startswith("| narrow | d |"))
    assert row.count("n/a") == 6  # SAS both ways, ΔSAS, gap, true-pair cosine, rSum: all but CKA and SVCCA
    assert "n/a: not defined for that run" in markdown
    assert report["cross_run"]["imbalance_tests"]["domains"]["natural"]["n"] == 3  # ΔSAS tests over the 3 it has
    assert {c["n"] for c in report["cross_run"]["retrieval_correlations"] if c["stratum"] == "all"} == {3}
    assert set(report["plots"]) == {"imbalance", "q_sweep", "mode_spectra", "metric_vs_rsum"}
    # Each metric is compared across domains over the runs that have it: SAS over the three, CKA over all four.
    compared = {row["metric"]: row["domains"] for row in report["cross_run"]["domain_comparison"]}
    assert set(compared["sas_imbalance"]) == {"natural"} and compared["cka_linear"]["medical"]["n"] == 1
    assert "| sas_imbalance |" in markdown and "| cka_linear |" in markdown


def test_cross_run_sections_need_three_runs_and_counts_read_naturally(tmp_path) -> None:
    one = analyse_run("m", "d", "natural", *_pairs(80, 8, 0), n_boot=0, top_k=3)
    markdown, report = _markdown(tmp_path, [one])
    assert "— 1 run." in markdown and "1 runs" not in markdown
    assert "Omitted: cross-run statistics need at least 3 runs; this audit has 1." in markdown
    assert "(n=1)" not in markdown and "## Which metrics predict retrieval?" not in markdown
    assert report["cross_run"]["retrieval_correlations"] == [] and "metric_vs_rsum" not in report["plots"]
    assert "not bounded to [0, 1]" in markdown  # per-pair SAS, where the extremes are shown


def _tables(markdown: str) -> list[list[str]]:
    """Every table of the markdown: runs of consecutive lines that start with '|'."""
    tables, current = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return [*tables, current] if current else tables


def test_user_given_names_are_escaped_everywhere_in_report_md(tmp_path) -> None:
    """A `|` or newline in a name must not split a table cell or row; NUL bytes and HTML never reach report.md."""
    from torchspectral.audit.records import RunFailure

    model = "a|b\nc <script>alert(1)</script>"
    datasets = ["d\x00e [x](http://evil)", "f\u2028g & h", "i`j`*k*", "l\\|m"]
    domains = ["med|ical\n## Heading", "nat<b>ural</b>"]
    runs = []
    for i, dataset in enumerate(datasets):
        x, y = _pairs(80, 8, i)
        if i == 0:
            x[1] = x[0]  # tied retrieval scores: the ties table lists this run too
        runs.append(analyse_run(model, dataset, domains[i % 2], x, y, n_boot=0, top_k=2))
    failure = RunFailure(model, "bad|set\n", "dom\x00ain", "audit run a|b: zero <variance>\nsecond line")
    out = write_report(tmp_path / "report", runs, manifest="m|x\n.toml", settings={"presets": ["default"]},
                       stage_seconds={}, failures=[failure])  # fmt: skip
    markdown = (out / "report.md").read_text()
    assert "\x00" not in markdown and "\u2028" not in markdown
    assert not re.search(r"(?<!\\)<[A-Za-z/!]", markdown), "raw HTML tag in report.md"
    assert "](http" not in markdown.replace("\\](http", "")  # no live link from a name
    assert not [line for line in markdown.splitlines() if line.startswith("## Heading")]
    tables = _tables(markdown)
    assert len(tables) >= 6  # runs, ties, imbalance (2), domains compared, q-sweep, correlations, extremes, timings
    for table in tables:
        cells = [len(re.findall(r"(?<!\\)\|", line)) for line in table]
        assert len(set(cells)) == 1, table
    runs_table = next(t for t in tables if t[0].startswith("| model | dataset | domain |"))
    assert len(runs_table) == 2 + len(runs)
    assert "a\\|b\\nc \\<script\\>" in runs_table[2] and "d\\x00e \\[x\\](http://evil)" in runs_table[2]
    assert "med\\|ical\\n## Heading" in markdown and "nat\\<b\\>ural\\</b\\>" in markdown
    failed = markdown.split("## Failed runs")[1].split("\n## ")[0]
    assert "**a\\|b\\nc \\<script\\>alert(1)\\</script\\> / bad\\|set\\n** (dom\\x00ain)" in failed
