"""Peak resident memory of one call beyond its inputs, measured in a fresh process (CPU).

torch's CPU allocations are invisible to tracemalloc, so the honest measure is the process's
resident set: the inputs are made first (without temporaries), then the high-water mark of the
call (VmHWM) is compared with the resident size just before it (VmRSS). Conservative: if an earlier
spike (the imports) was higher than the call's own peak, the difference includes it. (getrusage's
ru_maxrss is not used: on Linux it carries the parent's peak across fork and exec.)

``what`` names the call: ``report`` (the moment metrics of ``alignment_report``) and ``floor`` (one GEMM
and the d×d decompositions) for the moment benchmarks; ``mmd``, ``cka_rbf``, ``retrieval`` (torchspectral)
and ``dense_mmd``, ``dense_cka_rbf``, ``dense_retrieval`` (benchmarks/speed/dense.py) for the pairwise ones;
``mutual_knn``, ``cknna`` (k = 10) and their ``dense_`` forms for the neighbourhood ones.
The pairwise calls take a fixed bandwidth (``sigma``) so that ours and the dense baseline do the same work.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import json, sys, torch
sys.path.insert(0, sys.argv[4])
import dense
import torchspectral as ts

n, d, what, sigma = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[5])
torch.manual_seed(0)
x = torch.randn(n, d)
y = torch.randn(n, d).mul_(float(sys.argv[6])).add_(x)  # in place: no temporaries before the baseline
def status_mb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024
before = status_mb("VmRSS")
if what == "report":
    ts.alignment_report(x, y, pairwise=False)
elif what == "floor":
    z = torch.cat([x, y], 1)
    g = (z.T @ z).double()
    torch.linalg.eigh(g[:d, :d]); torch.linalg.eigh(g[d:, d:]); torch.linalg.svdvals(g[:d, d:])
elif what == "mmd":
    ts.mmd(x, y, sigma=sigma)
elif what == "cka_rbf":
    ts.cka(x, y, kernel="rbf", sigma=sigma)
elif what == "retrieval":
    ts.retrieval(x, y)
elif what in ("mutual_knn", "cknna"):
    getattr(ts, what)(x, y, 10)
elif what == "dense_mutual_knn":
    dense.mutual_knn(x, y, 10)
elif what == "dense_cknna":
    dense.cknna(x, y, 10)
elif what == "dense_mmd":
    dense.mmd(x, y, sigma)
elif what == "dense_cka_rbf":
    dense.cka_rbf(x, y, sigma)
elif what == "dense_retrieval":
    dense.retrieval_ranks(x, y)
else:
    raise SystemExit(f"unknown call {what!r}")
peak = status_mb("VmHWM")
print(json.dumps({"inputs_mb": 2 * n * d * 4 / 2**20, "peak_beyond_inputs_mb": peak - before}))
"""


def peak_beyond_inputs_mb(
    n: int, d: int, what: str = "report", sigma: float = 1.0, noise: float = 0.5
) -> dict[str, float]:
    """Inputs x ~ N(0, I) (n, d) and y = x + noise·N(0, I), float32; returns the call's peak beyond them."""
    here = str(Path(__file__).resolve().parent)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(n), str(d), what, here, str(sigma), str(noise)],
        capture_output=True, text=True, check=True, timeout=1200,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    for n, d in [(2000, 512), (20000, 768)]:
        print(n, d, peak_beyond_inputs_mb(n, d), peak_beyond_inputs_mb(n, d, "floor"))
