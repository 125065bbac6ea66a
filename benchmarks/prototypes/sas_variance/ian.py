from pathlib import Path

HERE = Path(__file__).resolve().parent
import pickle
import sys

import numpy as np

sys.path[:0] = [str(HERE.parents[1]), str(HERE.parents[2]), str(HERE)]
from collections import defaultdict

import coverage as cov

Z = 1.959963984540054
out = [r for f in sys.argv[1].split(",") for r in pickle.load(open(str(HERE / "results") + f"/iter-{f}.pkl", "rb"))]
by = defaultdict(list)
for name, _rep, est, first, second in out:
    by[name].append((est, first, second))


def f(a):  # (..., 2) -> metrics
    return {"x_to_y": a[..., 0], "y_to_x": a[..., 1], "sym": a.mean(-1), "imb": a[..., 0] - a[..., 1]}


for name, rs in by.items():
    truth = cov.closed_form(cov.planted(cov.ALL_REGIMES[name]))
    tr = {
        "x_to_y": truth["sas_x_to_y"],
        "y_to_x": truth["sas_y_to_x"],
        "sym": truth["sas_symmetric"],
        "imb": truth["sas_imbalance"],
    }
    print(f"== {name} R={len(rs)}")
    for m in tr:
        e = np.array([f(r[0])[m] for r in rs])
        sd = e.std(ddof=1)
        v1 = np.array([f(r[1])[m].var(ddof=1) for r in rs])
        v2 = np.array([f(r[2])[m].var(axis=1, ddof=1).mean() for r in rs])
        b1 = np.array([f(r[1])[m].mean() - f(r[0])[m] for r in rs])
        b2 = np.array([(f(r[2])[m].mean(1) - f(r[1])[m][: r[2].shape[0]]).mean() for r in rs])
        vc = np.maximum(2 * v1 - v2, 0.25 * v1)
        cells = []
        for lab, v, c in (
            ("normal", v1, e),
            ("iter", vc, e),
            ("iter+b", vc, e - b1),
            ("iter+b2", vc, e - (2 * b1 - b2)),
        ):
            cov_ = np.mean(np.abs(c - tr[m]) <= Z * np.sqrt(v))
            w = 2 * Z * np.sqrt(v).mean() / sd
            cells.append(f"{lab}:{100 * cov_:.0f}%/{w:.2f}")
        print(
            f"  {m:7s} sd={sd:.4f} boot={np.sqrt(v1).mean():.4f} boot2={np.sqrt(v2).mean():.4f} "
            f"corr={np.sqrt(np.maximum(2 * v1 - v2, 0)).mean():.4f} "
            f"bias/sd={(e.mean() - tr[m]) / sd:+.2f} b1/sd={b1.mean() / sd:+.2f} b2/sd={b2.mean() / sd:+.2f} | "
            + " ".join(cells)
        )
