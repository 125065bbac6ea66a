"""Interleaved A/B timing of the losses' training step against an older checkout (the redesign's cost goal).

pytest-benchmark runs one version after the other; on this 2-core VM run-to-run drift (±10–20%) is as large as
the differences sought. Here the two versions alternate, one process each, ``--rounds`` times, and each process
times 11 forward + backward steps per configuration after 2 warm-up steps; the JSON keeps every median.

    .venv/bin/python benchmarks/redesign_ab.py --before /path/to/old/checkout --rounds 4 \
        --out benchmarks/results/redesign-ab-cpu-2core.json

``--before`` is a checkout (``git worktree add /tmp/old e2c9ea3``); it is imported through PYTHONPATH with the
working directory set to it, so neither this tree's package nor its editable install shadows it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SIZES = ((1024, 256), (1024, 768), (4096, 256), (4096, 768))
CONFIGS = [(name, b, d) for name in ("SASLoss", "CKALoss") for b, d in SIZES]
STEPS, WARMUP = 11, 2


def measure() -> dict:
    import torch

    import torchspectral as ts

    results = []
    for name, b, d in CONFIGS:
        g = torch.Generator().manual_seed(0)
        x = (torch.randn(b, d, generator=g) + 2.0).requires_grad_()
        y = (x.detach() + torch.randn(b, d, generator=g)).requires_grad_()
        loss = getattr(ts.nn, name)()

        def step(x=x, y=y, loss=loss) -> None:
            x.grad = y.grad = None
            loss(x, y).backward()

        for _ in range(WARMUP):
            step()
        times = []
        for _ in range(STEPS):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        results.append({"loss": name, "B": b, "d": d, "median_ms": 1e3 * statistics.median(times)})
    return {"package": ts.__file__, "results": results}


def run(checkout: Path | None) -> dict:
    env = dict(os.environ)
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout)
    cwd = checkout if checkout is not None else Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--measure"], env=env, cwd=cwd, check=True,
        capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--before", type=Path, help="checkout of the older version")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure()))
        return
    if args.before is None:
        parser.error("--before is required")
    before, after = [], []
    for _ in range(args.rounds):
        before.append(run(args.before.resolve()))
        after.append(run(None))
    if not all(str(args.before.resolve()) in r["package"] for r in before):
        raise SystemExit("redesign_ab: the 'before' runs did not import the --before checkout")
    summary = []
    for j, (name, b, d) in enumerate(CONFIGS):
        old = [r["results"][j]["median_ms"] for r in before]
        new = [r["results"][j]["median_ms"] for r in after]
        row = {
            "loss": name, "B": b, "d": d,
            "before_ms": statistics.median(old), "after_ms": statistics.median(new),
            "change_pct": 100 * (statistics.median(new) / statistics.median(old) - 1),
            "per_round_change_pct": [round(100 * (n / o - 1), 1) for o, n in zip(old, new, strict=True)],
        }  # fmt: skip
        summary.append(row)
        print(
            f"| {name} | {b} | {d} | {row['before_ms']:.1f} | {row['after_ms']:.1f} | {row['change_pct']:+.1f}% "
            f"| {', '.join(f'{p:+.0f}' for p in row['per_round_change_pct'])} |"
        )
    if args.out:
        record = {"before": str(args.before), "rounds": args.rounds, "steps": STEPS, "summary": summary,
                  "before_runs": before, "after_runs": after}  # fmt: skip
        args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
