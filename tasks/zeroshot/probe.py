"""A deterministic linear probe: multinomial logistic regression on frozen features, full-batch L-BFGS in float64.

Recipe (recorded in every result that uses it): features standardized with the training set's mean and standard
deviation (a constant feature keeps scale 1); weights and bias start at zero; loss = mean cross-entropy against the
targets (class indices, or a distribution per row, e.g. a snippet that is half action and half background) +
weight_decay / 2 * ||W||² (the bias is not decayed), minimized with its exact gradient by scipy's L-BFGS-B
(`scipy.optimize.minimize`, memory 20, up to `max_iter` iterations, gtol 1e-8). Zero initialisation and full
batches make the fit a pure function of the training data: no seed is involved; the same data give the same weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ProbeParams:
    weight_decay: float = 1e-3
    max_iter: int = 500


@dataclass
class LinearProbe:
    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray  # (d, C)
    bias: np.ndarray  # (C,)
    iterations: int
    loss: float
    converged: bool

    def logits(self, x) -> np.ndarray:
        return ((np.asarray(x, np.float64) - self.mean) / self.scale) @ self.weight + self.bias

    def predict_proba(self, x) -> np.ndarray:
        return softmax(self.logits(x))


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def fit_probe(x, targets, num_classes: int, params: ProbeParams = ProbeParams()) -> LinearProbe:
    """Fit on features x (N, d) and targets: int class indices (N,) or distributions (N, C) summing to 1."""
    from scipy.optimize import minimize

    x = np.asarray(x, np.float64)
    y = np.asarray(targets)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"probe features must be a non-empty (N, d) matrix, got {x.shape}")
    if y.ndim == 1:
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"class indices must be integers in [0, {num_classes})")
        y = np.eye(num_classes)[y]
    y = y.astype(np.float64)
    if y.shape != (len(x), num_classes):
        raise ValueError(f"targets {y.shape} do not match {len(x)} rows and {num_classes} classes")
    mean = x.mean(0)
    scale = x.std(0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = (x - mean) / scale
    n, d = z.shape

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:d * num_classes].reshape(d, num_classes), theta[d * num_classes:]
        logits = z @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss = -(y * logp).sum() / n + 0.5 * params.weight_decay * (w * w).sum()
        resid = (np.exp(logp) * y.sum(1, keepdims=True) - y) / n  # d loss / d logits
        grad_w = z.T @ resid + params.weight_decay * w
        return float(loss), np.concatenate([grad_w.ravel(), resid.sum(0)])

    res = minimize(loss_grad, np.zeros(d * num_classes + num_classes), jac=True, method="L-BFGS-B",
                   options={"maxiter": params.max_iter, "maxcor": 20, "gtol": 1e-8, "ftol": 0.0})
    w, b = res.x[:d * num_classes].reshape(d, num_classes), res.x[d * num_classes:]
    return LinearProbe(mean, scale, w, b, int(res.nit), float(res.fun), bool(res.success))
