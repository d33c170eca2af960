"""Temporal action segments from per-frame class scores: the post-processing both TAL protocols share.

The paper's training-free recipe (PyraTok B.3: a 25-frame sliding average of the score, a threshold, the connected
runs above it) extended, as weakly supervised TAL does, to every class and several thresholds so that mAP can rank
segments:
  1. each class's score curve is averaged over a centred window of `smooth` frames, stride 1 (frame t averages
     frames t - (K-1)//2 .. t + K//2; at the ends, the frames that exist);
  2. the smoothed curve is min-max normalized per video and class (a constant curve yields nothing), and for every
     threshold θ in `thresholds` the maximal runs of consecutive frames with normalized score >= θ are candidates
     (a run found at several thresholds is kept once; runs shorter than `min_frames` are dropped);
  3. a run of frames [a, b) becomes the segment [a / rate, b / rate] seconds (frame f spans [f, f + 1) / rate),
     scored on the per-frame scores before smoothing and normalization (so scores stay comparable across videos of
     the same class, which is what per-class AP ranks): by default its outer-inner contrast (mean inside minus mean
     in margins of a quarter of its length on both sides), which prefers the run that fits the action; or, with
     `scoring="mean"`, the mean inside (the paper picks the run of highest mean at one threshold);
  4. greedy class-wise NMS: segments in descending score (stable on ties) suppress later ones of the same class
     whose tIoU with them is > `nms_iou`; then the `max_segments` best of the video are kept.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LocalizeParams:
    smooth: int = 25
    thresholds: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    nms_iou: float = 0.5
    max_segments: int = 200
    min_frames: int = 1
    scoring: str = "contrast"


def sliding_mean(x: np.ndarray, k: int) -> np.ndarray:
    """Centred moving average along axis 0 of (T, ...) over `k` frames, divided by the frames inside the video."""
    x = np.asarray(x, np.float64)
    t = x.shape[0]
    if k <= 1 or t == 0:
        return x.copy()
    before, after = (k - 1) // 2, k // 2
    csum = np.concatenate([np.zeros((1, *x.shape[1:])), np.cumsum(x, axis=0)])
    lo = np.clip(np.arange(t) - before, 0, t)
    hi = np.clip(np.arange(t) + after + 1, 0, t)
    count = (hi - lo).reshape(-1, *[1] * (x.ndim - 1))
    return (csum[hi] - csum[lo]) / count


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs [start, end) of True in a 1-D boolean array."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def segment_score(curve: np.ndarray, a: int, b: int, scoring: str) -> float:
    """"mean": the mean of the curve over [a, b). "contrast" (outer-inner contrast of weakly supervised TAL,
    Shou et al. 2018): that mean minus the mean over the margins [a - m, a) and [b, b + m), m = max(1, round(
    (b - a) / 4)), clipped to the video (a run spanning the whole video has no margin: its contrast is its mean)."""
    inner = float(curve[a:b].mean())
    if scoring == "mean":
        return inner
    if scoring != "contrast":
        raise ValueError(f"unknown segment scoring {scoring!r} (mean or contrast)")
    m = max(1, int(round((b - a) / 4)))
    outer = np.concatenate([curve[max(0, a - m):a], curve[b:b + m]])
    return inner - float(outer.mean()) if outer.size else inner


def candidates(curve: np.ndarray, thresholds, min_frames: int = 1, scoring: str = "contrast",
               raw: np.ndarray | None = None) -> list[tuple[int, int, float]]:
    """(start, end, score) runs of one smoothed curve over every threshold of its min-max normalized copy, each run
    once, in order of first discovery (thresholds ascending, then time), scored on `raw` (default: the curve)."""
    raw = curve if raw is None else raw
    lo, hi = float(curve.min()), float(curve.max())
    if not hi > lo:
        return []
    norm = (curve - lo) / (hi - lo)
    seen: dict[tuple[int, int], float] = {}
    for th in sorted(thresholds):
        for a, b in runs(norm >= th):
            if b - a >= min_frames and (a, b) not in seen:
                seen[(a, b)] = segment_score(raw, a, b, scoring)
    return [(a, b, s) for (a, b), s in seen.items()]


def tiou(a_start: float, a_end: float, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    inter = np.clip(np.minimum(a_end, ends) - np.maximum(a_start, starts), 0, None)
    union = (a_end - a_start) + (ends - starts) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def nms(starts: np.ndarray, ends: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS (descending score, stable on ties), suppressing tIoU > iou."""
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    keep: list[int] = []
    alive = np.ones(len(order), bool)
    for pos, i in enumerate(order):
        if not alive[pos]:
            continue
        keep.append(int(i))
        rest = order[pos + 1:]
        alive[pos + 1:] &= tiou(starts[i], ends[i], starts[rest], ends[rest]) <= iou
    return np.asarray(keep, np.int64)


def localize(scores: np.ndarray, rate: float, params: LocalizeParams) -> list[tuple[float, float, int, float]]:
    """Segments (start s, end s, class index, score) of one video from per-frame scores (T, C) sampled at `rate`
    frames per second, best first."""
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (frames, classes), got {scores.shape}")
    smoothed = sliding_mean(scores, params.smooth)
    out: list[tuple[float, float, int, float]] = []
    for c in range(scores.shape[1]):
        cand = candidates(smoothed[:, c], params.thresholds, params.min_frames, params.scoring, scores[:, c])
        if not cand:
            continue
        a = np.array([x[0] for x in cand], np.float64) / rate
        b = np.array([x[1] for x in cand], np.float64) / rate
        s = np.array([x[2] for x in cand], np.float64)
        for i in nms(a, b, s, params.nms_iou):
            out.append((float(a[i]), float(b[i]), c, float(s[i])))
    out.sort(key=lambda x: -x[3])  # stable: ties keep class order
    return out[:params.max_segments]
