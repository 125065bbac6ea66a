"""How far Rayleigh–Ritz SAS bootstrap intervals are from the exact ones on the audit benchmark's data.

The audit benchmark's planted runs (torchspectral/demo.py at n = 5,000, d = 768: 48 shared factors under a
noise bulk; "web-captions" balanced, "radiology-reports" with a text tower that misses factors) are bootstrapped
with exact SAS replicates and with ``ritz_rank = k`` on the same seed. Per metric: the largest replicate gap,
the largest CI-endpoint gap, and the exact interval's width. This is why the audit's default is exact.

Run: ``.venv/bin/python benchmarks/experiments/ritz_accuracy.py`` (about 6 minutes on 2 cores); writes
``benchmarks/results/ritz-accuracy-cpu-<cores>core.json``.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from dataclasses import replace
from pathlib import Path

from torchspectral.demo import DEMO_DATASETS, planted_pairs

bootstrap_module = importlib.import_module("torchspectral.uncertainty")

N, D, B, SEED = 5_000, 768, 200, 0
RANKS = (77, 100, 120, 200)  # |A| = 77 at d = 768, q = 0.1
NAMES = ["sas_x_to_y", "sas_y_to_x", "sas_imbalance"]


def main() -> None:
    results = {"n": N, "d": D, "n_boot": B, "seed": SEED, "datasets": {}}
    for index, (dataset, _, planted) in enumerate(DEMO_DATASETS):
        x, y = planted_pairs(replace(planted, noise=0.1), n=N, d=D, seed=index)
        started = time.perf_counter()
        exact = bootstrap_module.bootstrap(x, y, NAMES, n_boot=B, seed=SEED)
        entry = {"exact_seconds": time.perf_counter() - started, "estimate": exact.estimate, "ranks": {}}
        entry["exact_interval"] = {name: [exact.low[name], exact.high[name]] for name in NAMES}
        print(f"{dataset}: exact in {entry['exact_seconds']:.0f} s, intervals {entry['exact_interval']}", flush=True)
        for rank in RANKS:
            ritz = bootstrap_module.bootstrap(x, y, NAMES, n_boot=B, seed=SEED, ritz_rank=rank)
            rows = {}
            for name in NAMES:
                rows[name] = {
                    "max_replicate_gap": float((ritz.replicates[name] - exact.replicates[name]).abs().max()),
                    "max_endpoint_gap": max(
                        abs(ritz.low[name] - exact.low[name]), abs(ritz.high[name] - exact.high[name])
                    ),
                    "exact_width": exact.high[name] - exact.low[name],
                }
            entry["ranks"][str(rank)] = rows
            summary = ", ".join(
                f"{name}: endpoints off {r['max_endpoint_gap']:.1e} (width {r['exact_width']:.1e})"
                for name, r in rows.items()
            )
            print(f"  ritz_rank {rank}: {summary}", flush=True)
        results["datasets"][dataset] = entry
    out = Path(__file__).resolve().parents[1] / "results" / f"ritz-accuracy-cpu-{os.cpu_count()}core.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
