from pathlib import Path

HERE = Path(__file__).resolve().parent
import pickle
import sys

import numpy as np

sys.path[:0] = [str(HERE.parents[1]), str(HERE.parents[2]), str(HERE)]
import coverage as cov

results = pickle.load(open(str(HERE / "results") + "/res-a.pkl", "rb"))
from collections import defaultdict

by = defaultdict(list)
for name, _rep, res in results:
    by[name].append(res)
for name in sys.argv[1].split(","):
    rs = by[name]
    model = cov.planted(cov.ALL_REGIMES[name])
    for anchor in ("x", "y"):
        rho = np.array([r[anchor]["rho"] for r in rs])
        lam = np.array([r[anchor]["lam"] for r in rs])
        bsd = np.array([r[anchor]["R"].std(0, ddof=1) for r in rs]).mean(0)
        lsd = np.array([r[anchor]["L"].std(0, ddof=1) for r in rs]).mean(0)
        W = lam / lam.sum(1, keepdims=True)
        sas = (W * np.abs(rho)).sum(1)
        bsas = np.array(
            [
                ((r[anchor]["L"] / r[anchor]["L"].sum(1, keepdims=True)) * np.abs(r[anchor]["R"])).sum(1).std(ddof=1)
                for r in rs
            ]
        ).mean()
        print(name, anchor, f"SAS sd={sas.std(ddof=1):.4f} boot={bsas:.4f}")
        print("  mean rho ", np.round(rho.mean(0), 3))
        print("  sd rho   ", np.round(rho.std(0, ddof=1), 4))
        print("  boot sd  ", np.round(bsd, 4))
        print("  sd lam/l ", np.round(lam.std(0, ddof=1) / lam.mean(0), 4), " boot", np.round(lsd / lam.mean(0), 4))
        print("  w        ", np.round(W.mean(0), 3))
