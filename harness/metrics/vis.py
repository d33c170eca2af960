"""Video instance segmentation AP as YouTube-VIS evaluates it (the `youtubevos/cocoapi` fork of pycocotools,
`ytvoseval.py`), plus the mean Jaccard of the PyraTok paper's table.

Spatio-temporal IoU of a predicted track d and a true track g: the sum over frames of |d ∧ g| over the sum over
frames of |d ∨ g|, a frame where one track is absent adding the other's area (0 when the union is empty). Counts are
exact integers from pycocotools' RLE operations, so the IoU is the reference's bit for bit.

Matching (per video and category, predictions by score with a stable sort, at most 100): COCO's greedy rule at IoU
thresholds 0.50:0.05:0.95; each prediction takes the best-IoU free true track (the last one on ties), non-ignored
ones first; crowd tracks can be matched many times and, like tracks outside the area range, are ignored. Area ranges
use the track's mean non-empty per-frame area (true tracks: the annotation's `areas`): all [0, 1e10], small
[0, 128²], medium [128², 256²], large [256², 1e10]. Precision at 101 recall points, interpolated; AP = mean over
thresholds, recall points and the categories with true tracks; AR@1/10/100 = mean best recall with at most 1/10/100
predictions per video and category (COCO's per-image cap, applied per video).

Mean Jaccard (`mean_jaccard`, our definition; the paper does not define it): the mean over all non-crowd true tracks
of the best spatio-temporal IoU reached by any prediction of the same video and category (0 when there is none),
among the same top-100 predictions AP uses.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
MAX_DETS = (1, 10, 100)
AREA_RANGES = {"all": (0.0, 1e5 ** 2), "small": (0.0, 128.0 ** 2), "medium": (128.0 ** 2, 256.0 ** 2),
               "large": (256.0 ** 2, 1e5 ** 2)}
VARIANT = "ytvis-cocoapi"


@dataclass
class Track:
    """One true or predicted instance: per-frame compressed RLEs (None where absent) of one video."""

    video: Any
    category: Any
    segmentations: list
    score: float = 1.0
    iscrowd: bool = False
    avg_area: float | None = None  # the mean of the non-zero per-frame areas (computed when None)

    def __post_init__(self):
        if self.avg_area is None:
            self.avg_area = mean_nonzero_area(self.segmentations)


def mean_nonzero_area(segmentations) -> float:
    """The reference's `avg_area`: the mean of the per-frame areas that are present and non-zero, else 0."""
    areas = [float(mask_utils.area(s)) for s in segmentations if s]
    areas = [a for a in areas if a]
    return float(np.mean(areas)) if areas else 0.0


def track_iou(dts: list[Track], gts: list[Track]) -> np.ndarray:
    """Spatio-temporal IoU (D, G) from exact per-frame intersections and unions."""
    n_d, n_g = len(dts), len(gts)
    if n_d == 0 or n_g == 0:
        return np.zeros((n_d, n_g))
    n_frames = len(gts[0].segmentations)
    inter = np.zeros((n_d, n_g), np.int64)
    union = np.zeros((n_d, n_g), np.int64)
    for t in range(n_frames):
        d_idx = [i for i, d in enumerate(dts) if d.segmentations[t]]
        g_idx = [j for j, g in enumerate(gts) if g.segmentations[t]]
        d_rle = [dts[i].segmentations[t] for i in d_idx]
        g_rle = [gts[j].segmentations[t] for j in g_idx]
        a_d = np.zeros(n_d, np.int64)
        a_g = np.zeros(n_g, np.int64)
        if d_idx:
            a_d[d_idx] = mask_utils.area(d_rle)
        if g_idx:
            a_g[g_idx] = mask_utils.area(g_rle)
        union += a_d[:, None] + a_g[None, :]
        if d_idx and g_idx:
            # With every true mask flagged "crowd", pycocotools returns |d ∧ g| / |d| (0 when disjoint): the exact
            # intersection is that ratio times |d|, recovered by rounding.
            ratio = np.asarray(mask_utils.iou(d_rle, g_rle, [1] * len(g_rle)), np.float64).reshape(len(d_idx),
                                                                                                  len(g_idx))
            if (ratio < 0).any():
                raise ValueError("masks of one frame differ in size")
            i_dg = np.rint(ratio * a_d[d_idx][:, None]).astype(np.int64)
            inter[np.ix_(d_idx, g_idx)] += i_dg
    union -= inter
    out = np.zeros((n_d, n_g))
    nz = union > 0
    out[nz] = inter[nz].astype(np.float64) / union[nz].astype(np.float64)
    return out


def _sorted_dets(dts: list[Track], max_det: int) -> list[Track]:
    order = np.argsort([-d.score for d in dts], kind="mergesort")
    return [dts[i] for i in order[:max_det]]


@dataclass
class _VideoCategoryEval:
    """Matches of one (video, category) for one area range: the pieces COCO's accumulate concatenates."""

    scores: np.ndarray  # (D,) in score order
    matched: np.ndarray  # (T, D) bool
    dt_ignore: np.ndarray  # (T, D) bool
    gt_ignore: np.ndarray  # (G,) bool


def match_video_category(ious: np.ndarray, dts: list[Track], gts: list[Track], area: tuple[float, float],
                         thresholds: np.ndarray = IOU_THRESHOLDS) -> _VideoCategoryEval:
    """COCO's greedy matching for every threshold at once (dts already sorted and capped; ious (D, G))."""
    n_t, n_d = len(thresholds), len(dts)
    gt_ig_raw = np.array([g.iscrowd or not (area[0] <= g.avg_area <= area[1]) for g in gts], bool)
    g_order = np.argsort(gt_ig_raw, kind="mergesort")  # ignored true tracks last
    gt_ig = gt_ig_raw[g_order]
    crowd = np.array([gts[j].iscrowd for j in g_order], bool)
    ious = ious[:, g_order] if len(gts) else ious
    gt_taken = np.zeros((n_t, len(gts)), bool)
    matched = np.zeros((n_t, n_d), bool)
    dt_ig = np.zeros((n_t, n_d), bool)
    floor = np.minimum(thresholds, 1 - 1e-10)[:, None]
    if len(gts):
        rows = np.arange(n_t)
        for d in range(n_d):
            ok = (~gt_taken | crowd[None, :]) & (ious[d][None, :] >= floor)  # (T, G)
            best = np.full(n_t, -1)
            for group in (~gt_ig, gt_ig):  # non-ignored first; ignored only when none matched
                cand = ok & group[None, :] & (best[:, None] < 0)
                vals = np.where(cand, ious[d][None, :], -np.inf)
                last_max = vals.shape[1] - 1 - np.argmax(vals[:, ::-1], axis=1)  # the last index of the maximum
                has = cand.any(1)
                best = np.where(has, last_max, best)
            hit = best >= 0
            matched[hit, d] = True
            dt_ig[hit, d] = gt_ig[best[hit]]
            gt_taken[rows[hit], best[hit]] = True
    out_of_range = np.array([not (area[0] <= d.avg_area <= area[1]) for d in dts], bool)
    dt_ig |= ~matched & out_of_range[None, :]
    return _VideoCategoryEval(np.array([d.score for d in dts], np.float64), matched, dt_ig, gt_ig)


def accumulate(evals: list[_VideoCategoryEval], max_det: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Precision (T, R) and recall (T,) of one category, area range and detection cap; None without true tracks."""
    if not evals:
        return None
    scores = np.concatenate([e.scores[:max_det] for e in evals])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([e.matched[:, :max_det] for e in evals], axis=1)[:, order]
    dt_ig = np.concatenate([e.dt_ignore[:, :max_det] for e in evals], axis=1)[:, order]
    npig = int(np.count_nonzero(~np.concatenate([e.gt_ignore for e in evals])))
    if npig == 0:
        return None
    tp = np.cumsum(matched & ~dt_ig, axis=1).astype(np.float64)
    fp = np.cumsum(~matched & ~dt_ig, axis=1).astype(np.float64)
    n_t, nd = tp.shape
    precision = np.zeros((n_t, len(RECALL_THRESHOLDS)))
    recall = np.zeros(n_t)
    for t in range(n_t):
        rc = tp[t] / npig
        pr = tp[t] / (fp[t] + tp[t] + np.spacing(1))
        recall[t] = rc[-1] if nd else 0
        pr = np.maximum.accumulate(pr[::-1])[::-1] if nd else pr
        inds = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
        valid = inds < nd
        precision[t, valid] = pr[inds[valid]]
    return precision, recall


@dataclass
class VideoInstanceAP:
    """Accumulating YouTube-VIS AP (update per video, compute once), torchmetrics-style."""

    categories: list | None = None  # the evaluated category ids (default: those seen in the ground truth)
    max_dets: tuple[int, ...] = MAX_DETS
    _gts: dict = field(default_factory=dict, init=False, repr=False)
    _dts: dict = field(default_factory=dict, init=False, repr=False)
    _videos: list = field(default_factory=list, init=False, repr=False)

    def reset(self) -> None:
        self._gts.clear(), self._dts.clear(), self._videos.clear()

    def update(self, video, gts: list[Track], preds: list[Track]) -> None:
        if video not in self._videos:
            self._videos.append(video)
        for g in gts:
            self._gts.setdefault((video, g.category), []).append(g)
        for d in preds:
            self._dts.setdefault((video, d.category), []).append(d)

    def compute(self) -> dict:
        cats = sorted(self.categories if self.categories is not None else {c for _, c in self._gts})
        videos = sorted(self._videos)
        max_det = max(self.max_dets)
        n_t, n_r, n_a, n_m = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(AREA_RANGES), len(self.max_dets)
        precision = -np.ones((n_t, n_r, len(cats), n_a, n_m))
        recall = -np.ones((n_t, len(cats), n_a, n_m))
        best_iou = []
        for k, cat in enumerate(cats):
            per_area: list[list[_VideoCategoryEval]] = [[] for _ in AREA_RANGES]
            for video in videos:
                gts, dts = self._gts.get((video, cat), []), self._dts.get((video, cat), [])
                if not gts and not dts:
                    continue
                dts = _sorted_dets(dts, max_det)
                ious = track_iou(dts, gts)
                for j, g in enumerate(gts):
                    if not g.iscrowd:
                        best_iou.append(float(ious[:, j].max()) if len(dts) else 0.0)
                for a, rng in enumerate(AREA_RANGES.values()):
                    per_area[a].append(match_video_category(ious, dts, gts, rng))
            for a in range(n_a):
                for m, cap in enumerate(self.max_dets):
                    res = accumulate(per_area[a], cap)
                    if res is not None:
                        precision[:, :, k, a, m], recall[:, k, a, m] = res
        return summarize(precision, recall, self.max_dets, best_iou, len(cats))


def _mean_valid(s: np.ndarray) -> float:
    v = s[s > -1]
    return float(np.mean(v)) if v.size else -1.0


def summarize(precision: np.ndarray, recall: np.ndarray, max_dets, best_iou: list[float], n_categories: int) -> dict:
    """COCO's summary numbers (fractions; -1 where nothing could be measured, as the reference prints)."""
    area = list(AREA_RANGES)
    m_last = len(max_dets) - 1
    t50, t75 = int(np.flatnonzero(IOU_THRESHOLDS == 0.5)[0]), int(np.flatnonzero(IOU_THRESHOLDS == 0.75)[0])
    out = {
        "AP": _mean_valid(precision[:, :, :, 0, m_last]),
        "AP50": _mean_valid(precision[t50, :, :, 0, m_last]),
        "AP75": _mean_valid(precision[t75, :, :, 0, m_last]),
        "AP_small": _mean_valid(precision[:, :, :, area.index("small"), m_last]),
        "AP_medium": _mean_valid(precision[:, :, :, area.index("medium"), m_last]),
        "AP_large": _mean_valid(precision[:, :, :, area.index("large"), m_last]),
    }
    for m, cap in enumerate(max_dets):
        out[f"AR{cap}"] = _mean_valid(recall[:, :, 0, m])
    out.update({"AR_small": _mean_valid(recall[:, :, area.index("small"), m_last]),
                "AR_medium": _mean_valid(recall[:, :, area.index("medium"), m_last]),
                "AR_large": _mean_valid(recall[:, :, area.index("large"), m_last])})
    out["mean_jaccard"] = float(np.mean(best_iou)) if best_iou else None
    out["true_tracks"] = len(best_iou)
    out["categories"] = n_categories
    out["variant"] = VARIANT
    return out
