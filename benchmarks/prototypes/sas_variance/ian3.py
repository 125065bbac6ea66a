from pathlib import Path

HERE = Path(__file__).resolve().parent
import pickle
import sys

import numpy as np

sys.path[:0] = [str(HERE.parents[1]), str(HERE.parents[2]), str(HERE)]
from collections import defaultdict

import coverage as cov

out = [r for f in sys.argv[1].split(",") for r in pickle.load(open(str(HERE / "results") + f"/iter-{f}.pkl", "rb"))]
B = int(sys.argv[2])
M = int(sys.argv[3])
C = int(sys.argv[4])
by = defaultdict(list)
for name, _rep, est, first, second in out:
    by[name].append((est, first[:B], second[:M, :C]))


def f(a):
    return {"x_to_y": a[..., 0], "y_to_x": a[..., 1], "sym": a.mean(-1), "imb": a[..., 0] - a[..., 1]}


for name, rs in by.items():
    truth = cov.closed_form(cov.planted(cov.ALL_REGIMES[name]))
    m = "imb"
    t = truth["sas_imbalance"]
    e = np.array([f(r[0])[m] for r in rs])
    sd = e.std(ddof=1)
    v1 = np.array([f(r[1])[m].var(ddof=1) for r in rs])
    v2 = np.array([f(r[2])[m].var(axis=1, ddof=1).mean() for r in rs])
    res = []
    for lab, v in (("normal", v1), ("linear", 2 * v1 - v2), ("geom", v1**2 / v2)):
        ok = v > 0
        c = np.mean(ok & (np.abs(e - t) <= 1.96 * np.sqrt(np.where(ok, v, 0))))
        res.append(
            f"{lab}:{100 * c:.0f}% w={2 * 1.96 * np.sqrt(np.abs(v)).mean() / sd:.2f} "
            f"cv={np.sqrt(np.abs(v)).std() / np.sqrt(np.abs(v)).mean():.2f} neg={np.sum(~ok)}"
        )
    print(f"{name:24s} B={B} M={M} C={C} " + "  ".join(res))
