"""Retrieval on N = M image–caption pairs, streamed into ``ts.metrics.Retrieval`` on 1 and on W processes (CPU, gloo).

Not a timed test: run it by hand on a quiet machine (the full size takes a long time on a few cores)::

    python benchmarks/experiments/sharded_retrieval.py          # N = M = 200,000, d = 256, float32; 1 and 2 processes
    python benchmarks/experiments/sharded_retrieval.py --n 4000 --out /tmp/x.json   # a quick check that it works

Each rank builds only its own shard (rows r·N/W … (r+1)·N/W of the global data; every block of 4096 rows has its
own seed, so no process ever holds the whole data), streams it into the metric in batches, then calls
``metric.result()`` (one process: the functional tile engine; W processes: the sharded engine, nothing gathered).

Memory: the process's resident set, read from /proc/self/status (torch's CPU allocations are invisible to
tracemalloc). After the shard is stored, the high-water mark is reset (``echo 5 > /proc/self/clear_refs``), so
``peak_beyond_stored_mb`` = VmHWM during the compute − VmRSS just before it: what the compute needs beyond the
stored embeddings. If the kernel refuses the reset, the peak includes the earlier ones and the JSON says so
(``hwm_reset: false``). The processes run with ``MALLOC_MMAP_THRESHOLD_=131072`` unless ``--default-malloc``:
glibc's dynamic mmap threshold otherwise moves the freed multi-MB tile buffers onto the heap, whose
fragmentation raised one rank's resident set by ~100 MB above the live tensors in a 2-process run at N = 20,000
(measured on this 2-core machine: 140 MB vs 56 MB peak, the same computation); the JSON records which.
Time: wall seconds of the compute, between two barriers. The ranks of every run are
hashed (SHA-256 of the int64 rank vectors): the W-process runs must report the same ranks as the 1-process run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

BLOCK = 4096  # rows per seed of the synthetic data
BATCH = 1024  # rows per update, as a validation loop would feed them


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _rows(start: int, stop: int, d: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Global rows [start, stop): images x ~ N(0, I) and captions y = x + noise·N(0, I), float32."""
    xs, ys = [], []
    for b in range(start // BLOCK, (stop - 1) // BLOCK + 1):
        g = torch.Generator().manual_seed(b)
        x = torch.randn(BLOCK, d, generator=g)
        y = x + noise * torch.randn(BLOCK, d, generator=g)
        lo, hi = max(start, b * BLOCK) - b * BLOCK, min(stop, (b + 1) * BLOCK) - b * BLOCK
        xs.append(x[lo:hi].clone())
        ys.append(y[lo:hi].clone())
    return torch.cat(xs), torch.cat(ys)


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.to(torch.int64).numpy().tobytes()).hexdigest()


def _rank(rank: int, world: int, init: str, args: argparse.Namespace, results: dict) -> None:
    from torchspectral.metrics import Retrieval

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    n = args.n
    lo, hi = rank * n // world, (rank + 1) * n // world
    metric = Retrieval()
    for start in range(lo, hi, BATCH):
        x, y = _rows(start, min(start + BATCH, hi), args.d, args.noise)
        metric.update(x, y)
    stored_mb = 2 * (hi - lo) * args.d * 4 / 2**20
    if world > 1:
        dist.barrier()
    hwm_reset = _reset_peak()
    before = _status_mb("VmRSS")
    t0 = time.perf_counter()
    result = metric.result()
    if world > 1:
        dist.barrier()
    seconds = time.perf_counter() - t0
    peak = _status_mb("VmHWM")
    results[rank] = {
        "rows": hi - lo,
        "stored_embeddings_mb": stored_mb,
        "rss_before_compute_mb": before,
        "peak_beyond_stored_mb": peak - before,
        "hwm_reset": hwm_reset,
        "compute_seconds": seconds,
        "threads": torch.get_num_threads(),
        "metrics": result.as_dict(),
        "i2t_ranks_sha256": _digest(result.i2t_ranks),
        "t2i_ranks_sha256": _digest(result.t2i_ranks),
    }
    if world > 1:
        dist.destroy_process_group()


def run(world: int, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp, mp.Manager() as manager:
        results = manager.dict()
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        mp.spawn(_rank, args=(world, os.path.join(tmp, "init"), args, results), nprocs=world, join=True)
        return {str(r): results[r] for r in sorted(results)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200_000, help="images = captions (default 200,000)")
    parser.add_argument("--d", type=int, default=256)
    parser.add_argument("--noise", type=float, default=4.0, help="caption = image + noise·N(0, I); 4: cosine ≈ 0.24")
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 2], help="process counts to run")
    cores = os.cpu_count() or 1
    default_out = Path(__file__).resolve().parents[1] / "results" / f"sharded-retrieval-cpu-{cores}core.json"
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--default-malloc", action="store_true", help="keep glibc's dynamic mmap threshold")
    args = parser.parse_args(argv)
    if not args.default_malloc:
        os.environ["MALLOC_MMAP_THRESHOLD_"] = "131072"  # read by glibc when each spawned process starts
    runs = {str(w): run(w, args) for w in args.worlds}
    reference = next(iter(runs.values()))["0"]
    same = {
        w: all(
            r["i2t_ranks_sha256"] == reference["i2t_ranks_sha256"]
            and r["t2i_ranks_sha256"] == reference["t2i_ranks_sha256"]
            for r in ranks.values()
        )
        for w, ranks in runs.items()
    }
    out = {
        "what": "ts.metrics.Retrieval on N = M paired rows (float32), streamed in batches, then result()",
        "n": args.n,
        "d": args.d,
        "noise": args.noise,
        "memory": "VmHWM − VmRSS of each process around the compute (/proc/self/status), peak reset before it",
        "malloc": "default" if args.default_malloc else "MALLOC_MMAP_THRESHOLD_=131072",
        "machine": {"cpus": cores, "platform": platform.platform(), "python": sys.version.split()[0]},
        "torch": torch.__version__,
        "runs": runs,
        f"same_ranks_as_{args.worlds[0]}_process": same,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    for w, ranks in runs.items():
        for r, res in ranks.items():
            print(
                f"W={w} rank {r}: {res['rows']} rows, compute {res['compute_seconds']:.2f} s, peak beyond stored "
                f"{res['peak_beyond_stored_mb']:.1f} MB (stored {res['stored_embeddings_mb']:.1f} MB), "
                f"rsum {res['metrics']['rsum']:.4f}, same ranks: {same[w]}"
            )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
