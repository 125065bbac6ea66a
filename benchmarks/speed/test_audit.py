"""The audit's speed goals (issues 13 and 26): 10 runs of n = 5,000 pairs, d = 768, end to end, on this machine —
≤ 60 s at the defaults (B = 200, each metric's calibrated interval, SAS replicates only where the
identifiability diagnostic calls SAS identified, the verdict), ≤ 40 s with intervals off (``--n-boot 0``).

Inputs are planted synthetic embeddings (torchspectral/demo.py at d = 768: 48 shared factors, noise,
a text-only style subspace in half the runs) written as .safetensors with a manifest, exactly what a
user hands to ``torchspectral audit``. The timed call is the whole audit: every plot and file, the default preset.
The report's own timing section (stages per run) is printed and stored with the benchmark, with which metrics
got an interval and why the others did not.

Run: ``make bench-audit`` (or ``.venv/bin/python -m pytest benchmarks/speed/test_audit.py --benchmark-only``).
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


# (n_boot, sas_n_boot): the defaults (sas_n_boot None: as many as n_boot), and intervals off.
@pytest.mark.parametrize(("n_boot", "sas_n_boot"), [(200, None), (0, 0)])
def test_audit_n5000_d768(benchmark, manifest, tmp_path, n_boot, sas_n_boot) -> None:
    out = tmp_path / "report"

    def audit() -> None:
        shutil.rmtree(out, ignore_errors=True)
        run_audit(manifest, out, n_boot=n_boot, sas_n_boot=sas_n_boot, progress=False)

    benchmark.pedantic(audit, rounds=1, iterations=1)
    report = json.loads((out / "report.json").read_text())
    timings, results = report["timings"], report["runs"]
    assert len(results) == N_RUNS
    per_stage: dict[str, float] = {}
    for run in results:
        for stage, seconds in run["timings"].items():
            per_stage[stage] = per_stage.get(stage, 0.0) + seconds
    benchmark.extra_info.update({"timings": timings, "per_run_stages_total": per_stage, "runs": len(results)})
    benchmark.extra_info.update({"n_boot": n_boot, "sas_n_boot": sas_n_boot, "settings": report["settings"]})
    benchmark.extra_info["intervals"] = {
        run["model"] + " / " + run["dataset"]: sorted(run["intervals"]) for run in results
    }
    benchmark.extra_info["no_interval"] = {
        run["model"] + " / " + run["dataset"]: run.get("no_interval", {}) for run in results
    }
    print("\naudit stages (s):", {k: round(v, 1) for k, v in timings.items()})
    print("summed over runs (s):", {k: round(v, 1) for k, v in per_stage.items()})
