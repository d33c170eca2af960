"""Top-k and mean-class accuracy from score matrices, as mmaction2 computes them (`top_k_accuracy`,
`mean_class_accuracy`).

* Scores may be (N, C) or view-averaged from (N, V, C): the mean over views of the raw scores ("score", mmaction2
  `average_clips='score'`) or of their softmax ("prob", `average_clips='prob'`).
* top-k: the true class is among the last k of `argsort(scores)` (ascending). mmaction2 uses NumPy's default sort,
  whose order among exactly tied scores is unspecified; we use the stable order, so among tied scores the class with
  the HIGHER index ranks first. Equivalently: rank = #{scores > s_true} + #{j > true with score == s_true}, hit when
  rank < k. (Ties only matter for exactly equal floats.)
* mean-class accuracy: `pred = argmax(scores)` (ties -> the LOWER index, NumPy's argmax), confusion matrix over the
  union of true and predicted labels, mean over those classes of hits / true count, a class that is predicted but
  never true counting 0 (mmaction2's exact behaviour). `mean_class_recall_present` is the same mean over only the
  classes present in the ground truth.
"""
from __future__ import annotations

import numpy as np


def average_views(scores, average: str = "score") -> np.ndarray:
    """(N, C) scores, or (N, V, C) averaged over views with `average` in {"score", "prob"}."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 2:
        return s
    if s.ndim != 3:
        raise ValueError(f"scores must be (N, C) or (N, views, C), got shape {s.shape}")
    if average == "prob":
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        s = e / e.sum(axis=-1, keepdims=True)
    elif average != "score":
        raise ValueError(f"unknown view averaging {average!r} (score or prob)")
    return s.mean(axis=1)


def _check(scores: np.ndarray, labels) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != len(scores):
        raise ValueError(f"{len(scores)} score rows but labels of shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= scores.shape[1] or not np.issubdtype(y.dtype, np.integer)):
        raise ValueError(f"labels must be integers in [0, {scores.shape[1]}) (got {y.min()}..{y.max()}, {y.dtype})")
    return y.astype(np.int64)


def true_class_rank(scores, labels) -> np.ndarray:
    """0-based rank of the true class in each row under stable-argsort tie breaking (see the module docstring)."""
    s = np.asarray(scores, dtype=np.float64)
    y = _check(s, labels)
    true = s[np.arange(len(y)), y][:, None]
    higher_index = np.arange(s.shape[1])[None, :] > y[:, None]
    return ((s > true) | ((s == true) & higher_index)).sum(axis=1)


def top_k_accuracy(scores, labels, ks=(1, 5)) -> dict[int, float]:
    """Fraction of rows whose true class is among the top k, for each k."""
    rank = true_class_rank(scores, labels)
    return {k: float(np.mean(rank < k)) if rank.size else float("nan") for k in ks}


def mean_class_accuracy(scores, labels) -> float:
    """mmaction2 `mean_class_accuracy`: classes = union of true and argmax-predicted labels."""
    s = np.asarray(scores, dtype=np.float64)
    y = _check(s, labels)
    pred = s.argmax(axis=1)
    classes = np.union1d(y, pred)
    hits = np.array([np.sum((y == c) & (pred == c)) for c in classes], dtype=np.float64)
    counts = np.array([np.sum(y == c) for c in classes], dtype=np.float64)
    return float(np.mean(np.where(counts > 0, hits / np.maximum(counts, 1), 0.0))) if classes.size else float("nan")


def mean_class_recall_present(scores, labels) -> float:
    """Mean over the classes present in the ground truth of their recall (argmax predictions)."""
    s = np.asarray(scores, dtype=np.float64)
    y = _check(s, labels)
    pred = s.argmax(axis=1)
    classes = np.unique(y)
    return float(np.mean([np.mean(pred[y == c] == c) for c in classes])) if classes.size else float("nan")


def classification_metrics(scores, labels, ks=(1, 5), average: str = "score") -> dict[str, float]:
    s = average_views(scores, average)
    out = {f"top{k}": v for k, v in top_k_accuracy(s, labels, ks).items()}
    out["mean_class_accuracy"] = mean_class_accuracy(s, labels)
    out["mean_class_recall_present"] = mean_class_recall_present(s, labels)
    out["n"] = int(len(s))
    out["classes"] = int(s.shape[1])
    return out
