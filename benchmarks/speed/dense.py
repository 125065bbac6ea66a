"""Dense torch baselines of the pairwise metrics: what a peer library does (full n×m matrices).

Each builds the whole kernel or similarity matrix with torch (cdist/exp or x̂ŷᵀ + compare), in place
where possible so the baseline is as fast as dense torch gets; results are checked against
``torchspectral`` before anything is timed.
"""

from __future__ import annotations

import torch


def rbf_matrix_sum(a: torch.Tensor, b: torch.Tensor, sigma: float) -> torch.Tensor:
    return torch.cdist(a, b).square_().mul_(-1.0 / (2.0 * sigma**2)).exp_().sum(dtype=torch.float64)


def mmd(x: torch.Tensor, y: torch.Tensor, sigma: float) -> torch.Tensor:
    """Unbiased squared MMD from the three dense kernel matrices (one at a time)."""
    n, m = x.shape[0], y.shape[0]
    s_xx, s_yy, s_xy = rbf_matrix_sum(x, x, sigma), rbf_matrix_sum(y, y, sigma), rbf_matrix_sum(x, y, sigma)
    return (s_xx - n) / (n * (n - 1)) + (s_yy - m) / (m * (m - 1)) - 2.0 * s_xy / (n * m)


def cka_rbf(x: torch.Tensor, y: torch.Tensor, sigma: float) -> torch.Tensor:
    """Biased RBF CKA from the dense K and L: HSIC = Σ K∘L − (2/n) r_Kᵀr_L + (1ᵀK1)(1ᵀL1)/n²."""
    n = x.shape[0]
    k = torch.cdist(x, x).square_().mul_(-1.0 / (2.0 * sigma**2)).exp_()
    ell = torch.cdist(y, y).square_().mul_(-1.0 / (2.0 * sigma**2)).exp_()
    r_k, r_l = k.sum(1, dtype=torch.float64), ell.sum(1, dtype=torch.float64)
    t_k, t_l = r_k.sum(), r_l.sum()

    def hsic(s, ra, rb, ta, tb):
        return s - 2.0 / n * (ra @ rb) + ta * tb / n**2

    s_kl, s_kk, s_ll = (
        (k * ell).sum(dtype=torch.float64),
        (k * k).sum(dtype=torch.float64),
        (ell * ell).sum(dtype=torch.float64),
    )
    return hsic(s_kl, r_k, r_l, t_k, t_l) / torch.sqrt(hsic(s_kk, r_k, r_k, t_k, t_k) * hsic(s_ll, r_l, r_l, t_l, t_l))


def retrieval_ranks(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimistic 0-based ranks with one caption per image, from the dense similarity matrix."""
    x_hat = x / torch.linalg.vector_norm(x, dim=1, keepdim=True)
    y_hat = y / torch.linalg.vector_norm(y, dim=1, keepdim=True)
    s = x_hat @ y_hat.T
    gt = s.diagonal().clone()
    return (s > gt[:, None]).sum(1), (s > gt[None, :]).sum(0)


def _neighbour_mask(z: torch.Tensor, k: int) -> torch.Tensor:
    """n×n 0/1 mask of each row's k largest inner products, itself excluded (the platonic-representation study's
    formulation: the full similarity matrix, then top-k)."""
    s = z @ z.T
    s.fill_diagonal_(float("-inf"))
    return torch.zeros_like(s).scatter_(1, s.topk(k, dim=1).indices, 1.0)


def mutual_knn(x: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """Mean over rows of the shared share of the k neighbours, from two n×n masks."""
    return (_neighbour_mask(x, k) * _neighbour_mask(y, k)).sum(1).mean() / k


def _hsic_unbiased(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    m = a.shape[0]
    a, b = a.clone().fill_diagonal_(0), b.clone().fill_diagonal_(0)
    value = (a * b.T).sum() + a.sum() * b.sum() / ((m - 1) * (m - 2)) - 2 * (a @ b).sum() / (m - 2)
    return value / (m * (m - 3))


def cknna(x: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """CKNNA from dense kernels and masks: the unbiased HSIC of the neighbour-masked kernels, normalised."""
    kx, ky = x @ x.T, y @ y.T
    mx, my = _neighbour_mask(x, k), _neighbour_mask(y, k)
    across = _hsic_unbiased(mx * my * kx, mx * my * ky)
    return across / torch.sqrt(_hsic_unbiased(mx * kx, mx * kx) * _hsic_unbiased(my * ky, my * ky))
