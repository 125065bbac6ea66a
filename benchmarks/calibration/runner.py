"""What the two coverage passes (``coverage.py``, ``coverage_default.py``) share to run: the workers, the settings
block and machine record of a results JSON, a table's coverage cell and the command line."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from planted_coverage import ALL_REGIMES, CONFIDENCE, Q_ACTIVE, Regime


def _init_worker() -> None:
    torch.set_num_threads(1)  # one thread per worker: small matrices, and the cores are shared


def run_settings(n_boot: int, groups: int, workers: int, budget_min: float, **extra) -> dict:
    """The settings block of a results JSON (both passes): B, G, the confidence, q, dtype, workers, budget."""
    return {"n_boot": n_boot, "groups": groups, "confidence": CONFIDENCE, "q": Q_ACTIVE, "dtype": "float64",
            "workers": workers, "budget_min": budget_min, **extra}  # fmt: skip


def machine() -> dict:
    """Where a results JSON was made."""
    return {"cpus": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}


def band_cell(coverage: float, digits: int, low: float, high: float) -> str:
    """A coverage in % for a table, bold when outside [low, high]."""
    value = f"{100 * coverage:.{digits}f}"
    return value if low <= coverage <= high else f"**{value}**"


def run_repeats(
    run_chunk, regimes: list[Regime], n_boot: int, groups: int, chunk: int, workers: int, budget_min: float
) -> tuple[dict[str, list[dict]], float]:
    """Every regime's repeats by ``run_chunk(regime, repeats, n_boot, groups, deadline)`` on ``workers`` processes
    of one thread each: chunks of repeats, round-robin over the regimes, so that the deadline (``budget_min`` from
    now) cuts every regime evenly. Returns the repeats per regime and the wall seconds."""
    started = time.time()
    deadline = started + 60 * budget_min
    chunks = {r.name: [list(range(s, min(r.repeats, s + chunk))) for s in range(0, r.repeats, chunk)] for r in regimes}
    order = [(r, chunks[r.name][i]) for i in range(max(map(len, chunks.values()))) for r in regimes
             if i < len(chunks[r.name])]  # fmt: skip
    runs: dict[str, list[dict]] = {r.name: [] for r in regimes}
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker) as pool:
        futures = [(r.name, pool.submit(run_chunk, r, rep, n_boot, groups, deadline)) for r, rep in order]
        for name, future in futures:
            runs[name] += future.result()
            print(f"{name}: {len(runs[name])} repeats ({time.time() - started:.0f} s)", flush=True)
    return runs, time.time() - started


def add_run_arguments(parser: argparse.ArgumentParser, budget_min: float, results: Path) -> None:
    """The options this harness and the default-only pass (``coverage_default.py``) share."""
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny regimes, few repeats, B = 40")
    parser.add_argument("--regimes", nargs="*", help=f"regime names (default: the committed grid); {list(ALL_REGIMES)}")
    parser.add_argument("--repeats", type=int, default=None, help="override every regime's repeat count")
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=10, help="repeats per task (round-robin over regimes)")
    parser.add_argument("--budget-min", type=float, default=budget_min, help="stop starting repeats after this long")
    parser.add_argument("--out", type=Path, default=None, help=f"JSON output (full run default: {results})")
