"""Temporal action localization mAP, as ActivityNet's `Evaluation/eval_detection.py` computes it (variant `anet`),
and as the official THUMOS14 MATLAB kit `TH14evaldet`/`TH14eventdetpr` computes it (variant `thumos14-kit`).

`anet` (what the literature reports, ActionFormer's copy included) per class c and tIoU threshold θ:
predictions of c sorted by score with `np.argsort(scores)[::-1]` over the class's predictions in input order (numpy's
default sort: ties come out in the same order as in the reference on the same numpy); each prediction visits the
class-c ground truth of its own video in descending tIoU (same argsort) and takes the first one not yet taken at θ,
provided tIoU >= θ; a prediction in a video without class-c ground truth is a false positive. AP is the VOC2011
all-point interpolated area; a class without predictions gets AP 0; mAP is the mean over the classes present in the
ground truth. All thresholds are matched at once (one tIoU matrix per video and class).

`thumos14-kit` differs on purpose (its numbers are slightly different): matching is driven by the ground truth (each
ground-truth event, in file order, takes the free detection of largest overlap, and a match needs overlap > θ,
strictly); an unmatched detection overlapping an `Ambiguous` span of its video is dropped instead of counting as a
false positive; AP is the 11-point interpolated AP at recall 0:0.1:1 (MATLAB's colon operator values).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The tIoU grids of the two protocols. THUMOS14 uses the decimal literals (ActionFormer's configuration);
# ActivityNet uses its evaluator's default `np.linspace(0.5, 0.95, 10)` bit for bit.
THUMOS14_TIOU = (0.3, 0.4, 0.5, 0.6, 0.7)
ACTIVITYNET_TIOU = tuple(np.linspace(0.5, 0.95, 10).tolist())
VARIANTS = ("anet", "thumos14-kit")


@dataclass
class Segments:
    """Columnar temporal segments: one row per instance. `video` and `label` are integer codes into `videos`/`labels`
    (kept by the caller); `score` is present for predictions only."""

    video: np.ndarray
    start: np.ndarray
    end: np.ndarray
    label: np.ndarray
    score: np.ndarray | None = None

    def __post_init__(self):
        self.video = np.asarray(self.video, np.int64).reshape(-1)
        self.start = np.asarray(self.start, np.float64).reshape(-1)
        self.end = np.asarray(self.end, np.float64).reshape(-1)
        self.label = np.asarray(self.label, np.int64).reshape(-1)
        if self.score is not None:
            self.score = np.asarray(self.score, np.float64).reshape(-1)
        n = len(self.video)
        if any(len(a) != n for a in (self.start, self.end, self.label)) or (
                self.score is not None and len(self.score) != n):
            raise ValueError("segment columns differ in length")

    def __len__(self) -> int:
        return len(self.video)

    def take(self, idx: np.ndarray) -> "Segments":
        return Segments(self.video[idx], self.start[idx], self.end[idx], self.label[idx],
                        None if self.score is None else self.score[idx])


def segment_iou(pred_start, pred_end, gt_start, gt_end) -> np.ndarray:
    """tIoU matrix (n_pred, n_gt) with the reference's arithmetic (intersection clipped at 0, union = the sum of the
    lengths minus the intersection), so values agree bit for bit. Zero-length pairs give NaN, as in the reference."""
    ps, pe = np.asarray(pred_start, np.float64)[:, None], np.asarray(pred_end, np.float64)[:, None]
    gs, ge = np.asarray(gt_start, np.float64)[None, :], np.asarray(gt_end, np.float64)[None, :]
    inter = (np.minimum(pe, ge) - np.maximum(ps, gs)).clip(0)
    union = (ge - gs) + (pe - ps) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC2011 all-point interpolated AP: precision made non-increasing from the right, summed over recall steps."""
    mprec = np.concatenate([[0.0], precision, [0.0]])
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]
    idx = np.where(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def matlab_colon(a: float, step: float, b: float) -> np.ndarray:
    """The values of MATLAB's `a:step:b` (built symmetrically from both ends), e.g. the kit's recall points 0:0.1:1,
    whose 0.3 is 3*0.1 = 0.30000000000000004 and whose 0.7 is 1 - 3*0.1."""
    tol = 2.0 * np.finfo(float).eps * max(abs(a), abs(b))
    n = int(round((b - a) / step))
    if a + n * step - b > tol:
        n -= 1
    c = a + n * step
    if c - b > -tol:
        c = b
    out = np.zeros(n + 1)
    k = np.arange(n // 2 + 1)
    out[k] = a + k * step
    out[n - k] = c - k * step
    if n % 2 == 0:
        out[n // 2] = (a + c) / 2
    return out


def eleven_point_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """The kit's `prap`: mean over recall points 0:0.1:1 of the best precision at recall >= the point (0 if none)."""
    ap = 0.0
    points = matlab_colon(0.0, 0.1, 1.0)
    for t in points:
        sel = precision[recall >= t]
        ap += (sel.max() if sel.size else 0.0) / len(points)
    return ap


def _group_rows(keys: np.ndarray) -> dict[int, np.ndarray]:
    """Row indices per key value, each in the original row order."""
    order = np.argsort(keys, kind="stable")
    uniq, starts = np.unique(keys[order], return_index=True)
    return dict(zip(uniq.tolist(), np.split(order, starts[1:])))


def anet_class_tp_fp(gt: Segments, pred: Segments, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True/false positives (T, P) of one class's predictions (already in score order) against its ground truth."""
    n_thr, n_pred = len(thresholds), len(pred)
    tp = np.zeros((n_thr, n_pred), bool)
    fp = np.ones((n_thr, n_pred), bool)  # every prediction is a false positive until matched
    gt_by_video = _group_rows(gt.video)
    pred_by_video = _group_rows(pred.video)
    thr = thresholds[:, None]
    for video, p_idx in pred_by_video.items():
        g_idx = gt_by_video.get(video)
        if g_idx is None:
            continue
        tiou = segment_iou(pred.start[p_idx], pred.end[p_idx], gt.start[g_idx], gt.end[g_idx])
        # Candidates of each prediction in descending tIoU, ordered exactly as the reference's per-row argsort.
        cand = np.argsort(tiou, axis=1)[:, ::-1]
        ranked = np.take_along_axis(tiou, cand, axis=1)
        # A candidate passes unless tIoU < θ (NaN passes, as in the reference's `if tiou < thr: break`).
        passes_any = ~(ranked < thresholds.min())
        locked = np.zeros((n_thr, len(g_idx)), bool)
        for row in np.flatnonzero(passes_any.any(1)):
            hit = ~(ranked[row][None, :] < thr) & ~locked[:, cand[row]]
            has = hit.any(1)
            if not has.any():
                continue
            first = hit.argmax(1)
            t_ok = np.flatnonzero(has)
            locked[t_ok, cand[row][first[t_ok]]] = True
            tp[t_ok, p_idx[row]] = True
            fp[t_ok, p_idx[row]] = False
    return tp, fp


def kit_class_tp_fp(gt: Segments, pred: Segments, ambiguous: Segments | None,
                    thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The kit's per-video, ground-truth-driven matching for one class; predictions already in (stable) score order.
    Returns (T, P) TP and FP flags; a prediction that is neither was dropped for overlapping an Ambiguous span."""
    n_thr, n_pred = len(thresholds), len(pred)
    tp = np.zeros((n_thr, n_pred), bool)
    gt_by_video = _group_rows(gt.video)
    amb_by_video = _group_rows(ambiguous.video) if ambiguous is not None and len(ambiguous) else {}
    near_ambiguous = np.zeros(n_pred, bool)
    for video, p_idx in _group_rows(pred.video).items():
        ps, pe = np.minimum(pred.start[p_idx], pred.end[p_idx]), np.maximum(pred.start[p_idx], pred.end[p_idx])
        g_idx = gt_by_video.get(video)
        if g_idx is not None:
            ov = kit_overlap(gt.start[g_idx], gt.end[g_idx], ps, pe)  # (G, P)
            free = np.ones((n_thr, len(p_idx)), bool)
            for k in range(len(g_idx)):
                masked = np.where(free, ov[k][None, :], -np.inf)
                best = masked.argmax(1)  # first maximum, as MATLAB's max
                matched = masked[np.arange(n_thr), best] > thresholds
                free[np.flatnonzero(matched), best[matched]] = False
            tp[:, p_idx] = ~free
        a_idx = amb_by_video.get(video)
        if a_idx is not None:
            ova = kit_overlap(ambiguous.start[a_idx], ambiguous.end[a_idx], ps, pe)
            near_ambiguous[p_idx] = ova.sum(0) > 0
    fp = ~tp & ~near_ambiguous[None, :]
    return tp, fp


def kit_overlap(gt_start, gt_end, det_start, det_end) -> np.ndarray:
    """The kit's `intervaloverlapvalseconds` (G, P): intersection over the hull of the two intervals when they overlap
    by a positive length, else 0 (intervals are first put in increasing order)."""
    gs = np.minimum(gt_start, gt_end)[:, None]
    ge = np.maximum(gt_start, gt_end)[:, None]
    ds, de = np.asarray(det_start)[None, :], np.asarray(det_end)[None, :]
    inter = np.minimum(ge, de) - np.maximum(gs, ds)
    hull = np.maximum(ge, de) - np.minimum(gs, ds)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / hull, 0.0)


def class_average_precision(gt: Segments, pred: Segments, thresholds, variant: str = "anet",
                            ambiguous: Segments | None = None) -> np.ndarray:
    """AP (T,) of one class. `gt`/`pred` hold that class only, in input order."""
    thresholds = np.asarray(thresholds, np.float64)
    ap = np.zeros(len(thresholds))
    if len(pred) == 0 or len(gt) == 0:
        return ap
    npos = float(len(gt))
    if variant == "anet":
        order = np.argsort(pred.score)[::-1]  # the reference's (unstable) order, reproduced on the same numpy
        tp, fp = anet_class_tp_fp(gt, pred.take(order), thresholds)
        tp_c = np.cumsum(tp, axis=1).astype(np.float64)
        fp_c = np.cumsum(fp, axis=1).astype(np.float64)
        recall, precision = tp_c / npos, tp_c / (tp_c + fp_c)
        return np.array([interpolated_ap(precision[t], recall[t]) for t in range(len(thresholds))])
    if variant == "thumos14-kit":
        order = np.argsort(-pred.score, kind="stable")  # MATLAB's sort is stable
        tp, fp = kit_class_tp_fp(gt, pred.take(order), ambiguous, thresholds)
        scores = pred.score[order]
        for t in range(len(thresholds)):
            keep = tp[t] | fp[t]
            if not tp[t].any():
                continue  # the kit returns AP 0 when nothing matched
            s, is_fp = scores[keep], fp[t][keep]
            # The kit concatenates all TPs before all FPs, then stable-sorts by descending confidence:
            # tied scores put TPs first.
            seq = np.lexsort((is_fp, -s))
            tp_c = np.cumsum(~is_fp[seq]).astype(np.float64)
            fp_c = np.cumsum(is_fp[seq]).astype(np.float64)
            ap[t] = eleven_point_ap(tp_c / (fp_c + tp_c), tp_c / npos)
        return ap
    raise ValueError(f"unknown localization variant {variant!r} (known: {', '.join(VARIANTS)})")


def localization_map(gt: Segments, pred: Segments, thresholds, variant: str = "anet",
                     ambiguous: Segments | None = None) -> dict:
    """Per-class AP (C, T) and mAP (T,) over the classes present in `gt` (in label-code order), plus the average.

    `pred` rows whose label has no ground truth are the caller's business (the reference raises on them)."""
    thresholds = np.asarray(thresholds, np.float64)
    classes = np.unique(gt.label)
    gt_rows, pred_rows = _group_rows(gt.label), _group_rows(pred.label) if len(pred) else {}
    ap = np.zeros((len(classes), len(thresholds)))
    for i, c in enumerate(classes.tolist()):
        p = pred.take(pred_rows[c]) if c in pred_rows else pred.take(np.zeros(0, np.int64))
        ap[i] = class_average_precision(gt.take(gt_rows[c]), p, thresholds, variant, ambiguous)
    m = ap.mean(axis=0) if len(classes) else np.full(len(thresholds), np.nan)
    return {"classes": classes, "ap": ap, "map": m, "average_map": float(m.mean()), "thresholds": thresholds,
            "variant": variant}


def threshold_key(t: float) -> str:
    return f"mAP@{t:.2f}"


@dataclass
class LocalizationMAP:
    """Accumulating temporal-localization mAP (update per video, compute once), torchmetrics-style.

    Labels are names; the class set is the one of the ground truth seen. Predictions of a label absent from the
    ground truth raise (`unknown_labels="error"`, the reference's behaviour) or are dropped and counted ("ignore")."""

    thresholds: tuple[float, ...] = THUMOS14_TIOU
    variant: str = "anet"
    unknown_labels: str = "error"
    _gt: list = field(default_factory=list, init=False, repr=False)
    _amb: list = field(default_factory=list, init=False, repr=False)
    _pred: list = field(default_factory=list, init=False, repr=False)

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown localization variant {self.variant!r} (known: {', '.join(VARIANTS)})")
        if self.unknown_labels not in ("error", "ignore"):
            raise ValueError("unknown_labels must be 'error' or 'ignore'")

    def reset(self) -> None:
        self._gt.clear(), self._amb.clear(), self._pred.clear()

    def update(self, video: str, gt: list[tuple[float, float, str]] = (),
               pred: list[tuple[float, float, str, float]] = (),
               ambiguous: list[tuple[float, float]] = ()) -> None:
        """Add one video's ground truth (start, end, label), predictions (start, end, label, score) and, for the
        kit variant, its Ambiguous spans (start, end)."""
        self.extend([(video, s, e, lab) for s, e, lab in gt], [(video, s, e, lab, sc) for s, e, lab, sc in pred],
                    [(video, s, e) for s, e in ambiguous])

    def extend(self, gt_rows=(), pred_rows=(), ambiguous_rows=()) -> None:
        """Add rows (video, start, end, label), (video, start, end, label, score) and (video, start, end)."""
        self._gt.extend(gt_rows)
        self._pred.extend(pred_rows)
        self._amb.extend(ambiguous_rows)

    def compute(self) -> dict:
        labels = list(dict.fromkeys(lab for _, _, _, lab in self._gt))  # first appearance, as the reference
        videos = {v: i for i, v in enumerate(dict.fromkeys([r[0] for r in self._gt] + [r[0] for r in self._pred]
                                                          + [r[0] for r in self._amb]))}
        code = {lab: i for i, lab in enumerate(labels)}
        unknown = sorted({r[3] for r in self._pred if r[3] not in code})
        if unknown and self.unknown_labels == "error":
            raise ValueError(f"predictions use labels absent from the ground truth: {unknown[:10]}")
        preds = [r for r in self._pred if r[3] in code]
        gt = Segments([videos[r[0]] for r in self._gt], [r[1] for r in self._gt], [r[2] for r in self._gt],
                      [code[r[3]] for r in self._gt])
        pr = Segments([videos[r[0]] for r in preds], [r[1] for r in preds], [r[2] for r in preds],
                      [code[r[3]] for r in preds], [r[4] for r in preds])
        amb = Segments([videos[r[0]] for r in self._amb], [r[1] for r in self._amb], [r[2] for r in self._amb],
                       np.zeros(len(self._amb), np.int64))
        return summarize(localization_map(gt, pr, self.thresholds, self.variant, amb), labels,
                         dropped_predictions=len(self._pred) - len(preds))


def summarize(res: dict, labels: list[str], dropped_predictions: int = 0) -> dict:
    """Flat result: `mAP@θ` per threshold and `mAP-avg` (fractions), the variant, and per-class AP."""
    out = {threshold_key(t): float(m) for t, m in zip(res["thresholds"], res["map"])}
    out["mAP-avg"] = res["average_map"]
    out["variant"] = res["variant"]
    out["tiou_thresholds"] = [float(t) for t in res["thresholds"]]
    out["classes"] = len(res["classes"])
    out["per_class_ap"] = {labels[c]: [float(a) for a in row] for c, row in zip(res["classes"].tolist(), res["ap"])}
    if dropped_predictions:
        out["dropped_predictions"] = dropped_predictions
    return out
