"""Prototype: Fang-Santos style bootstrap for SAS (|rho| kink at 0) vs plain normal. numpy float64."""

from pathlib import Path

HERE = Path(__file__).resolve().parent
import sys
import time

sys.path[:0] = [str(HERE.parents[1]), str(HERE.parents[2]), str(HERE)]
from multiprocessing import Pool

import coverage as cov
import numpy as np

Z = 1.959963984540054
EPS = 1e-8


def modes(xc, yc, q=0.1):
    """per-mode (lam, rho) of anchor x with active mask; xc, yc centred."""
    n = xc.shape[0]
    S = xc.T @ xc / n
    lam, V = np.linalg.eigh(S)
    lam, V = lam[::-1], V[:, ::-1]
    t = np.quantile(lam, 1 - q)
    act = lam >= t
    k = int(act.sum())
    P = xc @ V[:, :k]
    Q = yc @ V[:, :k]
    a = (P * Q).mean(0)
    s2 = (Q * Q).mean(0)
    rho = a / np.sqrt(lam[:k] * s2 + EPS)
    return lam[:k], rho


def sas(lam, rho):
    return float((lam * np.abs(rho)).sum() / lam.sum())


def one(args):
    name, rep, B = args
    reg = cov.ALL_REGIMES[name]
    model = cov.planted(reg)
    x, y = cov.sample(reg, model, rep)
    x, y = x.numpy(), y.numpy()
    n = x.shape[0]
    rng = np.random.default_rng([rep, 77])
    est = {}
    reps = {}
    for anchor in ("x", "y"):
        a, b = (x, y) if anchor == "x" else (y, x)
        ac, bc = a - a.mean(0), b - b.mean(0)
        est[anchor] = modes(ac, bc)
        reps[anchor] = []
    for _ in range(B):
        idx = rng.integers(0, n, n)
        for anchor in ("x", "y"):
            a, b = (x, y) if anchor == "x" else (y, x)
            ab, bb = a[idx], b[idx]
            reps[anchor].append(modes(ab - ab.mean(0), bb - bb.mean(0)))
    res = {}
    for anchor in ("x", "y"):
        lam, rho = est[anchor]
        k = lam.size
        L = np.array([r[0][:k] if r[0].size >= k else np.pad(r[0], (0, k - r[0].size)) for r in reps[anchor]])
        R = np.array([r[1][:k] if r[1].size >= k else np.pad(r[1], (0, k - r[1].size)) for r in reps[anchor]])
        same = np.array([r[0].size == k for r in reps[anchor]])
        theta = sas(lam, rho)
        plain = np.array([sas(r[0], r[1]) for r in reps[anchor]])
        sd_rho = R.std(0, ddof=1)
        res[anchor] = {
            "theta": theta,
            "plain": plain,
            "L": L,
            "R": R,
            "lam": lam,
            "rho": rho,
            "sd_rho": sd_rho,
            "same": same.mean(),
        }
    return name, rep, res


def intervals(res, n, kappa):
    out = {}
    D = {}
    for anchor, r in res.items():
        lam, rho, L, R = r["lam"], r["rho"], r["L"], r["R"]
        null = np.abs(rho) <= kappa * r["sd_rho"]
        w = lam / lam.sum()
        Wb = L / L.sum(1, keepdims=True)
        sig_part = (Wb[:, ~null] * np.abs(R[:, ~null])).sum(1) - (w[~null] * np.abs(rho[~null])).sum()
        null_part = (w[null] * np.abs(R[:, null] - rho[null])).sum(1)
        D[anchor] = sig_part + null_part
        D[anchor + "_plain"] = r["plain"] - r["theta"]
        out[anchor + "_nnull"] = int(null.sum())
    th = {"x": res["x"]["theta"], "y": res["y"]["theta"]}
    stats = {
        "sas_x_to_y": (th["x"], D["x"], D["x_plain"]),
        "sas_y_to_x": (th["y"], D["y"], D["y_plain"]),
        "sas_symmetric": ((th["x"] + th["y"]) / 2, (D["x"] + D["y"]) / 2, (D["x_plain"] + D["y_plain"]) / 2),
        "sas_imbalance": (th["x"] - th["y"], D["x"] - D["y"], D["x_plain"] - D["y_plain"]),
    }
    for m, (t, d, dp) in stats.items():
        sdp = dp.std(ddof=1)
        out[m] = {
            "est": t,
            "normal": (t - Z * sdp, t + Z * sdp),
            "basic": (t - np.quantile(dp, 0.975), t - np.quantile(dp, 0.025)),
            "fs_basic": (t - np.quantile(d, 0.975), t - np.quantile(d, 0.025)),
            "fs_normal": (t - d.mean() - Z * d.std(ddof=1), t - d.mean() + Z * d.std(ddof=1)),
            "fs_normal_nobias": (t - Z * d.std(ddof=1), t + Z * d.std(ddof=1)),
        }
    return out


if __name__ == "__main__":
    regimes = sys.argv[1].split(",")
    R = int(sys.argv[2])
    B = int(sys.argv[3])
    jobs = [(nm, r, B) for nm in regimes for r in range(R)]
    t0 = time.time()
    with Pool(2) as p:
        results = p.map(one, jobs, chunksize=1)
    import pickle

    pickle.dump(results, open(str(HERE / "results") + f"/res-{sys.argv[4]}.pkl", "wb"))
    print("wall", time.time() - t0)
