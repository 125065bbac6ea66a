"""One command for a GPU machine: correctness of the kernels on CUDA, then their throughput, in under 5 minutes.

    python benchmarks/gpu.py            # writes $OUT/gpu-<device>.json (OUT defaults to benchmarks/results)
    python benchmarks/gpu.py --dry-run  # what a machine without a GPU does anyway

Made for an H100/H200 with torch ≥ 2.4 and triton ≥ 3.0, no internet, the repository checked out (installed or
not: without an install the package is imported from the checkout). In order:

1. **AOT**: the ahead-of-time compiles of the default configs (:mod:`torchspectral.kernels.aot`; tensor-core
   instructions, registers, spills, shared memory for sm_80 and sm_90). A machine without a GPU says so, runs
   this and the checks of step 2 on small shapes in Triton's interpreter, and exits 0 when they hold.
2. **CUDA checks**: every kernel against the chunked torch path in every precision on awkward shapes (n not a
   multiple of the tile, n ≠ m, d = 1, d = 1000 with few rows, several captions per image), the largest
   error of each, and, when pytest is installed, the CUDA run of the kernel test files.
3. **Throughput** (default config of each kernel, autotuning off unless ``--autotune``): RBF MMD and CKA
   sums, retrieval ranks and instance scoring at N up to 100,000 (d = 1024) as a fraction of the cuBLAS
   matmul rate measured here in the same precision ("tf32x3" against a third of the TF32 rate: it issues
   three TF32 products); retrieval at N = M = 100,000 with its peak memory (an N×M fp32 matrix would be
   40 GB); batched ``torch.linalg.eigh`` matrices/s at d ∈ {512, 768, 1152} in float32/float64.

Every item has a time guard: past ``--budget`` seconds (default 270) the rest is recorded as skipped. The
JSON holds everything; a short table is printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRECISIONS = ("ieee", "tf32x3", "tf32", "bf16")
FEATURES = 1024
# 1/(2σ²) with σ² = 2d, the median squared distance between standard normal rows: kernel values near e^-1/2.
C = 1.0 / (4.0 * FEATURES)


def _import_torchspectral():
    """The package, installed or from the checkout (``torchspectral/kernels.py`` finds ``kernels/`` in both)."""
    try:
        import torchspectral.kernels
    except ImportError:
        # Not installed (the GPU machine runs the checkout with its own torch): import it from the root.
        sys.path.insert(0, str(ROOT))
        import torchspectral.kernels
    import torchspectral

    return torchspectral


class Clock:
    """Seconds since start, and whether the budget still allows an item of about ``need`` seconds."""

    def __init__(self, budget: float) -> None:
        self.start, self.budget = time.perf_counter(), budget

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def allows(self, need: float = 0.0) -> bool:
        return self.elapsed() + need <= self.budget


def cuda_time(fn, reps: int = 3) -> float:
    """Median seconds of ``fn()`` on the GPU (CUDA events), after one untimed call (compile, autotune)."""
    import torch

    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


# ------------------------------------------------------------------------------------------------------ AOT


def aot_part() -> dict:
    from torchspectral.kernels import aot

    try:
        records = aot.run_subprocess(sweep=False, timeout=400)
    except Exception as error:  # recorded, not fatal: the GPU checks still run
        return {"ok": False, "error": f"{type(error).__name__}: {error}"[:4000]}
    default = [r for r in records if r["default"]]
    tensor_core_missing = [r for r in records if r["precision"] != "ieee" and r["mma"] + r["wgmma"] == 0]
    return {
        "ok": all(r["compiled"] for r in records)
        and not tensor_core_missing
        and all(r["spill_bytes"] == 0 for r in default)
        and all(r["narrow_pointer_products"] == 0 for r in records)
        and all(r["shared_bytes"] <= r["shared_limit"] for r in records),
        "compiles": len(records),
        "spilling_defaults": sum(r["spill_bytes"] > 0 for r in default),
        "without_tensor_cores": len(tensor_core_missing),
        "records": records,
    }


# ------------------------------------------------------------------------------------------- correctness


def _data(n: int, d: int, seed: int, device, offset: float = 0.0):
    import torch

    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g) + offset).to(device)


def _rel(a, b) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def checks(device, large: bool) -> list[dict]:
    """Kernel vs torch path, every precision, awkward shapes; one row per (op, shape, precision)."""
    import numpy as np
    import torch

    from torchspectral import pairwise
    from torchspectral.kernels.instance_score import instance_score
    from torchspectral.pairwise.instance import InstanceScore

    mmd_shapes = [(37, 50, 3), (70, 33, 1), (20, 9, 1000), (257, 190, 24)]
    cka_shapes = [(37, 3, 5), (70, 1, 2), (20, 1000, 7), (257, 64, 48)]
    ret_shapes = [(41, (1, 1), 3), (30, (1, 7), 16), (9, (1, 3), 1000)]
    if large:
        mmd_shapes += [(3001, 2500, 1024), (5000, 4093, 768)]
        cka_shapes += [(3001, 1024, 768)]
        ret_shapes += [(2001, (1, 7), 1024)]
    rows = []

    def row(op, shape, precision, error, tol, extra=None):
        rows.append({"op": op, "shape": str(shape), "precision": precision, "error": error, "tol": tol,
                     "ok": bool(error <= tol), **(extra or {})})  # fmt: skip

    for precision in PRECISIONS:
        for n, m, d in mmd_shapes:
            x, y = _data(n, d, n, device), _data(m, d, m + 1, device, 0.4)
            sigmas = [0.9 * 0.8 * d**0.5]
            got, level = pairwise.rbf_mmd_sums(x, y, sigmas, backend="triton", precision=precision)
            want, want_level = pairwise.rbf_mmd_sums(x, y, sigmas, backend="torch", precision=precision)
            pairs = torch.tensor([n * (n - 1), m * (m - 1), n * m], dtype=torch.float64)
            row("rbf_mmd_sums", (n, m, d), precision,
                _rel(got.cpu() + level * pairs, want.cpu() + want_level * pairs), 2e-5)  # fmt: skip
        for n, dx, dy in cka_shapes:
            x, y = _data(n, dx, n, device), _data(n, dy, n + 1, device, -0.3)
            got = pairwise.rbf_cka_sums(x, y, 0.9 * dx**0.5, 1.3 * dy**0.5, backend="triton", precision=precision)
            want = pairwise.rbf_cka_sums(x, y, 0.9 * dx**0.5, 1.3 * dy**0.5, backend="torch", precision=precision)
            error = max(_rel(g, w) for g, w in zip(got[:3], want[:3], strict=True))
            row("rbf_cka_sums", (n, dx, dy), precision, error, 1e-4)
        for n_img, per_image, d in ret_shapes:
            rng = np.random.default_rng(n_img)
            counts = rng.integers(per_image[0], per_image[1] + 1, size=n_img)
            c = torch.from_numpy(rng.permutation(np.repeat(np.arange(n_img), counts))).to(device)
            images = _data(n_img, d, 1, device)
            captions = images[c] + 1.2 * _data(c.shape[0], d, 2, device)
            x_hat = images / images.norm(dim=1, keepdim=True)
            y_hat = captions / captions.norm(dim=1, keepdim=True)
            for ties in (False, True):
                got = pairwise.retrieval_ranks(x_hat, y_hat, c, ties, backend="triton", precision=precision)
                want = pairwise.retrieval_ranks(x_hat, y_hat, c, ties, backend="torch", precision=precision)
                # Ranks are integers: count the queries whose rank differs (0 expected; a near-tie within an
                # ulp summed in another order could flip one, so the count is recorded, not hidden).
                diff = sum(int((g.cpu() != w.cpu()).sum()) for g, w in zip(got, want, strict=True))
                row("retrieval_ranks", (n_img, per_image, d, "pessimistic" if ties else "optimistic"),
                    precision, float(diff), 0.0)  # fmt: skip
        for n, d, k in [(1, 1, 1), (17, 100, 40), (33, 64, 77), (130, 20, 1)] + ([(10_000, 1024, 200)] * large):
            g = torch.Generator().manual_seed(n + d + k)
            x, y = torch.randn(n, d, generator=g).to(device), torch.randn(n, d, generator=g).to(device)
            mx, my = x.mean(0) + 0.1, y.mean(0) - 0.1
            v = torch.linalg.qr(torch.randn(d, max(k, d), generator=g, dtype=torch.float64))[0][:, :k]
            v = v.float().to(device) if k <= d else torch.randn(d, k, generator=g).to(device) / d**0.5
            w = torch.randn(k, generator=g).to(device)
            got = instance_score(x, y, mx, my, v, w, precision=precision)
            want = InstanceScore.apply(x, y, mx, my, v, w, False, 4096, precision)
            row("instance_score", (n, d, k), precision, _rel(got, want), 2e-5)
    return rows


def pytest_part(device) -> dict:
    """The kernel test files under pytest (on CUDA when there is one), if pytest is installed."""
    try:
        import pytest  # noqa: F401
    except ImportError:
        return {"ran": False, "why": "pytest is not installed"}
    files = ["tests/test_pairwise_kernels.py", "tests/test_kernel_instance_score.py", "tests/test_precision.py"]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files], cwd=ROOT,
                          capture_output=True, text=True, timeout=150, check=False)  # fmt: skip
    tail = done.stdout.strip().splitlines()[-1:] or [""]
    return {"ran": True, "returncode": done.returncode, "summary": tail[0], "output_tail": done.stdout[-6000:]}


# -------------------------------------------------------------------------------------------- throughput


def cublas_rate(precision: str, n: int = 8192, d: int = 1024) -> float:
    """Measured FLOP/s of an (n×d)(d×n) cuBLAS matmul in ``precision`` (tf32x3: a third of the TF32 rate)."""
    import torch

    a, b = torch.randn(n, d, device="cuda"), torch.randn(n, d, device="cuda")
    before = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = precision in ("tf32", "tf32x3")
        if precision == "bf16":
            a, b = a.bfloat16(), b.bfloat16()
        seconds = cuda_time(lambda: a @ b.T, reps=5)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before
    rate = 2.0 * n * n * d / seconds
    return rate / 3.0 if precision == "tf32x3" else rate


def throughput(clock: Clock, autotune: bool) -> list[dict]:
    import torch

    from torchspectral.kernels import instance_score, rbf_cka_sums, rbf_mmd_sums, retrieval_ranks

    kernels = [rbf_mmd_sums._rbf_mmd_sums_kernel, rbf_cka_sums._rbf_cka_sums_kernel,
               retrieval_ranks._ground_truth_kernel, retrieval_ranks._rank_count_kernel,
               instance_score._instance_score_kernel]  # fmt: skip
    if not autotune:  # the default config, the one the AOT test verified; no tuning passes in the timings
        for k in kernels:
            k.configs = k.configs[:1]
    d = FEATURES
    rows: list[dict] = []
    rates = {p: cublas_rate(p) for p in PRECISIONS}
    for p, r in rates.items():
        rows.append({"item": "cublas_matmul", "precision": p, "tflops": r / 1e12})

    def record(item, precision, n, seconds, flops, extra=None):
        rate = flops / seconds
        row = {"item": item, "precision": precision, "n": n, "d": d, "seconds": seconds, "tflops": rate / 1e12}
        rows.append({**row, "fraction_of_cublas": rate / rates[precision], **(extra or {})})

    for n in (10_000, 100_000):
        for precision in PRECISIONS:
            if n == 100_000 and precision == "ieee" and not clock.allows(60):
                continue
            if not clock.allows(20):
                rows.append({"item": "skipped", "precision": precision, "n": n, "why": "time budget"})
                continue
            x, y = torch.randn(n // 2, d, device="cuda"), torch.randn(n // 2, d, device="cuda")
            s = cuda_time(partial(rbf_mmd_sums.rbf_mmd_sums_triton, x, y, [C], 0.5, precision))
            record("rbf_mmd_sums", precision, n, s, float(n) * n * d)  # upper triangle: n²/2 pairs × 2d
            del x, y
            xc, yc = torch.randn(n, d, device="cuda"), torch.randn(n, d, device="cuda")
            reps = 1 if n == 100_000 else 3
            s = cuda_time(partial(rbf_cka_sums.rbf_cka_sums_triton, xc, yc, C, C, 0.5, 0.5, precision), reps)
            record("rbf_cka_sums", precision, n, s, 4.0 * n * n * d)  # all n² pairs, two modalities
            x_hat = xc / xc.norm(dim=1, keepdim=True)
            y_hat = yc / yc.norm(dim=1, keepdim=True)
            caps = torch.arange(n, device="cuda")
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            s = cuda_time(partial(retrieval_ranks.retrieval_ranks_triton, x_hat, y_hat, caps, False, precision), reps)
            peak = torch.cuda.max_memory_allocated() - base
            record("retrieval_ranks", precision, n, s, 2.0 * n * n * d,
                   {"peak_bytes_beyond_inputs": int(peak), "nxm_fp32_bytes": 4 * n * n})  # fmt: skip
            k = 256
            v = torch.linalg.qr(torch.randn(d, k, device="cuda"))[0]
            w = torch.randn(k, device="cuda")
            score = partial(instance_score.instance_score, xc, yc, xc.mean(0), yc.mean(0), v, w, precision=precision)
            s = cuda_time(score)
            record("instance_score", precision, n, s, 4.0 * n * d * k, {"k": k})
            del xc, yc, x_hat, y_hat
    for dim in (512, 768, 1152):
        for dtype in (torch.float32, torch.float64):
            if not clock.allows(15):
                rows.append({"item": "skipped", "eigh_d": dim, "why": "time budget"})
                continue
            batch = 16
            a = torch.randn(batch, dim, dim, device="cuda", dtype=dtype)
            a = a @ a.transpose(1, 2) / dim
            s = cuda_time(partial(torch.linalg.eigh, a), reps=2)
            rows.append({"item": "eigh", "d": dim, "dtype": str(dtype).split(".")[-1], "batch": batch,
                         "seconds": s, "matrices_per_second": batch / s})  # fmt: skip
    return rows


# ------------------------------------------------------------------------------------------------- report


def environment() -> dict:
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()}
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(device=props.name, capability=f"{props.major}.{props.minor}", sms=props.multi_processor_count,
                   memory_gib=round(props.total_memory / 2**30, 1))  # fmt: skip
    return env


def table(result: dict) -> str:
    lines = [f"device: {result['environment'].get('device', 'none (dry run)')}"]
    aot = result.get("aot", {})
    if "compiles" in aot:
        lines.append(f"AOT: {aot['compiles']} compiles, ok={aot['ok']}, spilling defaults={aot['spilling_defaults']}, "
                     f"without tensor cores (non-ieee)={aot['without_tensor_cores']}")  # fmt: skip
    elif aot:
        lines.append(f"AOT: FAILED {aot.get('error', '')[:200]}")
    for key in ("checks_interpreted", "checks"):
        if result.get(key):
            bad = [c for c in result[key] if not c["ok"]]
            lines.append(f"{key.replace('_', ' ')}: {len(result[key]) - len(bad)}/{len(result[key])} within tolerance")
            lines += [f"  FAIL {c['op']} {c['shape']} {c['precision']}: {c['error']:.3g} > {c['tol']:.3g}" for c in bad]
    if result.get("pytest", {}).get("ran"):
        lines.append(f"pytest (CUDA): {result['pytest']['summary']}")
    for r in result.get("throughput", []):
        if r["item"] in ("rbf_mmd_sums", "rbf_cka_sums", "retrieval_ranks", "instance_score"):
            lines.append(f"{r['item']:16} {r['precision']:7} n={r['n']:>7} {r['seconds'] * 1e3:9.2f} ms "
                         f"{r['tflops']:7.1f} TFLOP/s  {100 * r['fraction_of_cublas']:5.1f}% of cuBLAS")  # fmt: skip
        elif r["item"] == "cublas_matmul":
            lines.append(f"cuBLAS matmul    {r['precision']:7} {r['tflops']:7.1f} TFLOP/s")
        elif r["item"] == "eigh":
            lines.append(f"eigh d={r['d']:<5} {r['dtype']:8} {r['matrices_per_second']:9.1f} matrices/s")
    if "seconds" in result:
        lines.append(f"total {result['seconds']:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="AOT compiles only (what a machine without a GPU runs)")
    parser.add_argument("--autotune", action="store_true", help="time the autotuned config instead of the default")
    parser.add_argument("--budget", type=float, default=270.0, help="seconds before the remaining items are skipped")
    parser.add_argument("--skip-aot", action="store_true")
    args = parser.parse_args(argv)
    clock = Clock(args.budget)

    import torch

    has_gpu = torch.cuda.is_available()
    if not has_gpu:
        # The kernels can then only run interpreted, which Triton reads when it is imported.
        os.environ.setdefault("TRITON_INTERPRET", "1")
    _import_torchspectral()
    dry = args.dry_run or not has_gpu
    out_dir = Path(os.environ.get("OUT") or ROOT / "benchmarks" / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict = {"environment": environment(), "dry_run": dry}
    if not has_gpu:
        print("No CUDA GPU found (torch.cuda.is_available() is False): dry run: the AOT compiles and the checks in "
              "Triton's interpreter; the CUDA checks and the throughput need a GPU.", flush=True)  # fmt: skip
    elif dry:
        print("--dry-run: the AOT compiles only.", flush=True)
    if not args.skip_aot:
        print("AOT compiles (sm_80, sm_90) ...", flush=True)
        result["aot"] = aot_part()
    if not has_gpu:
        # The same checks on small shapes in Triton's interpreter: they exercise this script's code paths
        # (and the kernels' logic; the interpreter runs "tf32"/"tf32x3" dots as fp32).
        print("checks (interpreter, small shapes) ...", flush=True)
        result["checks_interpreted"] = checks(torch.device("cpu"), large=False)
    if not dry:
        device = torch.device("cuda")
        print("CUDA checks ...", flush=True)
        result["checks"] = checks(device, large=True)
        if clock.allows(150):
            print("pytest on CUDA ...", flush=True)
            result["pytest"] = pytest_part(device)
        print("throughput ...", flush=True)
        result["throughput"] = throughput(clock, args.autotune)
    if not dry:  # the wall time of a dry run on a shared CPU says nothing worth keeping
        result["seconds"] = clock.elapsed()
    slug = "dryrun-" + platform.machine() if dry else result["environment"]["device"].replace(" ", "-").lower()
    path = out_dir / f"gpu-{slug}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {path}")
    print(table(result))
    failed = [c for c in result.get("checks", []) + result.get("checks_interpreted", []) if not c["ok"]]
    aot_ok = args.skip_aot or result["aot"]["ok"]
    # Exit 0 when the AOT facts and every check hold (the JSON has the details of any failure).
    return 0 if aot_ok and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
