"""A semantic trunk for small PyraTok configurations: a trained, normalized, strided causal 3D conv net beside the
VAE encoder whose features reach every LaPQ level (an addition to the paper, off by default).

Why: the paper's levels read a *pretrained* encoder, whose features already carry semantics; a small configuration
trained here starts from an encoder that holds only colour averages (the frozen area-downsample start), and no LaPQ
level can learn motion or shape from those on a CPU budget. `scripts/motion_trunk_study.py` trains this module alone:
it learns the mini splits' motions from captions alone in half an hour on two cores, and stays at chance without
normalization or with a 4-channel output (docs/pyratok.md). It is shaped like the encoder: one
block per encoder down-sampling stage with the same strides (time halved where the encoder halves it, causally:
frame 0 alone, then groups, as the Wan encoder), then `depth` blocks at the deepest grid to widen the receptive
field. Its output at each stride is projected into the LaPQ levels on that grid (`LaPQ.semantic_in`, zero at
initialization, so adding a trunk to a trained model leaves its codes unchanged until it trains).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm with statistics per time step (over channel groups and space), so a later frame never changes an
    earlier output: a clip-wide GroupNorm would break the encoder's causality."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        y = super().forward(x.transpose(1, 2).reshape(b * t, c, h, w))
        return y.reshape(b, t, c, h, w).transpose(1, 2)


class CausalBlock(nn.Module):
    """3x3x3 Conv3D (zero padding before frame 0 in time, both sides in space), per-frame GroupNorm, SiLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: tuple[int, int, int], norm: bool = True):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, 3, stride)
        self.norm = FrameGroupNorm(min(8, out_channels), out_channels) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.norm(self.conv(F.pad(x, (1, 1, 1, 1, 2, 0)))))


class SemanticTrunk(nn.Module):
    """video (B, 3, T, H, W) -> {(t, h, w) stride: features (B, C, T', H', W')} at every down-sampling stage.

    `temporal_downsample[i]`: whether encoder stage i halves time (Wan: [False, True, True]); widths double per
    stage from `width`, capped at 4x. With T = 1 + 4k frames and H, W multiples of 8 the grids are exactly the
    encoder taps' (T' = 1 + (T - 1) / t). `norm=False` drops the normalization (the study's control only).
    `input_scale` s: the trunk reads the clip area-downsampled by s in space (a 128-px clip as the 64-px clips it
    was pretrained on, at a quarter of the cost); its grids are then s times coarser than the taps'."""

    def __init__(self, width: int, temporal_downsample: list[bool], depth: int = 2, norm: bool = True,
                 input_scale: int = 1):
        super().__init__()
        if width < 1 or depth < 0 or input_scale < 1:
            raise ValueError(f"semantic trunk width and input_scale must be >= 1 and depth >= 0, got {width}, "
                             f"{input_scale}, {depth}")
        self.input_scale = int(input_scale)
        self.stages = nn.ModuleList()
        self.strides: list[tuple[int, int, int]] = []
        self.channels: list[int] = []
        c_in, ft, fs = 3, 1, 1
        for i, halve_time in enumerate(temporal_downsample):
            c_out = width * min(2 ** i, 4)
            ft, fs = ft * (2 if halve_time else 1), fs * 2
            self.stages.append(CausalBlock(c_in, c_out, (2 if halve_time else 1, 2, 2), norm))
            self.strides.append((ft, fs, fs))  # the encoder stride it serves (its own is input_scale x coarser)
            self.channels.append(c_out)
            c_in = c_out
        self.deep = nn.Sequential(*(CausalBlock(c_in, c_in, (1, 1, 1), norm) for _ in range(depth)))

    def channels_at(self, stride: tuple[int, int, int]) -> int:
        if tuple(stride) not in self.strides:
            raise ValueError(f"the semantic trunk has no output at stride {tuple(stride)}; it has {self.strides}")
        return self.channels[self.strides.index(tuple(stride))]

    def forward(self, video: torch.Tensor) -> dict[tuple[int, int, int], torch.Tensor]:
        """Features keyed by the encoder stride they serve; with input_scale s > 1 their grids are s times coarser
        in space (LaPQ resamples them onto the tap's grid)."""
        out = {}
        s = self.input_scale
        x = F.avg_pool3d(video, (1, s, s), ceil_mode=True) if s > 1 else video
        for i, (stage, stride) in enumerate(zip(self.stages, self.strides)):
            x = stage(x)
            if i == len(self.stages) - 1:
                x = self.deep(x)
            out[stride] = x
        return out


def causal_resample(x: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """(B, C, T, H, W) features of a causal grid onto a finer (or equal) causal grid of `size` (T', H', W'): nearest
    in space; in time step i takes the latest source step that covers no frame after it (step 0 is frame 0 alone,
    so target step i of stride t' ends at frame i t', and source step j of stride t at frame j t: j = floor(i t' / t)
    = floor(i (T - 1) / (T' - 1))). Coarser steps are thus repeated with a lag, never read ahead."""
    t_src, t_dst = x.shape[2], size[0]
    if t_src != t_dst:
        idx = (torch.arange(t_dst, device=x.device) * (t_src - 1) // max(t_dst - 1, 1)) if t_src > 1 else \
            torch.zeros(t_dst, dtype=torch.long, device=x.device)
        x = x.index_select(2, idx)
    if tuple(x.shape[3:]) != tuple(size[1:]):
        x = F.interpolate(x, size=(t_dst, *size[1:]), mode="nearest")
    return x

