"""Fréchet distance between two Gaussians fitted to feature sets (FVD, FID), by two routes that must agree.

d² = ||mu1 - mu2||² + Tr(S1 + S2 - 2 (S1 S2)^½)

* `frechet_distance_scipy`: the StyleGAN-V / common_metrics convention, the number papers report: mean and
  `np.cov(rowvar=False)` (unbiased, n-1), `scipy.linalg.sqrtm(S1 @ S2)`, real part of the total.
* `frechet_distance_eig`: Tr (S1 S2)^½ = Σ sqrt(eig(R S2 Rᵀ)) with S1 = RᵀR, in float64 with symmetric
  eigendecompositions (R S2 Rᵀ is symmetric positive semi-definite and has the eigenvalues of S1 S2, so they are
  real and ≥ 0 up to round-off, which we clip). It cannot return complex parts or the huge errors `sqrtm` gives on
  near-singular products (few samples, common_metrics issue #18), nor a negative distance (#25). Both routes are
  reported; tests check they agree.

`FeatureStats` accumulates float64 sums so memory does not grow with the data set.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

# Below this many samples FVD is strongly biased upward and unstable (the common_metrics maintainer recommends >= 256,
# issue #26); the value is still reported, with a warning.
MIN_RECOMMENDED_SAMPLES = 256


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (np.cov, rowvar=False) of (n, d) features, in float64."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be (n, d), got shape {x.shape}")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _check(mu1, sigma1, mu2, sigma2):
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: means {mu1.shape} {mu2.shape}, covariances {s1.shape} {s2.shape}")
    return mu1, s1, mu2, s2


def frechet_distance_scipy(mu1, sigma1, mu2, sigma2) -> float:
    """StyleGAN-V's computation: real part of ||mu1-mu2||² + Tr(S1 + S2 - 2 sqrtm(S1 S2))."""
    import scipy.linalg

    mu1, s1, mu2, s2 = _check(mu1, sigma1, mu2, sigma2)
    m = np.square(mu1 - mu2).sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sqrtm warns on singular products; the number is what the references get
        root = scipy.linalg.sqrtm(s1 @ s2)
    if isinstance(root, tuple):  # older SciPy with disp=False semantics
        root = root[0]
    return float(np.real(m + np.trace(s1 + s2 - 2 * root)))


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(sigma1, sigma2, factor1: np.ndarray | None = None) -> float:
    """Tr (S1 S2)^½ = Σ sqrt(eig(R S2 Rᵀ)) for any R with S1 = RᵀR (float64): `factor1` when the caller has one
    (e.g. the scaled, centred samples), else the Cholesky factor when S1 is positive definite, else the symmetric
    square root S1^½ (S1 singular: no more samples than dimensions)."""
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if factor1 is not None:
        r = np.asarray(factor1, np.float64)
        if r.shape[0] > r.shape[1]:  # RᵀR = TᵀT with R = QT: a square factor, no structural zero eigenvalues
            r = np.linalg.qr(r, mode="r")
    else:
        try:
            r = np.linalg.cholesky((s1 + s1.T) / 2).T  # S1 = L Lᵀ = RᵀR with R = Lᵀ
        except np.linalg.LinAlgError:
            r = _psd_sqrt(s1)
    m = r @ s2 @ r.T
    w = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(w, 0, None)).sum())


def frechet_distance_eig(mu1, sigma1, mu2, sigma2, factor1: np.ndarray | None = None) -> float:
    """The robust route: ||mu1-mu2||² + Tr S1 + Tr S2 - 2 Σ sqrt(eig(S1^½ S2 S1^½)); never complex, never < 0
    by more than round-off. `factor1`: optional R with S1 = RᵀR (see trace_sqrt_product)."""
    mu1, s1, mu2, s2 = _check(mu1, sigma1, mu2, sigma2)
    m = float(np.square(mu1 - mu2).sum())
    return m + float(np.trace(s1) + np.trace(s2)) - 2.0 * trace_sqrt_product(s1, s2, factor1)


@dataclass
class FeatureStats:
    """Streaming mean and covariance of feature vectors: running float64 sums (of x - shift, where the shift is the
    first batch's mean, which keeps the sums well conditioned), so memory is O(d²) whatever the number of items."""

    dim: int | None = None
    n: int = 0
    shift: np.ndarray | None = field(default=None, repr=False)
    sum: np.ndarray | None = field(default=None, repr=False)
    sum_outer: np.ndarray | None = field(default=None, repr=False)

    def update(self, features) -> "FeatureStats":
        x = np.asarray(features, dtype=np.float64)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2:
            raise ValueError(f"features must be (n, d), got shape {x.shape}")
        if x.shape[0] == 0:
            return self
        if not np.isfinite(x).all():
            raise ValueError("features contain NaN or infinite values")
        if self.dim is None:
            self.dim = x.shape[1]
            self.shift = x.mean(axis=0)
            self.sum = np.zeros(self.dim)
            self.sum_outer = np.zeros((self.dim, self.dim))
        elif x.shape[1] != self.dim:
            raise ValueError(f"features have {x.shape[1]} dimensions, earlier ones {self.dim}")
        c = x - self.shift
        self.n += x.shape[0]
        self.sum += c.sum(axis=0)
        self.sum_outer += c.T @ c
        return self

    def mean(self) -> np.ndarray:
        return self.shift + self.sum / self.n

    def cov(self) -> np.ndarray:
        """Unbiased covariance (divides by n - 1), as np.cov."""
        if self.n < 2:
            raise ValueError("a covariance needs at least 2 samples")
        mc = self.sum / self.n
        return (self.sum_outer - self.n * np.outer(mc, mc)) / (self.n - 1)


@dataclass
class FrechetResult:
    value: float | None  # the scipy (StyleGAN-V) route: the number to compare with papers
    value_eig: float | None  # the robust route
    n_a: int
    n_b: int
    dim: int | None
    reason: str | None = None
    warning: str | None = None

    def as_dict(self) -> dict:
        return {"frechet": self.value, "frechet_eig": self.value_eig, "n_a": self.n_a, "n_b": self.n_b,
                "dim": self.dim, **({"reason": self.reason} if self.reason else {}),
                **({"warning": self.warning} if self.warning else {})}


def sample_size_warning(n_a: int, n_b: int, dim: int | None = None) -> str | None:
    notes = []
    if min(n_a, n_b) < MIN_RECOMMENDED_SAMPLES:
        notes.append(f"fewer than {MIN_RECOMMENDED_SAMPLES} samples ({min(n_a, n_b)}): the Fréchet distance is biased "
                     "upward and unstable at this size; compare only numbers computed with the same sample count")
    if dim is not None and min(n_a, n_b) <= dim:
        notes.append(f"{min(n_a, n_b)} samples for {dim} feature dimensions: the covariance is singular")
    return "; ".join(notes) or None


def frechet_from_stats(a: FeatureStats, b: FeatureStats) -> FrechetResult:
    """Both routes from two streaming statistics; `null` with the reason when either set has fewer than 2 items."""
    if min(a.n, b.n) < 2:
        return FrechetResult(None, None, a.n, b.n, a.dim or b.dim,
                             reason=f"a Fréchet distance needs at least 2 samples per set (got {a.n} and {b.n})")
    if a.dim != b.dim:
        raise ValueError(f"feature sets differ in dimension: {a.dim} vs {b.dim}")
    mu1, s1, mu2, s2 = a.mean(), a.cov(), b.mean(), b.cov()
    return FrechetResult(frechet_distance_scipy(mu1, s1, mu2, s2), frechet_distance_eig(mu1, s1, mu2, s2),
                         a.n, b.n, a.dim, warning=sample_size_warning(a.n, b.n, a.dim))


def frechet_from_features(a: np.ndarray, b: np.ndarray) -> FrechetResult:
    return frechet_from_stats(FeatureStats().update(a), FeatureStats().update(b))


def bootstrap_frechet(a: np.ndarray, b: np.ndarray, iters: int = 200, seed: int = 0, paired: bool = True,
                      alpha: float = 0.05) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the Fréchet distance (robust route) over per-video features.

    paired: a and b are row-aligned (reconstructions of the same clips), so the same videos are resampled in both;
    otherwise each set is resampled on its own. Each replicate weights rows by their resampling counts, so no copy of
    the features is made.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if iters <= 0 or min(len(a), len(b)) < 2 or (paired and len(a) != len(b)):
        return None
    rng = np.random.default_rng(seed)

    def weighted_stats(x, counts):
        """Mean, covariance and a factor R (S = RᵀR) from the resampled rows: only rows drawn at least once."""
        n, keep = counts.sum(), counts > 0
        mu = counts @ x / n
        r = (x[keep] - mu) * np.sqrt(counts[keep] / (n - 1))[:, None]
        return mu, r.T @ r, r

    vals = np.empty(iters)
    for i in range(iters):
        ca = np.bincount(rng.integers(0, len(a), len(a)), minlength=len(a)).astype(np.float64)
        cb = ca if paired else np.bincount(rng.integers(0, len(b), len(b)), minlength=len(b)).astype(np.float64)
        mu1, s1, r1 = weighted_stats(a, ca)
        mu2, s2, _ = weighted_stats(b, cb)
        vals[i] = frechet_distance_eig(mu1, s1, mu2, s2, factor1=r1)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return None
    return float(np.quantile(vals, alpha / 2)), float(np.quantile(vals, 1 - alpha / 2))
