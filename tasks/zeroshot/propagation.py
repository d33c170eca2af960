"""Semi-supervised video object segmentation by label propagation on frozen features (DINO, CRW).

Given features of every step (N, h, w, d) and the one-hot labels of step 0 on the same grid, each later step's soft
labels are a weighted sum of the labels of context sources: its affinity to every source cell of the context steps
(L2-normalized features, dot product) is restricted to a spatial window around the target cell, the top k sources
are kept and turned into weights. Predictions are fed back as soft labels. The two reference settings:

* `dino` (facebookresearch/dino `eval_video_segmentation.py`): context = step 0 + the 7 previous steps; weight =
  exp(affinity / 0.1) times a square window mask (|di|, |dj| <= 12 cells, step 0 included), values below the k-th
  largest (k = 5) over all context sources set to 0 (ties with the k-th kept), then normalized to sum 1.
* `crw` (ajabri/videowalk `test.py`, paper settings `--topk 10 --videoLen 20 --radius 12 --temperature 0.05`):
  the video is prepended with 20 copies of step 0, context = step 0 as unrestricted long-term memory + the 20
  previous steps restricted to a disk (Euclidean distance < 12 cells; -1e10 added outside, before dividing by the
  temperature); the top 10 of affinity / 0.05 over all sources are softmaxed into weights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

MASKED = -1e10  # CRW's additive mask


@dataclass(frozen=True)
class PropagationParams:
    topk: int
    temperature: float
    context: int  # previous steps kept besides step 0
    radius: float  # window size in cells
    window: str  # "square": |di|, |dj| <= radius (DINO); "disk": distance < radius (CRW)
    window_on_first: bool  # whether step 0 is restricted to the window too (DINO yes; CRW's long memory no)
    weights: str  # "exp-threshold" (DINO) or "softmax" (CRW)
    prepend_first: bool  # CRW: the short context starts as copies of step 0


VARIANTS = {
    "dino": PropagationParams(topk=5, temperature=0.1, context=7, radius=12, window="square", window_on_first=True,
                              weights="exp-threshold", prepend_first=False),
    "crw": PropagationParams(topk=10, temperature=0.05, context=20, radius=12, window="disk", window_on_first=False,
                             weights="softmax", prepend_first=True),
}


def window_mask(radius: float, kind: str) -> torch.Tensor:
    """bool (2r+1, 2r+1), r = floor(radius): the offsets (di, dj) inside a window around a cell. "square":
    |di|, |dj| <= radius (DINO's `restrict_neighborhood`); "disk": sqrt(di² + dj²) < radius (CRW's
    `MaskedAttention`)."""
    r = int(math.floor(radius))
    off = torch.arange(-r, r + 1, dtype=torch.float64)
    if kind == "square":
        return torch.ones(2 * r + 1, 2 * r + 1, dtype=torch.bool)
    if kind == "disk":
        return (off[:, None] ** 2 + off[None, :] ** 2).sqrt() < radius
    raise ValueError(f"unknown window kind {kind!r} (square or disk)")


def context_steps(n: int, params: PropagationParams) -> list[tuple[int, bool]]:
    """(step, restricted to the window) of the context of target step n >= 1, in the reference's order."""
    if params.prepend_first:  # CRW: long memory, then the previous `context` steps of the padded sequence
        short = [max(s, 0) for s in range(n - params.context, n)]
        return [(0, params.window_on_first)] + [(s, True) for s in short]
    queue = list(range(max(1, n - params.context), n))  # DINO: step 0 plus up to `context` preceding steps
    return [(0, params.window_on_first)] + [(s, True) for s in queue]


def _weights(aff: torch.Tensor, valid: torch.Tensor, params: PropagationParams) -> torch.Tensor:
    """Propagation weights (B, S) from affinities (B, S) of every candidate source; 0 outside the top k."""
    k = min(params.topk, aff.shape[1])
    if params.weights == "exp-threshold":  # DINO: exp(a / T) * mask, below the k-th largest -> 0, sum to 1
        weight = torch.exp(aff / params.temperature) * valid
        kth = torch.topk(weight, k, dim=1).values[:, -1:]
        weight = torch.where(weight < kth, torch.zeros_like(weight), weight)
        return weight / weight.sum(dim=1, keepdim=True)
    if params.weights == "softmax":  # CRW: (a + mask) / T, softmax over the top k
        logits = (aff + torch.where(valid, 0.0, MASKED)) / params.temperature
        val, idx = torch.topk(logits, k, dim=1)
        return torch.zeros_like(logits).scatter_(1, idx, F.softmax(val, dim=1))
    raise ValueError(f"unknown weighting {params.weights!r}")


def _windows(x: torch.Tensor, r: int, r0: int, r1: int) -> torch.Tensor:
    """View (r1 - r0, w, c, 2r+1, 2r+1) of the (2r+1)² window around every cell of rows [r0, r1) of a grid
    (h, w, c), zero-padded outside (no copy beyond the padding)."""
    padded = F.pad(x.permute(2, 0, 1), (r, r, r, r)).permute(1, 2, 0)
    return padded[r0:r1 + 2 * r].unfold(0, 2 * r + 1, 1).unfold(1, 2 * r + 1, 1)


VIEW_MAX_CHANNELS = 32  # up to this feature width, window views are as fast as band matrix products on a CPU


def propagate_step(target: torch.Tensor, sources: torch.Tensor, labels: torch.Tensor, restricted: list[bool],
                   h: int, w: int, params: PropagationParams, rows_per_block: int = 8) -> torch.Tensor:
    """Soft labels (h*w, C) of one target step. target (h*w, d) and sources (S, h*w, d) L2-normalized, labels
    (S, h*w, C) soft; `restricted[s]`: whether context step s is limited to the window.

    Exactly the dense computation of the references (every source cell of every context step, masked), evaluated
    only where it can be non-zero, block of target rows by block: a restricted step contributes the (2r+1)² cells of
    each target's window (cells outside the grid or the disk masked), an unrestricted one all its cells. The window
    affinities and weighted labels come from window views of the grid for narrow features (d <= 32), else from
    matrix products with the band of rows the block's windows reach (gathered, then scattered back): the same
    numbers, whichever is faster."""
    r = int(math.floor(params.radius))
    k = 2 * r + 1
    d, c = target.shape[1], labels.shape[-1]
    views = d <= VIEW_MAX_CHANNELS
    shape = window_mask(params.radius, params.window).reshape(-1)
    di, dj = torch.arange(-r, r + 1).repeat_interleave(k), torch.arange(-r, r + 1).repeat(k)
    out = []
    for r0 in range(0, h, rows_per_block):
        r1 = min(h, r0 + rows_per_block)
        b0, b1 = max(0, r0 - r), min(h, r1 + r)  # the band of rows the block's windows reach
        cells = torch.arange(r0 * w, r1 * w)
        q = target[cells]
        ii, jj = (cells // w)[:, None] + di, (cells % w)[:, None] + dj  # (n, K) window cells
        inside = (ii >= 0) & (ii < h) & (jj >= 0) & (jj < w) & shape
        local = (ii.clamp(0, h - 1) - b0).clamp(0, b1 - b0 - 1) * w + jj.clamp(0, w - 1)  # index in the band
        parts = []  # (affinity (n, S_s), valid (n, S_s), how the labels are gathered, labels)
        for s, restrict in enumerate(restricted):
            if not restrict:
                aff = q @ sources[s].T
                parts.append((aff, torch.ones_like(aff, dtype=torch.bool), "dense", labels[s]))
            elif views:
                src = _windows(sources[s].view(h, w, d), r, r0, r1)
                aff = torch.einsum("hwd,hwdij->hwij", q.view(r1 - r0, w, d), src).reshape(len(cells), k * k)
                parts.append((aff, inside, "view", _windows(labels[s].view(h, w, c), r, r0, r1)))
            else:
                aff = (q @ sources[s, b0 * w:b1 * w].T).gather(1, local)
                parts.append((aff, inside, "band", labels[s, b0 * w:b1 * w]))
        weight = _weights(torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1), params)
        pred, a = 0, 0
        for aff, _, how, lab in parts:
            wpart = weight[:, a:a + aff.shape[1]]
            a += aff.shape[1]
            if how == "view":
                pred = pred + torch.einsum("hwij,hwcij->hwc", wpart.reshape(r1 - r0, w, k, k), lab).reshape(-1, c)
            elif how == "band":  # back onto the band (a masked entry has weight 0 wherever it was clamped to)
                band = torch.zeros(len(cells), (b1 - b0) * w, dtype=wpart.dtype).scatter_add_(1, local, wpart)
                pred = pred + band @ lab
            else:
                pred = pred + wpart @ lab
        out.append(pred)
    return torch.cat(out)


def propagate(features: torch.Tensor, first_labels: torch.Tensor, params: PropagationParams) -> torch.Tensor:
    """Soft labels (N, C, h, w) of every step: step 0 is `first_labels` (C, h, w); features (N, h, w, d) are
    L2-normalized here."""
    n, h, w, d = features.shape
    if first_labels.shape[1:] != (h, w):
        raise ValueError(f"first-step labels {tuple(first_labels.shape)} do not match the feature grid {(h, w)}")
    feats = F.normalize(features.reshape(n, h * w, d).float(), dim=-1)
    soft = [first_labels.reshape(first_labels.shape[0], h * w).T.float()]  # each (h*w, C)
    for t in range(1, n):
        ctx = context_steps(t, params)
        sources = torch.stack([feats[s] for s, _ in ctx])
        labels = torch.stack([soft[s] for s, _ in ctx])
        soft.append(propagate_step(feats[t], sources, labels, [r for _, r in ctx], h, w, params))
    return torch.stack([s.T.reshape(-1, h, w) for s in soft])


def norm_mask(soft: torch.Tensor) -> torch.Tensor:
    """DINO's `norm_mask` on (C, H, W): each channel whose maximum is > 0 shifted to min 0 and scaled to max 1."""
    out = soft.clone()
    for c in range(out.shape[0]):
        ch = out[c]
        if ch.max() > 0:
            ch = ch - ch.min()
            out[c] = ch / ch.max()
    return out


def labels_to_pixels(soft: torch.Tensor, size: tuple[int, int], normalize: bool,
                     stride: tuple[int, int] | None = None) -> torch.Tensor:
    """Hard labels (H, W) of one step's soft labels (C, h, w). DINO (`stride` given): bilinear upsampling by the
    stride (align_corners False) to (h * sh, w * sw), cropped to `size` when the grid overhangs the frame, then
    norm_mask (`normalize`). CRW (`stride` None): bilinear resizing straight to `size`. Then argmax (the lowest
    label on ties)."""
    h, w = soft.shape[1:]
    out_size = size if stride is None else (h * stride[0], w * stride[1])
    up = F.interpolate(soft[None].float(), size=out_size, mode="bilinear", align_corners=False)[0]
    up = up[:, :size[0], :size[1]]
    if normalize:
        up = norm_mask(up)
    return up.permute(1, 2, 0).contiguous().argmax(dim=-1)  # first maximum, as torch.max(dim=0)
