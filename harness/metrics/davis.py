"""DAVIS J&F exactly as davis2017-evaluation computes it, fast.

J (region similarity) of an object in a frame is |M∧G| / |M∨G| over non-void pixels, 1 when the union is empty.
F (contour accuracy) compares `seg2bmap` boundaries (1-px, offset half a pixel towards the origin) of the predicted
and true masks: precision = fraction of predicted boundary pixels within the disk of radius
r = ceil(0.008 * ||(H, W)||) (skimage `disk`: dx² + dy² <= r²) of a true boundary pixel, recall the converse,
F = 2PR / (P + R), with the reference's special cases for empty boundaries. Statistics per object over its frames:
Mean (nanmean), Recall (fraction > 0.5) and Decay (first minus last of four overlapping bins, with the reference's
index rounding). Global numbers average objects, not sequences; J&F-Mean = (J-Mean + F-Mean) / 2.

Speed without changing a single value: intersections and unions of every object pair come from one joint histogram
of the two label maps; boundaries of all objects of a label map come from three neighbour comparisons (a pixel is on
object k's boundary iff it and a seg2bmap neighbour differ and one of them is k); the disk dilation is replaced by
an exact sparse query (for each boundary pixel and each row offset dy, is there a boundary pixel of the other map
in row y+dy within |dx| <= isqrt(r² - dy²)? answered with a binary search in sorted keys). Integer counts are
identical to the reference's dilate-and-count, so J and F agree bit for bit.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

BOUND_TH = 0.008
MAX_UNSUPERVISED_OBJECTS = 20
TASKS = ("semi-supervised", "unsupervised")
STAT_KEYS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
_FRAME_CHUNK = 32  # frames processed at once: bounds memory on long or large sequences


def boundary_radius(height: int, width: int, bound_th: float = BOUND_TH) -> int:
    """The dilation radius of the reference: `bound_th` itself when >= 1, else ceil(bound_th * ||(H, W)||)."""
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError("a boundary threshold >= 1 must be an integer number of pixels")
        return int(bound_th)
    return int(np.ceil(bound_th * np.linalg.norm((height, width))))


def seg2bmap(masks: np.ndarray) -> np.ndarray:
    """Dense seg2bmap of binary masks (..., H, W): a pixel is a boundary pixel when it differs from its east, south
    or south-east neighbour; the last row only looks east, the last column only south, the corner never."""
    m = np.asarray(masks).astype(bool)
    b = np.zeros_like(m)
    b[..., :-1, :-1] = (m[..., :-1, :-1] != m[..., :-1, 1:]) | (m[..., :-1, :-1] != m[..., 1:, :-1]) | (
        m[..., :-1, :-1] != m[..., 1:, 1:])
    b[..., -1, :-1] = m[..., -1, :-1] != m[..., -1, 1:]
    b[..., :-1, -1] = m[..., :-1, -1] != m[..., 1:, -1]
    return b


@dataclass
class BoundaryPoints:
    """Boundary pixels of every object of a stack of label maps: parallel arrays, one row per (object, pixel)."""

    obj: np.ndarray
    t: np.ndarray
    y: np.ndarray
    x: np.ndarray

    def counts(self, n_obj: int, n_frames: int) -> np.ndarray:
        """Boundary pixels per (object 1..n_obj, frame): (n_obj, T)."""
        flat = np.bincount(self.obj * n_frames + self.t, minlength=(n_obj + 1) * n_frames)
        return flat[: (n_obj + 1) * n_frames].reshape(n_obj + 1, n_frames)[1:]


def boundary_points(labels: np.ndarray) -> BoundaryPoints:
    """seg2bmap boundaries of all objects (labels 1..K; 0 is background) of label maps (T, H, W) at once.

    Pixel p is on object k's boundary iff p differs from a seg2bmap neighbour q (east, south, south-east; the last
    row only looks east, the last column only south) and k is the label of p or of q. Points come out grouped by
    pixel (frame, row, column order), each (object, pixel) once."""
    lab = np.ascontiguousarray(labels)
    t_n, h, w = lab.shape
    hw = h * w
    flat = lab.reshape(-1)
    n = flat.size
    # Pixels that differ from some valid neighbour. On the flattened stack the excluded pixels (last column for east
    # and south-east, last row for south and south-east) are exactly those whose neighbour would wrap around.
    differs = np.zeros(n, bool)
    for shift in (1, w, w + 1):
        if shift < n:
            differs[:n - shift] |= flat[:n - shift] != flat[shift:]
    p = np.flatnonzero(differs)
    pos = p % hw
    x_ok, y_ok = pos % w != w - 1, pos < hw - w
    p_e, p_s, p_se = np.where(x_ok, p + 1, p), np.where(y_ok, p + w, p), np.where(x_ok & y_ok, p + w + 1, p)
    a = flat[p]
    # a wrapped-around neighbour was counted above by mistake: keep p only if a valid neighbour differs
    ne, ns, nse = flat[p_e], flat[p_s], flat[p_se]  # an invalid neighbour reads p itself, so never "differs"
    de, ds, dse = ne != a, ns != a, nse != a
    real = de | ds | dse
    p, a, ne, ns, nse, de, ds, dse = p[real], a[real], ne[real], ns[real], nse[real], de[real], ds[real], dse[real]
    # each object once per pixel: p's own label, then each differing neighbour's label not already reported
    own = a != 0
    e = de & (ne != 0)
    s_ = ds & (ns != 0) & ~(de & (ne == ns))
    se = dse & (nse != 0) & ~(de & (ne == nse)) & ~(ds & (ns == nse))
    idx = np.concatenate([p[own], p[e], p[s_], p[se]])
    obj = np.concatenate([a[own], ne[e], ns[s_], nse[se]]).astype(np.int64)
    t, pos = np.divmod(idx, hw)
    y, x = np.divmod(pos, w)
    return BoundaryPoints(obj=obj, t=t, y=y, x=x)


def near_points(q_group: np.ndarray, q_y: np.ndarray, q_x: np.ndarray, t_group: np.ndarray, t_y: np.ndarray,
                t_x: np.ndarray, radius: int) -> np.ndarray:
    """For each query pixel: is there a target pixel of the same group with dx² + dy² <= radius²?

    This is `dilate(target, disk(radius))[query]` without any dilation: a coarse occupancy grid first rejects the
    queries with no target in their (2r+1)² box, then each row offset dy is answered by a binary search over the
    sorted target keys for a target within |dx| <= isqrt(r² - dy²)."""
    found = np.zeros(len(q_group), bool)
    if len(q_group) == 0 or len(t_group) == 0:
        return found
    r = int(radius)
    cell = 2 * r + 1  # a query's box overlaps at most 2 x 2 cells
    n_groups = int(max(q_group.max(), t_group.max())) + 1
    span_y = int(max(q_y.max(), t_y.max())) + 2 * r + 1
    span_x = int(max(q_x.max(), t_x.max())) + 2 * r + 1
    grid = np.zeros((n_groups, span_y // cell + 1, span_x // cell + 1), bool)
    grid[t_group, (t_y + r) // cell, (t_x + r) // cell] = True
    y0, y1 = q_y // cell, (q_y + 2 * r) // cell
    x0, x1 = q_x // cell, (q_x + 2 * r) // cell
    todo = np.flatnonzero(grid[q_group, y0, x0] | grid[q_group, y0, x1] | grid[q_group, y1, x0]
                          | grid[q_group, y1, x1])
    if len(todo) == 0:
        return found
    big = np.int64(1) << 62  # sentinels: every query has a key on each side
    tkeys = np.concatenate([[-big], np.sort((t_group.astype(np.int64) * span_y + t_y + r) * span_x + t_x + r), [big]])
    qbase = (q_group.astype(np.int64) * span_y + q_y + r) * span_x + q_x + r
    todo = todo[np.argsort(qbase[todo], kind="stable")]  # sorted needles keep the binary searches cache-friendly
    for dy in sorted(range(-r, r + 1), key=abs):  # most boundary pixels are resolved at small |dy|
        half = math.isqrt(r * r - dy * dy)
        centre = qbase[todo] + dy * span_x
        # the nearest keys on either side of the centre; rows are span_x > 2 * half apart, so a key within `half`
        # of the centre is in the same row (and group) and within |dx| <= half
        pos = np.searchsorted(tkeys, centre)
        hit = (tkeys[pos] - centre <= half) | (centre - tkeys[pos - 1] <= half)
        found[todo[hit]] = True
        todo = todo[~hit]
        if len(todo) == 0:
            break
    return found


def _f_from_counts(n_fg, n_gt, fg_match, gt_match) -> np.ndarray:
    """The reference's F with its special cases, elementwise, with the same floating-point operations."""
    n_fg, n_gt = np.asarray(n_fg), np.asarray(n_gt)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_fg > 0, fg_match / n_fg.astype(np.float64), 1.0)
        recall = np.where(n_gt > 0, gt_match / n_gt.astype(np.float64), 1.0)
        precision = np.where((n_fg > 0) & (n_gt == 0), 0.0, precision)
        recall = np.where((n_fg == 0) & (n_gt > 0), 0.0, recall)
        f = 2 * precision * recall / (precision + recall)
    return np.where(precision + recall == 0, 0.0, f)


def pair_scores(gt: np.ndarray, pred: np.ndarray, n_gt: int, n_pred: int, void: np.ndarray | None = None,
                diagonal: bool = False, bound_th: float = BOUND_TH) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J and F of predicted object m against true object g, for label maps gt, pred (T, H, W).

    True labels 1..n_gt are objects and any other value (void 255, ids that appear after the first frame) is
    background; predicted labels must lie in 0..n_pred. With `diagonal`, only pairs (k, k) and arrays (n_gt, T);
    otherwise arrays (n_pred, n_gt, T). Void pixels (T, H, W) are excluded from J and removed from both masks before
    F (the unsupervised protocol)."""
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape or gt.ndim != 3:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} must be equal (T, H, W) stacks")
    if diagonal and n_pred > n_gt:
        raise ValueError("diagonal scoring needs no more predicted objects than true ones")
    if not 0 <= n_gt <= 254 or not 0 <= n_pred <= 255:
        raise ValueError("object ids must fit in 8 bits (at most 254 true objects)")
    t_n, h, w = gt.shape
    shape = (n_gt, t_n) if diagonal else (n_pred, n_gt, t_n)
    j_out, f_out = np.zeros(shape), np.zeros(shape)
    radius = boundary_radius(h, w, bound_th)
    for t0 in range(0, t_n, _FRAME_CHUNK):
        sl = slice(t0, min(t_n, t0 + _FRAME_CHUNK))
        g, p = np.asarray(gt[sl]), np.asarray(pred[sl])
        v = None if void is None else np.asarray(void[sl], bool)
        ys, xs = _object_box(g, p, n_gt, v)
        g, p = _object_labels(g[:, ys, xs], n_gt), np.array(p[:, ys, xs], np.uint8)
        if v is not None:  # removed from both masks, as the reference does before seg2bmap and in J
            v = v[:, ys, xs]
            g[v] = 0
            p[v] = 0
        j, f = _chunk_scores(g, p, n_gt, n_pred, diagonal, radius)
        j_out[..., sl], f_out[..., sl] = j, f
    return j_out, f_out


def _object_labels(labels: np.ndarray, n: int) -> np.ndarray:
    """A uint8 copy where labels 1..n are kept and everything else (void, later ids) is background."""
    lab = np.asarray(labels)
    if lab.dtype != np.uint8:
        lab = np.where((lab >= 0) & (lab <= n), lab, 0)
    out = np.array(lab, np.uint8)
    out[out > n] = 0
    return out


def _object_box(g: np.ndarray, p: np.ndarray, n_gt: int, void: np.ndarray | None) -> tuple[slice, slice]:
    """The box of all object pixels of both stacks, grown by one pixel on each side (clipped to the frame).

    Outside it both maps are background, so it holds every counted pixel and every boundary pixel; its own last row
    and column are background (or the frame's own), so seg2bmap's last-row/column rules give the same boundaries as
    on the full frame. Coordinates shift by the same offset in both maps, which F does not see."""
    fg = (g != 0) & (g <= n_gt) | (p != 0)
    if void is not None:
        fg &= ~void
    fg = fg.any(0)
    rows, cols = np.flatnonzero(fg.any(1)), np.flatnonzero(fg.any(0))
    if len(rows) == 0:
        return slice(0, 1), slice(0, 1)
    h, w = fg.shape
    return (slice(max(0, rows[0] - 1), min(h, rows[-1] + 2)), slice(max(0, cols[0] - 1), min(w, cols[-1] + 2)))


def _chunk_scores(g_lab, p_lab, n_gt, n_pred, diagonal, radius):
    t_n = g_lab.shape[0]
    # J: one joint histogram of (true label, predicted label) per frame; void pixels are background by now and
    # background-background pixels only fill the unused (0, 0) bin.
    bins = (n_gt + 1) * (n_pred + 1)
    if bins <= 256:
        code = g_lab * np.uint8(n_pred + 1) + p_lab  # fits in uint8
        hist = np.stack([np.bincount(c.ravel(), minlength=bins) for c in code])
    else:
        code = (np.arange(t_n)[:, None, None] * (n_gt + 1) + g_lab) * (n_pred + 1) + p_lab
        hist = np.bincount(code.ravel(), minlength=t_n * bins)
    hist = hist.reshape(t_n, n_gt + 1, n_pred + 1)
    area_g, area_p = hist.sum(2)[:, 1:], hist.sum(1)[:, 1:]  # (T, n_gt), (T, n_pred)
    inter = hist[:, 1:, 1:].transpose(2, 1, 0)  # (n_pred, n_gt, T)
    union = area_p.T[:, None, :] + area_g.T[None, :, :] - inter
    # F: sparse boundaries of every object of both label maps.
    bg, bp = boundary_points(g_lab), boundary_points(p_lab)
    cnt_g, cnt_p = bg.counts(n_gt, t_n), bp.counts(n_pred, t_n)  # (n_gt, T), (n_pred, T)
    if diagonal:
        k = np.arange(min(n_pred, n_gt))
        inter_d = np.zeros((n_gt, t_n), np.int64)
        inter_d[k] = inter[k, k]
        union_d = area_g.T.copy()
        union_d[k] += area_p.T[k] - inter_d[k]
        # pairs (k, k): group = (k, t); predicted labels beyond n_pred are simply absent
        fg_near = near_points(bp.obj * t_n + bp.t, bp.y, bp.x, bg.obj * t_n + bg.t, bg.y, bg.x, radius)
        gt_near = near_points(bg.obj * t_n + bg.t, bg.y, bg.x, bp.obj * t_n + bp.t, bp.y, bp.x, radius)
        fg_match = _group_count(bp.obj[fg_near] * t_n + bp.t[fg_near], n_gt, t_n)
        gt_match = _group_count(bg.obj[gt_near] * t_n + bg.t[gt_near], n_gt, t_n)
        n_fg = np.zeros((n_gt, t_n), np.int64)
        n_fg[:n_pred] = cnt_p
        return _jaccard(inter_d, union_d), _f_from_counts(n_fg, cnt_g, fg_match, gt_match)
    # all pairs (m, g): group = (m, g, t); each map's points are repeated once per object of the other map
    rp, rg = np.arange(n_gt), np.arange(n_pred)
    q_m = np.repeat(bp.obj - 1, n_gt)
    q_g = np.tile(rp, len(bp.obj))
    pair_p = (q_m * n_gt + q_g) * t_n + np.repeat(bp.t, n_gt)
    t_g = np.repeat(bg.obj - 1, n_pred)
    t_m = np.tile(rg, len(bg.obj))
    pair_g = (t_m * n_gt + t_g) * t_n + np.repeat(bg.t, n_pred)
    yp, xp, yg, xg = np.repeat(bp.y, n_gt), np.repeat(bp.x, n_gt), np.repeat(bg.y, n_pred), np.repeat(bg.x, n_pred)
    fg_near = near_points(pair_p, yp, xp, pair_g, yg, xg, radius)
    gt_near = near_points(pair_g, yg, xg, pair_p, yp, xp, radius)
    size = n_pred * n_gt * t_n
    fg_match = np.bincount(pair_p[fg_near], minlength=size)[:size].reshape(n_pred, n_gt, t_n)
    gt_match = np.bincount(pair_g[gt_near], minlength=size)[:size].reshape(n_pred, n_gt, t_n)
    n_fg = np.broadcast_to(cnt_p[:, None, :], (n_pred, n_gt, t_n))
    n_gt_b = np.broadcast_to(cnt_g[None, :, :], (n_pred, n_gt, t_n))
    return _jaccard(inter, union), _f_from_counts(n_fg, n_gt_b, fg_match, gt_match)


def _group_count(groups: np.ndarray, n_obj: int, t_n: int) -> np.ndarray:
    flat = np.bincount(groups, minlength=(n_obj + 1) * t_n)[: (n_obj + 1) * t_n]
    return flat.reshape(n_obj + 1, t_n)[1:]


def _jaccard(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        j = inter / union
    j[union == 0] = 1
    return j


def statistics(per_frame: np.ndarray) -> tuple[float, float, float]:
    """The reference's `db_statistics`: Mean (nanmean), Recall (nanmean of x > 0.5) and Decay (nanmean of the first
    minus the last of four bins whose inclusive edges are round(linspace(1, n, 5) + 1e-10) - 1, cast to uint8 as the
    reference does: identical for sequences up to 256 frames, the reference's own wrap-around beyond)."""
    x = np.asarray(per_frame, np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = np.nanmean(x)
        recall = np.nanmean(x > 0.5)
        ids = (np.round(np.linspace(1, len(x), 5) + 1e-10) - 1).astype(np.uint8)
        bins = [x[ids[i]:ids[i + 1] + 1] for i in range(4)]
        decay = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return float(mean), float(recall), float(decay)


def object_count(first_gt_frame: np.ndarray) -> int:
    """Number of objects of a sequence: the largest id of the first annotated frame, void (255) aside."""
    f = np.asarray(first_gt_frame)
    f = f[f != 255]
    return int(f.max()) if f.size else 0


class ObjectIdError(ValueError):
    """A prediction uses an object id the protocol does not allow (beyond the true objects, or beyond 20)."""


def semi_supervised_scores(gt: np.ndarray, pred: np.ndarray, n_objects: int | None = None,
                           bound_th: float = BOUND_TH) -> tuple[np.ndarray, np.ndarray]:
    """Per-object per-frame J and F (K, T) of one sequence, semi-supervised: `gt` and `pred` are the frames to
    score (the caller drops frames 0 and N-1, see `DavisJF`). The object count comes from the first true frame of the
    sequence (`n_objects`, default: from gt[0]); a predicted id above it is an error, missing ids score as empty."""
    gt, pred = np.asarray(gt), np.asarray(pred)
    k = object_count(gt[0]) if n_objects is None else int(n_objects)
    n_pred = int(pred.max()) if pred.size else 0
    if n_pred > k:
        raise ObjectIdError(f"the prediction uses object id {n_pred} but the sequence has {k} objects")
    return pair_scores(gt, pred, k, n_pred, None, diagonal=True, bound_th=bound_th)


def unsupervised_scores(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None,
                        bound_th: float = BOUND_TH,
                        max_objects: int = MAX_UNSUPERVISED_OBJECTS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unsupervised: all frames, void pixels excluded (default: gt == 255), predicted objects matched one-to-one to
    true objects by Hungarian assignment maximizing the mean over frames of (J + F) / 2. Returns J, F (K, T) of the
    matched pairs in the reference's order (by predicted id) and the true id (1-based) of each row."""
    gt, pred = np.asarray(gt), np.asarray(pred)
    if void is None:
        void = gt == 255
    k = object_count(gt[0])
    n_pred = int(pred.max()) if pred.size else 0
    if n_pred > max_objects:
        raise ObjectIdError(f"the prediction uses object id {n_pred}; at most {max_objects} objects are allowed")
    n_rows = max(n_pred, k)  # the reference pads missing predicted objects with empty masks
    j, f = pair_scores(gt, pred, k, n_rows, void, diagonal=False, bound_th=bound_th)
    all_metrics = (np.mean(j, axis=2) + np.mean(f, axis=2)) / 2
    rows, cols = linear_sum_assignment(-all_metrics)
    return j[rows, cols, :], f[rows, cols, :], cols + 1


@dataclass
class DavisJF:
    """Accumulating J&F over sequences (update per sequence, compute once), torchmetrics-style.

    `update` takes a whole sequence: true label maps (T, H, W) as read from the PNGs (255 = void) and predicted label
    maps of the same frames. Semi-supervised scoring drops frames 0 and T-1 itself, as the reference does."""

    task: str = "semi-supervised"
    bound_th: float = BOUND_TH
    _j: dict = field(default_factory=dict, init=False, repr=False)
    _f: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"unknown DAVIS task {self.task!r} (known: {', '.join(TASKS)})")

    def reset(self) -> None:
        self._j.clear(), self._f.clear()

    def update(self, sequence: str, gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> None:
        gt, pred = np.asarray(gt), np.asarray(pred)
        if gt.shape != pred.shape:
            raise ValueError(f"{sequence}: ground truth {gt.shape} and prediction {pred.shape} differ")
        if self.task == "semi-supervised":
            if gt.shape[0] < 3:
                raise ValueError(f"{sequence}: semi-supervised scoring needs at least 3 frames (first and last "
                                 "are not scored)")
            j, f = semi_supervised_scores(gt[1:-1], pred[1:-1], object_count(gt[0]), self.bound_th)
            ids = np.arange(1, j.shape[0] + 1)
        else:
            j, f, ids = unsupervised_scores(gt, pred, void, self.bound_th)
        self.add_scores(sequence, j, f, ids)

    def add_scores(self, sequence: str, j: np.ndarray, f: np.ndarray, object_ids=None) -> None:
        """Add precomputed per-object per-frame scores (K, T) of one sequence (e.g. from cached task records)."""
        ids = range(1, len(j) + 1) if object_ids is None else object_ids
        for row, oid in enumerate(ids):
            self._j[(sequence, int(oid))] = np.asarray(j[row], np.float64)
            self._f[(sequence, int(oid))] = np.asarray(f[row], np.float64)

    def compute(self) -> dict:
        return summarize(self._j, self._f, f"davis2017-{self.task}")


def summarize(j: dict, f: dict, variant: str) -> dict:
    """Global statistics over objects ((sequence, id) -> per-frame vector), per-sequence and per-object means."""
    if not j:
        raise ValueError("no object was scored")
    keys = list(j)
    js = np.array([statistics(j[k]) for k in keys])
    fs = np.array([statistics(f[k]) for k in keys])
    j_mean, f_mean = np.mean(js[:, 0]), np.mean(fs[:, 0])
    out = {"J&F-Mean": float((j_mean + f_mean) / 2), "J-Mean": float(j_mean), "J-Recall": float(np.mean(js[:, 1])),
           "J-Decay": float(np.mean(js[:, 2])), "F-Mean": float(f_mean), "F-Recall": float(np.mean(fs[:, 1])),
           "F-Decay": float(np.mean(fs[:, 2])), "variant": variant, "objects": len(keys)}
    per_seq: dict[str, list[int]] = {}
    for i, (seq, _) in enumerate(keys):
        per_seq.setdefault(seq, []).append(i)
    out["per_sequence"] = {seq: {"J-Mean": float(np.mean(js[rows, 0])), "F-Mean": float(np.mean(fs[rows, 0]))}
                           for seq, rows in per_seq.items()}
    out["per_object"] = {f"{seq}_{oid}": {"J-Mean": float(js[i, 0]), "F-Mean": float(fs[i, 0])}
                         for i, (seq, oid) in enumerate(keys)}
    return out
