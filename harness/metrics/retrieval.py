"""Text-video retrieval metrics from a similarity matrix, with CLIP4Clip's definitions and no tie bug.

rank_i = #{j : S[i, j] > S[i, true(i)]} (0-based; exact ties with the true item do not push it down).
R@K = 100 * mean(rank < K); MdR = median(rank) + 1; MnR = mean(rank) + 1.

CLIP4Clip's `compute_metrics` finds the rank with `np.where(sort(-S) - diag(-S) == 0)`, which emits one entry per
tied item (so a row can count several times); rank_i above is what it computes when there are no ties.

* One caption per video (MSR-VTT 1k-A): S is texts x videos and square, the true match is the diagonal;
  text->video ranks rows of S, video->text rows of Sᵀ. Medians are NumPy's (the mean of the two middle ranks).
* Several captions per video (Deferf / CLIP4Clip multi-sentence): S is captions x videos and `caption_video[i]` is
  caption i's video. text->video ranks every caption against all videos; its median is torch.median's (the lower
  middle rank), as `tensor_text_to_video_metrics`. video->text scores video j against caption group g by the maximum
  over g's captions (`tensor_video_to_text_sim`) and ranks the groups with the square rule above.
"""
from __future__ import annotations

import numpy as np


def ranks(sim, true_index) -> np.ndarray:
    s = np.asarray(sim, dtype=np.float64)
    t = np.asarray(true_index, dtype=np.int64)
    true = s[np.arange(len(t)), t][:, None]
    return (s > true).sum(axis=1)


def rank_metrics(rank: np.ndarray, median: str = "numpy", ks=(1, 5, 10)) -> dict[str, float]:
    r = np.asarray(rank, dtype=np.float64)
    if r.size == 0:
        return {**{f"R@{k}": float("nan") for k in ks}, "MdR": float("nan"), "MnR": float("nan"), "n": 0}
    if median == "numpy":
        med = float(np.median(r))
    elif median == "lower":
        med = float(np.sort(r)[(r.size - 1) // 2])
    else:
        raise ValueError(f"unknown median rule {median!r}")
    out = {f"R@{k}": 100.0 * float(np.mean(r < k)) for k in ks}
    out.update({"MdR": med + 1.0, "MnR": float(r.mean()) + 1.0, "n": int(r.size)})
    return out


def _check_sim(sim) -> np.ndarray:
    s = np.asarray(sim, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"the similarity matrix must be 2-D (texts x videos), got shape {s.shape}")
    if not np.isfinite(s).all():
        i, j = np.argwhere(~np.isfinite(s))[0]
        raise ValueError(f"similarity entry ({i}, {j}) is {s[i, j]}")
    return s


def retrieval_metrics(sim, caption_video=None, ks=(1, 5, 10)) -> dict[str, dict[str, float]]:
    """{"t2v": {...}, "v2t": {...}} for a texts x videos similarity matrix (see the module docstring)."""
    s = _check_sim(sim)
    if caption_video is None:
        if s.shape[0] != s.shape[1]:
            raise ValueError(f"a {s.shape[0]}x{s.shape[1]} matrix needs caption_video (which video each text "
                             "describes); without it the matrix must be square")
        idx = np.arange(s.shape[0])
        return {"t2v": rank_metrics(ranks(s, idx), "numpy", ks), "v2t": rank_metrics(ranks(s.T, idx), "numpy", ks)}
    cv = np.asarray(caption_video)
    if cv.shape != (s.shape[0],) or not np.issubdtype(cv.dtype, np.integer):
        raise ValueError(f"caption_video must hold one integer per text ({s.shape[0]}), got {cv.shape} {cv.dtype}")
    if cv.min() < 0 or cv.max() >= s.shape[1]:
        raise ValueError(f"caption_video values must lie in [0, {s.shape[1]}), got {cv.min()}..{cv.max()}")
    t2v = rank_metrics(ranks(s, cv), "lower", ks)
    groups = np.unique(cv)
    if len(groups) != s.shape[1]:
        missing = sorted(set(range(s.shape[1])) - set(groups.tolist()))
        raise ValueError(f"videos {missing[:5]} have no caption; video->text needs one caption group per video")
    group_sim = np.full((s.shape[1], s.shape[1]), -np.inf)  # [video j, group g] = max over g's captions of S[c, j]
    np.maximum.at(group_sim.T, cv, s)
    return {"t2v": t2v, "v2t": rank_metrics(ranks(group_sim, np.arange(s.shape[1])), "numpy", ks)}
