"""Uncertainty: standard errors of means, (cluster) percentile bootstrap, paired differences.

Every reported number carries its sample count and an uncertainty, so a reader can tell whether two models differ.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from harness.task import Metric


def mean_metric(values: Sequence[float], higher_is_better: bool = True, variant: str | None = None,
                unit: str | None = None, clusters: Sequence[str] | None = None) -> Metric:
    """Mean with its standard error; with `clusters`, the clustered (between-cluster) standard error."""
    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return Metric(None, 0, higher_is_better, variant=variant, unit=unit, reason="no samples")
    stderr = clustered_stderr(x, clusters) if clusters is not None else (
        float(x.std(ddof=1) / np.sqrt(n)) if n > 1 else None)
    return Metric(float(x.mean()), n, higher_is_better, stderr=stderr, variant=variant, unit=unit)


def clustered_stderr(x: np.ndarray, clusters: Sequence[str]) -> float | None:
    """Standard error of the mean when items within a cluster (e.g. clips of one video) are correlated."""
    labels = np.asarray(clusters)
    uniq, inv = np.unique(labels, return_inverse=True)
    g = len(uniq)
    if g < 2:
        return None
    resid_sums = np.bincount(inv, weights=x - x.mean(), minlength=g)
    n = x.size
    return float(np.sqrt(g / (g - 1) * np.sum(resid_sums ** 2)) / n)


def bootstrap_ci(statistic: Callable[[np.ndarray], float], n: int, iters: int = 1000, seed: int = 0,
                 alpha: float = 0.05, clusters: Sequence[str] | None = None) -> tuple[float, float] | None:
    """Percentile bootstrap of `statistic(indices)` over n items (resampling whole clusters when given)."""
    if iters <= 0 or n < 2:
        return None
    rng = np.random.default_rng(seed)
    if clusters is not None:
        labels = np.asarray(clusters)
        uniq, inv = np.unique(labels, return_inverse=True)
        members = [np.flatnonzero(inv == i) for i in range(len(uniq))]
    stats = np.empty(iters)
    for b in range(iters):
        if clusters is None:
            idx = rng.integers(0, n, n)
        else:
            pick = rng.integers(0, len(members), len(members))
            idx = np.concatenate([members[i] for i in pick])
        stats[b] = statistic(idx)
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return None
    return float(np.quantile(stats, alpha / 2)), float(np.quantile(stats, 1 - alpha / 2))


def paired_difference(a: Sequence[float], b: Sequence[float], iters: int = 2000, seed: int = 0) -> dict[str, float]:
    """Mean of (a - b) over shared items with a paired percentile-bootstrap 95% interval."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = a - b
    ci = bootstrap_ci(lambda idx: float(d[idx].mean()), len(d), iters, seed)
    out = {"diff": float(d.mean()) if d.size else float("nan"), "n": int(d.size)}
    if ci:
        out["ci_low"], out["ci_high"] = ci
    return out
