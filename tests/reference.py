"""Independent float64 NumPy reference implementations of the torchspectral metrics.

Written directly from /work/shared/SPEC.md (sections 1, 2, 3, 4, 6 and 11), deliberately
naive (n x n matrices where that is the natural definition, explicit loops where clearer),
and independent of the package code. Tests compare the package against these functions.

These references must NEVER be edited to match the package: if the two disagree, either the
package is wrong or the SPEC is ambiguous, and the discrepancy must be resolved on its merits.
"""
import numpy as np


def _as64(a):
    return np.asarray(a, dtype=np.float64)


def _check_pairs(x, y):
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError("inputs must be 2-D (n, d) arrays")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"mismatched n: {x.shape[0]} vs {y.shape[0]}")


def _normalize_rows(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def covariance(x):
    """1/n covariance of the centred columns (SPEC Notation: Sigma_x = Xc^T Xc / n)."""
    x = _as64(x)
    xc = x - x.mean(axis=0)
    return xc.T @ xc / x.shape[0]


def _directional(anchor, other, q, eps, signed):
    """SPEC section 1, steps 1-4, for one anchor; returns (score, eigenvalues, rho, active)."""
    n = anchor.shape[0]
    ac = anchor - anchor.mean(axis=0)
    oc = other - other.mean(axis=0)
    s_aa = ac.T @ ac / n
    s_oo = oc.T @ oc / n
    s_ao = ac.T @ oc / n  # cross-covariance, anchor rows x other columns
    evals, evecs = np.linalg.eigh(s_aa)
    order = np.argsort(evals)[::-1]  # descending
    lam = evals[order]
    vecs = evecs[:, order]
    d = lam.shape[0]
    rho = np.zeros(d)
    for k in range(d):
        v = vecs[:, k]
        a_k = v @ s_ao @ v
        sigma2_k = v @ s_oo @ v
        rho[k] = a_k / np.sqrt(lam[k] * sigma2_k + eps)
    t = np.quantile(lam, 1.0 - q)  # linear interpolation (numpy default)
    active = lam >= t
    weights = rho if signed else np.abs(rho)
    score = np.sum(lam[active] * weights[active]) / np.sum(lam[active])
    lo = -1.0 if signed else 0.0
    score = float(min(max(score, lo), 1.0))
    return score, lam, rho, active


def spectral_alignment(x, y, q=0.1, eps=1e-8, signed=False):
    """Spectral Alignment Score, both directions, symmetric mean and imbalance (SPEC section 1)."""
    x = _as64(x)
    y = _as64(y)
    _check_pairs(x, y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"SAS requires equal widths, got d_x={x.shape[1]}, d_y={y.shape[1]}")
    sxy, lam_x, rho_x, act_x = _directional(x, y, q, eps, signed)
    syx, lam_y, rho_y, act_y = _directional(y, x, q, eps, signed)
    return {
        "x_to_y": sxy,
        "y_to_x": syx,
        "symmetric": 0.5 * (sxy + syx),
        "imbalance": sxy - syx,
        "eigenvalues_x": lam_x,
        "rho_x": rho_x,
        "active_x": act_x,
        "eigenvalues_y": lam_y,
        "rho_y": rho_y,
        "active_y": act_y,
    }


def sas(x, y, q=0.1, eps=1e-8, signed=False):
    """Directional SAS_{X->Y} with X as the anchor (SPEC section 1)."""
    return spectral_alignment(x, y, q=q, eps=eps, signed=signed)["x_to_y"]


def _hsic_biased(k, l):
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return np.trace(k @ h @ l @ h)


def _hsic_unbiased(k, l):
    n = k.shape[0]
    kt = k.copy()
    lt = l.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    one = np.ones(n)
    term1 = np.trace(kt @ lt)
    term2 = (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
    term3 = (2.0 / (n - 2)) * (one @ kt @ lt @ one)
    return (term1 + term2 - term3) / (n * (n - 3))


def cka_linear(x, y, unbiased=False):
    """Linear CKA via explicit n x n Gram matrices; biased or Song et al. U-statistic (SPEC section 2)."""
    x = _as64(x)
    y = _as64(y)
    _check_pairs(x, y)
    if unbiased:
        # HSIC_u is exactly translation invariant; centring the columns first changes nothing
        # mathematically but avoids cancellation in raw Gram matrices with a large offset.
        x = x - x.mean(axis=0)
        y = y - y.mean(axis=0)
    k = x @ x.T
    l = y @ y.T
    if unbiased:
        if x.shape[0] < 4:
            raise ValueError(f"unbiased CKA needs n >= 4, got n={x.shape[0]}")
        hsic = _hsic_unbiased
    else:
        hsic = _hsic_biased
    return float(hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l)))


def _svcca_reduce(a, keep, standardize):
    ac = a - a.mean(axis=0)
    if standardize:
        std = ac.std(axis=0)
        std = np.where(std > 0, std, 1.0)  # leave zero-std columns as they are
        ac = ac / std
    _, s, vt = np.linalg.svd(ac, full_matrices=False)
    if isinstance(keep, (int, np.integer)):
        k = min(int(keep), s.shape[0])
    else:
        var = s ** 2
        frac = np.cumsum(var) / np.sum(var)
        k = s.shape[0]
        for i in range(s.shape[0]):
            if frac[i] >= keep:
                k = i + 1
                break
    return ac @ vt[:k].T


def svcca(x, y, keep=0.99, standardize=False):
    """SVCCA: mean canonical correlation of the top-variance reductions (SPEC section 3).

    Computed via SVD of the data and principal angles (QR), not via covariance eigendecomposition.
    """
    x = _as64(x)
    y = _as64(y)
    _check_pairs(x, y)
    r = _svcca_reduce(x, keep, standardize)
    s = _svcca_reduce(y, keep, standardize)
    qr_, _ = np.linalg.qr(r)
    qs_, _ = np.linalg.qr(s)
    cors = np.linalg.svd(qr_.T @ qs_, compute_uv=False)
    cors = np.clip(cors, 0.0, 1.0)
    return float(np.mean(cors))


def coral(x, y, scale="deep"):
    """CORAL distance between 1/(n-1) covariances; 'deep' or 'frobenius' scale (SPEC section 4)."""
    x = _as64(x)
    y = _as64(y)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError("inputs must be 2-D (n, d) arrays")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"CORAL requires equal widths, got {x.shape[1]} and {y.shape[1]}")
    diff = np.cov(x, rowvar=False) - np.cov(y, rowvar=False)
    fro2 = np.sum(diff ** 2)
    d = x.shape[1]
    if scale == "deep":
        return float(fro2 / (4.0 * d * d))
    if scale == "frobenius":
        return float(np.sqrt(fro2))
    raise ValueError(f"unknown scale {scale!r}")


def modality_gap(x, y):
    """L2M gap ||mean x_hat - mean y_hat||_2 (SPEC section 6)."""
    x = _normalize_rows(_as64(x))
    y = _normalize_rows(_as64(y))
    _check_pairs(x, y)
    return float(np.linalg.norm(x.mean(axis=0) - y.mean(axis=0)))


def l2i(x, y):
    """L2I = mean_i ||x_hat_i - y_hat_i||_2 (SPEC section 6)."""
    x = _normalize_rows(_as64(x))
    y = _normalize_rows(_as64(y))
    _check_pairs(x, y)
    return float(np.mean(np.linalg.norm(x - y, axis=1)))


def true_pair_cosine(x, y):
    """Mean cosine of true pairs, mean_i <x_hat_i, y_hat_i> (SPEC section 6)."""
    x = _normalize_rows(_as64(x))
    y = _normalize_rows(_as64(y))
    _check_pairs(x, y)
    return float(np.mean(np.sum(x * y, axis=1)))


def cosine_gap(x, y):
    """Diagonal minus off-diagonal mean of the full n x n cosine matrix (SPEC section 6)."""
    x = _normalize_rows(_as64(x))
    y = _normalize_rows(_as64(y))
    _check_pairs(x, y)
    n = x.shape[0]
    c = x @ y.T
    off = ~np.eye(n, dtype=bool)
    return float(np.mean(np.diag(c)) - np.mean(c[off]))


def rmg(x, y):
    """Relative modality gap with explicit n x n distances d = (1 - cos)/2 (SPEC section 6)."""
    x = _normalize_rows(_as64(x))
    y = _normalize_rows(_as64(y))
    _check_pairs(x, y)
    n = x.shape[0]
    d_xy = (1.0 - x @ y.T) / 2.0
    d_xx = (1.0 - x @ x.T) / 2.0
    d_yy = (1.0 - y @ y.T) / 2.0
    off = ~np.eye(n, dtype=bool)
    m = np.mean(np.diag(d_xy))
    dx = np.mean(d_xx[off])
    dy = np.mean(d_yy[off])
    return float(m / (m + 0.5 * (dx + dy)))


def instance_sas(x_fit, y_fit, x, y, q=0.1, eps=1e-8, mode="decompose", anchor="x"):
    """Per-pair SAS of SPEC section 1.1: fit on (x_fit, y_fit), score the pairs (x, y), one loop per pair.

    anchor "x" scores the x->y direction, "y" the y->x direction (roles of the modalities swapped).
    """
    x_fit, y_fit, x, y = (_as64(a) for a in (x_fit, y_fit, x, y))
    if anchor == "y":
        x_fit, y_fit, x, y = y_fit, x_fit, y, x
    n = x_fit.shape[0]
    mu_x, mu_y = x_fit.mean(axis=0), y_fit.mean(axis=0)
    s_aa = (x_fit - mu_x).T @ (x_fit - mu_x) / n
    s_oo = (y_fit - mu_y).T @ (y_fit - mu_y) / n
    s_ao = (x_fit - mu_x).T @ (y_fit - mu_y) / n
    evals, evecs = np.linalg.eigh(s_aa)
    order = np.argsort(evals)[::-1]
    lam, vecs = evals[order], evecs[:, order]
    active = np.nonzero(lam >= np.quantile(lam, 1.0 - q))[0]
    scores = np.zeros(x.shape[0])
    for i in range(x.shape[0]):
        num = 0.0
        for k in active:
            v = vecs[:, k]
            sigma2 = v @ s_oo @ v
            rho_pop = (v @ s_ao @ v) / np.sqrt(lam[k] * sigma2 + eps)
            rho_i = ((x[i] - mu_x) @ v) * ((y[i] - mu_y) @ v) / np.sqrt(lam[k] * sigma2 + eps)
            if mode == "decompose":
                num += lam[k] * np.sign(rho_pop) * rho_i
            else:
                num += lam[k] * abs(rho_i)
        scores[i] = num / np.sum(lam[active])
    return scores


# ---------------------------------------------------------------------------
# Pairwise metrics (SPEC sections 2, 5, 7): RBF MMD, RBF CKA, retrieval ranks.
# Explicit n x m matrices, float64, loops where they make the definition plain.
# ---------------------------------------------------------------------------

MEDIAN_SUBSAMPLE = 4096  # above this many points the bandwidth median uses an evenly spaced subsample


def median_subsample(n):
    """Indices of the documented deterministic subsample: floor(k * n / 4096), k = 0..4095 (all rows if n <= 4096)."""
    if n <= MEDIAN_SUBSAMPLE:
        return np.arange(n)
    return (np.arange(MEDIAN_SUBSAMPLE) * n) // MEDIAN_SUBSAMPLE


def squared_distances(a, b):
    """||a_i - b_j||^2 from explicit differences, one row of a at a time (n x m)."""
    a = _as64(a)
    b = _as64(b)
    out = np.empty((a.shape[0], b.shape[0]))
    for i in range(a.shape[0]):
        diff = b - a[i]
        out[i] = np.sum(diff * diff, axis=1)
    return out


def rbf_kernel(a, b, sigma):
    """k(u, v) = exp(-||u - v||^2 / (2 sigma^2)); a list of sigma gives the sum of the kernels."""
    sigmas = [sigma] if np.isscalar(sigma) else list(sigma)
    d2 = squared_distances(a, b)
    return sum(np.exp(-d2 / (2.0 * s * s)) for s in sigmas)


def mmd_median_sigma(x, y):
    """Gretton's heuristic: median Euclidean distance over distinct pairs i < j of the pooled sample."""
    z = np.concatenate([_as64(x), _as64(y)], axis=0)
    z = z[median_subsample(z.shape[0])]
    d2 = squared_distances(z, z)
    iu = np.triu_indices(z.shape[0], k=1)
    return float(np.median(np.sqrt(d2[iu])))


def mmd(x, y, sigma="median", estimator="unbiased", scale=1.0):
    """Squared MMD with the RBF kernel (SPEC section 5); x (n, d) and y (m, d) may differ in n, m."""
    x = _as64(x)
    y = _as64(y)
    if isinstance(sigma, str):
        sigma = mmd_median_sigma(x, y)
    n, m = x.shape[0], y.shape[0]
    kxx = rbf_kernel(x, x, sigma)
    kyy = rbf_kernel(y, y, sigma)
    kxy = rbf_kernel(x, y, sigma)
    if estimator == "biased":
        value = kxx.sum() / (n * n) + kyy.sum() / (m * m) - 2.0 * kxy.sum() / (n * m)
    elif estimator == "unbiased":
        within_x = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        within_y = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        value = within_x + within_y - 2.0 * kxy.sum() / (n * m)
    else:
        raise ValueError(f"unknown estimator {estimator!r}")
    return float(scale * value)


def kornblith_sigma(x, threshold=1.0):
    """sigma with sigma^2 = threshold^2 * median of all n^2 squared distances (zero diagonal included)."""
    x = _as64(x)
    x = x[median_subsample(x.shape[0])]
    return float(np.sqrt(threshold ** 2 * np.median(squared_distances(x, x))))


def cka_rbf(x, y, unbiased=False, sigma=None, threshold=1.0):
    """RBF-kernel CKA with explicit n x n kernels and the HSIC formulas above (SPEC section 2)."""
    x = _as64(x)
    y = _as64(y)
    _check_pairs(x, y)
    sx = kornblith_sigma(x, threshold) if sigma is None else sigma
    sy = kornblith_sigma(y, threshold) if sigma is None else sigma
    k = rbf_kernel(x, x, sx)
    l = rbf_kernel(y, y, sy)
    if unbiased:
        if x.shape[0] < 4:
            raise ValueError(f"unbiased CKA needs n >= 4, got n={x.shape[0]}")
        hsic = _hsic_unbiased
    else:
        hsic = _hsic_biased
    return float(hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l)))


def retrieval(x, y, caption_to_image=None, ks=(1, 5, 10), ties="optimistic"):
    """Retrieval ranks and recalls from the explicit N x M cosine matrix (SPEC section 7).

    0-based ranks. Image->text rank of image i: min over its captions j of the number of captions j'
    ahead of j; text->image rank of caption j: the number of images i' ahead of its image c(j).
    "Ahead" means a strictly greater score; with ties="pessimistic" an item with an equal score is also
    ahead unless it is itself a correct match for the query (another caption of the same image).
    """
    x = _normalize_rows(_as64(x))
    y = _normalize_rows(_as64(y))
    n_img, n_cap = x.shape[0], y.shape[0]
    c = np.arange(n_cap) if caption_to_image is None else np.asarray(caption_to_image)
    s = x @ y.T
    pess = ties == "pessimistic"
    i2t = np.empty(n_img, dtype=np.int64)
    for i in range(n_img):
        best = None
        for j in range(n_cap):
            if c[j] != i:
                continue
            ahead = 0
            for jj in range(n_cap):
                if jj == j:
                    continue
                if s[i, jj] > s[i, j] or (pess and s[i, jj] == s[i, j] and c[jj] != i):
                    ahead += 1
            best = ahead if best is None else min(best, ahead)
        i2t[i] = best
    t2i = np.empty(n_cap, dtype=np.int64)
    for j in range(n_cap):
        gt = s[c[j], j]
        ahead = 0
        for ii in range(n_img):
            if ii == c[j]:
                continue
            if s[ii, j] > gt or (pess and s[ii, j] == gt):
                ahead += 1
        t2i[j] = ahead
    out = {"i2t_ranks": i2t, "t2i_ranks": t2i}
    for k in ks:
        out[f"i2t_r{k}"] = float(np.mean(i2t < k))
        out[f"t2i_r{k}"] = float(np.mean(t2i < k))
    out["rsum"] = float(100.0 * sum(np.mean(i2t < k) + np.mean(t2i < k) for k in (1, 5, 10)))
    out["i2t_median_rank"] = float(np.median(i2t + 1))
    out["t2i_median_rank"] = float(np.median(t2i + 1))
    out["i2t_mean_rank"] = float(np.mean(i2t + 1))
    out["t2i_mean_rank"] = float(np.mean(t2i + 1))
    return out


def subspace_scores(cov_x, cov_y, cov_xy, q=0.1):
    """Subspace SAS, both directions (docs/verdict.md): on the anchor's top-q eigensubspace U (the SAS active
    set), S = tr(Cxx |K|) / tr(Cxx) with Cxx = U^T Sx U, Cyy = U^T Sy U, Cxy = U^T Sxy U,
    K = sym(Cxx^-1/2 Cxy Cyy^-1/2) and |K| its matrix absolute value."""
    from scipy.linalg import sqrtm

    def one(anchor, other, cross):
        evals, evecs = np.linalg.eigh(anchor)
        order = np.argsort(evals)[::-1]
        lam, vecs = evals[order], evecs[:, order]
        active = lam >= np.quantile(lam, 1.0 - q)
        u = vecs[:, active]
        cxx, cyy, cxy = u.T @ anchor @ u, u.T @ other @ u, u.T @ cross @ u
        k = np.linalg.inv(np.real(sqrtm(cxx))) @ cxy @ np.linalg.inv(np.real(sqrtm(cyy)))
        k = (k + k.T) / 2
        mu, w = np.linalg.eigh(k)
        absolute = w @ np.diag(np.abs(mu)) @ w.T
        return float(np.trace(cxx @ absolute) / np.trace(cxx))

    cov_x, cov_y, cov_xy = _as64(cov_x), _as64(cov_y), _as64(cov_xy)
    return one(cov_x, cov_y, cov_xy), one(cov_y, cov_x, cov_xy.T)


# ---------------------------------------------------------------------------------------------------------------
# Neighbourhood measures (Huh et al. 2024, "The Platonic Representation Hypothesis"): neighbours by inner product
# on the given rows, the row itself excluded; among equal inner products the lower row index is the nearer.


def knn_lists(z, k):
    """(n, k) indices of the k nearest rows of each row by inner product (self excluded, ties: lower index)."""
    z = _as64(z)
    n = z.shape[0]
    sims = z @ z.T
    out = np.empty((n, k), dtype=np.int64)
    for i in range(n):
        order = [j for j in np.argsort(-sims[i], kind="stable") if j != i]
        out[i] = order[:k]
    return out


def mutual_knn(x, y, k):
    """Mean over rows of |N_x(i) ∩ N_y(i)| / k."""
    _check_pairs(_as64(x), _as64(y))
    nx, ny = knn_lists(x, k), knn_lists(y, k)
    return float(np.mean([len(set(nx[i]) & set(ny[i])) / k for i in range(nx.shape[0])]))


def cycle_knn(x, y, k):
    """Fraction of rows i found among the x-neighbours of their own y-neighbours."""
    nx, ny = knn_lists(x, k), knn_lists(y, k)
    return float(np.mean([any(i in nx[j] for j in ny[i]) for i in range(nx.shape[0])]))


def _hsic_unbiased_dense(K, L):
    """Song et al.'s unbiased HSIC of two (not necessarily symmetric) n x n kernels, diagonals zeroed."""
    m = K.shape[0]
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0.0)
    np.fill_diagonal(L, 0.0)
    value = (K * L.T).sum() + K.sum() * L.sum() / ((m - 1) * (m - 2)) - 2 * (K @ L).sum() / (m - 2)
    return value / (m * (m - 3))


def cknna(x, y, k):
    """CKNNA: unbiased HSIC of the linear kernels masked to the pairs (i, j) where j is among the k nearest
    neighbours of i in both spaces being compared, normalised by the same quantity of each space with itself."""
    x, y = _as64(x), _as64(y)
    _check_pairs(x, y)
    n = x.shape[0]

    def mask(a, b):
        na, nb = knn_lists(a, k), knn_lists(b, k)
        m = np.zeros((n, n))
        for i in range(n):
            for j in set(na[i]) & set(nb[i]):
                m[i, j] = 1.0
        return m

    K, L = x @ x.T, y @ y.T

    def sim(a, b, Ka, Kb):
        m = mask(a, b)
        return _hsic_unbiased_dense(m * Ka, m * Kb)

    return float(sim(x, y, K, L) / np.sqrt(sim(x, x, K, K) * sim(y, y, L, L)))


def procrustes_similarity(x, y):
    """Orthogonal Procrustes similarity: nuclear norm of the cross-product of the centred, unit-Frobenius-norm
    representations (Ding et al. 2021), computed from the n x d data directly."""
    x, y = _as64(x), _as64(y)
    _check_pairs(x, y)
    xc, yc = x - x.mean(0), y - y.mean(0)
    xt, yt = xc / np.linalg.norm(xc), yc / np.linalg.norm(yc)
    return float(np.linalg.svd(xt.T @ yt, compute_uv=False).sum())
