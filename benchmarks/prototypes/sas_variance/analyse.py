from pathlib import Path

HERE = Path(__file__).resolve().parent
import math
import pickle
import sys

import numpy as np

sys.path[:0] = [str(HERE.parents[1]), str(HERE.parents[2]), str(HERE)]
from collections import defaultdict

import coverage as cov
import kink

files = sys.argv[1].split(",")
kappas = [float(k) for k in sys.argv[2].split(",")] if len(sys.argv) > 2 else [0.0, 2.0, 3.0, -1]
results = [r for f in files for r in pickle.load(open(str(HERE / "results") + f"/res-{f}.pkl", "rb"))]
by = defaultdict(list)
for name, _rep, res in results:
    by[name].append(res)
for name, rs in by.items():
    reg = cov.ALL_REGIMES[name]
    truth = cov.closed_form(cov.planted(reg))
    print(f"== {name} R={len(rs)}  same-active={np.mean([r['x']['same'] for r in rs]):.3f}")
    for kappa in kappas:
        k = math.sqrt(math.log(reg.n)) if kappa < 0 else kappa
        ivs = [kink.intervals(r, reg.n, k) for r in rs]
        nn = np.mean([iv["x_nnull"] for iv in ivs]), np.mean([iv["y_nnull"] for iv in ivs])
        line = [f" kappa={k:.2f} null x/y={nn[0]:.1f}/{nn[1]:.1f}"]
        for m in ("sas_x_to_y", "sas_y_to_x", "sas_symmetric", "sas_imbalance"):
            t = truth[m]
            est = np.array([iv[m]["est"] for iv in ivs])
            sd = est.std(ddof=1)
            cells = []
            for meth in ("normal", "basic", "fs_basic", "fs_normal", "fs_normal_nobias"):
                lo = np.array([iv[m][meth][0] for iv in ivs])
                hi = np.array([iv[m][meth][1] for iv in ivs])
                c = np.mean((lo <= t) & (t <= hi))
                w = np.mean(hi - lo) / sd
                cells.append(f"{meth}:{100 * c:.0f}%/{w:.1f}")
            line.append(f"   {m[4:]:10s} bias/sd={(est.mean() - t) / sd:+.2f} " + " ".join(cells))
        print("\n".join(line))
