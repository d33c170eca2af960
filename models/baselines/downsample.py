"""Area downsampling by a tokenizer's factors and trilinear upsampling back: a no-learning reference with a real
compression ratio. The downsampled video is stored as 8-bit RGB values, which is what its bits count.

Time is grouped causally like the 4x8x8 video tokenizers it stands in for: frame 0 alone, then groups of `t` frames,
so a 17-frame clip has 1 + 16/4 = 5 latent frames and the same 5x16x16 grid as a 4x8x8 tokenizer at 128x128.

Its `features` are that latent grid itself (the 8-bit RGB means, back in [-1, 1]): one level, 3 channels, no language.
Feature-only protocols (label propagation, linear probes) thus have a real, learning-free baseline to beat.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from models.base import FEATURES, RECONSTRUCT, ModelAdapter, ModelMetadata, Tokens


def causal_groups(num_frames: int, t: int) -> list[tuple[int, int]]:
    """[(start, end)) frame ranges: [0, 1), then runs of t frames (the last one possibly shorter)."""
    groups = [(0, 1)]
    s = 1
    while s < num_frames:
        groups.append((s, min(s + t, num_frames)))
        s += t
    return groups


def temporal_weights(groups: list[tuple[int, int]], num_frames: int) -> torch.Tensor:
    """(T, T') linear-interpolation weights from latent frames (at their groups' centres) to every frame."""
    centres = np.array([(a + b - 1) / 2 for a, b in groups], dtype=np.float64)
    w = np.zeros((num_frames, len(groups)))
    for f in range(num_frames):
        if len(groups) == 1 or f <= centres[0]:
            w[f, 0] = 1.0
        elif f >= centres[-1]:
            w[f, -1] = 1.0
        else:
            k = int(np.searchsorted(centres, f, side="right")) - 1
            a = (f - centres[k]) / (centres[k + 1] - centres[k])
            w[f, k], w[f, k + 1] = 1 - a, a
    return torch.from_numpy(w).float()


class DownsampleAdapter(ModelAdapter):
    capabilities = frozenset({RECONSTRUCT, FEATURES})
    LEVELS = ("first", "last", 0, -1)  # one feature level, under every name a task may ask for
    metadata = ModelMetadata("Area downsample 4x8x8 + trilinear", family="reference", compression=(4, 8, 8),
                             code_bits=24, discrete=True, source="PyraTok Bench", license="Apache-2.0",
                             notes="8-bit RGB values on the tokenizer's latent grid")

    def __init__(self, device="cpu", t: int = 4, h: int = 8, w: int = 8, **args):
        super().__init__(device, t=t, h=h, w=w, **args)
        self.t, self.h, self.w = int(t), int(h), int(w)

    def _padded(self, video: torch.Tensor) -> torch.Tensor:
        """The video with its last row and column repeated up to multiples of the cell size."""
        b, c, n, hh, ww = video.shape
        ph, pw = (-hh) % self.h, (-ww) % self.w
        return F.pad(video.reshape(b, c * n, hh, ww), (0, pw, 0, ph), mode="replicate").reshape(b, c, n, hh + ph,
                                                                                                ww + pw)

    def encode(self, video: torch.Tensor) -> Tokens:
        b, c, n, hh, ww = video.shape
        x = self._padded(video)
        groups = causal_groups(n, self.t)
        frames = torch.stack([x[:, :, a:e].mean(2) for a, e in groups], 2)  # (B, C, T', H, W)
        lat = F.avg_pool3d(frames, (1, self.h, self.w))
        codes = lat.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
        bits = torch.full((b,), 8.0 * codes[0].numel(), dtype=torch.float64)
        return Tokens((n, hh, ww), bits=bits, payload=codes, latent_elements=codes[0].numel())

    def features(self, video: torch.Tensor, level: int | str = "last") -> torch.Tensor:
        """The latent grid (B, T', ceil(H/h), ceil(W/w), 3): each cell's mean colour over its causal group of frames
        and its h x w pixels, quantized to 8 bits as `encode`'s codes and mapped back to [-1, 1]. Pooled in space
        before time, which is 64x less work and the same values up to float summation order."""
        self._check_level(level)
        cells = F.avg_pool3d(self._padded(video), (1, self.h, self.w))
        lat = torch.stack([cells[:, :, a:e].mean(2) for a, e in causal_groups(video.shape[2], self.t)], 2)
        codes = lat.add(1).mul(127.5).round().clamp(0, 255)
        return codes.div(127.5).sub(1).permute(0, 2, 3, 4, 1).contiguous()

    def feature_stride(self, level: int | str = "last") -> tuple[int, int, int]:
        self._check_level(level)
        return self.t, self.h, self.w

    def _check_level(self, level: int | str) -> None:
        if level not in self.LEVELS:
            raise ValueError(f"downsample has a single feature level (ask for 'first', 'last', 0 or -1), not {level!r}")

    def decode(self, tokens: Tokens) -> torch.Tensor:
        n, hh, ww = tokens.video_shape
        lat = tokens.payload.float().div(127.5).sub(1)
        b, c, tp, lh, lw = lat.shape
        up = F.interpolate(lat.permute(0, 2, 1, 3, 4).reshape(b * tp, c, lh, lw),
                           size=(lh * self.h, lw * self.w), mode="bilinear", align_corners=False)
        up = up.reshape(b, tp, c, lh * self.h, lw * self.w).permute(0, 2, 1, 3, 4)
        weights = temporal_weights(causal_groups(n, self.t), n).to(up)
        out = torch.einsum("tk,bckhw->bcthw", weights, up)
        return out[..., :hh, :ww].clamp(-1, 1)

