"""Tiled inference for large frames: memory stays bounded from 128p to 4320p.

Space: the clip is cut into overlapping tiles (`tile` pixels, `overlap` pixels shared by neighbours). Each tile is
encoded on its own through the whole pyramid; every level's continuous code values are blended across tiles with
linear ramps over the overlap (the weights of diffusers' `blend_h`/`blend_v`, applied symmetrically) and quantized
once, so the clip has ONE code grid per level and the bit count is that of the untiled clip. Decoding cuts the last
level's grid into overlapping latent tiles, decodes each and blends the pixels with the same ramps.
Time: the causal encoder and decoder already run chunk by chunk through their feature caches (frame 0, then 4
frames per latent frame), so activations never hold more than one chunk; only the taps and outputs grow with T.
"""
from __future__ import annotations

import torch

from models.tokenizer.binary import residual_sign_quantize


def tile_starts(size: int, tile: int, overlap: int, align: int = 8) -> list[int]:
    """Start offsets of tiles of length `tile` covering [0, size): stride tile - overlap, the last tile flush with the
    end; offsets aligned to `align` (the coarsest grid)."""
    if size <= tile:
        return [0]
    stride = max(align, (tile - overlap) // align * align)
    starts = list(range(0, size - tile, stride))
    last = (size - tile) // align * align
    if not starts or starts[-1] != last:
        starts.append(last)
    if starts[-1] + tile < size:
        raise ValueError(f"tiles of {tile} cannot cover {size} with alignment {align}")
    return starts


def ramp(length: int, lo_overlap: int, hi_overlap: int) -> torch.Tensor:
    """1-D blend weights: rising linearly over the first `lo_overlap` cells, falling over the last `hi_overlap`."""
    w = torch.ones(length)
    for i in range(min(lo_overlap, length)):
        w[i] = (i + 0.5) / lo_overlap
    for i in range(min(hi_overlap, length)):
        w[length - 1 - i] = torch.minimum(w[length - 1 - i], torch.tensor((i + 0.5) / hi_overlap))
    return w


def _weights(starts_h, starts_w, i, j, th, tw, scale, size_h, size_w) -> torch.Tensor:
    """(th/scale, tw/scale) blend weights of tile (i, j) on a grid `scale` times coarser than pixels."""
    def overlaps(starts, k, t, size):
        lo = (starts[k - 1] + t - starts[k]) if k > 0 else 0
        hi = (starts[k] + t - starts[k + 1]) if k + 1 < len(starts) else 0
        return max(lo, 0) // scale, max(hi, 0) // scale

    lo_h, hi_h = overlaps(starts_h, i, th, size_h)
    lo_w, hi_w = overlaps(starts_w, j, tw, size_w)
    return torch.outer(ramp(th // scale, lo_h, hi_h), ramp(tw // scale, lo_w, hi_w))


@torch.no_grad()
def tiled_quantize(model, video: torch.Tensor, text, tile: int, overlap: int):
    """Per-level blended code values z and their residual-sign quantization for a (B, 3, T, H, W) clip whose H, W
    are multiples of the spatial factor. Returns (list of z (B, k, t, h, w), list of stage code lists)."""
    b, _, t, h, w = video.shape
    align = model.backbone.spatial_factor
    th, tw = min(tile, h), min(tile, w)
    sh, sw = tile_starts(h, th, overlap, align), tile_starts(w, tw, overlap, align)
    acc, wsum = None, None
    strides = None
    for i, y0 in enumerate(sh):
        for j, x0 in enumerate(sw):
            q = model.quantize(video[..., y0:y0 + th, x0:x0 + tw], text)
            if acc is None:
                strides = [lv.stride[1] for lv in q.levels]
                acc = [video.new_zeros(b, lv.z.shape[1], lv.z.shape[2], h // s, w // s)
                       for lv, s in zip(q.levels, strides)]
                wsum = [video.new_zeros(1, 1, 1, h // s, w // s) for s in strides]
            for lvl, (lv, s) in enumerate(zip(q.levels, strides)):
                wt = _weights(sh, sw, i, j, th, tw, s, h, w).to(video)
                ys, xs = slice(y0 // s, (y0 + th) // s), slice(x0 // s, (x0 + tw) // s)
                acc[lvl][..., ys, xs] += lv.z * wt
                wsum[lvl][..., ys, xs] += wt
    zs = [a / ws for a, ws in zip(acc, wsum)]
    stages = model.quantizer.residual_stages if hasattr(model.quantizer, "residual_stages") else 1
    codes = [residual_sign_quantize(z, stages)[1] for z in zs]
    return zs, codes


@torch.no_grad()
def tiled_decode(model, value: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """Decode a (B, k, t, h, w) last-level grid in overlapping latent tiles, blending pixels over the overlap."""
    f = model.backbone.spatial_factor
    b, _, t, h, w = value.shape
    H, W = h * f, w * f
    th, tw = min(tile, H), min(tile, W)
    sh, sw = tile_starts(H, th, overlap, f), tile_starts(W, tw, overlap, f)
    out, wsum = None, value.new_zeros(1, 1, 1, H, W)
    for i, y0 in enumerate(sh):
        for j, x0 in enumerate(sw):
            part = model.decode_value(value[..., y0 // f:(y0 + th) // f, x0 // f:(x0 + tw) // f], clamp=False)
            if out is None:
                out = value.new_zeros(b, 3, part.shape[2], H, W)
            wt = _weights(sh, sw, i, j, th, tw, 1, H, W).to(value)
            out[..., y0:y0 + th, x0:x0 + tw] += part * wt
            wsum[..., y0:y0 + th, x0:x0 + tw] += wt
    return (out / wsum).clamp(-1, 1)
