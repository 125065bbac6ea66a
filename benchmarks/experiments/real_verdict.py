"""The audit's bottleneck verdict on real embeddings, by interval method (issue 13's real-data case): not a test.

Issue 13 found that on 785 held-out emoji–caption pairs embedded by trained heads (d = 384) ΔSAS = +0.007 and the
verdict flipped with the interval method: percentile said "text is the bottleneck", basic "no clear bottleneck".
This rebuilds that case from the offline example (``examples/close_the_gap.py``: frozen EfficientNet-Lite0 image and
MiniLM text features of every emoji, two linear heads trained with the CLIP loss into a shared space of ``--dim``
dimensions, the held-out quarter embedded) and asks every method, and the calibrated default, for ΔSAS's interval and
the audit's reading of it (``torchspectral.audit.output._bottleneck``, the sentence the report prints).

Run: ``python benchmarks/experiments/real_verdict.py`` (needs the ``examples`` extra and fonts-noto-color-emoji; a
few minutes on 2 cores, the frozen features cached in ``--cache-dir``). Writes
``benchmarks/results/real-verdict-cpu-<n>core.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import torch

import torchspectral as ts
from torchspectral.audit.output import _bottleneck
from torchspectral.uncertainty import INTERVAL_METHODS, sas_identifiability
from torchspectral.uncertainty.calibrated import IDENTIFIABILITY_RESAMPLES

ROOT = Path(__file__).resolve().parents[2]
SAS = ["sas_x_to_y", "sas_y_to_x", "sas_imbalance"]


def _example():
    spec = importlib.util.spec_from_file_location("close_the_gap", ROOT / "examples" / "close_the_gap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dim", type=int, default=384, help="shared embedding size (issue 13: 384)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--cache-dir", default="/tmp/torchspectral-features")
    default_out = ROOT / "benchmarks" / "results" / f"real-verdict-cpu-{os.cpu_count()}core.json"
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args(argv)
    example = _example()
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    captions, x, y = example.frozen_features(example.find_font(None), 160, args.cache_dir, log)
    order = torch.randperm(len(captions), generator=torch.Generator().manual_seed(args.seed))
    n_heldout = round(0.25 * len(captions))
    test, fit = order[:n_heldout], order[n_heldout:]
    torch.manual_seed(args.seed)
    heads = example.Heads(x.shape[1], y.shape[1], args.dim)
    settings = argparse.Namespace(
        epochs=args.epochs, seed=args.seed, batch_size=128, lr=1e-3, weight_decay=1e-2, dim=args.dim
    )
    example.train(heads, ts.nn.CLIPLoss(), x[fit], y[fit], settings)
    with torch.no_grad():
        image, text = (t.double() for t in heads(x[test], y[test]))
    log(f"held-out pairs embedded: {tuple(image.shape)}")

    # The diagnostic as the calibrated default reads it (same resamples, same seed).
    identifiability = sas_identifiability(image, text, 0.1, IDENTIFIABILITY_RESAMPLES, args.seed)
    runs = {}
    for method in ("calibrated", *INTERVAL_METHODS):
        t0 = time.perf_counter()
        result = ts.bootstrap(image, text, SAS, n_boot=args.n_boot, seed=args.seed, method=method)
        run = {
            "model": "close-the-gap heads (CLIP loss)",
            "dataset": "emoji held out",
            "n_captions": image.shape[0],
            "dim": image.shape[1],
            "metrics": result.estimate,
            "intervals": {k: [result.low[k], result.high[k]] for k in result.low},
            "interval_methods": result.methods,
            "no_interval": result.no_interval,
        }
        runs[method] = {
            "estimate": result.estimate,
            "intervals": run["intervals"],
            "no_interval": result.no_interval,
            "verdict": _bottleneck(run),
            "seconds": time.perf_counter() - t0,
        }
        print(f"{method:>10}: {runs[method]['verdict']}")
    out = {
        "what": __doc__.split("\n")[0],
        "n_pairs": int(image.shape[0]),
        "dim": int(image.shape[1]),
        "n_boot": args.n_boot,
        "seed": args.seed,
        "identifiability": {
            which: {"identified": d.identified, "reason": d.reason, "boundary_ratio": d.boundary_ratio}
            for which, d in (("x", identifiability.x), ("y", identifiability.y))
        },
        "runs": runs,
        "versions": example.versions(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")
    return out


if __name__ == "__main__":
    main()
