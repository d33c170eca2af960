"""A fully connected spatio-temporal CRF over (x, y, t) with mean-field inference (Krähenbühl & Koltun 2011), in torch.

Energy of a labelling x of the voxels of a volume:
    E(x) = sum_i U_i(x_i) + sum_{i<j} [x_i != x_j] (w_app k_app(i, j) + w_smooth k_smooth(i, j))
    k_app(i, j)    = exp(-|p_i - p_j|² / 2θα² - (t_i - t_j)² / 2θαt² - |I_i - I_j|² / 2θβ²)   (appearance)
    k_smooth(i, j) = exp(-|p_i - p_j|² / 2θγ² - (t_i - t_j)² / 2θγt²)                       (smoothness)
with p in pixels of the working grid, t in frames and I the RGB colour (0-255). Mean field with the Potts model
iterates Q_i(l) ∝ exp(-U_i(l) + sum_k w_k sum_{j≠i} k_k(i, j) Q_j(l)), all voxels in parallel, from Q = softmax(-U).

Tractable on a CPU by two documented approximations (no permutohedral lattice):
* the CRF runs on a working grid `scale` times coarser than the frames in x and y (colours area-averaged, θ in
  pixels divided by `scale`; the task does this);
* the colour factor of k_app is replaced by its Nyström approximation on `centres` colour centres (k-means of the
  volume's colours, seeded): exp(-|I_i - I_j|² / 2θβ²) ≈ φ(I_i)·φ(I_j), φ = K_cc^{-1/2} k_c(I). It is exact when
  every colour is a centre. The message sum_j k_app(i, j) Q_j(l) = φ(I_i)·[G * (φ Q(l))](i) then needs only the
  Gaussian position kernel G, which is separable: one dense (n x n) matrix per axis, exact on the working grid.
The smoothness kernel is exact. `energy` is the exact O(N²) energy, for small volumes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class CRFParams:
    iterations: int = 5
    w_app: float = 10.0  # pydensecrf's usual addPairwiseBilateral(sxy=80, srgb=13, compat=10)
    theta_alpha: float = 80.0  # pixels of the working grid
    theta_alpha_t: float = 2.0  # frames
    theta_beta: float = 13.0  # RGB units
    w_smooth: float = 3.0  # addPairwiseGaussian(sxy=3, compat=3)
    theta_gamma: float = 3.0
    theta_gamma_t: float = 1.0
    centres: int = 16
    seed: int = 0


def gaussian_matrix(n: int, sigma: float) -> torch.Tensor:
    """(n, n) exp(-(i - j)² / 2σ²): the kernel of one axis, exact (no truncation); the identity when sigma <= 0."""
    if sigma <= 0:
        return torch.eye(n)
    d = torch.arange(n, dtype=torch.float64)
    return torch.exp(-(d[:, None] - d[None, :]) ** 2 / (2 * sigma * sigma)).float()


def gaussian_filter(x: torch.Tensor, sigma_t: float, sigma_xy: float) -> torch.Tensor:
    """sum_j exp(-|p_i - p_j|² / 2σxy² - (t_i - t_j)² / 2σt²) x_j for every channel of (C, T, H, W): the separable
    position kernel as one dense matrix per axis (exact: the grid is small)."""
    _, t, h, w = x.shape
    x = x @ gaussian_matrix(w, sigma_xy)
    x = gaussian_matrix(h, sigma_xy) @ x
    return torch.einsum("st,cthw->cshw", gaussian_matrix(t, sigma_t), x)


def kmeans_colours(colours: np.ndarray, k: int, seed: int = 0, iters: int = 10, sample: int = 20000) -> np.ndarray:
    """k-means++ centres (<= k, distinct) of RGB colours (N, 3), on at most `sample` of them, deterministic."""
    rng = np.random.default_rng(seed)
    x = colours.astype(np.float64)
    if len(x) > sample:
        x = x[rng.choice(len(x), sample, replace=False)]
    uniq = np.unique(x, axis=0)
    if len(uniq) <= k:
        return uniq
    centres = [x[rng.integers(len(x))]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        centres.append(x[rng.choice(len(x), p=d2 / d2.sum())] if d2.sum() > 0 else x[rng.integers(len(x))])
        d2 = np.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
    c = np.stack(centres)
    for _ in range(iters):
        assign = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
        for j in range(len(c)):
            if np.any(assign == j):
                c[j] = x[assign == j].mean(0)
    return np.unique(c, axis=0)


def colour_features(image: torch.Tensor, theta_beta: float, centres: int, seed: int = 0) -> torch.Tensor:
    """Nyström features φ (M, T, H, W) of the colours of image (T, H, W, 3) with φ(a)·φ(b) ≈ exp(-|a-b|²/2θβ²)."""
    img = image.double()
    c = torch.from_numpy(kmeans_colours(img.reshape(-1, 3).numpy(), centres, seed))
    kcc = torch.exp(-torch.cdist(c, c) ** 2 / (2 * theta_beta ** 2))
    evals, evecs = torch.linalg.eigh(kcc)
    keep = evals > 1e-6 * evals.max()
    inv_sqrt = evecs[:, keep] @ torch.diag(evals[keep].rsqrt()) @ evecs[:, keep].T
    kxc = torch.exp(-torch.cdist(img.reshape(-1, 3), c) ** 2 / (2 * theta_beta ** 2))  # (N, M)
    phi = (kxc @ inv_sqrt).T.reshape(len(c), *image.shape[:3])
    return phi.float()


def messages(q: torch.Tensor, phi: torch.Tensor, params: CRFParams) -> tuple[torch.Tensor, torch.Tensor]:
    """(appearance, smoothness) messages sum_{j≠i} k(i, j) Q_j(l), each (L, T, H, W)."""
    p = params
    smooth = gaussian_filter(q, p.theta_gamma_t, p.theta_gamma) - q  # k(i, i) = 1
    labels, m = q.shape[0], phi.shape[0]
    prod = (phi[:, None] * q[None]).reshape(m * labels, *q.shape[1:])
    blurred = gaussian_filter(prod, p.theta_alpha_t, p.theta_alpha).reshape(m, labels, *q.shape[1:])
    app = (phi[:, None] * blurred).sum(0) - (phi * phi).sum(0)[None] * q
    return app, smooth


def mean_field(unary: torch.Tensor, image: torch.Tensor, params: CRFParams = CRFParams(),
               history: list | None = None) -> torch.Tensor:
    """Marginals Q (L, T, H, W) from unary energies U (L, T, H, W) (= -log probabilities) and colours image
    (T, H, W, 3) on the same working grid. `history`, if given, receives Q after every iteration."""
    u = unary.float()
    phi = colour_features(image, params.theta_beta, params.centres, params.seed)
    q = F.softmax(-u, dim=0)
    for _ in range(params.iterations):
        app, smooth = messages(q, phi, params)
        q = F.softmax(-u + params.w_app * app + params.w_smooth * smooth, dim=0)
        if history is not None:
            history.append(q)
    return q


def pairwise_weights(image: torch.Tensor, params: CRFParams) -> torch.Tensor:
    """The exact dense pairwise weights (N, N) w_app k_app + w_smooth k_smooth (diagonal 0), for small volumes."""
    t, h, w = image.shape[:3]
    tt, yy, xx = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    pos = torch.stack([xx, yy], -1).reshape(-1, 2).double()
    tim = tt.reshape(-1, 1).double()
    col = image.reshape(-1, 3).double()
    d_pos, d_t, d_col = torch.cdist(pos, pos) ** 2, torch.cdist(tim, tim) ** 2, torch.cdist(col, col) ** 2
    p = params
    app = torch.exp(-d_pos / (2 * p.theta_alpha ** 2) - d_t / (2 * p.theta_alpha_t ** 2)
                    - d_col / (2 * p.theta_beta ** 2))
    smooth = torch.exp(-d_pos / (2 * p.theta_gamma ** 2) - d_t / (2 * p.theta_gamma_t ** 2))
    k = p.w_app * app + p.w_smooth * smooth
    k.fill_diagonal_(0)
    return k


def energy(labels: torch.Tensor, unary: torch.Tensor, image: torch.Tensor, params: CRFParams = CRFParams()) -> float:
    """The exact energy E(x) of a labelling (T, H, W) (O(N²): small volumes only)."""
    x = labels.reshape(-1)
    u = unary.reshape(unary.shape[0], -1).double()
    data = u[x, torch.arange(len(x))].sum()
    differ = (x[:, None] != x[None, :]).double()
    return float(data + 0.5 * (pairwise_weights(image, params) * differ).sum())
