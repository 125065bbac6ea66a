"""Prototype: iterated-bootstrap variance correction v = 2 v* - v** for SAS metrics (numpy float64)."""

from pathlib import Path

HERE = Path(__file__).resolve().parent
import pickle
import sys
import time

sys.path[:0] = [str(HERE.parents[1]), str(HERE.parents[2]), str(HERE)]
from multiprocessing import Pool

import coverage as cov
import numpy as np
from kink import modes, sas


def both(x, y, idx):
    xb, yb = x[idx], y[idx]
    xb = xb - xb.mean(0)
    yb = yb - yb.mean(0)
    return sas(*modes(xb, yb)), sas(*modes(yb, xb))


def one(args):
    name, rep, B, M, C = args
    reg = cov.ALL_REGIMES[name]
    model = cov.planted(reg)
    x, y = cov.sample(reg, model, rep)
    x, y = x.numpy(), y.numpy()
    n = x.shape[0]
    rng = np.random.default_rng([rep, 99])
    est = both(x, y, np.arange(n))
    first, idxs = [], []
    for b in range(B):
        idx = rng.integers(0, n, n)
        first.append(both(x, y, idx))
        if b < M:
            idxs.append(idx)
    second = []
    for idx in idxs:
        second.append([both(x, y, idx[rng.integers(0, n, n)]) for _ in range(C)])
    return name, rep, np.array(est), np.array(first), np.array(second)


if __name__ == "__main__":
    regimes = sys.argv[1].split(",")
    R0, R1 = map(int, sys.argv[2].split(":"))
    B, M, C = map(int, sys.argv[3].split(","))
    jobs = [(nm, r, B, M, C) for r in range(R0, R1) for nm in regimes]
    t0 = time.time()
    with Pool(2) as p:
        out = p.map(one, jobs, chunksize=1)
    pickle.dump(out, open(str(HERE / "results") + f"/iter-{sys.argv[4]}.pkl", "wb"))
    print("wall", time.time() - t0)
