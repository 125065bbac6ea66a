"""Peak resident memory of one call beyond its inputs, measured in a fresh process (CPU).

torch's CPU allocations are invisible to tracemalloc, so the honest measure is the process's
resident set: the inputs are made first (without temporaries), then the high-water mark of the
call (VmHWM) is compared with the resident size just before it (VmRSS). Conservative: if an earlier
spike (the imports) was higher than the call's own peak, the difference includes it. (getrusage's
ru_maxrss is not used: on Linux it carries the parent's peak across fork and exec.)
"""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import json, sys, torch
import torchspectral as ts

n, d, what = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
torch.manual_seed(0)
x = torch.randn(n, d)
y = torch.randn(n, d).mul_(0.5).add_(x)  # in place: no temporaries before the baseline
def status_mb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024
before = status_mb("VmRSS")
if what == "report":
    ts.alignment_report(x, y)
elif what == "floor":
    z = torch.cat([x, y], 1)
    g = (z.T @ z).double()
    torch.linalg.eigh(g[:d, :d]); torch.linalg.eigh(g[d:, d:]); torch.linalg.svdvals(g[:d, d:])
peak = status_mb("VmHWM")
print(json.dumps({"inputs_mb": 2 * n * d * 4 / 2**20, "peak_beyond_inputs_mb": peak - before}))
"""


def peak_beyond_inputs_mb(n: int, d: int, what: str = "report") -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(n), str(d), what], capture_output=True, text=True, check=True, timeout=600
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    for n, d in [(2000, 512), (20000, 768)]:
        print(n, d, peak_beyond_inputs_mb(n, d), peak_beyond_inputs_mb(n, d, "floor"))
