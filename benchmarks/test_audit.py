"""The audit's speed goal: 10 runs of n = 5,000 pairs, d = 768, end to end, under 2 minutes on this machine.

Inputs are planted synthetic embeddings (torchspectral/demo.py at d = 768: 48 shared factors, noise,
a text-only style subspace in half the runs) written as .safetensors with a manifest, exactly what a
user hands to ``torchspectral audit``. The timed call is the whole audit: B = 1000 bootstrap
replicates per run (SPEC §9's default) for every metric but SAS, default preset, every plot and file, with the
SAS intervals off or from 100 replicates (``sas_n_boot``); and one run alone with the full defaults (1000 exact
SAS replicates), the cost the SAS intervals add per run. The report's own timing section (stages per run) is
printed and stored with the benchmark.

Run: ``make bench-audit`` (or ``.venv/bin/python -m pytest benchmarks/test_audit.py --benchmark-only``).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
from safetensors.torch import save_file

from torchspectral.audit.run import run_audit
from torchspectral.demo import DEMO_DATASETS, planted_pairs

N_RUNS, N, D = 10, 5_000, 768


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audit-inputs")
    lines = []
    for run in range(N_RUNS):
        dataset, domain, planted = DEMO_DATASETS[run % 2]
        image, text = planted_pairs(replace(planted, noise=0.05 + 0.03 * run), n=N, d=D, seed=run)
        save_file({"image": image, "text": text}, str(folder / f"run{run}.safetensors"))
        lines += ["[[run]]", f'model = "model-{run // 2}"', f'dataset = "{dataset}"', f'domain = "{domain}"']
        lines += [f'embeddings = "run{run}.safetensors"', ""]
    path = folder / "manifest.toml"
    path.write_text("\n".join(lines))
    return path


def _one_run_manifest(manifest):
    """The first run of the 10-run manifest on its own."""
    text = manifest.read_text()
    path = manifest.with_name("one-run.toml")
    path.write_text(text[: text.index("[[run]]", 1)])
    return path


@pytest.mark.parametrize(("runs", "n_boot", "sas_n_boot"), [(10, 1000, 0), (10, 1000, 100), (1, 1000, 1000)])
def test_audit_n5000_d768(benchmark, manifest, tmp_path, runs, n_boot, sas_n_boot) -> None:
    out = tmp_path / "report"
    source = manifest if runs == 10 else _one_run_manifest(manifest)

    def audit() -> None:
        shutil.rmtree(out, ignore_errors=True)
        run_audit(source, out, n_boot=n_boot, sas_n_boot=sas_n_boot, progress=False)

    benchmark.pedantic(audit, rounds=1, iterations=1)
    report = json.loads((out / "report.json").read_text())
    timings, results = report["timings"], report["runs"]
    assert len(results) == runs
    per_stage: dict[str, float] = {}
    for run in results:
        for stage, seconds in run["timings"].items():
            per_stage[stage] = per_stage.get(stage, 0.0) + seconds
    benchmark.extra_info.update({"timings": timings, "per_run_stages_total": per_stage, "runs": len(results)})
    benchmark.extra_info.update({"n_boot": n_boot, "sas_n_boot": sas_n_boot})
    print("\naudit stages (s):", {k: round(v, 1) for k, v in timings.items()})
    print("summed over runs (s):", {k: round(v, 1) for k, v in per_stage.items()})
